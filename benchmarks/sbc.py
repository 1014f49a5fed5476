"""Full simulation-based calibration of the model ladder: 200 simulations per model.

Runs `bayes-intl sbc` for each spec, writes its outputs under benchmarks/sbc/<model>/ and the
summary table to benchmarks/sbc.md. Usage: python benchmarks/sbc.py [--sims N] [--jobs N]
"""

import argparse
import contextlib
import io
import json
import os
import platform
import time
from pathlib import Path

from bayes_intl.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ("paper_logit", "hierarchical_logit", "coarsened_latent", "latent_factor")


def run(sims: int, jobs: int, specs) -> None:
    out = ROOT / "benchmarks" / "sbc"
    results = {}
    for name in specs:
        started = time.perf_counter()
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["sbc", str(ROOT / "models" / f"{name}.toml"), "--sims", str(sims), "--jobs", str(jobs),
                         "--out", str(out), "--json"])
        assert code == 0, name
        results[name] = json.loads(buffer.getvalue()) | {"seconds": time.perf_counter() - started}
        print(f"{name}: {results[name]['seconds']:.0f} s, rejected at 1%: {results[name]['rejected_at_1pct'] or 'none'}",
              flush=True)
    lines = ["# Simulation-based calibration (Talts et al. 2018)", "",
             f"`python benchmarks/sbc.py --sims {sims} --jobs {jobs}` on {os.cpu_count()} cores "
             f"({platform.processor() or platform.machine()}). Each simulation draws every parameter from the prior, "
             "simulates data of the study's shape (116 firms; the synthetic survey's 24 items for latent_factor), "
             "fits it (nutpie, 1 chain x 500 draws after 500 tuning steps) and ranks the truth among 100 thinned "
             "draws. Uniform ranks mean calibrated posteriors; the test is a chi-square over 10 bins (9 df).", "",
             "| model | sims | parameters | rejected at 1% | smallest p-value | fits with divergences | wall time |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        tests = r["uniformity"]
        smallest = min(tests, key=lambda t: t["p_value"])
        lines.append(f"| {name} | {r['settings']['sims']} | {len(tests)} | {', '.join(r['rejected_at_1pct']) or 'none'} | "
                     f"{smallest['p_value']:.3f} ({smallest['parameter']}) | {r['divergent_fits']} | {r['seconds']:.0f} s |")
    lines += ["", "Per-parameter results: `benchmarks/sbc/<model>/uniformity.csv`; rank histograms and ECDF-difference "
              "plots: `benchmarks/sbc/<model>/ranks.png`, `ecdf.png`.", ""]
    for name, r in results.items():
        lines += [f"## {name}", "", "| parameter | chi-square | p-value | mean rank (50 expected) |", "|---|---|---|---|"]
        lines += [f"| {t['parameter']} | {t['chi2']:.1f} | {t['p_value']:.3f} | {t['mean_rank']:.1f} |" for t in r["uniformity"]]
        lines.append("")
    (ROOT / "benchmarks" / "sbc.md").write_text("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--specs", nargs="*", default=list(SPECS))
    args = parser.parse_args()
    run(args.sims, args.jobs, args.specs)
