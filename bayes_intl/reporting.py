"""The re-analysis report: what each section shows, and writing it (HTML, Markdown, CSV tables, PNG figures).

The report is a list of section functions (``SECTIONS``), each taking the fitted runs and the
analysis's stage results (``ReportInputs``) and returning one section of text, tables and figures.
Figures come from ``plots.py`` and the page from ``render.py``; every number was computed before (the runs'
tables, the stages' results): nothing here fits, samples or recomputes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .render import Section, fmt, render_html, render_markdown


@dataclass
class WrittenReport:
    index: Path
    files: list[Path]
    sections: list[str]
    figures: int


SECTION_TITLES = (
    "1. Summary: what survives of the paper's claims",
    "2. Audit of the published figures",
    "3. The reconstruction and how well it reproduces the published classification and coefficients",
    "4. SPSS-style tables: refit beside the published",
    "5. Coefficients: paper, MLE and each model",
    "6. Table 5 three ways: paper, MLE and posterior",
    "7. Sampling diagnostics",
    "8. Posterior predictive checks",
    "9. Loadings, priors and posteriors",
    "10. Model comparison (PSIS-LOO) and the cost of the low/average/high cut",
    "11. Provenance",
)
# A report of a user's own survey has no paper beside it: its sections are renumbered and retitled.
SURVEY_TITLES = {"Coefficients: paper, MLE and each model": "Coefficients: MLE and each model",
                 "Table 5 three ways: paper, MLE and posterior": "Predicted probabilities (Table 5): MLE and posterior"}
RECONSTRUCTED_NOTE = ("All data behind this report are RECONSTRUCTED from the paper's published tables or SYNTHETIC "
                      "(simulated item responses); the case-level data are not in the paper. Nothing here is the "
                      "real data.")


def provenance_note(records) -> str:
    """The data label every report page and table carries: reconstructed/synthetic data say so loudly."""
    labels = sorted({str(r.get("data_provenance", "")) for r in records})
    if any("RECONSTRUCTED" in label or "SYNTHETIC" in label for label in labels):
        return RECONSTRUCTED_NOTE
    return "Data: " + "; ".join(labels)


@dataclass
class ReportInputs:
    """Everything the report shows: fitted runs by short name and the analysis's stage results."""

    runs: dict  # short name -> runs.FittedRun
    audit: dict | None  # audit.json's payload (the paper's runs only)
    reconstruction: dict | None  # reconstruction.json's payload (the paper's runs only)
    baseline: dict | None  # baseline.json's payload (the paper's runs only)
    loo: pd.DataFrame | None  # the compare stage's PSIS-LOO table
    command: str
    ensembles: list = field(default_factory=list)  # the ensemble stages' EnsembleRuns (runs.py), one per model

    @classmethod
    def collect(cls, runs, audit: dict | None, reconstruction: dict | None, baseline: dict | None, loo,
                command: str, ensembles=()) -> "ReportInputs":
        named, taken = {}, set()
        for run in runs:
            model = run.spec.model
            name = model if model not in taken else run.name  # a second run of a model goes by its run id
            taken.add(name)
            named[name] = run
        return cls(named, audit, reconstruction, baseline, loo, command, list(ensembles))

    @property
    def outcome(self) -> dict:
        return {n: r for n, r in self.runs.items() if r.entry.outcome}

    @property
    def items(self) -> dict:
        return {n: r for n, r in self.runs.items() if r.entry.item_level}

    @property
    def paper(self) -> bool:
        """Whether the runs re-analyse a published study (its audit, reconstruction and refit are in the report)."""
        return self.audit is not None

    @property
    def unit(self) -> str:
        """What one case is ("firm", "person"), from the study; a survey's respondents are firms."""
        return (self.audit or {}).get("study", {}).get("unit", "firm")

    @property
    def outcome_label(self) -> str:
        """What outcome 1 means, in words, for the runs with an outcome."""
        labels = {r.data.design.outcome_label for r in self.outcome.values()}
        return labels.pop() if len(labels) == 1 else "outcome = 1"


def _hdi_text(mean, low, high) -> str:
    return f"{mean:.3f} [{low:.2f}, {high:.2f}]"


def summary_section(inputs: ReportInputs) -> Section:
    """The paper's claims, each scored under every model, with the audit's and the reconstruction's one line."""
    from . import plots
    from .claims import SUPPORT, claims_table, scores_of
    from .study import load_study

    s = Section(SECTION_TITLES[0])
    study = load_study(inputs.audit["study"]["source"]) if inputs.paper else None
    if study is None or not study.claims or not inputs.outcome:
        return s
    scored = {n: r for n, r in inputs.outcome.items() if not r.tables.get("claims", pd.DataFrame()).empty}
    if not scored:
        return s
    long = claims_table(study, scores_of(scored), inputs.ensembles)
    wide = long.pivot(index="claim", columns="model", values="probability")[list(dict.fromkeys(long["model"]))]
    wide = long.drop_duplicates("claim").set_index("claim")[["statement", "verdict"]].join(wide).reset_index()
    audit, recon = inputs.audit["summary"], inputs.reconstruction or {}
    s.text(f"Each claim is a conclusion the paper draws, checked as a statement about the model; each number is its "
           f"posterior probability under that model, on the shipped reconstruction. A claim holds where the "
           f"probability is at least {SUPPORT} in every model, across the reconstruction ensemble "
           f"({', '.join(e.spec.model for e in inputs.ensembles) or 'not fitted in this analysis'}; section 3) and with "
           f"the prior's strength halved and doubled (power-scaling); claims.csv gives both ranges."
           + ("" if {e.spec.model for e in inputs.ensembles} >= set(scored) else " The other models were not refitted "
              "across the ensemble here; make analysis FULL=1 refits every model on it."))
    s.text(f"Audit: {audit['consistent']} of {audit['figures_checked']} published figures consistent; inconsistent: "
           f"{', '.join(audit['inconsistent']) or 'none'}. Reconstruction: k = {fmt(recon.get('k'), 2)} (every "
           f"printed B and SE within {fmt((recon.get('k') or 0) * 0.0005, 4)} of the refit).")
    if untried := sorted(long.loc[long["prior_scaled_low"].isna(), "model"].unique()):
        s.text(f"Prior scaling not assessed for {', '.join(untried)}: the reweighted draws are unreliable there "
               f"(Pareto k > 0.7), so its prior does not count as tried.")
    s.table(wide, "claims_summary", "The paper's claims: posterior probability under each model, and the verdict")
    s.figure(plots.claims_plot(long, SUPPORT), "claims", "Dots: each model; bars: prior scaled; grey: the ensemble")
    s.table(long, "claims", "One row per claim and model, with the paper's sentence")
    return s


def audit_section(inputs: ReportInputs) -> Section:
    s = Section(SECTION_TITLES[1])
    if not inputs.paper:  # a user's own survey: no published tables are its source
        return s
    audit = inputs.audit
    summary = audit["summary"]
    study = audit.get("study", {})
    if study.get("data", "published") != "published":
        s.text(f"Study: {study.get('title', '')}. Its tables were {study['data']}: {study.get('citation', '')}")
    s.text(f"Every figure the paper derives from others (Wald statistics, odds ratios, confidence limits, "
           f"classification rates, predicted probabilities) was recomputed from the figures it depends on, reading "
           f"each printed value as the interval its rounding allows. {summary['consistent']} of "
           f"{summary['figures_checked']} checks are consistent.")
    for r in (r for r in audit["records"] if not r["consistent"]):
        s.text(f"Inconsistent: {r['id']} ({r['source']}): {r['note']}")
    feasible = all(j["feasible"] for j in audit["joint"])
    s.text("Taken jointly, a set of unrounded coefficients and standard errors exists that reproduces every "
           "printed figure at once: the tables agree with each other once rounding is accounted for."
           if feasible else "Taken jointly, no unrounded coefficients reproduce every printed figure: a real "
           "contradiction in the tables.")
    s.table(pd.DataFrame([{"figure": r["id"], "printed": r["printed"], "recomputed_low": r["recomputed_low"],
                           "recomputed_high": r["recomputed_high"], "consistent": r["consistent"], "note": r["note"]}
                          for r in audit["records"]]), "audit", "Every check, with the interval the paper's own numbers allow")
    return s


def reconstruction_section(inputs: ReportInputs) -> Section:
    s = Section(SECTION_TITLES[2])
    if not inputs.paper:  # a user's own survey: no published tables are its source
        return s
    recon = inputs.reconstruction
    cells = pd.DataFrame(recon["table"])
    refit = pd.DataFrame(recon["refit_vs_published"])
    same = int(refit["same_when_printed"].sum())
    keys = [c for c in cells.columns if c not in ("n", "y")]
    tables = " and ".join(dict.fromkeys(refit["table"]))
    s.text(f"The case-level data are not in the paper. The cell table below (cases n and outcome = 1 cases y per "
           f"{' x '.join(keys)}) is RECONSTRUCTED: {recon['how']}. Its logit refit lies within "
           f"{recon['k'] * 0.0005:.4f} of every published B and SE (k = {recon['k']:.2f} half-units of the last "
           f"printed digit) and prints {same} of {len(refit)} figures of {tables} identically. It is one of many "
           f"tables consistent with the paper; quantities the paper never printed vary across them.")
    counts = [(f"{k} = {code}", int(n)) for k in keys for code, n in cells.groupby(k)["n"].sum().items()]
    level, n = min(counts, key=lambda item: item[1])
    s.text(f"The sparsest level is {level}: {n} of {int(cells['n'].sum())} cases in this reconstruction. Predicted "
           "probabilities for it rest on the model's coding more than on data.")
    codes = "; ".join(f"{k} " + ", ".join(f"{c} {lab}" for c, lab in recon.get("levels", {}).get(k, {}).items())
                      for k in keys)
    s.table(cells, "reconstruction_cells", f"Reconstructed cell counts ({codes})")
    s.table(refit[["id", "published", "refit", "difference", "same_when_printed"]], "reconstruction_refit",
            f"Refit of the reconstruction beside {tables}")
    if inputs.ensembles:
        from . import plots

        fitted = "; ".join(f"{e.spec.model} on {e.record['members']}" for e in inputs.ensembles)
        s.text(f"Models refitted on the best reconstructions of the ensemble and pooled ({fitted}): between-"
               "reconstruction SD (of the members' posterior means) against the within-posterior SD.")
        coefficients, cells = (pd.concat([getattr(e, t) for e in inputs.ensembles], names=["model", None],
                                         keys=[e.spec.model for e in inputs.ensembles]).reset_index(0)
                               for t in ("coefficients", "table5"))
        s.figure(plots.ensemble_spread(coefficients, cells), "ensemble", "Between- against within-SD, by model")
        s.table(coefficients, "ensemble_coefficients", "Coefficients pooled over the ensemble")
        s.table(cells, "ensemble_table5", "Predicted-probability cells pooled over the ensemble")
    return s


def spss_section(inputs: ReportInputs) -> Section:
    s = Section(SECTION_TITLES[3])
    if not inputs.paper:  # a user's own survey: no published tables are its source
        return s
    comparison = pd.DataFrame(inputs.baseline["comparison"])
    fit = inputs.baseline["fit"]
    s.text(f"The paper's logit ({fit['formula']}) refitted by maximum likelihood (statsmodels) on the "
           f"reconstruction, laid out as SPSS prints it. -2 log-likelihood = {fit['minus2ll']:.3f} (null model "
           f"{fit['minus2ll_null']:.3f}); the paper does not print it.")
    predicted = inputs.baseline.get("predicted_table", "Table 5")  # shown in its own section
    for table in [t for t in dict.fromkeys(comparison["table"]) if t != predicted]:
        s.table(comparison.loc[comparison["table"] == table, ["row", "column", "published", "refit", "difference",
                "same_when_printed"]], table.lower().replace(" ", ""), f"{table}: published beside the refit")
    return s


def coefficients_section(inputs: ReportInputs) -> Section:
    from . import plots

    s = Section(SECTION_TITLES[4])
    if not inputs.outcome:
        return s
    coef = {n: r.coefficients.query("scale == 'log-odds'") for n, r in inputs.outcome.items()}
    terms = list(dict.fromkeys(t for frame in coef.values() for t in frame["term"]))
    first = pd.concat([frame.set_index("term") for frame in coef.values()])
    first = first[~first.index.duplicated()]
    rows = []
    for term in terms:
        r = first.loc[term]
        row = {"term": term}
        if inputs.paper:
            row["paper B [95% CI]"] = "" if np.isnan(r.paper_b) else _hdi_text(r.paper_b, r.paper_ci_low, r.paper_ci_high)
        row["MLE B [95% CI]"] = "" if np.isnan(r.mle_b) else _hdi_text(r.mle_b, r.mle_ci_low, r.mle_ci_high)
        for name, frame in coef.items():
            f = frame.set_index("term")
            row[f"{name} mean [94% HDI]"] = (_hdi_text(f.loc[term, "post_mean"], f.loc[term, "hdi_low"],
                                                       f.loc[term, "hdi_high"]) if term in f.index else "")
        rows.append(row)
    s.figure(plots.coefficient_forest(coef), "coefficients",
             "Each row is one estimate of a coefficient with its interval; where the paper's, the MLE's and "
             "the models' intervals overlap, the Bayesian re-analysis agrees with the paper." if inputs.paper else
             "Each row is one estimate of a coefficient with its interval: the MLE's and each model's.")
    s.table(pd.DataFrame(rows), "coefficients", "Coefficients in log-odds (odds ratios: exp of each number)")
    if any("Capinno" in frame["term"].values for frame in coef.values()):
        s.text("Capinno's coefficient is per band step (low to average, average to high) in paper_logit, "
               "hierarchical_logit and coarsened_latent (whose latent index is scaled so that band centres are one "
               "unit apart), but per standard deviation of the latent CAPINNO factor in latent_factor: compare "
               "that model with the others on Table 5's probability scale (section 5), not here. In the "
               "hierarchical models Activity is the difference between the sector intercepts.")
    s.text("For readers new to Bayesian output: the 94% HDI is the narrowest range holding 94% of the "
           "posterior probability; unlike a confidence interval it reads directly as 'the coefficient lies "
           "here with probability 0.94, given the model, the priors and the (reconstructed) data'.")
    return s


def table5_section(inputs: ReportInputs) -> Section:
    from .summaries import classification_changes, table5_labels

    s = Section(SECTION_TITLES[5])
    if not inputs.outcome:
        return s
    t5 = {n: r.table5 for n, r in inputs.outcome.items()}
    outcome = inputs.outcome_label
    s.text(f"Table 5 gives, for each kind of {inputs.unit}, the probability of being {outcome}. The posterior "
           "version replaces each single number by a distribution: its mean, a 94% interval, and P(p > 0.5), "
           f"the probability that the {inputs.unit} would be classified '{outcome}' by a 0.5 cut."
           + ("" if inputs.paper else " Numeric covariates are held at their sample mean."))
    grids: dict[tuple, dict] = {}  # runs of different designs predict at different cells: one table per design
    for name, frame in t5.items():
        grids.setdefault(tuple(frame["id"]), {})[name] = frame
    for k, group in enumerate(grids.values()):
        _table5_block(s, inputs, group, "table5" if k == 0 else f"table5_{k + 1}")
    labels = table5_labels(next(iter(t5.values())))
    if not inputs.paper:
        return s
    flips = pd.concat([classification_changes(frame).assign(model=name)[
        ["model", *labels, "paper", "paper_class", "mean", "p_flip"]] for name, frame in t5.items()], ignore_index=True)
    likely = flips[flips["p_flip"] > 0.5]
    s.text("Cells whose classification changes (posterior probability of the opposite class > 0.5): "
           + ("; ".join(f"{r['model']}: {'/'.join(str(r[c]) for c in labels)} (P = {r['p_flip']:.2f})"
                        for _, r in likely.iterrows()) or "none")
           + f". Cells with that probability above 0.2: {int((flips['p_flip'] > 0.2).sum())} of {len(flips)}.")
    s.table(flips, "classification_changes", "P(flip): the posterior probability that a cell falls on the "
            "other side of 0.5 from the paper")
    return s


def _table5_block(s: Section, inputs: ReportInputs, t5: dict, name: str) -> None:
    """One Table 5 (runs predicting at the same cells) as a table and a figure."""
    from . import plots
    from .summaries import table5_labels

    first = next(iter(t5.values()))
    labels = table5_labels(first)
    rows = []
    for i, r in first.iterrows():
        row = {**{c: r[c] for c in labels}, **({"paper": r["paper"]} if inputs.paper else {}), "MLE": r["mle"]}
        for model, frame in t5.items():
            row[f"{model} mean [94% HDI]"] = _hdi_text(frame.loc[i, "mean"], frame.loc[i, "hdi_low"],
                                                       frame.loc[i, "hdi_high"])
            row[f"{model} P(p>0.5)"] = frame.loc[i, "p_above_half"]
        rows.append(row)
    outcomes = {inputs.runs[m].data.design.outcome_label for m in t5}
    s.table(pd.DataFrame(rows), name, "Table 5: " + ("paper, " if inputs.paper else "") + "MLE refit and "
            + ", ".join(t5) + f" (P({outcomes.pop() if len(outcomes) == 1 else 'outcome = 1'}))")
    s.figure(plots.table5_dots(t5, labels, inputs.outcome_label), name,
             f"Each row is one kind of {inputs.unit}. " + ("The black tick is the paper's value; " if inputs.paper else "")
             + "Dots and bars are each model's posterior mean and 94% interval; the white diamond is the MLE. "
             "Bars that cross the dotted 0.5 line are cells whose classification is uncertain.")


def diagnostics_section(inputs: ReportInputs) -> Section:
    from . import plots

    s = Section(SECTION_TITLES[6])
    rows = []
    for name, run in inputs.runs.items():
        d, sampler = run.diagnostics, run.record["sampler"]
        rows.append({"model": name, "gate": "passed" if d["passed"] else "MISSED", "max R-hat": d["r_hat_max"],
                     "min ESS bulk": d["ess_bulk_min"], "min ESS tail": d["ess_tail_min"],
                     "divergences": d["divergences"], "sampler": f"{sampler['backend']}, {sampler['chains']} x "
                     f"{sampler['draws']}", "seconds": run.record.get("sampling_seconds")})
    s.text("Every run must pass a gate before its numbers are trusted: R-hat <= 1.01 (the chains agree), bulk and "
           "tail effective sample size >= 400 (enough independent draws), and no divergent transitions. A --quick "
           "run is a first look and usually misses the ESS threshold.")
    policies = {run.diagnostics.get("policy") for run in inputs.runs.values()} - {None}
    for policy in sorted(policies):
        s.text(f"What the gate checks: {policy}")
    for name, run in inputs.runs.items():
        if run.diagnostics.get("scores_note"):
            s.text(f"{name}: {run.diagnostics['scores_note']}")
    s.table(pd.DataFrame(rows), "diagnostics", "Diagnostic gate per run")
    for name, run in inputs.runs.items():
        s.figure(plots.rank_plot(run.idata, list(run.entry.shown), f"{name}: rank plots"), f"rank_{name}",
                 "Rank plots: each chain's draws ranked together; flat bars of similar height in every chain "
                 "mean the chains explored the same distribution.")
    return s


def predictive_section(inputs: ReportInputs) -> Section:
    from . import plots
    from .summaries import measurement_fit_lines

    s = Section(SECTION_TITLES[7])
    if inputs.outcome:
        bins = {n: r.tables["calibration"] for n, r in inputs.outcome.items()}
        s.figure(plots.calibration_plot(bins, inputs.outcome_label), "calibration",
                 "Cases are grouped by predicted probability; points near the diagonal, and inside the shaded "
                 "replicated-data intervals, mean the model's probabilities match what happened.")
        s.table(pd.concat([b.assign(model=n) for n, b in bins.items()], ignore_index=True), "calibration",
                "Outcome calibration by bin of predicted probability")
        for name, run in inputs.outcome.items():
            s.figure(plots.separation_plot(run.idata, f"{name}: separation plot", run.data.design.outcome),
                     f"separation_{name}",
                     f"Cases sorted by predicted probability (line); dark bars are the {inputs.outcome_label} ones. "
                     "Good separation puts the dark bars on the right.")
    for name, run in inputs.items.items():
        for line in measurement_fit_lines(run.record):
            s.text(f"{name}: {line}")
        s.figure(plots.item_ppc_plot(run.tables["item_ppc"]), f"items_{name}",
                 "Each item's observed mean (dot) against the range of means in data replicated from the model "
                 "(bar); dots outside their bars flag items the model misfits.")
        s.table(run.tables["item_ppc"], f"item_ppc_{name}", "Item-level posterior predictive check")
    return s


def loadings_priors_section(inputs: ReportInputs) -> Section:
    from . import plots
    from .summaries import scalar_draws

    s = Section(SECTION_TITLES[8])
    for name, run in inputs.items.items():
        loadings = run.tables["loadings"]
        s.figure(plots.loadings_plot(loadings), f"loadings_{name}",
                 "Loadings: how strongly each item reflects its dimension, and each dimension reflects CAPINNO "
                 "(red). Intervals far from 0 mean the item measures what the codebook says it measures.")
        s.table(loadings, f"loadings_{name}", "Factor loadings, posterior mean and 94% HDI")
    for name, run in inputs.outcome.items():
        post = scalar_draws(run.idata.posterior, ("intercept", "slope"))
        prior = scalar_draws(run.idata.prior, ("intercept", "slope")) if "prior" in run.idata else {}
        s.figure(plots.prior_posterior(prior, post, f"{name}: prior (grey) and posterior"), f"prior_posterior_{name}",
                 "Grey: what the priors allowed before the data; colour: what the data left. A posterior much "
                 "narrower than its prior means the data, not the prior, decide the estimate.")
    s.table(pd.DataFrame([{"model": n, "parameter": k, "prior": v} for n, r in inputs.runs.items()
                          for k, v in r.record.get("priors", {}).items()]), "priors", "Resolved priors of every run")
    sens = [r.tables["prior_sensitivity"].assign(model=n) for n, r in inputs.outcome.items() if "prior_sensitivity"
            in r.tables]
    if sens:
        from .claims import PSENS_THRESHOLD

        frame = pd.concat(sens)[["model", "variable", "prior", "likelihood", "diagnosis"]].fillna({"diagnosis": ""})
        s.text(f"Prior sensitivity (power-scaling, Kallioinen et al. 2023): how far each posterior moves when the "
               f"prior, or the likelihood, is made slightly stronger or weaker; {PSENS_THRESHOLD} or more is "
               f"noticeable. {(frame['diagnosis'] != '').sum()} of {len(frame)} flagged: a prior-data conflict "
               f"(both move it) or the prior dominates (the prior moves it, the data barely).")
        s.figure(plots.sensitivity_plot(frame, PSENS_THRESHOLD), "prior_sensitivity",
                 "Each dot one coefficient, variance or Table 5 cell of one model; upper left: the prior decides.")
        s.table(frame, "prior_sensitivity", "Prior and likelihood sensitivity, with priorsense's diagnosis")
    return s


def comparison_section(inputs: ReportInputs) -> Section:
    s = Section(SECTION_TITLES[9])
    if inputs.loo is None or not inputs.outcome:
        return s
    groups = inputs.loo["outcome_data"].nunique()
    s.text(f"PSIS-LOO estimates how well each model predicts a {inputs.unit} it has not seen (elpd: higher is better), "
           "on the outcome only. Models are ranked only against models fitted to the same outcomes"
           + (f" ({groups} groups of outcome data here)" if groups > 1 else "")
           + f". A difference smaller than about twice its SE is not a difference; Pareto k > 0.7 marks {inputs.unit}s "
           "whose estimate is unreliable.")
    s.table(inputs.loo, "loo", "PSIS-LOO comparison on the outcome")
    cost = []
    for name, run in inputs.outcome.items():
        t5, contrast = run.table5, run.tables["capinno_contrast"]
        if contrast.empty:  # no banded index among the predictors: no cut to cost
            continue
        cost.append({"model": name, "mean Table 5 94% HDI width": float((t5["hdi_high"] - t5["hdi_low"]).mean()),
                     "high - low, mean over cells": float(contrast["mean"].mean()),
                     "high - low, mean 94% HDI width": float((contrast["hdi_high"] - contrast["hdi_low"]).mean())})
    if not cost:
        return s
    s.text("The cost of the low/average/high cut: paper_logit treats the band codes 0, 1, 2 as exact; "
           "coarsened_latent treats CAPINNO as a continuous index known only to lie in its band; "
           "latent_factor measures it from the items. The table compares, on the probability scale, how much "
           f"a high- rather than low-CAPINNO firm's chance of being {inputs.outcome_label} rises, and how wide "
           "Table 5's intervals are, under each treatment.")
    s.table(pd.DataFrame(cost), "cut_cost", f"Effect of CAPINNO (high minus low, P({inputs.outcome_label})) and "
            "Table 5 uncertainty per model")
    return s


def provenance_section(inputs: ReportInputs) -> Section:
    from .store import package_versions

    s = Section(SECTION_TITLES[10])
    keys = ("run_id", "spec", "spec_sha256", "data", "data_sha256", "data_provenance", "seed", "command")
    prov = [{"model": n, **{("run" if k == "run_id" else k): r.record.get(k) for k in keys}}
            for n, r in inputs.runs.items()]
    s.text(f"Analysis: {inputs.command}. Every run records its seed, the SHA-256 of its spec and data, and the "
           "package versions; rerunning with the same three gives the same numbers.")
    s.table(pd.DataFrame(prov), "provenance", "Runs in this report")
    versions = next(iter(inputs.runs.values())).record.get("versions", {}) if inputs.runs else {}
    now = package_versions()
    s.table(pd.DataFrame([{"package": k, "run": v, "report": now.get(k, "")} for k, v in versions.items()]),
            "versions", "Package versions (when fitted, when reported)")
    return s


SECTIONS = (summary_section, audit_section, reconstruction_section, spss_section, coefficients_section, table5_section,
            diagnostics_section, predictive_section, loadings_priors_section, comparison_section, provenance_section)
def write_report(inputs: ReportInputs, folder: str | Path) -> WrittenReport:
    """Build every section and write index.html, report.md, figures/*.png and tables/*.csv."""
    import io

    from .store import write_bytes, write_csv, write_text

    folder = Path(folder)
    sections = [s for s in (section(inputs) for section in SECTIONS) if s.blocks]
    for number, section in enumerate(sections, start=1):  # numbered as shown; a survey's report retitled
        title = section.title.split(". ", 1)[1]
        section.title = f"{number}. {SURVEY_TITLES.get(title, title) if not inputs.paper else title}"
    note = provenance_note([r.record for r in inputs.runs.values()])
    images: dict[str, bytes] = {}
    files: list[Path] = []
    for section in sections:
        for b in section.blocks:
            if b.kind == "figure":
                buffer = io.BytesIO()
                b.figure.savefig(buffer, format="png")
                images[b.name] = buffer.getvalue()
                files.append(write_bytes(folder / "figures" / f"{b.name}.png", images[b.name]))
            elif b.kind == "table":
                files.append(write_csv(folder / "tables" / f"{b.name}.csv", b.frame, header_note=note))
    title = "bayes_intl re-analysis report"
    files.append(write_text(folder / "report.md", render_markdown(title, sections, note)))
    index = write_text(folder / "index.html", render_html(title, sections, images, note))
    files.append(index)
    return WrittenReport(index, files, [s.title for s in sections], len(images))
