"""Sampling, predictive draws, the diagnostic gate and PSIS-LOO.

Everything here computes; nothing plots or prints. The sampler backend comes from the spec
(nutpie by default: chosen by measurement, see benchmarks/results.md).
"""

from __future__ import annotations

import logging
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm

from .compile_cache import compile_nutpie, without_initvals
from .data import OUTCOME
from .errors import check_interrupted
from .spec import Sampler, Spec

log = logging.getLogger(__name__)
GATE = {"r_hat_max": 1.01, "ess_min": 400, "divergences_max": 0}
FAILING_SHOWN = 20  # quantities a missed gate lists by name (run.json keeps the total)


def sample(model: pm.Model, sampler: Sampler, *, seed: int, progress: bool = True) -> az.InferenceData:
    """Draw from the posterior with the spec's backend; one seed drives everything.

    nutpie's compile time is kept in ``idata.attrs["compile_seconds"]`` (the other backends compile
    inside their sampling call)."""
    if sampler.backend == "nutpie":
        built = compile_nutpie(model)
        log.info("compiled in %.1f s%s; drawing %d chains x %d draws", built.seconds,
                 " (reused from the compile cache)" if built.reused else "", sampler.chains, sampler.draws)
        idata = _nutpie_draws(built.compiled, sampler, seed, progress)
        idata.attrs["compile_seconds"] = round(built.seconds, 2)
        idata.attrs["compile_cache_hit"] = int(built.reused)
    elif sampler.backend == "numpyro":
        from pymc.model.transform.optimization import freeze_dims_and_data

        # JAX needs every shape constant: freeze the model's dims and data.
        with without_initvals(model) as initvals:
            frozen = freeze_dims_and_data(model)
        with frozen:
            idata = pm.sample(draws=sampler.draws, tune=sampler.tune, chains=sampler.chains,
                              target_accept=sampler.target_accept, random_seed=seed, progressbar=progress,
                              nuts_sampler="numpyro", initvals=initvals or None)
    else:
        with model:
            idata = pm.sample(draws=sampler.draws, tune=sampler.tune, chains=sampler.chains,
                              target_accept=sampler.target_accept, random_seed=seed, progressbar=progress,
                              cores=min(sampler.chains, 2))
    return idata


class SeriesSampler:
    """Sample a series of models that differ only in their data (the reconstruction ensemble's members).

    With nutpie, the first model is compiled once with its data as inputs, not constants, and each next
    one's data are swapped in (``with_data``): about a second per member instead of a compilation. A model
    whose data differ in shape, coordinates or any constant of its log-density is compiled anew, so a
    swap can never leave a member's data behind. Other backends sample each model as ``sample`` does.
    """

    def __init__(self, sampler: Sampler):
        self.sampler, self._compiled, self._signature = sampler, None, None
        self.compiled = 0  # how many compilations the series needed
        self.reused = 0  # how many of them the compile cache supplied

    def __call__(self, model: pm.Model, *, seed: int) -> az.InferenceData:
        s = self.sampler
        if s.backend != "nutpie":
            return sample(model, s, seed=seed, progress=False)
        import nutpie

        from .compile_cache import nutpie_compile_cache

        data = {v.name: v.get_value() for v in model.data_vars}
        signature = _signature(model, data)
        if signature != self._signature:
            with without_initvals(model) as initvals, nutpie_compile_cache() as cache:
                self._compiled = nutpie.compile_pymc_model(model, freeze_model=False, initial_points=initvals,
                                                           cache=cache.enabled)
            self._signature, compiled = signature, self._compiled
            self.compiled += 1
            self.reused += getattr(compiled.compiled_logp_func, "_cache_hits", 0) > 0
        else:
            compiled = self._compiled.with_data(**data)
        return _nutpie_draws(compiled, s, seed, False)


def _nutpie_draws(compiled, sampler: Sampler, seed: int, progress: bool) -> az.InferenceData:
    import nutpie

    idata = nutpie.sample(compiled, chains=sampler.chains, draws=sampler.draws, tune=sampler.tune, seed=seed,
                          target_accept=sampler.target_accept, progress_bar=progress, save_warmup=False,
                          low_rank_modified_mass_matrix=sampler.mass_matrix == "low_rank")
    check_interrupted()  # nutpie returns early, with the draws so far, when interrupted
    return idata


def _signature(model: pm.Model, data: dict) -> str:
    """What a compiled model fixes: the data's shapes and types, the coordinates, and every constant of the
    model's graph (a value built from the data as a constant would not be swapped by ``with_data``). The
    log-density adds no constant of its own that depends on the data, so the generative graph (random
    variables, observed values, potentials) is read, not the log-density built for it (a tenth of a second)."""
    import hashlib

    from pytensor.graph.basic import Constant
    from pytensor.graph.traversal import ancestors

    digest = hashlib.sha256()
    for name in sorted(data):
        digest.update(f"{name}{data[name].shape}{data[name].dtype}".encode())
    digest.update(repr(sorted((k, tuple(v) if v is not None else None) for k, v in model.coords.items())).encode())
    for node in ancestors([*model.basic_RVs, *model.rvs_to_values.values(), *model.potentials]):
        if isinstance(node, Constant):
            value = np.asarray(node.data)
            digest.update(value.tobytes() if value.dtype != object else repr(value).encode())
    return digest.hexdigest()


def add_predictive(idata: az.InferenceData, model: pm.Model, spec: Spec, *, seed: int, prior_draws: int = 500,
                   outcome: str = OUTCOME, prior: az.InferenceData | None = None) -> None:
    """Prior (and prior predictive), posterior predictive, the outcome's pointwise log-likelihood and the
    log-prior of every draw (outcome models). ``prior``: ``draw_prior(model, seed=seed)`` if already drawn."""
    idata.extend(prior if prior is not None else draw_prior(model, seed=seed, draws=prior_draws))
    with _predictive_context(model):
        idata.extend(posterior_predictive(model, idata, seed + 1))
        if spec.entry.outcome:
            add_log_densities(idata, model, outcome)


def draw_prior(model: pm.Model, *, seed: int, draws: int = 500) -> az.InferenceData:
    """The prior and prior predictive groups of a run (they need no posterior: a fit draws them while it compiles)."""
    with _predictive_context(model):
        return prior_predictive(model, draws, seed)


@contextmanager
def _predictive_context(model: pm.Model):
    # PyMC's log-likelihood computation cannot convert a model carrying custom initial values (the
    # ordered cutpoints' starting points, which only the sampler needs).
    with without_initvals(model), model, warnings.catch_warnings():
        # coarsened_latent's Beta density on the latent index is a Potential, which predictive sampling
        # ignores. Table 5 does not use those draws (its CAPINNO levels are the band centres).
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
        yield


PREDICTIVE_CHUNK = 500  # posterior draws per vectorised call: bounds the memory of one call on a large survey


def _vectorised(outputs: list, replace: dict, inputs: list, seed: int):
    """``outputs`` as one compiled function drawing for many parameter sets per call: ``replace`` swaps
    variables for versions with a leading draw dimension (``inputs``: those the function takes). None
    where the graph has a step that cannot be vectorised.

    PyMC draws predictions with one call per draw, whose overhead was most of a run's predictive time.
    Each random variable keeps its own generator, seeded as PyMC seeds it, and a vectorised draw consumes
    it in the same order: the draws are PyMC's for the same seed, to floating-point rounding."""
    import pytensor
    from pymc.pytensorf import compile as compile_fn
    from pytensor.graph.replace import vectorize_graph

    try:
        from pymc.sampling.forward import _get_seeds_per_chain  # PyMC's own seed derivation (private: may move)

        vectorised = vectorize_graph(outputs, replace=replace)
    except (ImportError, NotImplementedError) as exc:
        log.debug("predictive draws one at a time: %s", exc)
        return None
    (seed,) = _get_seeds_per_chain(seed, 1)
    # NumPy per operation and no C compilation: each operation runs once over all draws of a call.
    mode = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")
    return compile_fn(inputs, vectorised, random_seed=seed, mode=mode, on_unused_input="ignore",
                      allow_input_downcast=True, accept_inplace=True)


def prior_predictive(model: pm.Model, draws: int, seed: int) -> az.InferenceData:
    """``pm.sample_prior_predictive`` (every random and derived variable), all draws in one call."""
    from pymc.distributions.shape_utils import change_dist_size
    from pytensor.graph.traversal import ancestors

    names = sorted({v.name for v in model.basic_RVs + model.deterministics})
    rvs = set(model.basic_RVs)
    roots = [rv for rv in model.basic_RVs if not set(ancestors(rv.owner.inputs)) & rvs]
    replace = {rv: change_dist_size(rv, new_size=(draws,), expand=True) for rv in roots}
    fn = _vectorised([model[n] for n in names], replace, [], seed)
    if fn is None:
        return pm.sample_prior_predictive(draws=draws, random_seed=seed)
    return pm.to_inference_data(prior=dict(zip(names, fn())), model=model)


def posterior_predictive(model: pm.Model, idata: az.InferenceData, seed: int) -> az.InferenceData:
    """``pm.sample_posterior_predictive`` of the observed variables, PREDICTIVE_CHUNK draws per call, conditioned
    on every posterior variable (PyMC's call redraws from the prior any variable it takes for data-dependent when
    the sampler's output lacks the constant data: coarsened_latent's latent index). The draws are inputs, not
    constants as in PyMC's ``vectorize_over_posterior``, so one compiled function serves every chunk."""
    observed = [rv.name for rv in model.observed_RVs]
    free = list(model.free_RVs)
    batched = {rv: rv.type.clone(shape=(None, *rv.type.shape))(name=rv.name) for rv in free}
    fn = _vectorised([model[n] for n in observed], batched, list(batched.values()), seed)
    if fn is None:
        return pm.sample_posterior_predictive(idata, var_names=observed, random_seed=seed, progressbar=False)
    values = _over_draws(fn, idata.posterior, [rv.name for rv in free], observed)
    return pm.to_inference_data(posterior_predictive=values, model=model)


def _over_draws(fn, posterior, inputs: list[str], outputs: list[str]) -> dict[str, np.ndarray]:
    """``fn`` of the posterior's ``inputs``, PREDICTIVE_CHUNK draws per call, as chain x draw arrays by name."""
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    flat = [posterior[n].to_numpy().reshape((chains * draws, *posterior[n].shape[2:])) for n in inputs]
    chunks = [fn(*[a[i:i + PREDICTIVE_CHUNK] for a in flat]) for i in range(0, chains * draws, PREDICTIVE_CHUNK)]
    return {n: np.concatenate(parts).reshape((chains, draws, *parts[0].shape[1:]))
            for n, parts in zip(outputs, zip(*chunks))}


def add_log_densities(idata: az.InferenceData, model: pm.Model, outcome: str) -> None:
    """The outcome's pointwise log-likelihood (``log_likelihood``, for PSIS-LOO) and the log-prior density of
    each prior the spec sets (``log_prior``, for power-scaling sensitivity: registry.scaled_prior) of every
    posterior draw: what ``pm.compute_log_likelihood`` and ``pm.compute_log_prior`` give, with one call per
    chunk of draws instead of one per draw."""
    from pymc.backends.arviz import coords_and_dims_for_inferencedata
    from pymc.model.transform.conditioning import remove_value_transforms
    from scipy.stats import norm

    from .registry import scaled_prior

    umodel = remove_value_transforms(model)  # the posterior holds the variables' values, not their transforms
    free = [rv.name for rv in umodel.free_RVs]
    # A derived quantity that carries the spec's prior (models._group_means) stands in the log-prior for the
    # variable it is sampled through: power-scaling then scales the priors the spec sets.
    derived = getattr(model, "priors_of_derived", {})
    stood_in = {through for through, _, _ in derived.values()}
    scaled = [n for n in free if scaled_prior(n, umodel.named_vars_to_dims.get(n, ())) and n not in stood_in]
    values = [umodel.rvs_to_values[rv] for rv in umodel.free_RVs]
    batched = {v: v.type.clone(shape=(None, *v.type.shape))(name=v.name) for v in values}
    densities = umodel.logp(vars=[umodel[n] for n in (outcome, *scaled)], sum=False)
    fn = _vectorised(densities, batched, list(batched.values()), seed=0)
    if fn is None:
        pm.compute_log_likelihood(idata, var_names=[outcome], model=model, progressbar=False)
        pm.compute_log_prior(idata, var_names=scaled, model=model, progressbar=False)
    else:
        coords, dims = coords_and_dims_for_inferencedata(umodel)
        drawn = _over_draws(fn, idata.posterior, free, [outcome, *scaled])
        for group, names in (("log_likelihood", [outcome]), ("log_prior", scaled)):
            dataset = az.dict_to_dataset({n: drawn[n] for n in names}, library=pm, coords=coords, dims=dims)
            idata.add_groups({group: dataset})
    posterior = idata.posterior
    idata.log_prior = idata.log_prior.assign({name: posterior[name].copy(data=norm.logpdf(posterior[name], mu, sigma))
                                              for name, (_, mu, sigma) in derived.items()})


SCORE_TAIL_SHARE = 0.95  # per-respondent scores: the share whose tail ESS must reach the threshold
GATE_POLICY = ("Every quantity a researcher reads (loadings, factor correlations, intercepts, cutpoints, "
               "coefficients, sector intercepts and slopes, variance parameters): R-hat <= 1.01 (as ArviZ's summary "
               "reports it, to two decimals: a value that rounds to 1.01 passes), bulk and tail ESS "
               ">= 400. Per-respondent latent scores (the overall latent factor and the dimension factors): every one R-hat "
               f"<= 1.01 and bulk ESS >= 400; tail ESS >= 400 for at least {SCORE_TAIL_SHARE:.0%} of them (with "
               "hundreds of scores a few fall short by chance while the sampler is healthy; the lowest is reported). "
               "No divergent transitions. Internal components that only build those quantities (non-centred "
               "standard normals z_*, second-order residuals zeta, the LKJ vine's partial correlations) and "
               "unconstrained transforms (e.g. loading_log__) are never checked.")


@dataclass(frozen=True)
class Diagnostics:
    passed: bool
    r_hat_max: float
    ess_bulk_min: float
    ess_tail_min: float
    divergences: int
    failing: list[str]  # quantities that missed a threshold (the first FAILING_SHOWN)
    advice: str
    checked: dict  # which variables the gate checked, as parameters or as per-respondent scores
    scores_note: str  # how the per-respondent scores fared on tail ESS (empty when all reached it)
    failing_total: int = 0  # how many missed in all

    def to_dict(self) -> dict:
        return {"passed": self.passed, "r_hat_max": self.r_hat_max, "ess_bulk_min": self.ess_bulk_min,
                "ess_tail_min": self.ess_tail_min, "divergences": self.divergences, "failing": self.failing,
                "failing_total": self.failing_total, "advice": self.advice, "thresholds": GATE,
                "checked": self.checked, "scores_note": self.scores_note, "policy": GATE_POLICY}


def parameter_names(model: pm.Model) -> list[str]:
    return [rv.name for rv in model.free_RVs]


def gate_variables(model: pm.Model) -> tuple[list[str], list[str]]:
    """What the gate checks, as (parameters, per-respondent latent scores: those with a ``firm`` dim): the free
    variables and the derived quantities a researcher reads, never internal components (see the registry)."""
    from .registry import DERIVED_PARAMETERS, INTERNAL_VARIABLES

    dims = model.named_vars_to_dims
    derived = [rv.name for rv in model.deterministics if rv.name in DERIVED_PARAMETERS]
    names = [name for name in parameter_names(model) + derived if name not in INTERNAL_VARIABLES]
    scores = [name for name in names if "firm" in dims.get(name, ())]
    return [name for name in names if name not in scores], scores


def _score_shortfall(summary: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per-respondent scores that break the policy: any R-hat or bulk ESS miss; tail ESS only beyond the share."""
    bad = summary[(summary["r_hat"] > GATE["r_hat_max"]) | (summary["ess_bulk"] < GATE["ess_min"])]
    short_tail = summary["ess_tail"] < GATE["ess_min"]
    note = ""
    if short_tail.any():
        note = (f"{int(short_tail.sum())} of {len(summary)} per-respondent scores have tail ESS under "
                f"{GATE['ess_min']} (lowest {summary['ess_tail'].min():.0f}); the policy allows "
                f"{1 - SCORE_TAIL_SHARE:.0%}. ")
        if short_tail.mean() > 1 - SCORE_TAIL_SHARE:
            bad = pd.concat([bad, summary[short_tail]])
    return bad[~bad.index.duplicated()], note


def _mirrored_entries(posterior, names: list[str]) -> list[str]:
    """Summary labels of the upper triangle of each symmetric matrix (a correlation matrix): the same draws as
    the lower triangle, so each correlation is judged and listed once."""
    labels = []
    for name in names:
        values = posterior[name]
        if values.ndim != 4 or values.shape[-1] != values.shape[-2]:
            continue
        if not np.array_equal(values.values, np.swapaxes(values.values, -1, -2)):
            continue
        rows, cols = (values.coords[dim].values for dim in values.dims[-2:])
        labels += [f"{name}[{rows[i]}, {cols[j]}]" for i in range(len(rows)) for j in range(i + 1, len(cols))]
    return labels


def diagnose(idata: az.InferenceData, names: list[str], scores: tuple[str, ...] = ()) -> Diagnostics:
    """The gate every run must pass (``GATE_POLICY``): ``names`` are parameters, ``scores`` per-respondent scores."""
    summary = az.summary(idata, var_names=list(names) + list(scores), kind="diagnostics")
    constant = summary["r_hat"].isna() & (summary["mcse_mean"] == 0)  # a correlation matrix's unit diagonal
    summary = summary[~(constant | summary.index.isin(_mirrored_entries(idata.posterior, names)))]
    is_score = summary.index.str.split("[").str[0].isin(list(scores))
    divergences = int(idata.sample_stats["diverging"].sum()) if "diverging" in idata.sample_stats else 0
    params = summary[~is_score]
    bad = params[(params["r_hat"] > GATE["r_hat_max"]) | (params["ess_bulk"] < GATE["ess_min"])
                 | (params["ess_tail"] < GATE["ess_min"])]
    bad_scores, note = _score_shortfall(summary[is_score]) if is_score.any() else (summary.iloc[:0], "")
    failing = [f"{idx} (R-hat {row.r_hat:.2f}, ESS bulk {row.ess_bulk:.0f}, tail {row.ess_tail:.0f})"
               for idx, row in pd.concat([bad, bad_scores]).iterrows()]
    passed = not failing and divergences <= GATE["divergences_max"]
    advice = ""
    if divergences:
        advice += (f"{divergences} divergent transitions: the posterior has regions the sampler cannot explore "
                   "reliably; raise target_accept in [sampler] (e.g. 0.95 or 0.99) or tighten the group_sd prior. ")
    if failing:
        advice += ("Some parameters have too few effective draws or chains that disagree: raise draws and tune "
                   "in [sampler] (or drop --quick), then rerun.")
    checked = {"parameters": list(names), "per_respondent_scores": list(scores)}
    tail = params["ess_tail"].min() if len(params) else summary["ess_tail"].min()
    return Diagnostics(passed, float(summary["r_hat"].max()), float(summary["ess_bulk"].min()), float(tail),
                       divergences, failing[:FAILING_SHOWN], advice.strip(), checked, note.strip(), len(failing))


def outcome_variable(idata: az.InferenceData) -> str:
    """The outcome's name in a run: the one variable whose pointwise log-likelihood the run keeps."""
    return next(iter(idata.log_likelihood.data_vars)) if "log_likelihood" in idata else OUTCOME


def compare_loo(runs: dict[str, az.InferenceData]) -> pd.DataFrame:
    """PSIS-LOO on the outcome's log-likelihood only (never the joint item + outcome likelihood).

    Refuses runs whose observed outcomes differ: LOO compares models of the same data.
    """
    outcome_only, reference = {}, None
    for name, idata in runs.items():
        if "log_likelihood" not in idata:
            raise ValueError(f"run {name} has no outcome log-likelihood (a measurement-only model?)")
        outcome = outcome_variable(idata)
        y = idata.observed_data[outcome].values
        if reference is None:
            reference = y
        elif y.shape != reference.shape or not np.array_equal(y, reference):
            raise ValueError(f"run {name} was fitted to different outcome data; LOO compares models of the same data")
        outcome_only[name] = az.InferenceData(posterior=idata.posterior, log_likelihood=idata.log_likelihood[[outcome]])
    with warnings.catch_warnings():  # high Pareto k is reported in the table, not as a warning
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
        warnings.filterwarnings("ignore", message="The inplace keyword", module="arviz")  # ArviZ on pandas >= 3.1
        table = az.compare(outcome_only, ic="loo")
        loos = {name: az.loo(d, pointwise=True) for name, d in outcome_only.items()}
    table["pareto_k_max"] = [float(loos[n].pareto_k.max()) for n in table.index]
    table["pareto_k_over_0_7"] = [int((loos[n].pareto_k > 0.7).sum()) for n in table.index]
    return table


def compare_groups(runs: dict[str, az.InferenceData]) -> pd.DataFrame:
    """PSIS-LOO for every run with an outcome, compared within groups of runs fitted to the same outcomes.

    Runs fitted to different outcome data are never ranked against each other: each group gets
    its own ranking, labelled by the runs' outcome-data hash.
    """
    import hashlib

    groups: dict[str, dict[str, az.InferenceData]] = {}
    for name, idata in runs.items():
        if "log_likelihood" not in idata:
            continue
        y = np.ascontiguousarray(idata.observed_data[outcome_variable(idata)].values,
                                 dtype=np.int64)  # the label ignores storage type
        groups.setdefault(hashlib.sha256(y.tobytes()).hexdigest()[:8], {})[name] = idata
    frames = [compare_loo(members).assign(outcome_data=label) for label, members in groups.items()]
    frame = pd.concat(frames).reset_index().rename(columns={"index": "run"})
    return frame[["outcome_data", "run", "rank", "elpd_loo", "se", "elpd_diff", "dse", "p_loo", "pareto_k_max",
                  "pareto_k_over_0_7", "weight"]]


