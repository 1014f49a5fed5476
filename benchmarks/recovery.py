"""Parameter recovery for hierarchical_logit and latent_factor over 10 seeds; writes benchmarks/recovery.md.

Run: .venv/bin/python benchmarks/recovery.py   (also: make test-slow runs the same check as a test)
"""

from pathlib import Path

import pandas as pd

from bayes_intl.calibration import coverage, recovery
from bayes_intl.render import markdown_table
from bayes_intl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    tables = [recovery(load_spec(ROOT / "models" / f"{m}.toml"), seeds=range(1, 11))
              for m in ("hierarchical_logit", "latent_factor")]
    table = pd.concat(tables, ignore_index=True)
    summary = coverage(table)
    rows = [[r.model, r.parameter, f"{r.truth:.3f}", f"{r.mean_of_means:.3f}", f"{r.covered}/{r.seeds}"]
            for r in summary.itertuples()]
    text = ("# Parameter recovery (94% HDI coverage of the true value, 10 simulated data sets each)\n\n"
            "Data simulated from known parameters (bayes_intl/calibration.py); N = 116 firms; 4 chains x 500 draws.\n"
            f"Divergent transitions over all fits: {int(table.groupby(['model', 'seed'])['divergences'].first().sum())}.\n\n"
            + markdown_table(["model", "parameter", "truth", "mean of posterior means", "covered"], rows) + "\n")
    (ROOT / "benchmarks" / "recovery.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
