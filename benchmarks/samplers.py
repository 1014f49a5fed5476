"""Sampler backends on latent_factor: pm.sample's default NUTS, nutpie and numpyro (JAX), N = 116 and 1,000.

Prints a table and writes benchmarks/results.md. Run: .venv/bin/python benchmarks/samplers.py
Wall time includes compilation (what a user waits for); compile time is also shown separately for nutpie.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import time
from dataclasses import replace
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

from bayes_intl import inference as inf
from bayes_intl.data import CellTable, load_default
from bayes_intl.models import ModelData, build_model
from bayes_intl.report import markdown_table
from bayes_intl.simulate import simulate_survey, survey_codebook
from bayes_intl.spec import load_spec
from bayes_intl.survey import validate_survey

ROOT = Path(__file__).resolve().parents[1]


def survey_of_size(n: int, seed: int = 1) -> ModelData:
    """A synthetic survey of about n firms: the reconstruction's cells scaled up, items simulated."""
    cells = load_default().cells.copy()
    factor = n / cells["n"].sum()
    cells["n"] = np.round(cells["n"] * factor).astype(int)
    cells["y"] = np.minimum(np.round(cells["y"] * factor).astype(int), cells["n"])
    synthetic = simulate_survey(CellTable(cells, "scaled reconstruction", "SYNTHETIC benchmark data"), seed=seed)
    survey = validate_survey(synthetic.frame, survey_codebook(), source=f"synthetic survey, N = {len(synthetic.frame)}")
    return ModelData(survey.firms, survey, survey.source, survey.provenance)


def run(backend: str, data: ModelData, spec, seed: int) -> dict:
    sampler = replace(spec.sampler, backend=backend)
    model = build_model(spec, data)
    names = inf.parameter_names(model)
    started = time.perf_counter()
    compile_s = float("nan")
    if backend == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(model)
        compile_s = time.perf_counter() - started
        idata = nutpie.sample(compiled, chains=sampler.chains, draws=sampler.draws, tune=sampler.tune, seed=seed,
                              target_accept=sampler.target_accept, progress_bar=False)
    else:
        idata = inf.sample(model, sampler, seed=seed, progress=False)
    wall = time.perf_counter() - started
    summary = az.summary(idata, var_names=names, kind="diagnostics")
    ess = float(summary["ess_bulk"].min())
    return {"backend": backend, "firms": len(data.firms), "wall_s": round(wall, 1), "compile_s": round(compile_s, 1),
            "min_ess_bulk": round(ess), "min_ess_tail": round(float(summary["ess_tail"].min())),
            "ess_per_s": round(ess / wall, 1), "max_r_hat": round(float(summary["r_hat"].max()), 3),
            "divergences": int(idata.sample_stats["diverging"].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[116, 1000])
    parser.add_argument("--backends", nargs="+", default=["nutpie", "pymc", "numpyro"])
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    args = parser.parse_args()
    spec = load_spec(ROOT / "models" / "latent_factor.toml")
    rows = []
    for n in args.sizes:
        data = load_default_survey() if n == 116 else survey_of_size(n)
        for backend in args.backends:
            if backend == "numpyro" and importlib.util.find_spec("numpyro") is None:
                rows.append({"backend": backend, "firms": len(data.firms), "note": "not installed (jax, numpyro)"})
                continue
            try:
                rows.append(run(backend, data, spec, seed=20150601))
            except Exception as exc:  # a backend that cannot run this model is a result too
                first = str(exc).strip().splitlines()[0][:120]
                rows.append({"backend": backend, "firms": len(data.firms), "note": f"failed: {type(exc).__name__}: {first}"})
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    header = (f"# Sampler benchmark: latent_factor, {spec.sampler.chains} chains x {spec.sampler.draws} draws "
              f"({spec.sampler.tune} tuning)\n\nMachine: {platform.machine()}, {os.cpu_count()} cores, "
              f"Python {platform.python_version()}. Wall time includes compilation. Command: "
              "`.venv/bin/python benchmarks/samplers.py`\n\n")
    (ROOT / "benchmarks").mkdir(exist_ok=True)
    cells = [[("" if pd.isna(v) else str(v)) for v in row] for row in table.itertuples(index=False)]
    Path(args.out).write_text(header + markdown_table(list(table.columns), cells) + "\n")
    print(table.to_string(index=False))


def load_default_survey() -> ModelData:
    spec = load_spec(ROOT / "models" / "latent_factor.toml")
    return inf.load_model_data(spec)


if __name__ == "__main__":
    main()
