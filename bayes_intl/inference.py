"""Sampling, diagnostics and posterior summaries: Table 5 and the coefficient table.

Everything here computes; nothing plots or prints. The sampler backend comes from the spec
(nutpie by default: chosen by measurement, see benchmarks/README.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm

from .baselines import fit_logit, table5_grid
from .data import CellTable, load_default, read_outcome_data
from .models import LEVEL_NAMES, ModelData, build_model, capinno_levels, grid_probabilities
from .paper import TABLE4_TERMS, load_paper
from .spec import Sampler, Spec
from .survey import read_survey, validate_survey

log = logging.getLogger(__name__)
HDI_PROB = 0.94
GATE = {"r_hat_max": 1.01, "ess_min": 400, "divergences_max": 0}
OUTCOME = "internationalized"
PAPER_TERM = {"capinno": "Capinno", "activity": "Activity", "size": "Size"}


def load_model_data(spec: Spec, path: str | None = None, *, seed: int = 20150601) -> ModelData:
    """The data a spec asks for: the reconstruction, its synthetic survey, or a user's file."""
    source = path or spec.data_source
    if spec.is_item_level:
        if source in ("synthetic", "reconstruction"):
            from .simulate import simulate_survey, survey_codebook

            synthetic = simulate_survey(load_default(), seed=seed)
            survey = validate_survey(synthetic.frame, survey_codebook(), source="synthetic survey (bayes-intl simulate)")
        else:
            from .simulate import survey_codebook

            survey = read_survey(source, spec.codebook or survey_codebook())
        return ModelData(survey.firms, survey, survey.source, survey.provenance)
    if source == "reconstruction":
        table = load_default()
    elif source == "synthetic":
        from .simulate import simulate_survey, survey_codebook

        synthetic = simulate_survey(load_default(), seed=seed)
        survey = validate_survey(synthetic.frame, survey_codebook(), source="synthetic survey (bayes-intl simulate)")
        return ModelData(survey.firms, None, survey.source, survey.provenance)
    else:
        table = read_outcome_data(source)
    firms = (table.to_firms() if isinstance(table, CellTable) else table).firms
    return ModelData(firms, None, table.source, table.provenance)


def model_data_hash(data: ModelData) -> str:
    import hashlib

    frame = data.firms if data.survey is None else pd.concat([data.firms, data.survey.items], axis=1)
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def sample(model: pm.Model, sampler: Sampler, *, seed: int, progress: bool = True) -> az.InferenceData:
    """Draw from the posterior with the spec's backend; one seed drives everything."""
    if sampler.backend == "nutpie":
        import nutpie

        compiled = nutpie.compile_pymc_model(model)
        idata = nutpie.sample(compiled, chains=sampler.chains, draws=sampler.draws, tune=sampler.tune, seed=seed,
                              target_accept=sampler.target_accept, progress_bar=progress)
    else:
        kwargs = {"nuts_sampler": "numpyro"} if sampler.backend == "numpyro" else {}
        with model:
            idata = pm.sample(draws=sampler.draws, tune=sampler.tune, chains=sampler.chains,
                              target_accept=sampler.target_accept, random_seed=seed, progressbar=progress,
                              cores=min(sampler.chains, 2), **kwargs)
    return idata


def add_predictive(idata: az.InferenceData, model: pm.Model, spec: Spec, *, seed: int, prior_draws: int = 500) -> None:
    """Prior (and prior predictive), posterior predictive and the outcome's pointwise log-likelihood."""
    # Ordered cutpoints need a starting point for sampling; PyMC's log-likelihood computation cannot
    # convert a model carrying custom initial values, and after sampling they are no longer needed.
    for rv in list(model.rvs_to_initial_values):
        model.rvs_to_initial_values[rv] = None
    with model:
        prior = pm.sample_prior_predictive(draws=prior_draws, random_seed=seed)
        idata.extend(prior)
        observed = [rv.name for rv in model.observed_RVs]
        ppc = pm.sample_posterior_predictive(idata, var_names=observed, random_seed=seed + 1, progressbar=False)
        idata.extend(ppc)
        if spec.has_outcome:
            pm.compute_log_likelihood(idata, var_names=[OUTCOME], progressbar=False)


@dataclass(frozen=True)
class Diagnostics:
    passed: bool
    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    failing: list[str]  # parameters that missed a threshold
    advice: str

    def to_dict(self) -> dict:
        return {"passed": self.passed, "r_hat_max": self.r_hat_max, "ess_bulk_min": self.ess_bulk_min,
                "ess_tail_min": self.ess_tail_min, "divergences": self.divergences, "failing": self.failing,
                "advice": self.advice, "thresholds": GATE}


def parameter_names(model: pm.Model) -> list[str]:
    return [rv.name for rv in model.free_RVs]


def diagnose(idata: az.InferenceData, names: list[str]) -> Diagnostics:
    """The gate every run must pass: R-hat <= 1.01, bulk and tail ESS >= 400, no divergences."""
    summary = az.summary(idata, var_names=names, kind="diagnostics")
    divergences = int(idata.sample_stats["diverging"].sum()) if "diverging" in idata.sample_stats else 0
    bad = summary[(summary["r_hat"] > GATE["r_hat_max"]) | (summary["ess_bulk"] < GATE["ess_min"])
                  | (summary["ess_tail"] < GATE["ess_min"])]
    failing = [f"{idx} (R-hat {row.r_hat:.3f}, ESS bulk {row.ess_bulk:.0f}, tail {row.ess_tail:.0f})"
               for idx, row in bad.iterrows()]
    passed = not failing and divergences <= GATE["divergences_max"]
    advice = ""
    if divergences:
        advice += (f"{divergences} divergent transitions: the posterior has regions the sampler cannot explore "
                   "reliably; raise target_accept in [sampler] (e.g. 0.95 or 0.99) or tighten the group_sd prior. ")
    if failing:
        advice += ("Some parameters have too few effective draws or chains that disagree: raise draws and tune "
                   "in [sampler] (or drop --quick), then rerun.")
    return Diagnostics(passed, float(summary["r_hat"].max()), float(summary["ess_bulk"].min()),
                       float(summary["ess_tail"].min()), divergences, failing[:20], advice.strip())


def _hdi(samples: np.ndarray) -> np.ndarray:
    """94% HDI of each column of a (draw, k) array: (k, 2)."""
    return np.asarray(az.hdi(samples[None], hdi_prob=HDI_PROB))


def table5(spec: Spec, idata: az.InferenceData, data: ModelData, *, group: str = "posterior") -> pd.DataFrame:
    """Posterior (or prior) predictive Table 5 beside the paper and the MLE refit."""
    grid = table5_grid()
    probs = grid_probabilities(spec, idata[group], data.firms, grid)
    hdi = _hdi(probs)
    paper = load_paper()
    mle = _mle(spec, data)
    mle_p = mle.table("Table 5").set_index("id")["value"] if mle is not None else pd.Series(dtype=float)
    return pd.DataFrame({
        "id": grid["id"], "size": grid["size_name"], "capinno": grid["level"], "activity": grid["activity_name"],
        "paper": [paper.value(i) for i in grid["id"]],
        "mle": [float(mle_p.get(i, np.nan)) for i in grid["id"]],
        "mean": probs.mean(axis=0), "hdi_low": hdi[:, 0], "hdi_high": hdi[:, 1],
        "p_above_half": (probs > 0.5).mean(axis=0),
    })


def _formula(spec: Spec) -> str:
    terms = [p.name if p.coding == "linear" else f"C({p.name})" for p in spec.predictors]
    terms += [":".join(i) for i in spec.interactions]
    return f"{OUTCOME} ~ " + " + ".join(terms)


def _mle(spec: Spec, data: ModelData):
    if not spec.has_outcome:
        return None
    from .data import FirmTable

    return fit_logit(FirmTable(data.firms, data.source, data.provenance), formula=_formula(spec))


def coefficient_draws(spec: Spec, posterior) -> dict[str, np.ndarray]:
    """Posterior draws of each coefficient on the paper's terms where one exists (Capinno, Activity, Size, Constant)."""
    stack = lambda v: v.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()  # noqa: E731
    slope = posterior["slope"]
    out = {}
    for term in slope.coords["term"].values:
        out[PAPER_TERM.get(str(term), str(term))] = stack(slope.sel(term=term))
    if "group_intercept" in posterior:
        gi = stack(posterior["group_intercept"])  # (draw, group) with group 0 = MM
        out["Activity"] = gi[:, 1] - gi[:, 0]
        out["Constant"] = gi[:, 0]
    else:
        out["Constant"] = stack(posterior["intercept"])
    return out


def coefficient_table(spec: Spec, idata: az.InferenceData, data: ModelData) -> pd.DataFrame:
    """Paper B and 95% CI, MLE B and 95% CI, posterior mean and 94% HDI: log-odds and odds ratios."""
    paper = load_paper()
    mle = _mle(spec, data)
    z = 1.959963984540054
    rows = []
    for term, draws in coefficient_draws(spec, idata.posterior).items():
        hdi = _hdi(draws[:, None])[0]
        row = {"term": term, "post_mean": draws.mean(), "post_median": np.median(draws), "post_sd": draws.std(ddof=1),
               "hdi_low": hdi[0], "hdi_high": hdi[1]}
        if term in TABLE4_TERMS:
            b, se = paper.value(f"table4.{term}.b"), paper.value(f"table4.{term}.se")
            lo = np.log(paper.value(f"table4.{term}.ci_lower")) if f"table4.{term}.ci_lower" in paper else b - z * se
            hi = np.log(paper.value(f"table4.{term}.ci_upper")) if f"table4.{term}.ci_upper" in paper else b + z * se
            row |= {"paper_b": b, "paper_ci_low": lo, "paper_ci_high": hi}
        if mle is not None and term in mle.params:
            b, se = mle.params[term], mle.bse[term]
            row |= {"mle_b": b, "mle_se": se, "mle_ci_low": b - z * se, "mle_ci_high": b + z * se}
        rows.append(row)
    table = pd.DataFrame(rows)
    cols = ["paper_b", "paper_ci_low", "paper_ci_high", "mle_b", "mle_ci_low", "mle_ci_high",
            "post_mean", "post_median", "hdi_low", "hdi_high"]
    for c in cols + ["mle_se"]:
        if c not in table:
            table[c] = np.nan
    odds = table.copy()
    odds[cols] = np.exp(odds[cols].astype(float))
    odds[["post_sd", "mle_se"]] = np.nan
    table["scale"], odds["scale"] = "log-odds", "odds ratio"
    order = ["scale", "term", *cols[:6], "mle_se", *cols[6:], "post_sd"]
    return pd.concat([table, odds], ignore_index=True)[order]


def level_points(spec: Spec, idata: az.InferenceData, data: ModelData) -> dict[str, float]:
    """Posterior mean of each CAPINNO level on the model's scale (see models.capinno_levels)."""
    levels = capinno_levels(spec, idata.posterior, data.firms).mean(axis=0)
    return dict(zip(LEVEL_NAMES, map(float, levels)))


def compare_loo(runs: dict[str, az.InferenceData]) -> pd.DataFrame:
    """PSIS-LOO on the outcome's log-likelihood only (never the joint item + outcome likelihood)."""
    outcome_only = {}
    for name, idata in runs.items():
        ll = idata.log_likelihood[[OUTCOME]]
        outcome_only[name] = az.InferenceData(posterior=idata.posterior, log_likelihood=ll)
    table = az.compare(outcome_only, ic="loo")
    pareto = {name: float((az.loo(d, pointwise=True).pareto_k > 0.7).sum()) for name, d in outcome_only.items()}
    table["pareto_k_above_0.7"] = [pareto[n] for n in table.index]
    return table


