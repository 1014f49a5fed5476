"""Sampling, diagnostics and posterior summaries: Table 5 and the coefficient table.

Everything here computes; nothing plots or prints. The sampler backend comes from the spec
(nutpie by default: chosen by measurement, see benchmarks/results.md).
"""

from __future__ import annotations

import logging
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import pymc as pm

from .baselines import fit_logit, table5_grid
from .data import CellTable, load_default, read_outcome_data
from .errors import check_interrupted
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


@contextmanager
def without_initvals(model: pm.Model):
    """Lift the custom starting values (the ordered cutpoints') off the model for the length of the
    block, yielding them by name: PyMC's freeze transform refuses a model that carries them, so they
    are handed to the sampler instead."""
    saved = dict(model.rvs_to_initial_values)
    try:
        for rv in saved:
            model.rvs_to_initial_values[rv] = None
        yield {rv.name: value for rv, value in saved.items() if value is not None}
    finally:
        model.rvs_to_initial_values.update(saved)


@dataclass
class CompileCache:
    """What ``nutpie_compile_cache`` could do: ``enabled`` when the hooks exist; ``refused`` lists
    functions that had no stable key and so were compiled without the cache."""

    enabled: bool
    refused: list[str]


@contextmanager
def nutpie_compile_cache():
    """Let numba's disk cache find nutpie's compiled log-density again in a later process.

    numba keys a cached C callback by a pickle of its closure. nutpie's closure holds numba
    functions whose pickle carries a per-process random id, so the key never repeated and every fit
    recompiled (8 of 11 s, benchmarks/results.md). Inside this block such a function is keyed by
    its code and closure instead, and a PyTensor-generated one by the key PyTensor's own numba
    cache trusts; the entries live in PyTensor's compile directory. If numba or PyTensor no longer
    have the hooks used here, fits compile as before.
    """
    import hashlib
    import importlib.metadata
    import io

    try:
        from numba.core import ccallback, serialize
        from numba.core.caching import FunctionCache
        from numba.core.dispatcher import Dispatcher
        from pytensor import config
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS
    except ImportError:
        yield CompileCache(False, [])
        return
    if not config.numba__cache:  # the user turned PyTensor's numba cache off
        yield CompileCache(False, [])
        return
    state = CompileCache(True, [])

    class StablePickler(serialize.NumbaPickler):
        # Keys are hashed, never unpickled: a dispatcher becomes a plain tuple naming what it compiles;
        # the builtin `tuple` pickles by name, so the key does not change with this file's place or lines.
        # (nutpie's own nested functions pickle with their file name: a new virtual environment compiles once.)
        def reducer_override(self, obj):
            if isinstance(obj, Dispatcher):
                key = CACHED_SRC_FUNCTIONS.get(obj.py_func)
                if key is not None:
                    return tuple, (("pytensor numba function", key),)
                return tuple, (("numba function", obj.py_func, obj.locals, obj.targetoptions),)
            return super().reducer_override(obj)

    # Module-level helpers pickle by name, not body, so the versions that define them are in the key.
    versions = " ".join(f"{name} {importlib.metadata.version(name)}" for name in ("nutpie", "pytensor", "numpy"))

    def closure_hash(py_func) -> str:
        cells = tuple(cell.cell_contents for cell in py_func.__closure__ or ())
        with io.BytesIO() as buffer:
            StablePickler(buffer, protocol=4).dump(cells)
            return hashlib.sha256(versions.encode() + py_func.__code__.co_code + buffer.getvalue()).hexdigest()

    class StableFunctionCache(FunctionCache):
        def __init__(self, py_func):
            try:
                self._stable_hash = closure_hash(py_func)
                CACHED_SRC_FUNCTIONS[py_func] = self._stable_hash[:32]  # store beside PyTensor's entries
                super().__init__(py_func)
            except Exception as exc:  # noqa: BLE001 (no stable key, e.g. a C pointer; or no cache directory)
                log.debug("compiled model not cached: %s", exc)
                state.refused.append(f"{py_func.__qualname__}: {exc}")
                self._stable_hash = None  # then load_overload and save_overload do nothing

        def _index_key(self, sig, codegen):
            return sig, codegen.magic_tuple(), self._stable_hash

        def load_overload(self, sig, target_context):
            return None if self._stable_hash is None else super().load_overload(sig, target_context)

        def save_overload(self, sig, data):
            if self._stable_hash is not None:
                super().save_overload(sig, data)

    if getattr(ccallback, "FunctionCache", None) is not FunctionCache:
        yield CompileCache(False, [])
        return
    ccallback.FunctionCache = StableFunctionCache
    try:
        yield state
    finally:
        ccallback.FunctionCache = FunctionCache


@dataclass
class CompiledModel:
    """nutpie's compiled model, the seconds it took, and whether the compile cache supplied it
    (``reused``) or will next time (``cached``)."""

    compiled: object
    seconds: float
    reused: bool
    cached: bool


def compile_nutpie(model: pm.Model) -> CompiledModel:
    """Compile a model for nutpie through the compile cache."""
    import nutpie

    # Frozen dims and data are compile-time constants: terms of the data alone fold away and
    # numba compiles less (benchmarks/results.md: 15% faster gradients, 15% shorter compile).
    started = time.perf_counter()
    with without_initvals(model) as initvals, nutpie_compile_cache() as cache:
        compiled = nutpie.compile_pymc_model(model, freeze_model=True, initial_points=initvals, cache=cache.enabled)
    check_interrupted()  # an interrupt during numba's compilation is swallowed by its callbacks
    reused = getattr(compiled.compiled_logp_func, "_cache_hits", 0) > 0
    return CompiledModel(compiled, time.perf_counter() - started, reused, cache.enabled and not cache.refused)


def sample(model: pm.Model, sampler: Sampler, *, seed: int, progress: bool = True) -> az.InferenceData:
    """Draw from the posterior with the spec's backend; one seed drives everything.

    nutpie's compile time is kept in ``idata.attrs["compile_seconds"]`` (the other backends compile
    inside their sampling call)."""
    if sampler.backend == "nutpie":
        import nutpie

        built = compile_nutpie(model)
        log.info("compiled in %.1f s%s; drawing %d chains x %d draws", built.seconds,
                 " (reused from the compile cache)" if built.reused else "", sampler.chains, sampler.draws)
        idata = nutpie.sample(built.compiled, chains=sampler.chains, draws=sampler.draws, tune=sampler.tune, seed=seed,
                              target_accept=sampler.target_accept, progress_bar=progress)
        check_interrupted()  # nutpie returns early, with the draws so far, when interrupted
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


def add_predictive(idata: az.InferenceData, model: pm.Model, spec: Spec, *, seed: int, prior_draws: int = 500) -> None:
    """Prior (and prior predictive), posterior predictive and the outcome's pointwise log-likelihood."""
    # PyMC's log-likelihood computation cannot convert a model carrying custom initial values (the
    # ordered cutpoints' starting points, which only the sampler needs).
    with without_initvals(model), model, warnings.catch_warnings():
        # coarsened_latent's Beta density on the latent index is a Potential, which predictive sampling
        # ignores. Table 5 does not use those draws (its CAPINNO levels are the band centres).
        warnings.filterwarnings("ignore", message="The effect of Potentials", category=UserWarning)
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
    """PSIS-LOO on the outcome's log-likelihood only (never the joint item + outcome likelihood).

    Refuses runs whose observed outcomes differ: LOO compares models of the same data.
    """
    outcome_only, reference = {}, None
    for name, idata in runs.items():
        if "log_likelihood" not in idata or OUTCOME not in idata.log_likelihood:
            raise ValueError(f"run {name} has no outcome log-likelihood (a measurement-only model?)")
        y = idata.observed_data[OUTCOME].values
        if reference is None:
            reference = y
        elif y.shape != reference.shape or not np.array_equal(y, reference):
            raise ValueError(f"run {name} was fitted to different outcome data; LOO compares models of the same data")
        outcome_only[name] = az.InferenceData(posterior=idata.posterior, log_likelihood=idata.log_likelihood[[OUTCOME]])
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
        if "log_likelihood" not in idata or OUTCOME not in idata.log_likelihood:
            continue
        y = np.ascontiguousarray(idata.observed_data[OUTCOME].values)
        groups.setdefault(hashlib.sha256(y.tobytes()).hexdigest()[:8], {})[name] = idata
    frames = [compare_loo(members).assign(outcome_data=label) for label, members in groups.items()]
    frame = pd.concat(frames).reset_index().rename(columns={"index": "run"})
    return frame[["outcome_data", "run", "rank", "elpd_loo", "se", "elpd_diff", "dse", "p_loo", "pareto_k_max",
                  "pareto_k_over_0_7", "weight"]]


def ensemble_tables() -> list[tuple[float, CellTable]]:
    """The shipped reconstruction ensemble: (k, cell table) per member, best first."""
    from importlib import resources

    from .reconstruct import PROVENANCE

    path = Path(str(resources.files("bayes_intl").joinpath("data/reconstruction_ensemble.csv")))
    frame = pd.read_csv(path)
    members = []
    for member, cells in frame.groupby("member", sort=True):
        table = cells[["size", "capinno", "activity", "n", "y"]].reset_index(drop=True).astype("int64")
        members.append((float(cells["k"].iloc[0]), CellTable(table, f"{path} member {member}", PROVENANCE)))
    return members


def fit_ensemble(spec: Spec, sampler: Sampler, *, seed: int, members: int | None = None,
                 progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit ``spec`` on each reconstruction of the ensemble; pool the draws and split the spread.

    For every coefficient and Table 5 cell: the pooled posterior mean and 94% HDI, the
    between-reconstruction SD (of the members' posterior means) and the within-posterior SD
    (the members' posterior SDs, averaged).
    """
    from tqdm.auto import tqdm

    from .simulate import simulate_survey, survey_codebook

    coef_rows, cell_rows = [], []
    chosen = ensemble_tables()[: members or None]
    for i, (k, table) in enumerate(tqdm(chosen, desc="ensemble", unit="fit", disable=not progress)):
        if spec.is_item_level:
            survey = simulate_survey(table, seed=seed)
            validated = validate_survey(survey.frame, survey_codebook(), source=f"synthetic survey of {table.source}")
            data = ModelData(validated.firms, validated, validated.source, validated.provenance)
        else:
            data = ModelData(table.to_firms().firms, None, table.source, table.provenance)
        model = build_model(spec, data)
        idata = sample(model, sampler, seed=seed + i, progress=False)
        for term, draws in coefficient_draws(spec, idata.posterior).items():
            coef_rows.append(pd.DataFrame({"member": i + 1, "k": k, "term": term, "draw": np.arange(len(draws)),
                                           "value": draws}))
        probs = grid_probabilities(spec, idata.posterior, data.firms, table5_grid())
        grid = table5_grid()
        cell_rows.append(pd.DataFrame({"member": i + 1, "k": k, "id": np.repeat(grid["id"].to_numpy()[None], len(probs), 0).ravel(),
                                       "value": probs.ravel()}))
    return _spread(pd.concat(coef_rows), "term"), _spread(pd.concat(cell_rows), "id")


def _spread(draws: pd.DataFrame, key: str) -> pd.DataFrame:
    rows = []
    for name, group in draws.groupby(key, sort=False):
        by_member = group.groupby("member")["value"]
        hdi = _hdi(group["value"].to_numpy()[:, None])[0]
        rows.append({key: name, "members": by_member.ngroups, "pooled_mean": group["value"].mean(),
                     "hdi_low": hdi[0], "hdi_high": hdi[1], "between_sd": by_member.mean().std(ddof=1),
                     "within_sd": by_member.std(ddof=1).mean(), "member_mean_min": by_member.mean().min(),
                     "member_mean_max": by_member.mean().max()})
    return pd.DataFrame(rows)


# --- summaries the report shows (computed here; plots.py draws them) --------------------------

def capinno_contrast(spec: Spec, idata: az.InferenceData, data: ModelData) -> pd.DataFrame:
    """P(internationalized) of a high minus a low CAPINNO firm, per size and activity: mean and 94% HDI.

    On the probability scale, so that models with different CAPINNO scales compare directly.
    """
    grid = table5_grid()
    probs = grid_probabilities(spec, idata.posterior, data.firms, grid)
    rows = []
    for (size, activity), cells in grid.groupby(["size_name", "activity_name"], sort=False):
        low = cells.index[cells["level"] == "low"][0]
        high = cells.index[cells["level"] == "high"][0]
        diff = probs[:, high] - probs[:, low]
        hdi = _hdi(diff[:, None])[0]
        rows.append({"size": size, "activity": activity, "mean": diff.mean(), "hdi_low": hdi[0], "hdi_high": hdi[1],
                     "p_positive": (diff > 0).mean()})
    return pd.DataFrame(rows)


def scalar_draws(group, names) -> dict[str, np.ndarray]:
    """Draws of the named variables (those present), one flat array per scalar element:
    {'intercept': (draw,), 'slope[capinno]': (draw,), 'loading[eo_objectives]': (draw,), ...}."""
    out = {}
    for name in names:
        if name not in group:
            continue
        stacked = group[name].stack(sample=("chain", "draw")).transpose("sample", ...)
        values = stacked.to_numpy()
        coords = [[str(v) for v in stacked.coords[d].values] for d in stacked.dims[1:]]
        if values.ndim == 1:
            out[name] = values
            continue
        for index in np.ndindex(*values.shape[1:]):
            label = ", ".join(coords[d][i] for d, i in enumerate(index))
            out[f"{name}[{label}]"] = values[(slice(None), *index)]
    return out


def _stacked(group, name: str, thin: int | None = None) -> np.ndarray:
    values = group[name].stack(sample=("chain", "draw")).transpose("sample", ...).to_numpy()
    if thin and len(values) > thin:
        values = values[np.linspace(0, len(values) - 1, thin).astype(int)]
    return values


def calibration_bins(idata: az.InferenceData, bins: int = 5) -> pd.DataFrame:
    """Outcome calibration: firms binned by predicted P(internationalized); observed share beside the
    predicted one, with the 94% interval of the share in replicated data."""
    y = idata.observed_data[OUTCOME].to_numpy()
    rep = _stacked(idata.posterior_predictive, OUTCOME)  # (draw, firm)
    predicted = rep.mean(axis=0)
    order = np.argsort(predicted, kind="stable")
    rows = []
    for b, idx in enumerate(np.array_split(order, bins)):
        share = rep[:, idx].mean(axis=1)
        rows.append({"bin": b + 1, "firms": len(idx), "predicted": predicted[idx].mean(), "observed": y[idx].mean(),
                     "rep_low": np.quantile(share, 0.03), "rep_high": np.quantile(share, 0.97)})
    return pd.DataFrame(rows)


def item_ppc(idata: az.InferenceData, thin: int = 400) -> tuple[pd.DataFrame, dict]:
    """Item-level posterior predictive check for a measurement model.

    Per item: the observed mean beside the replicated means (94% interval) and the posterior
    predictive p-value P(T_rep >= T_obs). Overall: the same p-value for the mean inter-item
    correlation, the statistic a factor model exists to reproduce.
    """
    names = [n for n in idata.observed_data.data_vars if n.startswith("items_")]
    obs_cols, rep_cols, labels = [], [], []
    for name in names:
        obs = idata.observed_data[name]
        item_dim = [d for d in obs.dims if d != "firm"][0]
        obs_cols.append(obs.transpose("firm", item_dim).to_numpy().astype(float))
        rep_cols.append(_stacked(idata.posterior_predictive, name, thin).astype(float))  # (draw, firm, item)
        labels += [str(v) for v in obs.coords[item_dim].values]
    observed = np.concatenate(obs_cols, axis=1)
    replicated = np.concatenate(rep_cols, axis=2)
    obs_mean, rep_mean = observed.mean(axis=0), replicated.mean(axis=1)
    items = pd.DataFrame({"item": labels, "observed": obs_mean, "replicated_mean": rep_mean.mean(axis=0),
                          "rep_low": np.quantile(rep_mean, 0.03, axis=0), "rep_high": np.quantile(rep_mean, 0.97, axis=0),
                          "ppp": (rep_mean >= obs_mean).mean(axis=0)})

    def mean_correlation(matrix: np.ndarray) -> float:
        keep = matrix.std(axis=0) > 0
        corr = np.corrcoef(matrix[:, keep], rowvar=False)
        return float(corr[np.triu_indices_from(corr, k=1)].mean())

    t_obs = mean_correlation(observed)
    t_rep = np.array([mean_correlation(r) for r in replicated])
    overall = {"statistic": "mean inter-item correlation", "observed": t_obs, "replicated_mean": float(t_rep.mean()),
               "rep_low": float(np.quantile(t_rep, 0.03)), "rep_high": float(np.quantile(t_rep, 0.97)),
               "ppp": float((t_rep >= t_obs).mean()), "draws": int(len(t_rep))}
    return items, overall


def loading_table(idata: az.InferenceData) -> pd.DataFrame:
    """Factor loadings (item and second-order) with posterior mean and 94% HDI."""
    rows = []
    for name in ("second_order_loading", "loading"):
        if name not in idata.posterior:
            continue
        draws = _stacked(idata.posterior, name)
        hdi = _hdi(draws)
        dim = [d for d in idata.posterior[name].dims if d not in ("chain", "draw")][0]
        for label, mean, (lo, hi) in zip(idata.posterior.coords[dim].values, draws.mean(axis=0), hdi):
            rows.append({"parameter": name, "of": str(label), "mean": mean, "hdi_low": lo, "hdi_high": hi})
    return pd.DataFrame(rows, columns=["parameter", "of", "mean", "hdi_low", "hdi_high"])


def classification_changes(table: pd.DataFrame) -> pd.DataFrame:
    """Per Table 5 cell: the paper's classification (p > 0.5) and the posterior probability that it flips."""
    paper_yes = table["paper"] > 0.5
    p_flip = np.where(paper_yes, 1 - table["p_above_half"], table["p_above_half"])
    return table[["id", "size", "capinno", "activity", "paper", "mean"]].assign(
        paper_class=np.where(paper_yes, "yes", "no"), p_flip=p_flip)
