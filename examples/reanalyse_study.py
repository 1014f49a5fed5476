"""Re-analyse another published logit from its study file: audit it, fit the paper's model on its
reconstruction, and set the posterior beside the printed coefficients.

    python examples/reanalyse_study.py [--study titanic] [--draws N] [--out DIR]

The data are RECONSTRUCTED from the study's printed tables. For the shipped `titanic` study the true
rows are known (tests/data/known_truth/titanic.csv); benchmarks/known_truth.md compares the two.
"""

import argparse

import bayes_intl

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--study", default="titanic", help="a shipped study's name or a study file (default: titanic)")
parser.add_argument("--draws", type=int, default=None, help="draws and tuning steps per chain (default: the spec's)")
parser.add_argument("--out", default="reports/examples/reanalyse_study", help="where the run and the report go")
args = parser.parse_args()
sampler = {"draws": args.draws, "tune": args.draws} if args.draws else None

study = bayes_intl.load_study(args.study)
audit = bayes_intl.run_audit(study)
print(f"{study.title}\nAudit: {audit.summary['consistent']} of {audit.summary['figures_checked']} printed "
      f"figures consistent once rounding is read as an interval")

run = bayes_intl.fit("models/paper_logit.toml", study=study, sampler=sampler, out=f"{args.out}/runs")
print(f"\npaper_logit on {run.data.provenance}: diagnostic gate {'passed' if run.passed else 'MISSED'}")
coefficients = run.coefficients.query("scale == 'log-odds'")
print(coefficients[["term", "paper_b", "mle_b", "post_mean", "hdi_low", "hdi_high"]].round(3).to_string(index=False))

written = bayes_intl.report([run], out=f"{args.out}/report")
print(f"\nReport: {written.index}")
