"""The model registry: one entry per model, holding everything the rest of the code needs to know about it.

Code elsewhere asks a model's entry (``spec.entry`` or ``REGISTRY[name]``); it never compares model
names or looks at which variables a posterior happens to hold. Adding a model is one builder in
``models.py``, one entry here and a spec in ``models/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from . import models

LEVEL_NAMES = ("low", "average", "high")


def band_codes(posterior, firms, name: str, bands: int) -> np.ndarray:
    """Levels of the observed-band models: the paper's codes 0 .. bands - 1 in every draw."""
    return np.tile(np.arange(float(bands)), (posterior.sizes["chain"] * posterior.sizes["draw"], 1))


def factor_band_means(posterior, firms, name: str, bands: int) -> np.ndarray:
    """CAPINNO levels of the latent factor: the mean factor score of the firms observed in each band, per draw."""
    factor = posterior["capinno_factor"].stack(sample=("chain", "draw")).transpose("sample", "firm").to_numpy()
    band = firms[name].to_numpy()
    return np.column_stack([factor[:, band == b].mean(axis=1) if (band == b).any() else np.full(len(factor), np.nan)
                            for b in range(bands)])


@dataclass(frozen=True)
class ModelEntry:
    """One model: its builder, the priors its spec must give, and how its posterior is read.

    ``levels(posterior, firms, name, bands) -> (draw, bands)`` is what a "low", "average" and "high" firm is on the
    model's CAPINNO scale; Table 5 and the CAPINNO contrast are evaluated there. ``hierarchical``
    models read Activity as the difference of the sector intercepts, and the Constant as MM's.
    """

    name: str
    build: Callable  # (spec, data, model, generative) -> None: adds the model's variables
    priors: tuple[str, ...]  # priors the spec must give
    sbc_parameters: tuple[str, ...]  # parameters simulation-based calibration ranks
    item_level: bool = False  # needs an item-level survey
    outcome: bool = True  # has the outcome logit: Table 5, coefficients, LOO
    hierarchical: bool = False  # sector-varying intercept and slopes
    levels: Callable | None = band_codes
    level_meaning: str = "the paper's band codes 0, 1, 2"
    simulated_extra: tuple[str, ...] = ()  # generative-only variables SBC swaps in as data
    shown: tuple[str, ...] = ("intercept", "slope")  # parameters of the rank and prior/posterior plots
    banded_predictor: bool = False  # reads the spec's banded predictor (a study's banded = true) as a latent index


OPTIONAL_PRIORS = ("municipality_sd", "lkj_eta")
# What the diagnostic gate checks (inference.gate_variables): the quantities a researcher reads. Internal
# components that only build them (non-centred standard normals, second-order residuals, the LKJ vine's
# partial correlations) never decide a run's fate; the deterministics they build are checked instead.
INTERNAL_VARIABLES = ("z_intercept", "z_slope", "z_municipality", "z_intercept_mean", "z_slope_mean", "zeta",
                      "z_factor", "factor_corr_partial")
# intercept and slope are derived in the hierarchical models' population form (models._group_means)
DERIVED_PARAMETERS = ("intercept", "slope", "group_intercept", "group_slope", "factor_corr", "factor")


def scaled_prior(name: str, dims) -> bool:
    """Whether power-scaling varies this variable's prior: a prior the spec sets. Internal components and
    per-respondent latent scores (a ``firm`` dim) are the model's structure, not a researcher's prior belief
    (and scaling their hundreds of terms would break the importance weights)."""
    return name not in INTERNAL_VARIABLES and "firm" not in dims


# Priors an item-level spec gives when its structure and its items need them (checked when the model is built,
# naming the items): second_order_loading (a second-order structure, 3+ dimensions), cutpoint (ordinal items),
# item_intercept (binary, count, continuous items), residual_sd (continuous items).
ITEM_PRIORS = ("second_order_loading", "cutpoint", "item_intercept", "residual_sd")

REGISTRY: dict[str, ModelEntry] = {entry.name: entry for entry in (
    ModelEntry("paper_logit", models.build_paper_logit, ("intercept", "slope"), ("intercept", "slope")),
    ModelEntry("hierarchical_logit", models.build_hierarchical_logit, ("intercept", "slope", "group_sd"),
               ("intercept", "slope", "intercept_sd", "group_sd"), hierarchical=True),
    ModelEntry("coarsened_latent", models.build_coarsened_latent, ("intercept", "slope", "index_alpha", "index_beta"),
               ("intercept", "slope", "index_alpha", "index_beta"),
               level_meaning="the band centres 1/6, 1/2, 5/6 of the latent index (0, 1, 2 on its 3u - 1/2 scale)",
               simulated_extra=("capinno_band",), banded_predictor=True),
    ModelEntry("latent_factor", models.build_latent_factor, ("intercept", "slope", "group_sd", "loading"),
               ("intercept", "slope", "intercept_sd", "group_sd", "second_order_loading", "loading"),
               item_level=True, hierarchical=True, levels=factor_band_means,
               level_meaning="the mean latent CAPINNO factor of the firms observed in each band"),
    ModelEntry("measurement_only", models.build_measurement_only, ("loading",),
               ("second_order_loading", "loading"), item_level=True, outcome=False, levels=None,
               level_meaning="", shown=("second_order_loading", "loading")),
)}
