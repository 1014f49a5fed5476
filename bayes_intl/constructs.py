"""The paper's constructions: INEGI firm size (Table 1) and the CAPINNO index and its bands.

CAPINNO, as the paper builds it (Schuschny and Soto 2009): standardize every item, combine the
items of each dimension, combine the dimensions with equal weights, min-max normalize to [0, 1],
and cut into low / average / high.
"""

from __future__ import annotations

from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd

from .errors import InputError
from .study import load_study

SECTOR_OF_ACTIVITY = {0: "industry", 1: "services"}  # MM is industry, IT is services (Table 1)
SONORA = load_study("sonora")
SIZES = SONORA.predictor("size").labels  # coded 0, 1, 2 as in the paper
LEVELS = SONORA.predictor("capinno").labels  # CAPINNO bands, coded 0, 1, 2


def size_bounds() -> dict[str, list[tuple[str, int, int]]]:
    """Employee ranges per sector from Table 1: {sector: [(size, min, max), ...]}."""
    paper = SONORA
    return {
        sector: [(s, int(paper.value(f"table1.{s}.{sector}.min")), int(paper.value(f"table1.{s}.{sector}.max")))
                 for s in SIZES]
        for sector in ("industry", "services")
    }


def inegi_size(employees: Sequence[int], activity: Sequence[int], *, firm_ids: Sequence | None = None,
               file: str = "<data>") -> np.ndarray:
    """INEGI size code (0 micro, 1 small, 2 medium) from employees and activity (0 MM, 1 IT).

    A count outside 1-250 (industry) or 1-100 (services) is not an SME by Table 1 and is refused,
    naming the firm, rather than put in a class it does not belong to.
    """
    bounds = size_bounds()
    employees = np.asarray(employees)
    activity = np.asarray(activity)
    ids = list(firm_ids) if firm_ids is not None else list(range(1, len(employees) + 1))
    codes = np.empty(len(employees), dtype=np.int64)
    for i, (count, act) in enumerate(zip(employees, activity)):
        sector = SECTOR_OF_ACTIVITY.get(int(act))
        if sector is None:
            raise InputError(file, "activity coded 0 (MM) or 1 (IT)", column="activity", row=i + 1, found=act)
        for code, (_, lo, hi) in enumerate(bounds[sector]):
            if lo <= count <= hi:
                codes[i] = code
                break
        else:
            top = bounds[sector][-1][2]
            raise InputError(
                file, f"employees between 1 and {top} for a {sector} firm (INEGI Table 1), firm {ids[i]!r}",
                column="employees", row=i + 1, found=count)
    return codes


BandRule = Literal["thirds", "paper"]


def capinno_band(index: Sequence[float], *, rule: BandRule = "thirds") -> np.ndarray:
    """Cut a [0, 1] CAPINNO index into 0 low, 1 average, 2 high.

    ``thirds`` (default): low is [0, 1/3), average [1/3, 2/3), high [2/3, 1].
    ``paper``: the paper's printed ranges 0-0.33, 0.34-0.66, 0.67-1.00, read by rounding the
    index to two decimals first, so a value between 0.33 and 0.34 (e.g. 0.334) goes where its
    two-decimal rounding does (0.33, low). The two rules differ only on [1/3, 0.335) and
    [0.665, 2/3).
    """
    x = np.asarray(index, dtype=float)
    if rule == "paper":
        x = np.round(x, 2)
        return np.where(x <= 0.33, 0, np.where(x <= 0.66, 1, 2))
    if rule == "thirds":
        return np.where(x < 1 / 3, 0, np.where(x < 2 / 3, 1, 2))
    raise ValueError(f"unknown band rule {rule!r}; expected 'thirds' or 'paper'")


def capinno_index(items: pd.DataFrame, dimensions: Mapping[str, Sequence[str]], *,
                  weights: Mapping[str, float] | None = None,
                  combine: Literal["mean", "sum"] = "mean",
                  rule: BandRule = "thirds", file: str = "<data>", allow_missing: bool = False) -> pd.DataFrame:
    """Build CAPINNO from item columns grouped into dimensions.

    Returns one row per firm (same index as ``items``) with a standardized score per dimension,
    ``capinno_index`` in [0, 1] and ``capinno`` (band code 0/1/2). Items are z-standardized with
    the sample SD (ddof=1, as SPSS's DESCRIPTIVES /SAVE does); dimensions are equally weighted
    unless ``weights`` says otherwise. ``allow_missing``: a missing response is left out (each item
    standardized over the firms that answered it, each dimension the mean of the answered items).
    """
    scores = {}
    for dim, cols in dimensions.items():
        z = []
        for col in cols:
            if col not in items.columns:
                raise InputError(file, f"item column '{col}' of dimension '{dim}'", column=col)
            values = pd.to_numeric(items[col], errors="coerce")
            if values.isna().any() and not (allow_missing and items[col].isna().equals(values.isna())):
                row = int(np.flatnonzero(values.isna().to_numpy())[0]) + 1
                raise InputError(file, "a numeric item response", column=col, row=row, found=items[col].iloc[row - 1])
            sd = values.std(ddof=1)
            if not np.isfinite(sd) or sd == 0:
                raise InputError(file, "an item that varies across firms (it cannot be standardized)", column=col)
            z.append((values - values.mean()) / sd)
        stacked = pd.concat(z, axis=1)
        if combine == "mean":
            scores[dim] = stacked.mean(axis=1)
        else:  # a respondent's sum over the items they answered, prorated to all of them
            scores[dim] = stacked.sum(axis=1) if stacked.notna().all().all() else stacked.mean(axis=1) * len(cols)
    frame = pd.DataFrame(scores, index=items.index)
    w = pd.Series(weights if weights is not None else {d: 1.0 for d in dimensions}, dtype=float)
    answered = frame[list(dimensions)].notna()
    raw = (frame[list(dimensions)] * w[list(dimensions)]).sum(axis=1) / (answered * w[list(dimensions)]).sum(axis=1)
    if raw.isna().any():
        row = int(np.flatnonzero(raw.isna().to_numpy())[0]) + 1
        raise InputError(file, "at least one item response for every respondent (this one answered none)", row=row)
    span = raw.max() - raw.min()
    if span == 0:
        raise InputError(file, "CAPINNO that varies across firms (all firms have the same score)")
    frame["capinno_index"] = (raw - raw.min()) / span
    frame["capinno"] = capinno_band(frame["capinno_index"], rule=rule)
    return frame


def level_name(code: int) -> str:
    return LEVELS[code]
