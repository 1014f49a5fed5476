"""The paper's frequentist logit refit, SPSS-style (Tables 2-5), with statsmodels.

statsmodels is imported here and nowhere else. Cell counts are fitted as a frequency-weighted
binomial GLM (each cell as an outcome-1 and an outcome-0 row); firm rows are fitted unweighted.
Both give the same estimates and standard errors on the same data (tested to 1e-8).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
import statsmodels.formula.api as smf
from scipy import stats

from .data import OUTCOME, OutcomeData
from .errors import InputError
from .paper import PaperFigures, load_paper, table5_cells, table5_id

PAPER_FORMULA = f"{OUTCOME} ~ capinno + activity + size"
SPSS_TERM = {"Intercept": "Constant", "capinno": "Capinno", "activity": "Activity", "size": "Size"}
FIGURE_COLUMNS = ["id", "table", "row", "column", "value"]
Z975 = float(stats.norm.ppf(0.975))


@dataclass(frozen=True)
class LogitFit:
    """A fitted logit and its SPSS-style tables, all in the tidy figure schema (see FIGURE_COLUMNS)."""

    formula: str
    params: pd.Series
    bse: pd.Series
    cov: pd.DataFrame
    minus2ll: float
    minus2ll_null: float
    n_firms: int
    converged: bool
    tables: pd.DataFrame
    provenance: str
    notes: tuple[str, ...]

    def table(self, name: str) -> pd.DataFrame:
        return self.tables[self.tables["table"] == name].reset_index(drop=True)


def _outcome_of(formula: str) -> str:
    if "~" not in formula:
        raise ValueError(f"formula {formula!r} needs an outcome: 'outcome ~ predictors'")
    return formula.split("~", 1)[0].strip()


def _glm(formula: str, long: pd.DataFrame):
    """A frequency-weighted binomial GLM. statsmodels' separation warnings are dropped: ``separation_notes``
    says the same in one plain line per term."""
    import warnings

    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    model = smf.glm(formula, data=long, family=sm.families.Binomial(), freq_weights=long["weight"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        return model.fit()


def _rows(table: str, entries: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([(i, table, r, c, float(v)) for i, r, c, v in entries], columns=FIGURE_COLUMNS)


def _coefficient_table(table: str, result, *, with_ci: bool) -> pd.DataFrame:
    entries = []
    for name in result.params.index:
        term = SPSS_TERM.get(name, name)
        b, se = result.params[name], result.bse[name]
        with np.errstate(over="ignore"):  # a separated term's odds ratio and CI overflow to inf
            wald = (b / se) ** 2
            values = {"b": b, "se": se, "wald": wald, "df": 1, "sig": stats.chi2.sf(wald, 1), "exp_b": np.exp(b)}
            if with_ci and term != "Constant":
                values |= {"ci_lower": np.exp(b - Z975 * se), "ci_upper": np.exp(b + Z975 * se)}
        entries += [(f"{table.lower().replace(' ', '')}.{term}.{col}", term, col, v) for col, v in values.items()]
    return _rows(table, entries)


def separation_notes(bse: pd.Series, *, limit: float = 10.0) -> list[str]:
    """Terms whose SE exceeds ``limit``: the data (quasi-)separate them and their B are not estimable."""
    return [f"{term}: SE = {se:.1f}; (quasi-)complete separation, B is not estimable from these data"
            for term, se in bse.items() if not np.isfinite(se) or se > limit]


def _constant_outcome_note(long: pd.DataFrame, outcome: str) -> list[str]:
    values = long.loc[long["weight"] > 0, outcome].unique()
    if len(values) == 1:
        return [f"the outcome '{outcome}' is {int(values[0])} for every firm: no coefficient can be estimated"]
    return []


def _classification(long: pd.DataFrame, outcome: str, p: np.ndarray, cut: float) -> pd.DataFrame:
    predicted = p > cut
    w, y = long["weight"].to_numpy(), long[outcome].to_numpy() == 1
    no_no, no_yes = w[~y & ~predicted].sum(), w[~y & predicted].sum()
    yes_no, yes_yes = w[y & ~predicted].sum(), w[y & predicted].sum()
    return _rows("Table 3", [
        ("table3.no.no", "observed No", "predicted No", no_no),
        ("table3.no.yes", "observed No", "predicted Yes", no_yes),
        ("table3.yes.no", "observed Yes", "predicted No", yes_no),
        ("table3.yes.yes", "observed Yes", "predicted Yes", yes_yes),
        ("table3.no.pct", "observed No", "% correct (specificity)", 100 * no_no / max(no_no + no_yes, 1)),
        ("table3.yes.pct", "observed Yes", "% correct (sensitivity)", 100 * yes_yes / max(yes_no + yes_yes, 1)),
        ("table3.overall.pct", "overall", "% correct", 100 * (no_no + yes_yes) / w.sum()),
    ])


def table5_grid() -> pd.DataFrame:
    """The 18 Table 5 cells as predictor codes, in the paper's order."""
    rows = [(table5_id(size, level, act), size, level, act, s, c, a) for size, level, act, (s, c, a) in table5_cells()]
    return pd.DataFrame(rows, columns=["id", "size_name", "level", "activity_name", "size", "capinno", "activity"])


def _table5(result, grid: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predicted probabilities at the paper's Table 5 cells, or at ``grid``'s cells (rows named by its id)."""
    if grid is not None:
        return _rows("Table 5", [(i, i, "", v) for i, v in zip(grid["id"], np.asarray(result.predict(grid)))])
    grid = table5_grid()
    try:
        p = np.asarray(result.predict(grid))
    except Exception:  # a formula over other variables has no Table 5
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    return _rows("Table 5", [(i, f"{s} / {lv}", a, v) for i, s, lv, a, v in
                             zip(grid["id"], grid["size_name"], grid["level"], grid["activity_name"], p)])


def fit_logit(data: OutcomeData, *, formula: str = PAPER_FORMULA, cut: float = 0.5,
              grid: pd.DataFrame | None = None) -> LogitFit:
    """Fit the logit ``formula`` (default: the paper's) and build Tables 2-5 as SPSS prints them.

    ``formula`` is a statsmodels/patsy formula over the data's columns, e.g.
    ``internationalized ~ capinno + activity + C(size)`` for size as two dummies. Table 5 is predicted
    at the paper's cells, or at ``grid``'s (a frame of predictor values with an ``id`` column).
    """
    outcome = _outcome_of(formula)
    long = data.weighted(outcome)
    if outcome not in long.columns:
        raise InputError(data.source, f"the outcome column '{outcome}' named in the formula", column=outcome)
    try:
        full = _glm(formula, long)
        null = _glm(f"{outcome} ~ 1", long)
    except Exception as exc:  # patsy/formulaic name the missing variable
        raise InputError(data.source, f"columns for every variable in the formula {formula!r} ({exc})") from None
    p = np.asarray(full.predict(long))
    tables = pd.concat([
        _coefficient_table("Table 2", null, with_ci=False),
        _classification(long, outcome, p, cut),
        _coefficient_table("Table 4", full, with_ci=True),
        _table5(full, grid),
    ], ignore_index=True)
    return LogitFit(
        formula=formula,
        params=full.params.rename(SPSS_TERM),
        bse=full.bse.rename(SPSS_TERM),
        cov=full.cov_params().rename(index=SPSS_TERM, columns=SPSS_TERM),
        minus2ll=float(-2 * full.llf),
        minus2ll_null=float(-2 * null.llf),
        n_firms=int(long["weight"].sum()),
        converged=bool(full.converged),
        tables=tables,
        provenance=data.provenance,
        notes=tuple(_constant_outcome_note(long, outcome) + separation_notes(full.bse.rename(SPSS_TERM))),
    )


def published_tables(paper: PaperFigures | None = None) -> pd.DataFrame:
    """Tables 2-5 as printed, in the same tidy schema as a refit (plus ``decimals``)."""
    paper = paper if paper is not None else load_paper()
    rows = []
    for fig in paper.values():
        if fig.id.split(".")[0] in ("table2", "table3", "table4", "table5"):
            rows.append((fig.id, fig.table, fig.row, fig.column, fig.value, fig.decimals if fig.kind == "decimal" else 0))
    return pd.DataFrame(rows, columns=[*FIGURE_COLUMNS, "decimals"])


def compare(published: pd.DataFrame, refit: pd.DataFrame) -> pd.DataFrame:
    """Side by side on figure id: published, refit, refit - published, and whether the refit prints the same."""
    left = published.rename(columns={"value": "published"})
    right = refit[["id", "value"]].rename(columns={"value": "refit"})
    merged = left.merge(right, on="id", how="left")
    merged["difference"] = merged["refit"] - merged["published"]
    half = 0.5 * 10.0 ** -merged["decimals"].astype(float)
    merged["same_when_printed"] = (merged["difference"].abs() <= half + 1e-12)
    return merged[["id", "table", "row", "column", "published", "refit", "difference", "decimals", "same_when_printed"]]


def fit_summary(fit: LogitFit) -> dict:
    """JSON-ready essentials of a fit (coefficients, SEs, -2LL) for outputs that cite it."""
    return {
        "formula": fit.formula,
        "n_firms": fit.n_firms,
        "converged": fit.converged,
        "b": {k: float(v) for k, v in fit.params.items()},
        "se": {k: float(v) for k, v in fit.bse.items()},
        "minus2ll": fit.minus2ll,
        "minus2ll_null": fit.minus2ll_null,
        "data_provenance": fit.provenance,
        "notes": list(fit.notes),
    }




def holm(p_values) -> np.ndarray:
    """Holm's step-down adjustment of p-values for testing many hypotheses at once (statsmodels)."""
    from statsmodels.stats.multitest import multipletests

    return multipletests(np.asarray(p_values, dtype=float), method="holm")[1]
