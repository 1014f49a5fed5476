"""Re-analyse the paper: fit two models of the ladder on the reconstruction, compare them, write the report.

    python examples/reanalyse_paper.py [--draws N] [--out DIR]

The data are RECONSTRUCTED from the paper's tables (the firm-level survey was never published).
"""

import argparse

import bayes_intl

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--draws", type=int, default=None, help="draws and tuning steps per chain (default: the spec's)")
parser.add_argument("--out", default="reports/examples/reanalyse_paper", help="where the runs and the report go")
args = parser.parse_args()
sampler = {"draws": args.draws, "tune": args.draws} if args.draws else None

runs = [bayes_intl.fit(f"models/{name}.toml", sampler=sampler, out=f"{args.out}/runs")
        for name in ("paper_logit", "hierarchical_logit")]
for run in runs:
    gate = "passed" if run.passed else "MISSED (more draws needed before trusting these numbers)"
    print(f"\n{run.spec.model}: diagnostic gate {gate}")
    coefficients = run.coefficients.query("scale == 'log-odds'")
    print(coefficients[["term", "paper_b", "mle_b", "post_mean", "hdi_low", "hdi_high"]].round(3).to_string(index=False))

table5 = runs[0].table5[["size", "capinno", "activity", "paper", "mle"]].copy()
for run in runs:
    table5[run.spec.model] = run.table5["mean"]
print("\nTable 5: the paper's probabilities beside the MLE refit and each model's posterior mean")
print(table5.round(3).to_string(index=False))

print("\nPSIS-LOO on the outcome (higher elpd is better; a difference under two SEs is no difference)")
print(bayes_intl.compare(runs)[["run", "rank", "elpd_loo", "se", "elpd_diff", "dse"]].round(2).to_string(index=False))

written = bayes_intl.report(runs, out=f"{args.out}/report")
print(f"\nReport: {written.index}")
# The posterior is an ArviZ InferenceData: e.g. arviz.plot_posterior(runs[0].idata, var_names=["slope"]).
