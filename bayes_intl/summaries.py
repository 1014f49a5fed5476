"""Posterior summaries a researcher reads: Table 5, the coefficient table, contrasts, fit checks, loadings.

Everything here computes from an InferenceData and the model's registry entry; nothing samples,
plots or prints. ``derive_tables`` computes every table of a run once, when it is fitted.
"""

from __future__ import annotations

from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd

from .data import PAPER_DESIGN, Covariate, Design, ModelData
from .inference import outcome_variable
from .models import design_columns
from .registry import LEVEL_NAMES
from .spec import Spec

HDI_PROB = 0.94
Z975 = 1.959963984540054
PAPER_TERM = {"capinno": "Capinno", "activity": "Activity", "size": "Size"}
RUN_TABLES = ("table5", "table5_prior", "coefficients", "capinno_contrast", "calibration", "prior_sensitivity",
              "claims")
ITEM_TABLES = ("item_ppc", "loadings")


@dataclass(frozen=True)
class MleEstimates:
    """The frequentist refit of a run's outcome, fitted once: B and SE per term, and its Table 5."""

    formula: str
    params: dict[str, float]
    bse: dict[str, float]
    table5: dict[str, float]

    @classmethod
    def from_fit(cls, fit) -> "MleEstimates":
        cells = fit.table(fit.predicted_table).set_index("id")["value"]
        return cls(fit.formula, {k: float(v) for k, v in fit.params.items()}, {k: float(v) for k, v in fit.bse.items()},
                   {k: float(v) for k, v in cells.items()})

    def to_dict(self) -> dict:
        return {"formula": self.formula, "params": self.params, "bse": self.bse, "table5": self.table5}


def spec_formula(spec: Spec, design: Design = PAPER_DESIGN) -> str:
    """The spec's outcome model as a statsmodels formula (categorical predictors as C(name), against the reference)."""
    from .baselines import formula_name

    def term(p):
        if p.coding == "linear":
            return formula_name(p.name)
        reference = design.covariate(p.name).reference
        name = formula_name(p.name)
        return f"C({name})" if reference == 0 else f"C({name}, Treatment(reference={reference}))"

    terms = [term(p) for p in spec.predictors] + [":".join(map(formula_name, i)) for i in spec.interactions]
    return f"{design.outcome} ~ " + " + ".join(terms)


def _mle_names(spec: Spec, design: Design) -> dict[str, str]:
    """statsmodels' names of the categorical dummies (``C(size)[T.1]``) -> the models' (``size[small]``)."""
    from .baselines import formula_name

    out = {formula_name(p.name): p.name for p in spec.predictors if p.coding == "linear"}
    for p in spec.predictors:
        if p.coding == "categorical":
            cov = design.covariate(p.name)
            name = formula_name(p.name)
            head = f"C({name})" if cov.reference == 0 else f"C({name}, Treatment(reference={cov.reference}))"
            out |= {f"{head}[T.{code}]": f"{p.name}[{label}]" for code, label in enumerate(cov.labels)}
    return out


def fit_mle(spec: Spec, data: ModelData) -> MleEstimates | None:
    """The maximum-likelihood refit of the spec's outcome model on the run's firms (None without an outcome)."""
    if not spec.entry.outcome:
        return None
    from .baselines import fit_logit
    from .data import FirmTable

    grid = prediction_grid(spec, data.design, data.firms)
    fit = fit_logit(FirmTable(data.firms, data.source, data.provenance), formula=spec_formula(spec, data.design),
                    grid=None if data.design.paper and grid["id"].str.startswith("table5.").all() else grid)
    mle = MleEstimates.from_fit(fit)
    names = _mle_names(spec, data.design)
    return MleEstimates(mle.formula, {names.get(k, k): v for k, v in mle.params.items()},
                        {names.get(k, k): v for k, v in mle.bse.items()}, mle.table5)


def flat(values) -> np.ndarray:
    """A DataArray of draws with chains and draws flattened into the first axis."""
    return values.stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()


def stacked(group, name: str, thin: int | None = None) -> np.ndarray:
    """A variable's draws with chains and draws flattened into the first axis (``thin``: at most that many)."""
    values = flat(group[name])
    if thin and len(values) > thin:
        values = values[np.linspace(0, len(values) - 1, thin).astype(int)]
    return values


def hdi(samples: np.ndarray) -> np.ndarray:
    """94% HDI of each column of a (draw, k) array: (k, 2)."""
    return np.asarray(az.hdi(samples[None], hdi_prob=HDI_PROB))


def scalar_draws(group, names) -> dict[str, np.ndarray]:
    """Draws of the named variables (those present), one flat array per scalar element:
    {'intercept': (draw,), 'slope[capinno]': (draw,), 'loading[eo_objectives]': (draw,), ...}."""
    out = {}
    for name in names:
        if name not in group:
            continue
        stacked_ = group[name].stack(sample=("chain", "draw")).transpose("sample", ...)
        values = stacked_.to_numpy()
        coords = [[str(v) for v in stacked_.coords[d].values] for d in stacked_.dims[1:]]
        if values.ndim == 1:
            out[name] = values
            continue
        for index in np.ndindex(*values.shape[1:]):
            label = ", ".join(coords[d][i] for d, i in enumerate(index))
            out[f"{name}[{label}]"] = values[(slice(None), *index)]
    return out


def table5_grid() -> pd.DataFrame:
    """The paper's Table 5 cells: id, size, capinno, activity codes and their ``<name>_label``."""
    from .baselines import study_grid

    return study_grid()


def prediction_grid(spec: Spec, design: Design, firms: pd.DataFrame) -> pd.DataFrame:
    """The cells at which a run reports predicted probabilities (its Table 5).

    The paper's 18 cells for the paper's design; otherwise every combination of the levels of the
    categorical predictors (CAPINNO's low/average/high among them), numeric predictors at their
    sample mean. Columns: ``id``, each predictor's value, and ``<name>_label`` per categorical one.
    """
    names = list(dict.fromkeys([p.name for p in spec.predictors] + ([spec.group] if spec.entry.hierarchical else [])))
    if design.paper and set(names) <= {"capinno", "activity", "size"}:
        return table5_grid()
    import itertools

    categorical = [design.covariate(n) for n in names if design.covariate(n).type == "categorical"]
    rows = []
    for codes in itertools.product(*(range(len(c.labels)) for c in categorical)):
        labels = [c.labels[code] for c, code in zip(categorical, codes)]
        rows.append({"id": "cell." + ".".join(f"{c.name}={lab}" for c, lab in zip(categorical, labels)),
                     **{c.name: code for c, code in zip(categorical, codes)},
                     **{f"{c.name}_label": lab for c, lab in zip(categorical, labels)}})
    grid = pd.DataFrame(rows if categorical else [{"id": "cell.mean"}])
    for n in names:
        if design.covariate(n).type == "numeric":
            grid[n] = float(firms[n].mean())
    return grid


def grid_labels(grid: pd.DataFrame) -> list[str]:
    """The categorical predictors a grid varies, in its column order."""
    return [c[: -len("_label")] for c in grid.columns if c.endswith("_label")]


def grid_probabilities(spec: Spec, posterior, firms: pd.DataFrame, grid: pd.DataFrame,
                       design: Design = PAPER_DESIGN) -> np.ndarray:
    """P(outcome) for each grid cell and draw: (draw, cell), CAPINNO at the entry's levels, municipality at 0."""
    entry = spec.entry
    names = list(posterior["slope"].coords["term"].values)
    exclude = (spec.group,) if entry.hierarchical else ()
    band = spec.banded
    uses_band = any(p.name == band for p in spec.predictors)
    _, columns = design_columns(spec, grid.assign(**{band: 0.0}) if uses_band else grid, design, exclude=exclude,
                                latent=np.ones(len(grid)) if uses_band else None)
    # Rebuild each design column per draw: columns that involve the band are scaled by the draw's level.
    x = np.stack([np.broadcast_to(c, (len(grid),)) for c in columns], axis=1)  # (cell, term)
    draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    xs = np.repeat(x[None], draws, axis=0)
    if uses_band:
        bands = len(design.covariate(band).labels)
        level = entry.levels(posterior, firms, band, bands)[:, grid[band].to_numpy()]  # (draw, cell)
        for t, name in enumerate(names):
            if band in name.split(":"):
                xs[:, :, t] = xs[:, :, t] * level
    if not entry.hierarchical:
        eta = stacked(posterior, "intercept")[:, None] + np.einsum("sct,st->sc", xs, stacked(posterior, "slope"))
    else:
        groups = [int(g.split("=")[1]) for g in posterior.coords["group"].values]
        g = np.searchsorted(groups, grid[spec.group].to_numpy())
        gi, gs = stacked(posterior, "group_intercept"), stacked(posterior, "group_slope")
        eta = gi[:, g] + np.einsum("sct,sct->sc", xs, gs[:, g, :])
    return 1 / (1 + np.exp(-eta))


def published_cells(study, grid: pd.DataFrame) -> list[float]:
    """The study's printed predicted probability at each grid cell (matched by level labels), else NaN."""
    if study is None:
        return [np.nan] * len(grid)
    printed = {frozenset(c.at.items()): study.value(c.id) for c in study.table_cells()}
    names = [p.name for p in study.predictors]
    if not all(f"{n}_label" in grid for n in names):
        return [np.nan] * len(grid)
    return [printed.get(frozenset((n, str(row[f"{n}_label"])) for n in names), np.nan) for _, row in grid.iterrows()]


def table5(probs: np.ndarray, mle: MleEstimates | None, grid: pd.DataFrame | None = None,
           design: Design = PAPER_DESIGN, study=None) -> pd.DataFrame:
    """Table 5 from (draw, cell) probabilities, beside the study's printed values and the MLE refit."""
    grid = grid if grid is not None else table5_grid()
    interval = hdi(probs)
    mle_p = mle.table5 if mle is not None else {}
    return pd.DataFrame({
        "id": grid["id"], **{n: grid[f"{n}_label"] for n in grid_labels(grid)},
        "paper": published_cells(study, grid),
        "mle": [float(mle_p.get(i, np.nan)) for i in grid["id"]],
        "mean": probs.mean(axis=0), "hdi_low": interval[:, 0], "hdi_high": interval[:, 1],
        "p_above_half": (probs > 0.5).mean(axis=0),
    })


def coefficient_draws(spec: Spec, posterior, design: Design = PAPER_DESIGN) -> dict[str, np.ndarray]:
    """Posterior draws of each coefficient, named as the paper names them in the paper's design (Capinno, ...,
    Constant) and as the spec names them otherwise.

    A hierarchical model's group effect is the difference of group intercepts from the reference
    group's, named as the flat model names it (``Activity``, or ``group[label]``); its Constant is
    the reference group's intercept.
    """
    named = PAPER_TERM if design.paper else {}  # another survey's predictors keep the names its spec gives them
    slope = posterior["slope"]
    out = {named.get(str(t), str(t)): flat(slope.sel(term=t)) for t in slope.coords["term"].values}
    if spec.entry.hierarchical:
        gi = stacked(posterior, "group_intercept")  # (draw, group), groups in code order
        codes = [int(g.split("=")[1]) for g in posterior.coords["group"].values]
        cov = design.covariate(spec.group) or Covariate(spec.group, labels=tuple(map(str, codes)))
        ref = codes.index(cov.reference) if cov.reference in codes else 0
        linear = any(p.name == spec.group and p.coding == "linear" for p in spec.predictors)
        for j, code in enumerate(codes):
            if j != ref:
                name = named.get(spec.group, spec.group) if linear and len(codes) == 2 \
                    else f"{spec.group}[{cov.labels[code]}]"
                out[name] = gi[:, j] - gi[:, ref]
        out["Constant"] = gi[:, ref]
    else:
        out["Constant"] = stacked(posterior, "intercept")
    return out


def coefficient_table(spec: Spec, posterior, mle: MleEstimates | None, design: Design = PAPER_DESIGN,
                      study=None) -> pd.DataFrame:
    """The study's printed B and 95% CI, MLE B and 95% CI, posterior mean and 94% HDI: log-odds and odds ratios."""
    paper = study
    terms = {} if study is None else {name: t.id for t in study.terms for name in (t.term, t.id.split(".", 1)[1])}
    rows = []
    for term, draws in coefficient_draws(spec, posterior, design).items():
        interval = hdi(draws[:, None])[0]
        row = {"term": term, "post_mean": draws.mean(), "post_median": np.median(draws), "post_sd": draws.std(ddof=1),
               "hdi_low": interval[0], "hdi_high": interval[1]}
        if term in terms:
            fid = terms[term]
            b, se = paper.value(f"{fid}.b"), paper.value(f"{fid}.se")
            lo = np.log(paper.value(f"{fid}.ci_lower")) if f"{fid}.ci_lower" in paper else b - Z975 * se
            hi = np.log(paper.value(f"{fid}.ci_upper")) if f"{fid}.ci_upper" in paper else b + Z975 * se
            row |= {"paper_b": b, "paper_ci_low": lo, "paper_ci_high": hi}
        if mle is not None and term in mle.params:
            b, se = mle.params[term], mle.bse[term]
            row |= {"mle_b": b, "mle_se": se, "mle_ci_low": b - Z975 * se, "mle_ci_high": b + Z975 * se}
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


CONTRAST_COLUMNS = ["mean", "hdi_low", "hdi_high", "p_positive"]


def capinno_contrast(probs: np.ndarray, grid: pd.DataFrame | None = None, band: str = "capinno") -> pd.DataFrame:
    """P(outcome) at the highest minus the lowest level of the banded predictor (CAPINNO: high minus low), per
    combination of the other predictors: mean and 94% HDI. On the probability scale, so that models with
    different scales for the band compare directly.
    """
    grid = grid if grid is not None else table5_grid()
    others = [n for n in grid_labels(grid) if n != band]
    if band not in grid_labels(grid):
        return pd.DataFrame(columns=others + CONTRAST_COLUMNS)
    rows = []
    for key, cells in (grid.groupby([f"{n}_label" for n in others], sort=False) if others else [((), grid)]):
        key = key if isinstance(key, tuple) else (key,)
        low = cells.index[cells[band] == cells[band].min()][0]
        high = cells.index[cells[band] == cells[band].max()][0]
        diff = probs[:, high] - probs[:, low]
        interval = hdi(diff[:, None])[0]
        rows.append({**dict(zip(others, key)), "mean": diff.mean(), "hdi_low": interval[0],
                     "hdi_high": interval[1], "p_positive": (diff > 0).mean()})
    return pd.DataFrame(rows)


def level_points(spec: Spec, posterior, firms: pd.DataFrame, design: Design = PAPER_DESIGN) -> dict[str, float]:
    """Posterior mean of each level of the banded predictor (CAPINNO) on the model's scale (the registry's ``levels``)."""
    labels = design.covariate(spec.banded).labels
    names = LEVEL_NAMES if len(labels) == len(LEVEL_NAMES) and spec.banded == "capinno" else labels
    return dict(zip(names, map(float, spec.entry.levels(posterior, firms, spec.banded, len(labels)).mean(axis=0))))


def calibration_bins(idata: az.InferenceData, bins: int = 5) -> pd.DataFrame:
    """Outcome calibration: firms binned by predicted P(outcome); observed share beside the predicted one,
    with the 94% interval of the share in replicated data."""
    name = outcome_variable(idata)
    y = idata.observed_data[name].to_numpy()
    rep = stacked(idata.posterior_predictive, name)  # (draw, firm)
    predicted = rep.mean(axis=0)
    order = np.argsort(predicted, kind="stable")
    rows = []
    for b, idx in enumerate(np.array_split(order, bins)):
        share = rep[:, idx].mean(axis=1)
        rows.append({"bin": b + 1, "cases": len(idx), "predicted": predicted[idx].mean(), "observed": y[idx].mean(),
                     "rep_low": np.quantile(share, 0.03), "rep_high": np.quantile(share, 0.97)})
    return pd.DataFrame(rows)


def _mean_correlation(matrix: np.ndarray) -> float:
    """Mean correlation between item columns (pairwise-complete when responses are missing)."""
    if np.isnan(matrix).any():
        corr = pd.DataFrame(matrix).corr().to_numpy()
        return float(np.nanmean(corr[np.triu_indices_from(corr, k=1)]))
    keep = matrix.std(axis=0) > 0
    corr = np.corrcoef(matrix[:, keep], rowvar=False)
    return float(corr[np.triu_indices_from(corr, k=1)].mean())


def _block(idata: az.InferenceData, name: str, thin: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """One block of items as (firm, item) observed and (draw, firm, item) replicated arrays, NaN where a
    response is missing (a block with missing responses is stored one entry per given response)."""
    obs = idata.observed_data[name]
    rep = stacked(idata.posterior_predictive, name, thin).astype(float)
    item_dim = name.replace("items_", "") + "_item"
    labels = [str(v) for v in idata.observed_data.coords[item_dim].values] if item_dim in idata.observed_data.coords \
        else [str(v) for v in idata.posterior.coords[item_dim].values]
    if "firm" in obs.dims:
        return obs.transpose("firm", item_dim).to_numpy().astype(float), rep, labels
    firm = idata.constant_data[f"{name}_firm"].to_numpy()
    item = idata.constant_data[f"{name}_item"].to_numpy()
    n_firm = idata.posterior.sizes["firm"] if "firm" in idata.posterior.sizes else int(firm.max()) + 1
    observed = np.full((n_firm, len(labels)), np.nan)
    observed[firm, item] = obs.to_numpy()
    replicated = np.full((len(rep), n_firm, len(labels)), np.nan)
    replicated[:, firm, item] = rep
    return observed, replicated, labels


def item_ppc(idata: az.InferenceData, thin: int = 400) -> tuple[pd.DataFrame, dict]:
    """Item-level posterior predictive check for a measurement model.

    Per item: the observed mean beside the replicated means (94% interval) and the posterior
    predictive p-value P(T_rep >= T_obs). Overall: the same p-value for the mean inter-item
    correlation, the statistic a factor model exists to reproduce.
    """
    names = [n for n in idata.observed_data.data_vars if n.startswith("items_")]
    obs_cols, rep_cols, labels = [], [], []
    for name in names:
        observed, replicated, block_labels = _block(idata, name, thin)
        obs_cols.append(observed)
        rep_cols.append(replicated)
        labels += block_labels
    observed = np.concatenate(obs_cols, axis=1)
    replicated = np.concatenate(rep_cols, axis=2)
    obs_mean, rep_mean = np.nanmean(observed, axis=0), np.nanmean(replicated, axis=1)
    items = pd.DataFrame({"item": labels, "observed": obs_mean, "replicated_mean": rep_mean.mean(axis=0),
                          "rep_low": np.quantile(rep_mean, 0.03, axis=0), "rep_high": np.quantile(rep_mean, 0.97, axis=0),
                          "ppp": (rep_mean >= obs_mean).mean(axis=0)})
    t_obs = _mean_correlation(observed)
    t_rep = np.array([_mean_correlation(r) for r in replicated])
    overall = {"statistic": "mean inter-item correlation", "observed": t_obs, "replicated_mean": float(t_rep.mean()),
               "rep_low": float(np.quantile(t_rep, 0.03)), "rep_high": float(np.quantile(t_rep, 0.97)),
               "ppp": float((t_rep >= t_obs).mean()), "draws": int(len(t_rep))}
    return items, overall


def _factor_correlation(posterior, structure: str, n_dims: int) -> np.ndarray:
    """The dimension factors' correlation matrix per draw, (draw, D, D), by structure (``Spec.factor_structure``)."""
    draws = posterior.sizes["chain"] * posterior.sizes["draw"]
    if structure == "correlated":
        return stacked(posterior, "factor_corr")
    if structure == "second_order":  # f_d = (g_d eta + zeta_d) / sqrt(1 + g_d^2)
        g = stacked(posterior, "second_order_loading")
        g = g / np.sqrt(1 + g**2)
        phi = g[:, :, None] * g[:, None, :]
        phi[:, np.arange(n_dims), np.arange(n_dims)] = 1.0
        return phi
    return np.ones((draws, 1, 1))


def chi_square_ppp(idata: az.InferenceData, codebook, *, structure: str, thin: int = 1000,
                   seed: int = 0) -> dict | None:
    """blavaan's PPP for the continuous items: per draw, the likelihood-ratio chi-square of the observed data
    against the model-implied mean and covariance, beside the same statistic for data replicated from them.

    T(Y, theta) = N [log|Sigma| + tr(S Sigma^-1) + (ybar - mu)' Sigma^-1 (ybar - mu) - log|S| - p], with
    Sigma = Lambda Phi Lambda' + diag(sigma^2) (factors integrated out) and S the ML covariance; PPP =
    P(T_rep >= T_obs). Near 0.5 the model reproduces the items' covariances; near 0 it does not. None when
    fewer than three items are continuous (discrete items have no such chi-square here: see the item check).
    """
    items = [i for i in codebook.items if i.in_capinno and i.type == "continuous"]
    if len(items) < 3 or "items_continuous" not in idata.observed_data:
        return None
    observed = idata.observed_data["items_continuous"]
    if "firm" not in observed.dims:  # missing responses: the complete rows only
        observed_full, _, _ = _block(idata, "items_continuous", 1)
        y = observed_full[~np.isnan(observed_full).any(axis=1)]
    else:
        y = observed.transpose("firm", ...).to_numpy()
    posterior = idata.posterior
    dims = [str(d) for d in posterior.coords["dimension"].values]
    names = [i.name for i in items]
    all_items = [str(v) for v in posterior.coords["item"].values]
    lam = stacked(posterior, "loading")[:, [all_items.index(n) for n in names]]
    tau, sigma = stacked(posterior, "intercept_continuous"), stacked(posterior, "residual_sd")
    phi = _factor_correlation(posterior, structure, len(dims))
    pick = np.linspace(0, len(lam) - 1, min(thin, len(lam))).astype(int)
    where = np.array([dims.index(i.dimension) for i in items])
    rng = np.random.default_rng(seed)
    n, p = y.shape

    def statistic(data, mu, cov_inv, logdet):
        centred = data.mean(axis=0) - mu
        s = np.cov(data, rowvar=False, bias=True)
        return n * (logdet + np.trace(s @ cov_inv) + centred @ cov_inv @ centred - np.linalg.slogdet(s)[1] - p)

    t_obs, t_rep = [], []
    for d in pick:
        load = np.zeros((p, len(dims)))
        load[np.arange(p), where] = lam[d]
        cov = load @ phi[d] @ load.T + np.diag(sigma[d] ** 2)
        cov_inv, logdet = np.linalg.inv(cov), np.linalg.slogdet(cov)[1]
        t_obs.append(statistic(y, tau[d], cov_inv, logdet))
        t_rep.append(statistic(rng.multivariate_normal(tau[d], cov, size=n), tau[d], cov_inv, logdet))
    t_obs, t_rep = np.array(t_obs), np.array(t_rep)
    return {"statistic": "likelihood-ratio chi-square of the continuous items (blavaan's PPP)",
            "items": len(items), "respondents": int(n), "draws": int(len(pick)),
            "observed_mean": float(t_obs.mean()), "replicated_mean": float(t_rep.mean()),
            "ppp": float((t_rep >= t_obs).mean())}


LATENT_RESPONSE_VARIANCE = {"binary": np.pi**2 / 3, "ordinal": np.pi**2 / 3}  # the logistic's variance


def _standardized(posterior, name: str, types: dict[str, str]) -> np.ndarray:
    """Standardized (std.all) loadings, (draw, item): lambda / sqrt(lambda^2 + residual variance) with unit-variance
    factors; a logit item's residual variance is the logistic's pi^2/3, a count item has none (NaN)."""
    draws = stacked(posterior, name)
    if name == "second_order_loading":
        return draws / np.sqrt(1 + draws**2)
    items = [str(v) for v in posterior.coords["item"].values]
    residual = np.full(draws.shape, np.nan)
    for j, item in enumerate(items):
        kind = types.get(item)
        if kind in LATENT_RESPONSE_VARIANCE:
            residual[:, j] = LATENT_RESPONSE_VARIANCE[kind]
        elif kind == "continuous":
            residual[:, j] = stacked(posterior, "residual_sd")[:, list(posterior.coords["continuous_item"].values)
                                                               .index(item)] ** 2
    return draws / np.sqrt(draws**2 + residual)


def loading_table(posterior, structure: str, types: dict[str, str] | None = None) -> pd.DataFrame:
    """Factor loadings (item, and second-order in that structure): posterior mean and 94% HDI, raw and
    standardized (std.all)."""
    rows = []
    for name in ("second_order_loading", "loading") if structure == "second_order" else ("loading",):
        draws = stacked(posterior, name)
        std = _standardized(posterior, name, types or {})
        interval, std_interval = hdi(draws), hdi(np.nan_to_num(std))
        dim = [d for d in posterior[name].dims if d not in ("chain", "draw")][0]
        for j, label in enumerate(posterior.coords[dim].values):
            known = not np.isnan(std[:, j]).any()
            rows.append({"parameter": name, "of": str(label), "mean": draws[:, j].mean(), "hdi_low": interval[j, 0],
                         "hdi_high": interval[j, 1], "std_mean": std[:, j].mean() if known else np.nan,
                         "std_hdi_low": std_interval[j, 0] if known else np.nan,
                         "std_hdi_high": std_interval[j, 1] if known else np.nan})
    return pd.DataFrame(rows, columns=["parameter", "of", "mean", "hdi_low", "hdi_high", "std_mean", "std_hdi_low",
                                       "std_hdi_high"])


def factor_correlations(posterior) -> pd.DataFrame:
    """Correlations between the dimension factors (correlated structure): posterior mean and 94% HDI per pair."""
    draws = stacked(posterior, "factor_corr")  # (draw, dimension, dimension)
    dims = [str(v) for v in posterior.coords["dimension"].values]
    rows = []
    for i in range(len(dims)):
        for j in range(i + 1, len(dims)):
            interval = hdi(draws[:, i, j][:, None])[0]
            rows.append({"factor": dims[i], "with": dims[j], "mean": draws[:, i, j].mean(), "hdi_low": interval[0],
                         "hdi_high": interval[1]})
    return pd.DataFrame(rows)


def table5_labels(table: pd.DataFrame) -> list[str]:
    """The columns of a Table 5 that name its cells (between ``id`` and ``paper``)."""
    columns = list(table.columns)
    return columns[columns.index("id") + 1: columns.index("paper")]


def classification_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Per Table 5 cell: the paper's classification (p > 0.5) and the posterior probability that it flips."""
    paper_yes = table["paper"] > 0.5
    p_flip = np.where(paper_yes, 1 - table["p_above_half"], table["p_above_half"])
    return table[["id", *table5_labels(table), "paper", "mean"]].assign(
        paper_class=np.where(paper_yes, "yes", "no"), p_flip=p_flip)


def derive_tables(spec: Spec, idata: az.InferenceData, data: ModelData, mle: MleEstimates | None,
                  study=None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Every table a run carries, each computed once: (tables by file stem, JSON-ready extras).

    ``study``: whose printed figures stand beside the posterior (default: the Sonora paper's, for runs
    of its design)."""
    entry, tables, extras = spec.entry, {}, {}
    if entry.outcome:
        design = data.design
        if study is None and design.paper:
            from .study import load_study

            study = load_study()
        grid = prediction_grid(spec, design, data.firms)
        probs = grid_probabilities(spec, idata.posterior, data.firms, grid, design)
        tables["table5"] = table5(probs, mle, grid, design, study)
        tables["table5_prior"] = table5(grid_probabilities(spec, idata.prior, data.firms, grid, design), mle, grid,
                                        design, study)
        tables["coefficients"] = coefficient_table(spec, idata.posterior, mle, design, study)
        tables["capinno_contrast"] = capinno_contrast(probs, grid, spec.banded)
        tables["calibration"] = calibration_bins(idata)
        from .claims import prior_sensitivity, score_run

        claims = study is not None and study.claims  # each claim of the study scored once, here
        tables["claims"] = (score_run(study, spec, idata, design, probs, grid) if claims else
                            pd.DataFrame(columns=["claim", "probability", "prior_low", "prior_high"]))
        if (sensitivity := prior_sensitivity(idata, probs, grid["id"])) is not None:
            tables["prior_sensitivity"] = sensitivity
        if any(p.name == spec.banded for p in spec.predictors):
            extras["capinno_levels"] = level_points(spec, idata.posterior, data.firms, data.design)
    if entry.item_level:
        tables["item_ppc"], extras["item_ppc_overall"] = item_ppc(idata)
        codebook = data.survey.codebook
        structure = spec.factor_structure(len(codebook.dimensions))
        extras["chi_square_ppp"] = chi_square_ppp(idata, codebook, structure=structure)
        tables["loadings"] = loading_table(idata.posterior, structure, {i.name: i.type for i in codebook.items})
        if structure == "correlated":
            tables["factor_correlations"] = factor_correlations(idata.posterior)
    return tables, extras


def measurement_fit_lines(record: dict) -> list[str]:
    """How well a measurement model fits, in the words a reader of a CFA needs: blavaan's chi-square PPP (continuous
    items) and the posterior predictive p-value of the mean inter-item correlation, each with how to read it."""
    lines = []
    chi = record.get("chi_square_ppp")
    if chi:
        lines.append(f"posterior predictive p-value (PPP) of the {chi['statistic']} = {chi['ppp']:.2f} ({chi['items']} "
                     f"items, {chi['respondents']} respondents; observed chi-square {chi['observed_mean']:.1f} on average "
                     f"against {chi['replicated_mean']:.1f} in replicated data). Read it as blavaan's: near 0.5 the "
                     "model reproduces the items' covariances; below about 0.05 it does not (as a chi-square test "
                     "would reject the model).")
    overall = record.get("item_ppc_overall")
    if overall:
        lines.append(f"posterior predictive p-value of the {overall['statistic']} = {overall['ppp']:.2f} (observed "
                     f"{overall['observed']:.3f}, replicated {overall['rep_low']:.3f} to {overall['rep_high']:.3f}). "
                     "Values near 0 or 1 mean the factor model fails to reproduce how the items hang together.")
    return lines
