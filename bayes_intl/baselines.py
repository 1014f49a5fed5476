"""A study's frequentist logit refit, SPSS-style (its constant-only block, classification table,
coefficients and predicted probabilities), with statsmodels.

statsmodels is imported here and nowhere else. Cell counts are fitted as a frequency-weighted
binomial GLM (each cell as an outcome-1 and an outcome-0 row); firm rows are fitted unweighted.
Both give the same estimates and standard errors on the same data (tested to 1e-8).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf  # not statsmodels.api: a second's import of every model for one GLM
from statsmodels.genmod.families import Binomial
from scipy import stats

from .data import OutcomeData
from .errors import InputError
from .study import CONSTANT, Study, load_study

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
    predicted_table: str = "Table 5"  # the name of the predicted-probability rows in ``tables``

    def table(self, name: str) -> pd.DataFrame:
        return self.tables[self.tables["table"] == name].reset_index(drop=True)


def formula_name(name: str) -> str:
    """A column name as a formula term (``Q('class')`` for a Python keyword)."""
    import keyword

    return f"Q('{name}')" if keyword.iskeyword(name) else name


def study_formula(study: Study) -> str:
    """The paper's logit as a patsy formula over the cell or firm columns (codes), terms in the printed order."""
    parts = []
    order = dict.fromkeys(t.term.split("[")[0] for t in study.terms if t.term != CONSTANT)  # as the coefficients table lists them
    for p in sorted(study.predictors, key=lambda p: list(order).index(p.name)):
        if p.coding == "linear" or (p.codes == (0, 1) and p.code(p.reference) == 0):
            parts.append(formula_name(p.name))  # a 0/1 dummy is its own indicator (and keeps the printed term order)
        else:
            parts.append(f"C({formula_name(p.name)}, Treatment({p.code(p.reference)}))")
    return f"{study.outcome} ~ " + " + ".join(parts)


def patsy_names(study: Study) -> dict[str, str]:
    """statsmodels' parameter names -> this study's terms (``C(activity, Treatment(0))[T.1]`` -> ``activity[IT]``)."""
    names = {"Intercept": CONSTANT}
    for p in study.predictors:
        if p.coding == "linear":
            names[formula_name(p.name)] = p.name
        else:
            names[formula_name(p.name)] = f"{p.name}[{p.labels[p.codes.index(1)]}]" if 1 in p.codes else p.name
            for lab in p.labels:
                names[f"C({formula_name(p.name)}, Treatment({p.code(p.reference)}))[T.{p.code(lab)}]"] = f"{p.name}[{lab}]"
    return names


def _outcome_of(formula: str) -> str:
    if "~" not in formula:
        raise ValueError(f"formula {formula!r} needs an outcome: 'outcome ~ predictors'")
    return formula.split("~", 1)[0].strip()


def _glm(formula: str, long: pd.DataFrame):
    """A frequency-weighted binomial GLM. statsmodels' separation warnings are dropped: ``separation_notes``
    says the same in one plain line per term."""
    import warnings

    from statsmodels.tools.sm_exceptions import PerfectSeparationWarning

    model = smf.glm(formula, data=long, family=Binomial(), freq_weights=long["weight"].to_numpy())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerfectSeparationWarning)
        return model.fit()


def _rows(table: str, entries: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame([(i, table, r, c, float(v)) for i, r, c, v in entries], columns=FIGURE_COLUMNS)


def _names(study: Study) -> dict[str, str]:
    """statsmodels' parameter names -> the keys of the study's figure ids (``Capinno``, ``Activity``, ``Constant``)."""
    key = {t.term: t.id.split(".", 1)[1] for t in study.terms}
    names = {param: key[term] for param, term in patsy_names(study).items() if term in key}
    for p in study.predictors:
        if len(p.terms()) == 1:
            names.setdefault(p.name, key[p.terms()[0]])
            names[p.name] = names.get(p.name, key[p.terms()[0]])
    return names


def _coefficient_table(prefix: str, table: str, result, names: dict[str, str], *, with_ci: bool) -> pd.DataFrame:
    entries = []
    for name in result.params.index:
        term = names.get(name, name)
        b, se = result.params[name], result.bse[name]
        with np.errstate(over="ignore"):  # a separated term's odds ratio and CI overflow to inf
            wald = (b / se) ** 2
            values = {"b": b, "se": se, "wald": wald, "df": 1, "sig": stats.chi2.sf(wald, 1), "exp_b": np.exp(b)}
            if with_ci and term != "Constant":
                values |= {"ci_lower": np.exp(b - Z975 * se), "ci_upper": np.exp(b + Z975 * se)}
        entries += [(f"{prefix}.{term}.{col}", term, col, v) for col, v in values.items()]
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


def _classification(long: pd.DataFrame, outcome: str, p: np.ndarray, study: Study) -> pd.DataFrame:
    predicted = p > study.cut
    w, y = long["weight"].to_numpy(), long[outcome].to_numpy() == 1
    no_no, no_yes = w[~y & ~predicted].sum(), w[~y & predicted].sum()
    yes_no, yes_yes = w[y & ~predicted].sum(), w[y & predicted].sum()
    prefix = study.classification or "classification"
    table = study[f"{prefix}.no.no"].table if study.classification else "Classification table"
    return _rows(table, [
        (f"{prefix}.no.no", "observed No", "predicted No", no_no),
        (f"{prefix}.no.yes", "observed No", "predicted Yes", no_yes),
        (f"{prefix}.yes.no", "observed Yes", "predicted No", yes_no),
        (f"{prefix}.yes.yes", "observed Yes", "predicted Yes", yes_yes),
        (f"{prefix}.no.pct", "observed No", "% correct (specificity)", 100 * no_no / max(no_no + no_yes, 1)),
        (f"{prefix}.yes.pct", "observed Yes", "% correct (sensitivity)", 100 * yes_yes / max(yes_no + yes_yes, 1)),
        (f"{prefix}.overall.pct", "overall", "% correct", 100 * (no_no + yes_yes) / w.sum()),
    ])


def study_grid(study: Study | None = None) -> pd.DataFrame:
    """The study's main predicted-probability table as cells: id, each predictor's code and ``<name>_label``."""
    study = study if study is not None else load_study()
    rows = [{"id": c.id, **study.at_codes(c.at), **{f"{k}_label": v for k, v in c.at.items()}}
            for c in study.table_cells()]
    names = [p.name for p in study.predictors]
    return pd.DataFrame(rows, columns=["id", *names, *(f"{n}_label" for n in names)])


def _predicted(result, study: Study, grid: pd.DataFrame | None = None) -> pd.DataFrame:
    """Predicted probabilities at the study's table cells, or at ``grid``'s cells (rows named by its id)."""
    if grid is not None:
        table = study.predicted_table or "Predicted probabilities"
        return _rows(table, [(i, i, "", v) for i, v in zip(grid["id"], np.asarray(result.predict(grid)))])
    cells = study.table_cells()
    if not cells:
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    grid = study_grid(study)
    try:
        p = np.asarray(result.predict(grid))
    except Exception:  # a formula over other variables has no predicted-probability table
        return pd.DataFrame(columns=FIGURE_COLUMNS)
    return _rows(study[cells[0].id].table, [(c.id, study[c.id].row, study[c.id].column, v) for c, v in zip(cells, p)])


def fit_logit(data: OutcomeData, *, study: Study | None = None, formula: str | None = None,
              grid: pd.DataFrame | None = None) -> LogitFit:
    """Fit the logit ``formula`` (default: the study's) and build its tables as SPSS prints them.

    ``formula`` is a statsmodels/patsy formula over the data's columns, e.g.
    ``internationalized ~ capinno + activity + C(size)`` for size as two dummies. The predicted
    probabilities are at the study's table cells, or at ``grid``'s (a frame of predictor values with
    an ``id`` column). Terms are named by the study's figure ids (``Capinno``, ``Activity``, ``Constant``).
    """
    study = study if study is not None else load_study()
    formula = formula or study_formula(study)
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
    names = _names(study)
    coef_prefix = study.terms[0].id.split(".", 1)[0]
    constant_prefix = (study.constant_only or "constant_only.Constant").rsplit(".", 1)[0]
    constant_table = study[f"{study.constant_only}.b"].table if study.constant_only else "Constant only"
    tables = pd.concat([
        _coefficient_table(constant_prefix, constant_table, null, names, with_ci=False),
        _classification(long, outcome, p, study),
        _coefficient_table(coef_prefix, study.coefficient_table, full, names, with_ci=True),
        _predicted(full, study, grid),
    ], ignore_index=True)
    return LogitFit(
        formula=formula,
        params=full.params.rename(names),
        bse=full.bse.rename(names),
        cov=full.cov_params().rename(index=names, columns=names),
        minus2ll=float(-2 * full.llf),
        minus2ll_null=float(-2 * null.llf),
        n_firms=int(long["weight"].sum()),
        converged=bool(full.converged),
        tables=tables,
        provenance=data.provenance,
        notes=tuple(_constant_outcome_note(long, outcome) + separation_notes(full.bse.rename(names))),
        predicted_table=study.predicted_table or "Predicted probabilities",
    )


def published_tables(study: Study | None = None) -> pd.DataFrame:
    """The study's logit tables as printed, in the same tidy schema as a refit (plus ``decimals``)."""
    study = study if study is not None else load_study()
    rows = [(f.id, f.table, f.row, f.column, f.value, f.decimals if f.kind in ("decimal", "probability") else 0)
            for f in study.logit_figures()]
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


PRINTED_DECIMALS = {"b": 3, "se": 3, "wald": 3, "sig": 3, "exp_b": 3, "ci_lower": 3, "ci_upper": 3, "pct": 1, "p": 2}
_TABLES = {"constant_only": "Table 2", "classification": "Table 3", "coefficient": "Table 4", "predicted": "Table 5"}


def _printed(value: float, decimals: int) -> str:
    text = f"{value:.{decimals}f}"
    return text[1:] if text.startswith("-") and float(text) == 0 else text  # SPSS never prints -0.000


def _study_skeleton(raw: dict) -> dict:
    """A study with every printed figure still to fill (zeros), for the refit to name its rows."""
    from .study import parse_study

    out = {k: v for k, v in raw.items() if k in ("schema_version", "study", "outcome", "predictor")}
    out["constant_only"] = {"table": _TABLES["constant_only"], "b": "0", "se": "1"}
    out["classification"] = {"table": _TABLES["classification"], "cut": "0.5",
                             **{k: "0" for k in ("no_no", "no_yes", "yes_no", "yes_yes")}}
    rows = []
    for p in raw["predictor"]:
        printed = p.get("printed", p["name"])
        if p.get("coding", "indicator") == "linear":
            rows.append({"table": _TABLES["coefficient"], "row": printed, "term": p["name"]})
        else:
            others = [lab for lab in p["labels"] if lab != p.get("reference", p["labels"][0])]
            rows += [{"table": _TABLES["coefficient"], "row": f"{printed}({i})", "term": f"{p['name']}[{lab}]"}
                     for i, lab in enumerate(others, start=1)]
    rows.append({"table": _TABLES["coefficient"], "row": "Constant", "term": "Constant"})
    out["coefficient"] = [{**r, "b": "0", "se": "1"} for r in rows]
    predicted = []
    for levels in itertools.product(*[p["labels"] for p in raw["predictor"]]):
        at = dict(zip([p["name"] for p in raw["predictor"]], levels))
        predicted.append({"table": _TABLES["predicted"], "row": " / ".join(levels[:-1]) or levels[-1],
                          "column": levels[-1] if len(levels) > 1 else "P(Y=1)", "at": at, "p": "0"})
    out["predicted"] = predicted
    parse_study(out, "<skeleton>")  # refuses a bad skeleton before anything is fitted
    return out


def printed_study(data: OutcomeData, raw: dict) -> dict:
    """A study file's content printed from the logit fitted to known rows, as SPSS and a paper print it.

    ``raw`` holds the study's [study], [outcome] and [[predictor]] tables (the coding the "paper"
    used); the result adds the constant-only block, the classification table at 0.5, the
    coefficients (B, SE, Wald, df, Sig. and Exp(B) to 3 decimals, with the 95% CI), predicted
    probabilities at every cell (2 decimals) and the sample's margins, all as printed strings.
    """
    from .study import parse_study

    out = _study_skeleton(raw)
    study = parse_study(out, "<skeleton>")
    fit = fit_logit(data, study=study)
    values = dict(zip(fit.tables["id"], fit.tables["value"]))

    def fill(entry: dict, prefix: str, columns) -> dict:
        for col in columns:
            if f"{prefix}.{col}" in values:
                value = values[f"{prefix}.{col}"]
                entry[col] = str(int(value)) if col == "df" else _printed(value, PRINTED_DECIMALS[col])
        return entry

    fill(out["constant_only"], study.constant_only, ("b", "se", "wald", "df", "sig", "exp_b"))
    cls = out["classification"]
    for key in ("no_no", "no_yes", "yes_no", "yes_yes"):
        cls[key] = str(int(values[f"{study.classification}.{key.replace('_', '.')}"]))
    for key in ("no_pct", "yes_pct", "overall_pct"):
        cls[key] = _printed(values[f"{study.classification}.{key.replace('_', '.')}"], PRINTED_DECIMALS["pct"])
    for entry, term in zip(out["coefficient"], study.terms):
        fill(entry, term.id, ("b", "se", "wald", "df", "sig", "exp_b", "ci_lower", "ci_upper"))
    for entry, cell in zip(out["predicted"], study.predicted):
        entry["p"] = _printed(values[cell.id], PRINTED_DECIMALS["p"])
    long = data.weighted(study.outcome)
    w = long["weight"].to_numpy()
    margins = [{"id": "sample.n", "table": "Sample", "row": f"{study.units} analysed", "column": "count",
                "count": str(int(w.sum()))}]
    for p in study.predictors:
        for lab, code in zip(p.labels, p.codes):
            margins.append({"id": f"sample.{p.name}.{lab}", "table": "Sample", "row": f"{study.units} analysed",
                            "column": f"{p.printed} = {lab}", "count": str(int(w[long[p.name] == code].sum())),
                            "predictor": p.name, "level": lab})
    margins.append({"id": f"sample.{study.outcome}", "table": "Sample", "row": f"{study.units} analysed",
                    "column": f"{study.outcome} = 1", "count": str(int(w[long[study.outcome] == 1].sum())),
                    "outcome": "yes"})
    out["margin"] = margins
    parse_study(out, "<printed>")
    return out




def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} to a study file")


def dump_study(raw: Mapping[str, Any], header: str = "") -> str:
    """A study (as ``study.parse_study`` reads it, e.g. from :func:`printed_study`) as TOML text."""
    from .study import _KEYS, SCHEMA_VERSION

    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"schema_version = {raw.get('schema_version', SCHEMA_VERSION)}")
    for key in _KEYS["top"][1:]:
        if key not in raw:
            continue
        entries = raw[key] if isinstance(raw[key], list) else [raw[key]]
        for entry in entries:
            lines += ["", f"[[{key}]]" if isinstance(raw[key], list) else f"[{key}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"
