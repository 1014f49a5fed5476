"""Sampler backends on latent_factor: pm.sample's default NUTS, nutpie and numpyro (JAX), N = 116 and 1,000.

Each measurement runs in a fresh Python process through ``inference.sample``, the code path
``bayes-intl fit`` uses, with the spec's own settings (4 chains x 1000 draws). ``--cold`` first runs
it against an empty PyTensor/numba compile cache (a user's first fit); the warm run follows on the
cache that run left (every later fit). Wall time is compile plus sampling, the wait a user has.
Appends a dated section to benchmarks/results.md.

Run: .venv/bin/python benchmarks/samplers.py [--sizes 116 1000] [--backends nutpie pymc numpyro] [--cold]
     [--target-accept 0.95] [--draws 1500]
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 20150601


def survey_of_size(n: int, seed: int = 1):
    """A synthetic survey of about n firms: the reconstruction's cells scaled up, items simulated."""
    from bayes_intl.data import CellTable, ModelData, load_default, model_data, synthetic_survey
    from bayes_intl.spec import load_spec

    if n == 116:
        return model_data(load_spec(ROOT / "models" / "latent_factor.toml"))
    cells = load_default().cells.copy()
    factor = n / cells["n"].sum()
    cells["n"] = np.round(cells["n"] * factor).astype(int)
    cells["y"] = np.minimum(np.round(cells["y"] * factor).astype(int), cells["n"])
    table = CellTable(cells, "scaled reconstruction", "SYNTHETIC benchmark data")
    survey = synthetic_survey(table, seed=seed, source=f"synthetic survey, N = {table.n_firms}")
    return ModelData(survey.firms, survey, survey.source, survey.provenance)


def measure(backend: str, n: int, target_accept: float | None = None, draws: int | None = None) -> dict:
    """One fit in this process: wall (compile + sampling), compile, min ESS, R-hat, divergences."""
    from dataclasses import replace

    import arviz as az

    from bayes_intl import inference as inf
    from bayes_intl.models import build_model
    from bayes_intl.spec import load_spec

    spec = load_spec(ROOT / "models" / "latent_factor.toml")
    sampler = replace(spec.sampler, backend=backend, target_accept=target_accept or spec.sampler.target_accept,
                      draws=draws or spec.sampler.draws)
    data = survey_of_size(n)
    model = build_model(spec, data)
    started = time.perf_counter()
    idata = inf.sample(model, sampler, seed=SEED, progress=False)
    wall = time.perf_counter() - started
    summary = az.summary(idata, var_names=inf.parameter_names(model), kind="diagnostics")
    ess = float(summary["ess_bulk"].min())
    return {"backend": backend, "firms": len(data.firms), "wall_s": round(wall, 1),
            "compile_s": idata.attrs.get("compile_seconds", ""),
            "reused_compile": bool(idata.attrs["compile_cache_hit"]) if "compile_cache_hit" in idata.attrs else "",
            "min_ess_bulk": round(ess),
            "min_ess_tail": round(float(summary["ess_tail"].min())), "ess_per_s": round(ess / wall, 1),
            "max_r_hat": round(float(summary["r_hat"].max()), 3),
            "divergences": int(idata.sample_stats["diverging"].sum()),
            "leapfrog_per_draw": round(float(idata.sample_stats["n_steps"].mean()), 1)
            if "n_steps" in idata.sample_stats else ""}


def in_child(backend: str, n: int, compiledir: str | None, target_accept: float | None = None,
             draws: int | None = None) -> dict:
    """``measure`` in a fresh interpreter, optionally on its own (empty) compile cache."""
    env = dict(os.environ)
    if compiledir:
        env["PYTENSOR_FLAGS"] = ",".join(filter(None, [env.get("PYTENSOR_FLAGS", ""), f"base_compiledir={compiledir}"]))
    extra = (["--target-accept", str(target_accept)] if target_accept else []) + (["--draws", str(draws)] if draws else [])
    done = subprocess.run([sys.executable, __file__, "--child", backend, str(n), *extra], env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return {"backend": backend, "firms": n, "note": f"failed: {last}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[116, 1000])
    parser.add_argument("--backends", nargs="+", default=["nutpie", "pymc", "numpyro"])
    parser.add_argument("--cold", action="store_true", help="also measure a first fit on an empty compile cache")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.md"))
    parser.add_argument("--target-accept", type=float, default=None, help="override the spec's target_accept")
    parser.add_argument("--draws", type=int, default=None, help="override the spec's draws per chain")
    parser.add_argument("--child", nargs=2, metavar=("BACKEND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child[0], int(args.child[1]), args.target_accept, args.draws)))
        return
    from bayes_intl.render import markdown_table
    from bayes_intl.spec import load_spec

    spec = load_spec(ROOT / "models" / "latent_factor.toml")
    rows = []
    for n in args.sizes:
        for backend in args.backends:
            if backend == "numpyro" and importlib.util.find_spec("numpyro") is None:
                rows.append({"backend": backend, "firms": n, "note": "not installed (pip install -e '.[numpyro]')"})
                continue
            with tempfile.TemporaryDirectory(prefix="bayes-intl-cache-") as cache:
                runs = [("cold", cache), ("warm", cache)] if args.cold else [("warm", None)]
                for kind, compiledir in runs:
                    row = {"cache": kind, **in_child(backend, n, compiledir, args.target_accept, args.draws)}
                    rows.append(row)
                    print(row, flush=True)
    columns = ["backend", "firms", "cache", "wall_s", "compile_s", "reused_compile", "min_ess_bulk", "min_ess_tail", "ess_per_s",
               "max_r_hat", "divergences", "leapfrog_per_draw", "note"]
    cells = [[str(row.get(c, "")) for c in columns] for row in rows]
    sampler = spec.sampler
    section = (f"\n## {datetime.date.today()}: `benchmarks/samplers.py {' '.join(sys.argv[1:])}`\n\n"
               f"latent_factor, {sampler.chains} chains x {args.draws or sampler.draws} draws ({sampler.tune} tuning), "
               f"target_accept {args.target_accept or sampler.target_accept}, seed {SEED}. Machine: {platform.machine()}, "
               f"{os.cpu_count()} cores, Python {platform.python_version()}. Wall = compile + sampling, "
               "each in a fresh process through `inference.sample`.\n\n"
               + markdown_table(columns, cells) + "\n")
    with open(args.out, "a", encoding="utf-8") as handle:
        handle.write(section)
    print(section)


if __name__ == "__main__":
    main()
