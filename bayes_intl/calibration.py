"""Parameter recovery: simulate data from known parameters, fit, and check the truth lies in the 94% HDI.

hierarchical_logit: outcomes from known sector intercepts and slopes on the reconstruction's design.
latent_factor: items from the survey generator (simulate.py) with eta ~ N(0, 1), and the outcome from
known sector intercepts and slopes on eta. The simulator's standardized second-order loading g maps
to the model's gamma = g / sqrt(1 - g^2); ordinal, binary and count loadings are the same parameter in
both. (The continuous item is standardized in the model, so its loading is on another scale: not checked.)
"""

from __future__ import annotations

import logging
from dataclasses import replace

import arviz as az
import numpy as np
import pandas as pd
from scipy.special import expit

from .data import load_default
from .inference import sample
from .models import ModelData, build_model
from .simulate import ITEM_TABLE, PROVENANCE, SECOND_ORDER, item_responses, survey_codebook
from .spec import Spec
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
    columns = {k: v for k, v in codebook.columns.items() if k not in ("employees", "municipality")}
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
    latent = spec.model == "latent_factor"
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
