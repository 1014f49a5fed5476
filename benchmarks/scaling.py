"""How latent_factor's cost grows with the number of respondents: leapfrog steps per draw and cost per gradient.

    python benchmarks/scaling.py [--sizes 116 500 1001]   # writes benchmarks/scaling.md

The table is rewritten; the hand-written notes under "## Notes" in scaling.md are kept.

The SYNTHETIC survey of the reconstruction, resampled to N firms (seeded), fitted at the spec's default
settings. Steps per draw come from the sampler (nutpie's n_steps over the kept draws); the cost of one
gradient is timed separately on the model's compiled log-density gradient (PyTensor's C backend, 200 calls
at the initial point), so the two factors of sampling time can be read apart.
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path

import numpy as np

import bayes_intl
from bayes_intl.data import FirmTable, ModelData, load_default
from bayes_intl.models import build_model
from bayes_intl.render import markdown_table
from bayes_intl.simulate import simulate_survey, survey_codebook
from bayes_intl.spec import load_spec
from bayes_intl.survey import validate_survey

ROOT = Path(__file__).resolve().parents[1]
SIZES = (116, 500, 1001)


def survey_of(n: int, seed: int = 1) -> ModelData:
    firms = load_default().to_firms().firms
    rows = firms.sample(n, replace=n > len(firms), random_state=seed).reset_index(drop=True)
    rows["firm_id"] = np.arange(1, n + 1)
    frame = simulate_survey(FirmTable(rows, f"reconstruction resampled to {n}", "SYNTHETIC"), seed=seed).frame
    survey = validate_survey(frame, survey_codebook(), source=f"synthetic survey of {n} firms")
    return ModelData(survey.firms, survey, survey.source, survey.provenance, survey.design)


def gradient_ms(spec, data: ModelData, calls: int = 200) -> float:
    model = build_model(spec, data)
    dlogp = model.compile_dlogp()
    point = model.initial_point(random_seed=1)
    dlogp(point)
    started = time.perf_counter()
    for _ in range(calls):
        dlogp(point)
    return 1000 * (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    spec = load_spec(ROOT / "models" / "latent_factor.toml")
    rows = []
    for n in args.sizes:
        data = survey_of(n)
        ms = gradient_ms(spec, data)
        run = bayes_intl.fit(spec, data=data)
        steps = run.idata.sample_stats["n_steps"].to_numpy()
        d = run.diagnostics
        rows.append([str(n), f"{run.record['sampling_seconds']:.0f}", f"{steps.mean():.0f}", f"{np.percentile(steps, 90):.0f}",
                     f"{ms:.2f}", str(d["divergences"]), "passed" if d["passed"] else "MISSED",
                     f"{d['r_hat_max']:.2f}", f"{d['ess_bulk_min']:.0f}"])
        print(rows[-1], flush=True)
    s = spec.sampler
    text = "\n".join([
        "# How latent_factor's cost grows with N (SYNTHETIC surveys)", "",
        f"`python benchmarks/scaling.py`, {datetime.date.today()}, {os.cpu_count()} cores, nothing else running; "
        f"`models/latent_factor.toml` at its defaults ({s.chains} x {s.draws} draws, {s.tune} tuning, target_accept "
        f"{s.target_accept}), seed 20150601; the reconstruction's firms resampled to N (seed 1), items simulated.", "",
        markdown_table(["N", "sampling s", "leapfrog steps per draw (mean)", "90th pct", "ms per gradient",
                        "divergences", "gate", "max R-hat", "min ESS bulk"], rows), ""])
    print(text)
    target = ROOT / "benchmarks" / "scaling.md"
    old = target.read_text() if target.exists() else ""
    notes = old[old.index("\n## Notes"):] if "\n## Notes" in old else ""
    target.write_text(text + notes)


if __name__ == "__main__":
    main()
