"""Calibration: parameter recovery (truth inside the 94% HDI) and simulation-based calibration (SBC).

hierarchical_logit: outcomes from known sector intercepts and slopes on the reconstruction's design.
latent_factor: items from the survey generator (simulate.py) with eta ~ N(0, 1), and the outcome from
known sector intercepts and slopes on eta. The simulator's standardized second-order loading g maps
to the model's gamma = g / sqrt(1 - g^2); ordinal, binary and count loadings are the same parameter in
both. (The continuous item is standardized in the model, so its loading is on another scale: not checked.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
from scipy.special import expit

from .compile_cache import without_initvals
from .data import ModelData, load_default
from .inference import sample
from .models import build_model
from .simulate import ITEM_TABLE, PROVENANCE, SECOND_ORDER, item_responses, survey_codebook
from .spec import Spec
from .summaries import scalar_draws
from .survey import validate_survey

log = logging.getLogger(__name__)
TRUE_OUTCOME = {  # (intercept, capinno slope, size slope) for MM (activity 0) and IT (activity 1)
    0: (-2.0, 1.5, 1.0),
    1: (-3.5, 1.2, 0.8),
}


def _outcome(rng, capinno: np.ndarray, size: np.ndarray, activity: np.ndarray) -> np.ndarray:
    coef = np.array([TRUE_OUTCOME[a] for a in activity])
    return (rng.random(len(capinno)) < expit(coef[:, 0] + coef[:, 1] * capinno + coef[:, 2] * size)).astype(np.int64)


def _truth_outcome() -> dict[str, float]:
    truth = {}
    for a, (b0, bc, bs) in TRUE_OUTCOME.items():
        truth[f"group_intercept[activity={a}]"] = b0
        truth[f"group_slope[activity={a}, capinno]"] = bc
        truth[f"group_slope[activity={a}, size]"] = bs
    return truth


def simulate_hierarchical(seed: int) -> ModelData:
    firms = load_default().to_firms().firms.copy()
    rng = np.random.default_rng(seed)
    firms["internationalized"] = _outcome(rng, firms["capinno"].to_numpy(), firms["size"].to_numpy(),
                                          firms["activity"].to_numpy())
    return ModelData(firms, None, f"recovery simulation seed {seed}", "SYNTHETIC recovery data")


def simulate_latent(seed: int) -> ModelData:
    base = load_default().to_firms().firms
    rng = np.random.default_rng(seed)
    eta = rng.normal(size=len(base))
    responses, _ = item_responses(rng, eta)
    frame = pd.DataFrame({"firm_id": [f"F{i:03d}" for i in range(1, len(base) + 1)],
                          "activity": base["activity"].to_numpy(), "size": base["size"].to_numpy(),
                          "internationalized": _outcome(rng, eta, base["size"].to_numpy(), base["activity"].to_numpy())})
    for name, *_ in ITEM_TABLE:
        frame[name] = responses[name]
    frame["data_provenance"] = PROVENANCE
    codebook = survey_codebook()
    columns = {k: v for k, v in codebook.columns.items() if k not in ("employees", "municipality")}  # size as given
    codebook = replace(codebook, columns=columns)
    survey = validate_survey(frame, codebook, source=f"recovery simulation seed {seed}")
    return ModelData(survey.firms, survey, survey.source, "SYNTHETIC recovery data")


def _truth_latent() -> dict[str, float]:
    truth = _truth_outcome()
    for d, g in SECOND_ORDER.items():
        truth[f"second_order_loading[{d}]"] = g / np.sqrt(1 - g**2)
    for name, dim, kind, loading, *_ in ITEM_TABLE:
        if dim != "innovation" and kind in ("ordinal", "binary", "count"):
            truth[f"loading[{name}]"] = loading
    return truth


def recovery(spec: Spec, *, seeds: range, draws: int = 500) -> pd.DataFrame:
    """One row per (seed, parameter): truth, posterior mean, 94% HDI and whether the truth is inside."""
    latent = spec.entry.item_level
    truth = _truth_latent() if latent else _truth_outcome()
    sampler = replace(spec.sampler, draws=draws, tune=draws)
    spec = replace(spec, municipality=False)
    rows = []
    for seed in seeds:
        data = simulate_latent(seed) if latent else simulate_hierarchical(seed)
        idata = sample(build_model(spec, data), sampler, seed=seed, progress=False)
        summary = az.summary(idata, var_names=["group_intercept", "group_slope"]
                             + (["second_order_loading", "loading"] if latent else []), hdi_prob=0.94)
        for name, value in truth.items():
            low, high = summary.loc[name, "hdi_3%"], summary.loc[name, "hdi_97%"]
            rows.append({"model": spec.model, "seed": seed, "parameter": name, "truth": value,
                         "mean": summary.loc[name, "mean"], "hdi_low": low, "hdi_high": high,
                         "covered": bool(low <= value <= high),
                         "divergences": int(idata.sample_stats["diverging"].sum())})
        log.info("recovery %s seed %d done", spec.model, seed)
    return pd.DataFrame(rows)


def coverage(table: pd.DataFrame) -> pd.DataFrame:
    """Per parameter: seeds whose 94% HDI covers the truth."""
    return (table.groupby(["model", "parameter"], sort=False)
            .agg(truth=("truth", "first"), covered=("covered", "sum"), seeds=("seed", "nunique"),
                 mean_of_means=("mean", "mean"))
            .reset_index())


# --- simulation-based calibration (Talts et al. 2018) ------------------------------------------

SBC_RANK_DRAWS = 100  # thinned posterior draws per simulation: ranks run 0..100
SBC_BINS = 10


@dataclass(frozen=True)
class SBCSettings:
    sims: int = 200
    chains: int = 1
    draws: int = 500
    tune: int = 500
    target_accept: float = 0.9
    seed: int = 20150601


def sbc_truths(spec: Spec, data: ModelData, settings: SBCSettings) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Draw ``sims`` parameter sets from the prior and a data set of the study's shape for each.

    Returns (truths: name -> (sims,), data: '<observed>_observed' container name -> (sims, ...)).
    """
    import pymc as pm

    model = build_model(spec, data, generative=True)
    observed = [rv.name for rv in model.observed_RVs]
    extra = list(spec.entry.simulated_extra)
    with without_initvals(model), model:  # starting points matter to NUTS, not to forward sampling
        prior = pm.sample_prior_predictive(draws=settings.sims, random_seed=settings.seed,
                                           var_names=[*spec.entry.sbc_parameters, *observed, *extra])
    names = [n for n in spec.entry.sbc_parameters if n in prior.prior]
    truths = scalar_draws(prior.prior, names)
    simulated = {f"{n}_observed": prior.prior_predictive[n].isel(chain=0).to_numpy() for n in observed}
    for name in extra:  # generative-only variables that the fitted model observes as data
        simulated[f"{name}_observed"] = prior.prior[name].isel(chain=0).to_numpy().astype(np.int64)
    return truths, simulated


def _sbc_chunk(spec_path: str, data_path: str | None, indices: list[int], truths: dict, simulated: dict,
               settings: SBCSettings) -> list[dict]:
    """Fit a chunk of simulations in one process: the model is compiled once, the data swapped in."""
    import nutpie

    from .compile_cache import nutpie_compile_cache
    from .data import model_data
    from .spec import load_spec

    spec = load_spec(spec_path)
    data = model_data(spec, data_path, seed=settings.seed)
    model = build_model(spec, data)
    with nutpie_compile_cache() as cache:
        compiled = nutpie.compile_pymc_model(model, cache=cache.enabled)
    rows = []
    for i in indices:
        updates = {name: values[i].astype(model[name].dtype) for name, values in simulated.items()}
        try:
            idata = nutpie.sample(compiled.with_data(**updates), chains=settings.chains, draws=settings.draws,
                                  tune=settings.tune, seed=settings.seed + 1 + i, target_accept=settings.target_accept,
                                  progress_bar=False, save_warmup=False)
        except RuntimeError as exc:  # no finite starting point for this simulated data set: recorded, not ranked
            log.warning("SBC simulation %d: the sampler could not start (%s)", i, str(exc).splitlines()[0])
            rows += [{"sim": i, "parameter": name, "truth": float(true[i]), "rank": -1, "divergences": -1}
                     for name, true in truths.items()]
            continue
        draws = scalar_draws(idata.posterior, spec.entry.sbc_parameters)
        total = len(next(iter(draws.values())))
        keep = np.linspace(0, total - 1, SBC_RANK_DRAWS).round().astype(int)
        divergences = int(idata.sample_stats["diverging"].sum())
        for name, true in truths.items():
            rows.append({"sim": i, "parameter": name, "truth": float(true[i]),
                         "rank": int((draws[name][keep] < true[i]).sum()), "divergences": divergences})
    return rows


def run_sbc(spec_path: str | Path, settings: SBCSettings, *, data_path: str | None = None, jobs: int = 1,
            scheduler: str | None = None, progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulation-based calibration of a spec: ranks of the true parameters among posterior draws.

    Fits run in parallel through joblib over ``jobs`` local processes, or on a Dask cluster when
    ``scheduler`` names its address (joblib's dask backend). Each simulation is seeded by its
    index, so the ranks do not depend on how the work is split.
    Returns (ranks: sim, parameter, truth, rank, divergences; uniformity: one row per parameter).
    A simulation whose fit cannot start has rank -1 and is left out of the uniformity tests.
    """
    import joblib

    from .data import model_data
    from .spec import load_spec

    spec = load_spec(spec_path)
    data = model_data(spec, data_path, seed=settings.seed)
    truths, simulated = sbc_truths(spec, data, settings)
    workers = max(1, min(jobs, settings.sims))
    chunks = [list(range(settings.sims))[k::workers] for k in range(workers)]
    tasks = [joblib.delayed(_sbc_chunk)(str(spec_path), data_path, chunk, truths, simulated, settings)
             for chunk in chunks if chunk]
    if scheduler:
        from dask.distributed import Client

        with Client(scheduler), joblib.parallel_config(backend="dask"):
            results = joblib.Parallel()(tasks)
    elif workers == 1:
        results = [task[0](*task[1], **task[2]) for task in tasks]
    else:
        results = joblib.Parallel(n_jobs=workers, backend="loky")(tasks)
    ranks = pd.DataFrame([row for chunk in results for row in chunk]).sort_values(["parameter", "sim"], kind="stable")
    ranks = ranks.reset_index(drop=True)
    return ranks, uniformity(ranks[ranks["rank"] >= 0])


def uniformity(ranks: pd.DataFrame, bins: int = SBC_BINS) -> pd.DataFrame:
    """Chi-square test of uniform ranks per parameter (ranks 0..L grouped into ``bins`` equal bins).

    With many parameters some raw p-values fall below 1% by chance (latent_factor's 30 tests: a 26% chance
    of at least one), so Holm's adjustment across the model's parameters is reported beside them.
    """
    from scipy import stats

    from .baselines import holm

    rows = []
    edges = np.linspace(0, SBC_RANK_DRAWS + 1, bins + 1)
    for name, group in ranks.groupby("parameter", sort=False):
        counts, _ = np.histogram(group["rank"], bins=edges)
        expected = len(group) / bins
        chi2 = float(((counts - expected) ** 2 / expected).sum())
        rows.append({"parameter": name, "sims": len(group), "chi2": chi2, "df": bins - 1,
                     "p_value": float(stats.chi2.sf(chi2, bins - 1)), "mean_rank": float(group["rank"].mean()),
                     "rejected_at_1pct": bool(stats.chi2.sf(chi2, bins - 1) < 0.01)})
    table = pd.DataFrame(rows)
    if len(table):
        table["p_holm"] = holm(table["p_value"].to_numpy())
        table["rejected_at_1pct_holm"] = table["p_holm"] < 0.01
    return table
