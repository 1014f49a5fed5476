"""Builders: a spec plus validated data in, a ``pm.Model`` out. Builders never sample.

Every outcome model is a firm-level Bernoulli logit, so that PSIS-LOO compares like with like.

paper_logit::
    logit P(y_i = 1) = a + sum_k b_k x_ik                      (x: the paper's linear codes)
hierarchical_logit::
    logit P(y_i = 1) = a_g[i] + sum_k (b_k + d_g[i],k) x_ik + u_m[i]
    a_g = a + s_a z_g,  d_g,k = s_k z_g,k (k varying),  u_m = s_m z_m (non-centred)
    (sampled through the observed groups' mean a + s_a mean_g z_g, which the data pin down: _group_means)
coarsened_latent (the spec's banded predictor: CAPINNO, or a study's banded index with K levels)::
    u_i ~ Beta(alpha, beta) restricted to firm i's band [c/K, (c+1)/K);  capinno_i = K u_i - 1/2  (K = 3)
    logit P(y_i = 1) = a + b_capinno capinno_i + sum_k b_k x_ik
latent_factor (second-order)::
    eta_i ~ N(0, 1);  f_id = (gamma_d eta_i + zeta_id) / sqrt(1 + gamma_d^2),  zeta_id ~ N(0, 1),  gamma_d > 0
    item j of dimension d: ordinal ~ ordered logit(lambda_j f_id, cutpoints_j) (ordinal.py),
    binary ~ Bernoulli(logit = tau_j + lambda_j f_id), count ~ Poisson(exp(tau_j + lambda_j f_id)),
    continuous (standardized) ~ N(tau_j + lambda_j f_id, sigma_j),  lambda_j > 0
    outcome: the hierarchical logit with capinno_i = eta_i
    (correlated: f_i ~ N(0, R), R ~ LKJ(eta) through its Cholesky factor; capinno_i = mean_d f_id)
    (one dimension: f_i = capinno_i ~ N(0, 1), no second-order split)
measurement_only: the measurement part alone (a CFA or an IRT model; only an id and the items needed).
    With every item continuous and none missing, the factors are integrated out:
    y_i ~ N(tau, Lambda Phi Lambda' + diag(sigma^2)), Phi the factors' correlation by structure.
    With one dimension of binary items and none missing (the 2PL), the ability is integrated out by quadrature:
    P(y_i) = int prod_j Bernoulli(y_ij | logit^-1(tau_j + lambda_j t)) N(t | 0, 1) dt.
Missing item responses ([missing] policy = "model") are left out of the likelihood: a block with any is
observed one entry per given response.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt

from .data import Design, ModelData
from .errors import SpecError
from .ordinal import ordered_logit_logp, ordered_logit_random
from .spec import Prior, Spec
from .survey import SurveyData

DISTRIBUTION_CLASSES = {"Normal": pm.Normal, "HalfNormal": pm.HalfNormal, "StudentT": pm.StudentT,
                        "Exponential": pm.Exponential, "Gamma": pm.Gamma}
DEFAULT_MUNICIPALITY_SD = Prior("HalfNormal", (("sigma", 0.5),))


def _observed(name: str, values: np.ndarray, dims: tuple[str, ...]):
    """Observed values as a named data container (``<name>_observed``), so that simulation-based
    calibration can swap in simulated data without rebuilding or recompiling the model."""
    return pm.Data(f"{name}_observed", values, dims=dims)


def draw_prior(name: str, prior: Prior, **kwargs):
    return DISTRIBUTION_CLASSES[prior.dist](name, **prior.kwargs(), **kwargs)


def item_prior(spec: Spec, name: str, needed_by: str) -> Prior:
    """A prior the structure or the items need (registry.ITEM_PRIORS), refused by key when the spec lacks it."""
    if name not in spec.priors:
        raise SpecError(f"spec {spec.source}: [priors] needs '{name}' for {needed_by}")
    return spec.priors[name]


def design_columns(spec: Spec, frame: pd.DataFrame, design: Design, *, exclude: tuple[str, ...] = (),
                   latent=None) -> tuple[list[str], list]:
    """Columns of the outcome's design (names and values) from the spec's predictors and interactions.

    ``latent`` replaces the observed band code of ``spec.banded`` (CAPINNO) by a latent tensor. A linear predictor
    enters as its value (a categorical covariate as its code 0, 1, ...); a categorical one as dummies
    ``name[label]`` for every declared level but the reference; interactions multiply their columns.
    """
    names, columns, by_predictor = [], [], {}
    for pred in spec.predictors:
        if pred.name in exclude:
            continue
        if pred.name == spec.banded and latent is not None:
            if pred.coding != "linear":
                raise ValueError(f"a latent index enters linearly; set coding = 'linear' for {pred.name}")
            cols = [(pred.name, latent)]
        elif pred.coding == "linear":
            cols = [(pred.name, frame[pred.name].to_numpy(dtype=float))]
        else:
            codes, cov = frame[pred.name].to_numpy(), design.covariate(pred.name)
            cols = [(f"{pred.name}[{label}]", (codes == code).astype(float)) for code, label in enumerate(cov.labels)
                    if code != cov.reference]
        by_predictor[pred.name] = cols
        for name, col in cols:
            names.append(name)
            columns.append(col)
    for inter in spec.interactions:
        if any(name in exclude for name in inter):
            continue
        combos = [[]]
        for name in inter:
            combos = [c + [col] for c in combos for col in by_predictor[name]]
        for combo in combos:
            names.append(":".join(n for n, _ in combo))
            value = combo[0][1]
            for _, col in combo[1:]:
                value = value * col
            columns.append(value)
    return names, columns


def _stack(columns: list):
    """The design matrix (firm x term). Its observed columns are one data container (``design``), not constants,
    so a compiled model can take another data set of the same shape (the reconstruction ensemble); a latent
    column is stacked in as the tensor it is."""
    observed = [c for c in columns if isinstance(c, np.ndarray)]
    if not observed:
        return pt.stack(columns, axis=1)
    design = pm.Data("design", np.column_stack(observed).astype(float))
    if len(observed) == len(columns):
        return design
    j = iter(range(len(observed)))
    return pt.stack([design[:, next(j)] if isinstance(c, np.ndarray) else c for c in columns], axis=1)


def _logit_outcome(spec: Spec, data: ModelData, model: pm.Model, *, hierarchical: bool, latent=None) -> None:
    """Add the outcome part, flat or hierarchical (sector-varying), to ``model``."""
    firms = data.firms
    exclude = (spec.group,) if hierarchical else ()
    names, columns = design_columns(spec, firms, data.design, exclude=exclude, latent=latent)
    model.add_coord("term", names)
    x = _stack(columns)
    if not hierarchical:
        intercept = draw_prior("intercept", spec.priors["intercept"])
        slope = draw_prior("slope", spec.priors["slope"], dims="term")
        eta = intercept + pt.dot(x, slope)
    else:
        groups = np.sort(firms[spec.group].unique())
        g = pm.Data("group_index", np.searchsorted(groups, firms[spec.group].to_numpy()), dims="firm")
        model.add_coord("group", [f"{spec.group}={v}" for v in groups])
        varying = [n for n in names if n in spec.varying]
        model.add_coord("varying", varying)
        group_sd = draw_prior("group_sd", spec.priors["group_sd"], dims="varying") if varying else None
        intercept_sd = draw_prior("intercept_sd", spec.priors["group_sd"])
        # varying -> term: a product with a 0/1 matrix, which vectorises over draws where an indexed assignment does not
        embed = np.eye(len(names))[:, [names.index(v) for v in varying]].T  # varying x term
        sd = pt.dot(group_sd, embed) if varying else pt.zeros(len(names))
        centre_intercept, centre_slope, zero_sum = _group_means(spec, model, len(groups), intercept_sd, sd, embed)
        z_intercept = _deviations("z_intercept", "group", zero_sum=zero_sum)
        group_intercept = pm.Deterministic("group_intercept", centre_intercept + intercept_sd * z_intercept,
                                           dims="group")
        slopes = pt.ones((len(groups), 1)) * centre_slope[None, :]
        if varying:
            z_slope = _deviations("z_slope", "group", "varying", zero_sum=zero_sum)
            slopes = slopes + pt.dot(group_sd[None, :] * z_slope, embed)
        group_slope = pm.Deterministic("group_slope", slopes, dims=("group", "term"))
        eta = group_intercept[g] + (x * group_slope[g]).sum(axis=1)
        if spec.municipality and "municipality" in firms.columns:
            munis = sorted(firms["municipality"].unique())
            model.add_coord("municipality", munis)
            m = pm.Data("municipality_index", np.searchsorted(munis, firms["municipality"].to_numpy()), dims="firm")
            prior = spec.priors.get("municipality_sd", DEFAULT_MUNICIPALITY_SD)
            muni_sd = draw_prior("municipality_sd", prior)
            z_muni = _deviations("z_municipality", "municipality", zero_sum=spec.deviations == "zero_sum")
            eta = eta + (muni_sd * z_muni)[m]
    outcome = data.design.outcome
    pm.Bernoulli(outcome, logit_p=eta, dims="firm", observed=_observed(outcome, firms[outcome].to_numpy(), ("firm",)))


def _deviations(name: str, group: str, *per: str, zero_sum: bool):
    """Standard-normal deviations of each group (x ``per``), as group x per; ``zero_sum``: their part that sums to
    zero over the groups (PyMC's ZeroSumNormal, stored per x group), the mean of the groups left to the caller."""
    if not zero_sum:
        return pm.Normal(name, 0, 1, dims=(group, *per))
    return pm.ZeroSumNormal(name, 1, dims=(*per, group)).T


def _group_means(spec: Spec, model: pm.Model, n_groups: int, intercept_sd, sd, embed: np.ndarray):
    """``intercept`` and ``slope`` (term), and the observed groups' mean intercept and slopes the group values are
    built around: (intercept centre, slope centre, whether the deviations around them sum to zero). ``sd``: each
    term's group standard deviation (0 where it does not vary); ``embed``: varying x term, 0/1.

    ``zero_sum``: the centres are ``intercept`` and ``slope`` themselves (the observed groups' average).
    ``population`` (the default): ``intercept`` and ``slope`` are a population's mean mu, around which the groups'
    values deviate by sd z_g, z_g ~ N(0, 1). With few groups the data pin down the observed groups' mean
    m = mu + sd zbar, not mu and zbar apart: sampled as (mu, z) that ridge diverged at N = 1,001. So m is
    sampled, with the deviations' zero-sum part and zbar given m. For a Normal(mu0, tau) prior on mu this is
    the same model, exactly: m ~ N(mu0, sqrt(v)), v = tau^2 + sd^2 / G, and
    zbar | m ~ N(sd (m - mu0) / (G v), tau / sqrt(G v)); mu = m - sd zbar is recorded. Any other prior family
    keeps the direct form. ``model.priors_of_derived`` names the spec's prior of mu, which power-scaling scales.
    """
    priors = spec.priors["intercept"], spec.priors["slope"]
    if spec.deviations == "zero_sum" or any(p.dist != "Normal" for p in priors):
        intercept = draw_prior("intercept", priors[0])
        return intercept, draw_prior("slope", priors[1], dims="term"), spec.deviations == "zero_sum"
    model.priors_of_derived = {}
    centres = []
    for name, prior, spread, dims in (("intercept", priors[0], intercept_sd, None), ("slope", priors[1], sd, "term")):
        mu0, tau = prior.kwargs()["mu"], prior.kwargs()["sigma"]
        v = tau**2 + spread**2 / n_groups
        # mu0 shaped as v: PyTensor's vectorize (the predictive draws) reads the new batch dims off the first parameter
        centre = pm.Normal(f"mean_group_{name}", pt.full_like(v, mu0), pt.sqrt(v), dims=dims)
        if dims is None or len(embed):
            u = pm.Normal(f"z_{name}_mean", 0, 1, dims=None if dims is None else "varying")
            if dims is not None:  # terms that do not vary: zbar plays no part (sd = 0)
                u = pt.dot(u, embed)
            zbar = spread * (centre - mu0) / (n_groups * v) + tau / pt.sqrt(n_groups * v) * u
            pm.Deterministic(name, centre - spread * zbar, dims=dims)
        else:
            pm.Deterministic(name, centre, dims=dims)
        model.priors_of_derived[name] = (f"mean_group_{name}", mu0, tau)
        centres.append(centre)
    return *centres, True


def lkj_cholesky(name: str, k: int, eta: float, dims: tuple[str, str]):
    """Cholesky factor of a K x K correlation matrix with an LKJ(eta) prior, built from canonical partial
    correlations: no standard deviations, no Potential, and a generative prior (predictive draws work).

    In the C-vine of Lewandowski, Kurowicka and Joe (2009, section 2.4), the partial correlation of
    variables i and j given variables 0..j-1 is, under LKJ(eta), independently 2 Beta(b_j, b_j) - 1 with
    b_j = eta + (K - 2 - j) / 2 (0-based j); row i of the Cholesky factor is
    L_ij = w_ij sqrt(1 - sum_{m<j} L_im^2), L_ii = sqrt(1 - sum_{m<i} L_im^2). The correlation matrix
    L L' is stored as ``name`` (dims ``dims``).
    """
    pairs = [(i, j) for i in range(1, k) for j in range(i)]
    shape = np.array([eta + (k - 2 - j) / 2 for _, j in pairs])
    cpc = 2 * pm.Beta(f"{name}_partial", alpha=shape, beta=shape, shape=len(pairs)) - 1
    rows = [[pt.as_tensor_variable(1.0)] + [pt.as_tensor_variable(0.0)] * (k - 1)]
    for i in range(1, k):
        row, remaining = [], pt.as_tensor_variable(1.0)
        for j in range(i):
            w = cpc[pairs.index((i, j))]
            row.append(w * pt.sqrt(remaining))
            remaining = remaining * (1 - w**2)
        rows.append(row + [pt.sqrt(remaining)] + [pt.as_tensor_variable(0.0)] * (k - 1 - i))
    chol = pt.stack([pt.stack(r) for r in rows])
    pm.Deterministic(name, pt.dot(chol, chol.T), dims=dims)
    return chol


def _check_second_order(spec: Spec, dims: list[str]) -> None:
    if len(dims) < 3:
        raise SpecError(f"spec {spec.source}: [measurement] structure = 'second_order' needs at least 3 "
                        f"dimensions; the codebook has {len(dims)} ({', '.join(dims)}), with which the "
                        "second-order loadings are not identified: use structure = 'correlated'")


def _factors(spec: Spec, dims: list[str], model: pm.Model):
    """The firm x dimension factors (unit variance each) and the per-firm CAPINNO factor, by structure.

    Identification: every factor has variance 1 and every loading is positive (its prior is on the
    positive half-line), so neither scale nor sign can trade off against the loadings.
    - one dimension: a single factor, CAPINNO itself (no second-order split, whatever ``structure`` says);
    - ``second_order`` (three or more dimensions): f_d = (gamma_d eta + zeta_d) / sqrt(1 + gamma_d^2);
    - ``correlated``: f = z L', L the Cholesky factor of an LKJ correlation matrix (``factor_corr``);
      CAPINNO is the mean of the dimension factors.
    """
    structure = spec.factor_structure(len(dims))
    if structure == "single":
        capinno = pm.Normal("capinno_factor", 0, 1, dims="firm")
        return capinno[:, None], capinno
    if structure == "second_order":
        _check_second_order(spec, dims)
        capinno = pm.Normal("capinno_factor", 0, 1, dims="firm")
        gamma = draw_prior("second_order_loading", item_prior(spec, "second_order_loading", "the second-order structure"),
                           dims="dimension")
        zeta = pm.Normal("zeta", 0, 1, dims=("firm", "dimension"))
        # Unit-variance dimension factors: gamma / sqrt(1 + gamma^2) is the standardized loading.
        return (capinno[:, None] * gamma[None, :] + zeta) / pt.sqrt(1 + gamma**2)[None, :], capinno
    eta = spec.priors.get("lkj_eta", Prior("LKJ", (("eta", 2.0),))).kwargs()["eta"]
    model.add_coord("dimension_with", dims)
    chol = lkj_cholesky("factor_corr", len(dims), eta, ("dimension", "dimension_with"))
    z = pm.Normal("z_factor", 0, 1, dims=("firm", "dimension"))
    factors = pt.dot(z, chol.T)
    return factors, pm.Deterministic("capinno_factor", factors.mean(axis=1), dims="firm")


def _factor_correlation(spec: Spec, dims: list[str], model: pm.Model):
    """The dimension factors' correlation matrix, D x D, by structure (as ``_factors`` builds the factors)."""
    structure = spec.factor_structure(len(dims))
    if structure == "single":
        return pt.ones((1, 1))
    if structure == "second_order":
        _check_second_order(spec, dims)
        gamma = draw_prior("second_order_loading", item_prior(spec, "second_order_loading", "the second-order structure"),
                           dims="dimension")
        g = gamma / pt.sqrt(1 + gamma**2)
        return pt.outer(g, g) + pt.diag(1 - g**2)
    eta = spec.priors.get("lkj_eta", Prior("LKJ", (("eta", 2.0),))).kwargs()["eta"]
    model.add_coord("dimension_with", dims)
    chol = lkj_cholesky("factor_corr", len(dims), eta, ("dimension", "dimension_with"))
    return pt.dot(chol, chol.T)


def _integrated_measurement(spec: Spec, survey: SurveyData, model: pm.Model, items, dims, mask) -> None:
    """All items continuous and complete, no outcome: the factors integrated out. Each respondent's
    standardized items are N(tau, Lambda Phi Lambda' + diag(sigma^2)), the same model as with sampled
    factors, without a latent score per respondent (which mixes slowly when residual SDs are small)."""
    model.add_coord("continuous_item", [i.name for i in items])
    phi = _factor_correlation(spec, dims, model)
    loading = draw_prior("loading", spec.priors["loading"], dims="item")
    tau = draw_prior("intercept_continuous", item_prior(spec, "item_intercept", "continuous items"), dims="continuous_item")
    sigma = draw_prior("residual_sd", item_prior(spec, "residual_sd", "continuous items"), dims="continuous_item")
    values = survey.items[[i.name for i in items]].to_numpy(dtype=float)
    z = (values - values.mean(axis=0)) / values.std(axis=0)
    lam = mask.T * loading[:, None]  # item x dimension
    cov = pt.dot(pt.dot(lam, phi), lam.T) + pt.diag(sigma**2)
    dims_ = ("firm", "continuous_item")
    pm.MvNormal("items_continuous", mu=tau, cov=cov, observed=_observed("items_continuous", z, dims_), dims=dims_)


# Gauss-Hermite nodes for one factor: a respondent's log-likelihood within 1e-12 of the integral for slopes up to
# 1, 1e-6 at 3, 2e-4 at 5 (a very steep item; tests/test_models.py checks up to 3)
QUADRATURE_NODES = 61


def _quadrature_measurement(spec: Spec, survey: SurveyData, model: pm.Model, items) -> None:
    """One factor, binary items, all answered, no outcome (the 2PL of IRT): the ability integrated out by
    Gauss-Hermite quadrature, the marginal likelihood ltm maximises. The same model as with a sampled ability
    per respondent, whose posterior is little more than its N(0, 1) prior with a handful of items: sampled, a
    thousand of them tied to the slopes mixed slowly in the slopes' upper tail (LSAT6 missed the gate under
    some seeds). Replicated responses are a new respondent's (ability drawn from N(0, 1))."""
    names = [i.name for i in items]
    model.add_coord("binary_item", names)
    loading = draw_prior("loading", spec.priors["loading"], dims="item")
    prior = item_prior(spec, "item_intercept", f"binary items ({_first_names(items, range(len(items)))})")
    tau = draw_prior("intercept_binary", prior, dims="binary_item")
    values = survey.items[names].to_numpy(dtype=np.int64)
    shape = values.shape  # the item parameters per respondent, so that predictive draws keep a respondent axis
    dims = ("firm", "binary_item")
    pm.CustomDist("items_binary", pt.broadcast_to(tau, shape), pt.broadcast_to(loading, shape), logp=_marginal_2pl_logp,
                  random=_marginal_2pl_random, signature="(i),(i)->(i)", dtype="int64",
                  observed=_observed("items_binary", values, dims), dims=dims)


def _marginal_2pl_logp(value, tau, loading):
    """Each respondent's log-probability of their answers, the ability integrated out over N(0, 1); ``tau`` and
    ``loading`` are the item parameters broadcast per respondent (row 0 is every row)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(QUADRATURE_NODES)
    eta = tau[0][None, :] + loading[0][None, :] * nodes[:, None]  # node x item
    log_lik = pt.dot(value, -pt.softplus(-eta).T) + pt.dot(1 - value, -pt.softplus(eta).T)  # respondent x node
    return pt.logsumexp(log_lik + np.log(weights / weights.sum()), axis=-1)


def _marginal_2pl_random(tau, loading, rng=None, size=None):
    """Answers of new respondents: an ability from N(0, 1) each, then each item right with its logistic probability."""
    shape = np.broadcast_shapes(np.shape(tau), np.shape(loading))
    if size is not None:
        shape = tuple(size) + shape[-1:]
    ability = rng.normal(size=shape[:-1])
    return rng.binomial(1, 1 / (1 + np.exp(-(tau + loading * ability[..., None])))).astype(np.int64)


def integrates_factors(spec: Spec, survey: SurveyData) -> bool:
    """Whether the measurement model integrates its factors out (no outcome, no missing response): every item
    continuous (in closed form), or one dimension of binary items (by quadrature)."""
    items = [i for i in survey.codebook.items if i.in_capinno]
    complete = not survey.items[[i.name for i in items]].isna().to_numpy().any()
    return not spec.entry.outcome and complete and (all(i.type == "continuous" for i in items) or _binary_single(items))


def _binary_single(items) -> bool:
    return len({i.dimension for i in items}) == 1 and all(i.type == "binary" for i in items)


def _measurement(spec: Spec, survey: SurveyData, model: pm.Model):
    """Add the item-level measurement model; returns the per-firm CAPINNO factor (None when integrated out)."""
    items = [i for i in survey.codebook.items if i.in_capinno]
    dims = list(dict.fromkeys(i.dimension for i in items))
    model.add_coord("dimension", dims)
    model.add_coord("item", [i.name for i in items])
    mask = np.array([[i.dimension == d for i in items] for d in dims], dtype=float)  # dimension x item
    if integrates_factors(spec, survey):
        if _binary_single(items):
            _quadrature_measurement(spec, survey, model, items)
        else:
            _integrated_measurement(spec, survey, model, items, dims, mask)
        return None
    factors, capinno = _factors(spec, dims, model)
    pm.Deterministic("factor", factors, dims=("firm", "dimension"))
    loading = draw_prior("loading", spec.priors["loading"], dims="item")
    weights = mask * loading[None, :]  # dimension x item: each item loads on its own dimension only

    def predictor(idx):  # firm x (items idx): one product per item kind, no firm-level indexing
        # rows of the transpose: no slice in the graph, which PyTensor cannot vectorise over draws
        return pt.dot(factors, weights.T[idx].T)

    values = survey.items[[i.name for i in items]].to_numpy(dtype=float)
    types = np.array([i.type for i in items])
    for kind in ("binary", "count", "continuous"):
        idx = np.flatnonzero(types == kind)
        if not len(idx):
            continue
        model.add_coord(f"{kind}_item", [items[j].name for j in idx])
        names = _first_names(items, idx)
        tau = draw_prior(f"intercept_{kind}", item_prior(spec, "item_intercept", f"{kind} items ({names})"),
                         dims=f"{kind}_item")
        observed = values[:, idx]
        if kind == "continuous":
            observed = (observed - np.nanmean(observed, axis=0)) / np.nanstd(observed, axis=0)
            sigma = draw_prior("residual_sd", item_prior(spec, "residual_sd", f"continuous items ({names})"),
                               dims=f"{kind}_item")
        obs = _responses(model, f"items_{kind}", observed, integer=kind != "continuous")
        mu = obs.at(tau[None, :] + predictor(idx))
        if kind == "binary":
            pm.Bernoulli(obs.name, logit_p=mu, observed=obs.values, dims=obs.dims)
        elif kind == "count":
            pm.Poisson(obs.name, mu=pt.exp(mu), observed=obs.values, dims=obs.dims)
        else:
            pm.Normal(obs.name, mu=mu, sigma=obs.per_item(sigma), observed=obs.values, dims=obs.dims)
    ordinal = np.flatnonzero(types == "ordinal")
    for levels in sorted({items[j].levels for j in ordinal}):
        idx = np.array([j for j in ordinal if items[j].levels == levels])
        k = levels[1] - levels[0]
        label = f"ordinal_{levels[0]}_{levels[1]}"
        model.add_coord(f"{label}_item", [items[j].name for j in idx])
        model.add_coord(f"{label}_cut", list(range(1, k + 1)))
        names = _first_names(items, idx)
        cut_prior = item_prior(spec, "cutpoint", f"ordinal items ({names})").kwargs()
        cutpoints = pm.Normal(f"cutpoints_{label}", mu=cut_prior.get("mu", 0.0), sigma=cut_prior.get("sigma", 2.0),
                              dims=(f"{label}_item", f"{label}_cut"),
                              transform=pm.distributions.transforms.ordered,
                              initval=np.tile(np.linspace(-2, 2, k), (len(idx), 1)))
        obs = _responses(model, f"items_{label}", values[:, idx] - levels[0], integer=True)
        if obs.complete:
            pm.CustomDist(obs.name, predictor(idx), cutpoints, logp=ordered_logit_logp, random=ordered_logit_random,
                          signature="(i),(i,k)->(i)", dtype="int64", observed=obs.values, dims=obs.dims)
        else:  # one entry per given response, each with its item's row of cutpoints
            pm.CustomDist(obs.name, obs.at(predictor(idx)), cutpoints, obs.item, logp=ordered_logit_logp,
                          random=ordered_logit_random, signature="(),(i,k),()->()", dtype="int64",
                          observed=obs.values, dims=obs.dims)
    return capinno


def _first_names(items, idx) -> str:
    """The first three of these items' names, for a message that says which items need something."""
    return ", ".join(items[j].name for j in idx[:3]) + (", ..." if len(idx) > 3 else "")


@dataclass(frozen=True)
class _Responses:
    """One block of item responses as the likelihood sees them: firm x item when complete; otherwise one
    entry per given response, with its firm and item positions (kept as data: ``<name>_firm``, ``<name>_item``)."""

    name: str
    values: object  # the observed-data container
    dims: tuple[str, ...]
    firm: object = None
    item: object = None

    @property
    def complete(self) -> bool:
        return self.firm is None

    def at(self, tensor):
        """A firm x item tensor at the given responses (one flat index: cheaper to differentiate than two)."""
        return tensor if self.complete else tensor.ravel()[self.firm * tensor.shape[1] + self.item]

    def per_item(self, vector):
        """A per-item vector broadcast to the given responses."""
        return vector[None, :] if self.complete else vector[self.item]


def _responses(model: pm.Model, name: str, observed: np.ndarray, *, integer: bool) -> _Responses:
    """The observed responses of a block; missing ones (NaN) are left out of the likelihood, which is exact for
    a latent-variable model when answers are missing at random."""
    cast = (lambda v: v.astype(int)) if integer else (lambda v: v)
    if not np.isnan(observed).any():
        dims = ("firm", name.replace("items_", "") + "_item")
        return _Responses(name, _observed(name, cast(observed), dims), dims)
    firm, item = np.nonzero(~np.isnan(observed))
    dim = f"{name}_response"
    model.add_coord(dim, np.arange(len(firm)))
    return _Responses(name, _observed(name, cast(observed[firm, item]), (dim,)), (dim,),
                      pm.Data(f"{name}_firm", firm, dims=dim), pm.Data(f"{name}_item", item, dims=dim))


def build_paper_logit(spec: Spec, data: ModelData, model: pm.Model, generative: bool) -> None:
    _logit_outcome(spec, data, model, hierarchical=False)


def build_hierarchical_logit(spec: Spec, data: ModelData, model: pm.Model, generative: bool) -> None:
    _logit_outcome(spec, data, model, hierarchical=True)


def build_coarsened_latent(spec: Spec, data: ModelData, model: pm.Model, generative: bool) -> None:
    name = spec.banded
    bands = len(data.design.covariate(name).labels)
    alpha = draw_prior("index_alpha", spec.priors["index_alpha"])
    beta = draw_prior("index_beta", spec.priors["index_beta"])
    if generative:  # the process the bands come from: u ~ Beta, band = the 1/bands-wide interval u falls in
        index = pm.Beta(f"{name}_index", alpha, beta, dims="firm")
        pm.Deterministic(f"{name}_band", pt.minimum(pt.floor(bands * index), bands - 1), dims="firm")
    else:  # u observed only as its band: interval-censored, with the Beta density as a Potential
        band = _observed(f"{name}_band", data.firms[name].to_numpy(), ("firm",))
        index = pm.Uniform(f"{name}_index", lower=band / bands, upper=(band + 1) / bands, dims="firm")
        pm.Potential("index_density", pm.logp(pm.Beta.dist(alpha, beta), index).sum())
    latent = pm.Deterministic(f"{name}_latent", bands * index - 0.5, dims="firm")
    _logit_outcome(spec, data, model, hierarchical=False, latent=latent)


def build_latent_factor(spec: Spec, data: ModelData, model: pm.Model, generative: bool) -> None:
    capinno = _measurement(spec, data.survey, model)
    _logit_outcome(spec, data, model, hierarchical=True, latent=capinno)


def build_measurement_only(spec: Spec, data: ModelData, model: pm.Model, generative: bool) -> None:
    _measurement(spec, data.survey, model)


def build_model(spec: Spec, data: ModelData, *, generative: bool = False) -> pm.Model:
    """Turn a spec and validated data into a ``pm.Model`` (no sampling), with the registry entry's builder.

    ``generative``: the model as a simulator of its data (only coarsened_latent differs: its latent
    index is drawn from the Beta and the band derived from it), for simulation-based calibration.
    """
    entry = spec.entry
    if entry.item_level and data.survey is None:
        raise ValueError(f"{spec.model} needs item-level survey data")
    with pm.Model(coords={"firm": data.firms["firm_id"].astype(str).tolist()}) as model:
        entry.build(spec, data, model, generative)
    return model
