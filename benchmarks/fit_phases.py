"""Where one `bayes-intl fit` spends its time, phase by phase, with a warm compile cache.

    python benchmarks/fit_phases.py [SPEC ...] [--repeat N] [--write]

Each fit runs in a fresh process (as a user's command does) after one warm-up fit of the same spec,
so nutpie's compiled model comes from the compile cache. The end-to-end wall time is measured
around the process; the phases come from the run's own ``run.json`` (``seconds``); what is left is
Python start-up, imports, printing and the exit. The gate is computed in a second process beside the
predictive draws and the tables: its column is the wait for it beyond them. ``--write`` appends the
table to benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHASES = ("data_and_model", "sampling", "predictive_draws", "diagnostics", "tables", "saving")


def one_fit(spec: str, out: Path) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bayes_intl", "-v", "fit", spec, "--out", str(out), "--json"],
                          cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - started
    record = json.loads(next(out.glob("*/run.json")).read_text())
    # run.json is written while saving, so the save's own time comes from the -v log line.
    phases = record["seconds"] | {"saving": float(re.search(r"saved in ([0-9.]+) s", done.stderr).group(1))}
    return {"wall": wall, **{p: phases.get(p, 0.0) for p in PHASES}, "compile": record.get("compile_seconds") or 0.0,
            "start_up_and_imports": wall - sum(phases.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", default=["models/latent_factor.toml"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", action="store_true", help="append the table to benchmarks/results.md")
    args = parser.parse_args()
    rows = []
    for spec in args.specs:
        with tempfile.TemporaryDirectory() as tmp:
            one_fit(spec, Path(tmp) / "warm-up")
            runs = [one_fit(spec, Path(tmp) / f"r{i}") for i in range(args.repeat)]
        median = {key: sorted(r[key] for r in runs)[len(runs) // 2] for key in runs[0]}
        rows.append((spec, median, [round(r["wall"], 1) for r in runs]))
    header = "| spec | end to end (median) | start-up and imports | data and model | sampling (of which compile) | " \
             "predictive draws | diagnostics | tables | saving | each run |\n|---|---|---|---|---|---|---|---|---|---|"
    lines = [header] + [
        f"| `{spec}` | **{m['wall']:.1f} s** | {m['start_up_and_imports']:.1f} | {m['data_and_model']:.1f} | "
        f"{m['sampling']:.1f} ({m['compile']:.1f}) | {m['predictive_draws']:.1f} | {m['diagnostics']:.1f} | "
        f"{m['tables']:.1f} | {m['saving']:.1f} | {', '.join(map(str, walls))} |" for spec, m, walls in rows]
    table = "\n".join(lines)
    print(table)
    if args.write:
        note = (f"\n## {datetime.date.today()}: `benchmarks/fit_phases.py {' '.join(args.specs)}`\n\n"
                f"{os.cpu_count()} cores, nothing else running; each fit a fresh `bayes-intl fit` process with a warm "
                f"compile cache, {args.repeat} repeats, medians in seconds.\n\n{table}\n")
        with open(ROOT / "benchmarks" / "results.md", "a") as handle:
            handle.write(note)


if __name__ == "__main__":
    main()
