"""What survives of a paper: its claims, each scored by its posterior probability, and the prior's share.

A study file's ``[[claim]]`` rows hold what the paper concludes, with the sentence it comes from:
a coefficient's sign (``sign``), one kind of case likelier than another (``difference``), a cell on
one side of the classification cut (``side``), or every printed predicted probability on its printed
side at once (``table_sides``). Each fitted run gives each claim a posterior probability; across
runs, a claim holds where that probability is at least SUPPORT in every model. Power-scaling
sensitivity (Kallioinen et al. 2023, ArviZ's ``psens``) says how much the posterior of each coefficient,
loading and predicted-probability cell moves when the prior or the likelihood is raised to a power.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

import numpy as np
import pandas as pd

CLAIM_KINDS = ("sign", "difference", "side", "table_sides")
CLAIM_KEYS = ("id", "kind", "sentence", "source", "term", "direction", "higher", "lower", "at", "side")
SUPPORT = 0.95  # a claim is supported by a posterior where its probability is at least this
VERDICTS = {"holds": "holds in every model, reconstruction and prior tried", "depends": "depends on the model",
            "reconstruction": "depends on the reconstruction", "prior": "depends on the prior",
            "no": "not supported"}


@dataclass(frozen=True)
class Claim:
    """One conclusion of the paper as a statement about the fitted model."""

    id: str
    kind: str
    sentence: str  # the paper's own words
    source: str = ""  # where in the paper
    term: str = ""  # sign: a coefficient term as the study's [[coefficient]] rows name it
    direction: str = ""  # sign: "positive" or "negative"
    higher: Mapping[str, str] = field(default_factory=dict)  # difference: P(higher) > P(lower)
    lower: Mapping[str, str] = field(default_factory=dict)
    at: Mapping[str, str] = field(default_factory=dict)  # side: the cell
    side: str = ""  # side: "yes" (above the cut) or "no"

    def statement(self) -> str:
        """The claim as the model checks it, in words."""
        cell = lambda at: " / ".join(at.values())  # noqa: E731
        return {"sign": f"B({self.term}) {'>' if self.direction == 'positive' else '<'} 0",
                "difference": f"P({cell(self.higher)}) > P({cell(self.lower)})",
                "side": f"P({cell(self.at)}) {'>' if self.side == 'yes' else '<='} cut",
                "table_sides": "every printed predicted probability on its printed side of the cut"}[self.kind]


def parse_claims(r, predictors, terms) -> tuple[Claim, ...]:
    """The [[claim]] rows of a study file (``r``: the study reader), each refused in one line naming its key."""
    from .study import _at

    out = []
    declared = [t.term for t in terms if t.term != "Constant"]
    for i, raw in enumerate(r.arrays("claim")):
        where = f"[[claim]] '{raw.get('id', i + 1)}'"
        kind = r.need(raw, "kind", where)
        if kind not in CLAIM_KINDS:
            raise r.fail(f"{where}.kind must be one of {', '.join(CLAIM_KINDS)}, not {kind!r}")
        claim = {"id": r.need(raw, "id", where), "kind": kind, "sentence": r.need(raw, "sentence", where),
                 "source": str(raw.get("source", ""))}
        if kind == "sign":
            term = r.need(raw, "term", where)
            if term not in declared:
                raise r.fail(f"{where}.term = {term!r} is not a term of the study's coefficients "
                             f"({', '.join(declared)})")
            direction = r.need(raw, "direction", where)
            if direction not in ("positive", "negative"):
                raise r.fail(f"{where}.direction must be 'positive' or 'negative', not {direction!r}")
            claim |= {"term": term, "direction": direction}
        for key in {"difference": ("higher", "lower"), "side": ("at",)}.get(kind, ()):
            claim[key] = MappingProxyType(_at(r, r.need(raw, key, where, dict), predictors, where, key))
        if kind == "side":
            side = r.need(raw, "side", where)
            if side not in ("yes", "no"):
                raise r.fail(f"{where}.side must be 'yes' (above the cut) or 'no', not {side!r}")
            claim["side"] = side
        out.append(Claim(**claim))
    if len({c.id for c in out}) != len(out):
        raise r.fail("two [[claim]] rows share an id")
    return tuple(out)


def _cell(grid: pd.DataFrame, at: Mapping[str, str]) -> int:
    match = np.ones(len(grid), dtype=bool)
    for name, level in at.items():
        match &= (grid[f"{name}_label"].astype(str) == level).to_numpy()
    return int(np.flatnonzero(match)[0])


def claim_events(study, coefficients: Mapping[str, np.ndarray], probs: np.ndarray,
                 grid: pd.DataFrame) -> dict[str, np.ndarray]:
    """Per claim, whether it holds in each draw, from one run's coefficient draws (by name) and its
    predicted-probability draws (draw x grid cell, cells labelled as the study labels its levels)."""
    out = {}
    for claim in study.claims:
        if claim.kind == "sign":
            term = study.term(claim.term)
            draws = next(coefficients[k] for k in (term.term, term.id.split(".", 1)[1]) if k in coefficients)
            event = draws > 0 if claim.direction == "positive" else draws < 0
        elif claim.kind == "difference":
            event = probs[:, _cell(grid, claim.higher)] > probs[:, _cell(grid, claim.lower)]
        elif claim.kind == "side":
            p = probs[:, _cell(grid, claim.at)]
            event = p > study.cut if claim.side == "yes" else p <= study.cut
        else:
            event = np.ones(len(probs), dtype=bool)
            for cell in study.table_cells():
                p = probs[:, _cell(grid, cell.at)]
                event &= (p > study.cut) == (study.value(cell.id) > study.cut)
        out[claim.id] = np.asarray(event, dtype=bool)
    return out


def claim_probabilities(study, coefficients: Mapping[str, np.ndarray], probs: np.ndarray,
                        grid: pd.DataFrame) -> dict[str, float]:
    """Each claim's posterior probability: the share of draws in which it holds."""
    return {k: float(v.mean()) for k, v in claim_events(study, coefficients, probs, grid).items()}


def scaled_priors(log_prior) -> list[str]:
    """The priors power-scaling varies: the ones a spec sets (registry.scaled_prior; a run's log-prior holds
    only those since 2026-11-30, an older run's every free variable's)."""
    from .registry import scaled_prior

    return [v for v in log_prior.data_vars if scaled_prior(v, log_prior[v].dims)]


PRIOR_SCALES = (0.5, 2.0)  # the prior's density raised to these powers: half as strong, twice as strong
PARETO_K_MAX = 0.7  # past this, importance weights cannot be trusted (the scaled probability is left out)


def prior_scaled(events: Mapping[str, np.ndarray], log_prior: np.ndarray) -> dict[str, tuple[float, float]]:
    """Each claim's probability with the prior power-scaled by PRIOR_SCALES (Pareto-smoothed importance
    weights on the posterior draws, as priorsense does): (lowest, highest); NaN where the weights fail."""
    import arviz as az

    if np.ptp(log_prior) == 0:  # a flat prior: scaling it changes nothing
        return {c: (float(e.mean()), float(e.mean())) for c, e in events.items()}
    scaled = []
    for alpha in PRIOR_SCALES:
        log_weights, k = az.psislw((alpha - 1) * (log_prior - log_prior.max()))
        weights = np.exp(log_weights - log_weights.max())
        weights /= weights.sum()
        scaled.append({c: float(weights @ e) if float(k) <= PARETO_K_MAX else np.nan for c, e in events.items()})
    both = {c: [s[c] for s in scaled] for c in events}  # NaN for both when either scaling's weights fail
    return {c: (min(v), max(v)) if np.isfinite(v).all() else (np.nan, np.nan) for c, v in both.items()}


def claims_table(study, scores: Mapping[str, Mapping[str, Mapping[str, float]]], ensembles=()) -> pd.DataFrame:
    """One row per claim x model (``scores``: model -> claim id -> probability, prior_low, prior_high), with
    the claim's range across the reconstruction ensemble where that model was refitted on it (``ensembles``:
    EnsembleRuns) and its verdict: not supported (P < SUPPORT in every model), depends on the model, depends
    on the reconstruction (some model's ensemble member below SUPPORT), depends on the prior (below SUPPORT
    once the prior is halved or doubled), or holds."""
    ranges = {e.spec.model: e.claims.groupby("claim")["probability"].agg(["min", "max"])
              for e in ensembles if e.claims is not None}
    rows = []
    for claim in study.claims:
        scored = [scores[m][claim.id] for m in scores]
        at_one = [s["probability"] >= SUPPORT for s in scored]
        scaled = [not s.get("prior_low", 1.0) < SUPPORT for s in scored]  # NaN (weights failed) counts as held
        span = {m: tuple(r.loc[claim.id]) if claim.id in r.index else (np.nan, np.nan) for m, r in ranges.items()}
        lowest = min((low for low, _ in span.values() if not np.isnan(low)), default=np.nan)
        key = ("no" if not any(at_one) else "depends" if not all(at_one) else "reconstruction" if lowest < SUPPORT
               else "holds" if all(scaled) else "prior")
        rows += [{"claim": claim.id, "kind": claim.kind, "statement": claim.statement(), "sentence": claim.sentence,
                  "model": model, "probability": scores[model][claim.id]["probability"],
                  "prior_scaled_low": scores[model][claim.id].get("prior_low", np.nan),
                  "prior_scaled_high": scores[model][claim.id].get("prior_high", np.nan),
                  "ensemble_low": span.get(model, (np.nan,))[0], "ensemble_high": span.get(model, (np.nan, np.nan))[1],
                  "verdict": VERDICTS[key]} for model in scores]
    return pd.DataFrame(rows, columns=["claim", "kind", "statement", "sentence", "model", "probability",
                                       "prior_scaled_low", "prior_scaled_high", "ensemble_low", "ensemble_high",
                                       "verdict"])


def score_run(study, spec, idata, design, probs: np.ndarray, grid: pd.DataFrame) -> pd.DataFrame:
    """A fitted run's claim probabilities (``probs``: its predicted-probability draws at ``grid``), with their range
    when the prior is made half and twice as strong (NaN where the reweighting is unreliable or no log-prior is
    stored): one row per claim, kept with the run's tables and read back by the report."""
    from .summaries import coefficient_draws, stacked

    events = claim_events(study, coefficient_draws(spec, idata.posterior, design), probs, grid)
    scaled = dict.fromkeys(events, (np.nan, np.nan))
    if "log_prior" in idata.groups():
        lp = idata.log_prior
        total = sum(lp[v].sum([d for d in lp[v].dims if d not in ("chain", "draw")]) for v in scaled_priors(lp))
        scaled = prior_scaled(events, stacked(total.to_dataset(name="lp"), "lp"))
    return pd.DataFrame([{"claim": c, "probability": float(e.mean()), "prior_low": scaled[c][0],
                          "prior_high": scaled[c][1]} for c, e in events.items()])


def scores_of(runs: Mapping) -> dict[str, dict[str, dict[str, float]]]:
    """The ``scores`` claims_table reads, from each run's ``claims`` table (model name -> claim id -> values)."""
    return {name: {r["claim"]: {k: r[k] for k in ("probability", "prior_low", "prior_high") if not pd.isna(r[k])}
                   for r in run.tables["claims"].to_dict(orient="records")} for name, run in runs.items()}


PSENS_THRESHOLD = 0.05  # priorsense's: a sensitivity at or above it is a noticeable change
SENSITIVITY_VARIABLES = ("intercept", "slope", "group_intercept", "group_slope", "intercept_sd", "group_sd",
                         "loading", "second_order_loading", "factor_corr")


def prior_sensitivity(idata, probs: np.ndarray | None = None, cells=None) -> pd.DataFrame | None:
    """Power-scaling sensitivity to the prior and to the likelihood of each coefficient, loading and
    variance parameter, and of each predicted-probability cell (``probs``: draw x cell, draws in chain
    order); diagnosis as priorsense: both sensitive, a prior-data conflict; the prior alone, the prior
    dominates (weak likelihood). None for a run without a stored log-prior."""
    import arviz as az
    import xarray as xr

    if "log_prior" not in idata.groups() or "log_likelihood" not in idata.groups():
        return None
    posterior = idata.posterior[[v for v in SENSITIVITY_VARIABLES if v in idata.posterior]]
    if probs is not None:
        shape = (posterior.sizes["chain"], posterior.sizes["draw"], probs.shape[1])
        posterior = posterior.assign(p=xr.DataArray(probs.reshape(shape), dims=("chain", "draw", "cell"),
                                                       coords={"cell": list(cells)}))
    data = az.InferenceData(posterior=posterior, log_prior=idata.log_prior[scaled_priors(idata.log_prior)],
                            log_likelihood=idata.log_likelihood)
    frame = pd.DataFrame({c: _flat(az.psens(data, component=c)) for c in ("prior", "likelihood")})
    prior, likelihood = frame["prior"] >= PSENS_THRESHOLD, frame["likelihood"] >= PSENS_THRESHOLD
    frame["diagnosis"] = np.where(prior & likelihood, "prior-data conflict",
                                  np.where(prior, "prior dominates (weak likelihood)", ""))
    return frame.rename_axis("variable").reset_index()


def _flat(dataset) -> pd.Series:
    """One value per element, named ``var`` or ``var[coord, ...]``."""
    out = {}
    for var, values in dataset.data_vars.items():
        if values.ndim == 0:
            out[var] = float(values)
            continue
        for idx, value in values.to_series().items():
            out[f"{var}[{', '.join(map(str, idx if isinstance(idx, tuple) else (idx,)))}]"] = float(value)
    return pd.Series(out)
