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
from pathlib import Path

from bayes_intl.cli import main

ROOT = Path(__file__).resolve().parents[1]
SPECS = ("paper_logit", "hierarchical_logit", "coarsened_latent", "latent_factor")


def run(sims: int, jobs: int, specs, extra: list[str]) -> None:
    out = ROOT / "benchmarks" / "sbc"
    for name in specs:
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            code = main(["sbc", str(ROOT / "models" / f"{name}.toml"), "--sims", str(sims), "--jobs", str(jobs),
                         "--out", str(out), "--json", *extra])
        assert code == 0, name
        result = json.loads(buffer.getvalue())
        print(f"{name}: {result['seconds']:.0f} s, rejected at 1%: {result['rejected_at_1pct'] or 'none'}", flush=True)
    write_summary(out)


def resummarize(out: Path) -> None:
    """Recompute every model's uniformity tests from its saved ranks (after a change to the tests)."""
    import pandas as pd

    from bayes_intl.calibration import uniformity
    from bayes_intl.store import write_csv, write_json

    for name in SPECS:
        folder = out / name
        if not (folder / "ranks.csv").exists():
            continue
        ranks = pd.read_csv(folder / "ranks.csv", comment="#")
        tests = uniformity(ranks[ranks["rank"] >= 0])
        note = (folder / "ranks.csv").read_text().splitlines()[0].lstrip("# ")
        write_csv(folder / "uniformity.csv", tests, header_note=note)
        payload = json.loads((folder / "sbc.json").read_text())
        payload["uniformity"] = tests.to_dict(orient="records")
        payload["rejected_at_1pct"] = tests.loc[tests["rejected_at_1pct"], "parameter"].tolist()
        payload["rejected_at_1pct_holm"] = tests.loc[tests["rejected_at_1pct_holm"], "parameter"].tolist()
        write_json(folder / "sbc.json", payload)


def write_summary(out: Path) -> None:
    """benchmarks/sbc.md from every model's sbc.json under ``out``."""
    results = {name: json.loads((out / name / "sbc.json").read_text()) for name in SPECS if (out / name / "sbc.json").exists()}
    lines = ["# Simulation-based calibration (Talts et al. 2018)", "",
             f"`python benchmarks/sbc.py` on {os.cpu_count()} cores ({platform.machine()}). Each simulation draws "
             "every parameter from the prior, simulates data of the study's shape (116 firms; the synthetic "
             "survey's 24 items for latent_factor), fits it with nutpie and ranks the truth among 100 thinned "
             "draws. Uniform ranks mean calibrated posteriors; the test is a chi-square over 10 bins (9 df).", "",
             "| model | sims | fit settings | parameters | rejected at 1% | rejected at 1% after Holm | smallest p-value "
             "| fits with divergences | fits that could not start | wall time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        tests, s = r["uniformity"], r["settings"]
        smallest = min(tests, key=lambda t: t["p_value"])
        lines.append(f"| {name} | {s['sims']} | {s['chains']} x {s['draws']} (tune {s['tune']}, target_accept "
                     f"{s['target_accept']}) | {len(tests)} | {', '.join(r['rejected_at_1pct']) or 'none'} | "
                     f"{', '.join(r.get('rejected_at_1pct_holm', [])) or 'none'} | "
                     f"{smallest['p_value']:.3f} ({smallest['parameter']}) | {r['divergent_fits']} | "
                     f"{r.get('failed_fits', 0)} | {r.get('seconds', float('nan')):.0f} s |")
    lines += ["", "Per-parameter results: `benchmarks/sbc/<model>/uniformity.csv`; rank histograms and ECDF-difference "
              "plots: `benchmarks/sbc/<model>/ranks.png`, `ecdf.png`.", ""]
    for name, r in results.items():
        lines += [f"## {name}", "", "| parameter | chi-square | p-value | Holm-adjusted p | mean rank (50 expected) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {t['parameter']} | {t['chi2']:.1f} | {t['p_value']:.3f} | {t.get('p_holm', float('nan')):.3f} | "
                  f"{t['mean_rank']:.1f} |" for t in r["uniformity"]]
        lines.append("")
    notes = out / "notes.md"  # findings written by hand: what was rejected once, and how it was fixed
    if notes.exists():
        lines += [notes.read_text()]
    (ROOT / "benchmarks" / "sbc.md").write_text("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--specs", nargs="*", default=list(SPECS))
    parser.add_argument("--summary-only", action="store_true",
                        help="recompute the tests from saved ranks and rewrite sbc.md; fit nothing")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more `bayes-intl sbc` options")
    args = parser.parse_args()
    if args.summary_only:
        resummarize(ROOT / "benchmarks" / "sbc")
        write_summary(ROOT / "benchmarks" / "sbc")
    else:
        run(args.sims, args.jobs, args.specs, args.extra)
