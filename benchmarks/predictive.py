"""Predictive draws: PyMC's one call per draw against bayes_intl's vectorised draws, on the shipped data.

    python benchmarks/predictive.py [SPEC ...] [--write]

For each spec: one fit at the spec's sampler settings, then the prior predictive (500 draws) and the
posterior predictive (every posterior draw) both ways in the same process, timed, and checked to give
the same draws. ``--write`` appends the table to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPECS = ["models/paper_logit.toml", "models/hierarchical_logit.toml", "models/coarsened_latent.toml",
         "models/latent_factor.toml"]


def measure(spec_path: str) -> dict:
    import pymc as pm

    from bayes_intl import inference as inf
    from bayes_intl.compile_cache import without_initvals
    from bayes_intl.data import model_data
    from bayes_intl.models import build_model
    from bayes_intl.spec import load_spec

    spec = load_spec(ROOT / spec_path)
    model = build_model(spec, model_data(spec))
    idata = inf.sample(model, spec.sampler, seed=20150601, progress=False)
    row = {"spec": spec_path, "draws": idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]}
    observed = [rv.name for rv in model.observed_RVs]
    with without_initvals(model), model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind, ours, theirs, group in [
            ("prior", lambda: inf.prior_predictive(model, 500, 7),
             lambda: pm.sample_prior_predictive(draws=500, random_seed=7), "prior_predictive"),
            ("posterior", lambda: inf.posterior_predictive(model, idata, 8),
             lambda: pm.sample_posterior_predictive(idata, var_names=observed, random_seed=8, progressbar=False),
             "posterior_predictive")]:
            started = time.perf_counter()
            a = ours()
            row[f"{kind}_vectorised"] = time.perf_counter() - started
            started = time.perf_counter()
            b = theirs()
            row[f"{kind}_pymc"] = time.perf_counter() - started
            row[f"{kind}_same"] = all(np.allclose(a[group][n], b[group][n], rtol=1e-9) for n in observed)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=SPECS)
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/results.md")
    args = parser.parse_args()
    rows = [measure(spec) for spec in args.specs]
    lines = ["| spec | posterior draws | prior predictive, 500 draws: PyMC / vectorised | posterior predictive: PyMC / "
             "vectorised | same draws |", "|---|---|---|---|---|"]
    lines += [f"| `{r['spec']}` | {r['draws']} | {r['prior_pymc']:.2f} / {r['prior_vectorised']:.2f} s | "
              f"{r['posterior_pymc']:.2f} / {r['posterior_vectorised']:.2f} s | "
              f"{'yes' if r['prior_same'] and r['posterior_same'] else 'NO'} |" for r in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        note = (f"\n## {datetime.date.today()}: `benchmarks/predictive.py`\n\n{os.cpu_count()} cores, nothing else "
                f"running; each spec fitted once at its own sampler settings, then both ways in the same process "
                f"(the vectorised way first, so any first-call cost is counted against it).\n\n{table}\n")
        with open(ROOT / "benchmarks" / "results.md", "a") as handle:
            handle.write(note)


if __name__ == "__main__":
    main()
