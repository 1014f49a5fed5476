"""Item-level survey files read through a codebook: the validation layer for survey data.

A codebook (TOML) names the respondent id column, the outcome and its yes/no coding, the
covariates (numeric, or categorical with levels and a reference level) and each item's dimension,
type, levels and reverse coding. Only the id and the items are required: a measurement model needs
nothing else. ``read_survey`` reads .csv, .parquet or SPSS .sav (value labels checked against the
codebook) and returns a frozen ``SurveyData``; every refusal names the file, column and row and
what was expected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constructs import capinno_index, inegi_size
from .data import CAPINNO_COVARIATE, PROVENANCE_COLUMN, CellTable, Covariate, Design, FirmTable, open_table
from .errors import InputError, MismatchError, SpecError
from .spec import did_you_mean, read_toml

ITEM_TYPES = ("ordinal", "binary", "count", "continuous")
COLUMN_ROLES = ("firm_id", "employees", "municipality")
TOP_KEYS = {"schema_version", "columns", "outcome", "covariate", "missing", "capinno", "item"}
ITEM_KEYS = {"name", "dimension", "type", "levels", "reverse", "label", "in_capinno"}
OUTCOME_KEYS = {"column", "name", "yes", "no", "label"}
COVARIATE_KEYS = {"name", "column", "type", "levels", "labels", "reference", "label"}
CAPINNO_KEYS = {"combine", "rule", "weights"}
MISSING_KEYS = {"policy"}
MISSING_POLICIES = ("error", "listwise", "model")
NAME_PATTERN = r"[A-Za-z_][A-Za-z0-9_]*"


def _text(value) -> str:
    """A file value as text for matching codebook values: 1, 1.0 and "1" are all "1"."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


@dataclass(frozen=True)
class OutcomeColumn:
    """The 0/1 outcome: its file column, the name models and tables use, and the file values meaning yes and no."""

    column: str
    name: str
    yes: tuple[str, ...] = ("1",)
    no: tuple[str, ...] = ("0",)
    label: str = ""  # what yes means, in words

    def expected(self) -> str:
        return f"the outcome coded {'/'.join(self.yes)} = {self.label}, {'/'.join(self.no)} = not"


@dataclass(frozen=True)
class CovariateColumn:
    """A declared covariate: the file column it is read from, its file values in code order, and its meaning."""

    column: str
    covariate: Covariate
    values: tuple[str, ...] = ()  # categorical: the file value of code 0, 1, ...


@dataclass(frozen=True)
class Item:
    name: str
    dimension: str
    type: str
    levels: tuple[float, float] | None = None  # (min, max) for ordinal; None otherwise
    reverse: bool = False
    label: str = ""
    in_capinno: bool = True


@dataclass(frozen=True)
class Codebook:
    columns: dict[str, str]  # role (firm_id, employees, municipality) -> file column
    items: tuple[Item, ...]
    outcome: OutcomeColumn | None = None
    covariates: tuple[CovariateColumn, ...] = ()
    missing: str = "error"  # or "listwise", or "model" (missing item responses left out of the likelihood)
    capinno_combine: str = "mean"
    capinno_rule: str = "thirds"
    source: str = "<codebook>"

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.dimension for i in self.items if i.in_capinno))

    def dimension_items(self) -> dict[str, list[str]]:
        return {d: [i.name for i in self.items if i.dimension == d and i.in_capinno] for d in self.dimensions}

    @property
    def design(self) -> Design:
        """What the outcome models may use: the declared outcome, CAPINNO and the declared covariates."""
        outcome = self.outcome or OutcomeColumn("", "")
        return Design(outcome.name, outcome.label, (CAPINNO_COVARIATE, *(c.covariate for c in self.covariates)))

    def hash(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True)
class SurveyData:
    """A validated survey: respondent attributes, item responses (reverse-coded where the codebook says), CAPINNO.

    ``firms`` holds firm_id, the outcome (under its declared name), the covariates (categorical ones as
    codes 0, 1, ...), employees and municipality where declared, capinno_index and capinno.
    Under the "model" missing policy ``items`` keeps missing responses as NaN.
    """

    firms: pd.DataFrame
    items: pd.DataFrame  # one column per item, indexed like firms
    codebook: Codebook
    source: str
    provenance: str
    dropped: tuple[int, ...] = ()  # data rows removed by listwise deletion (1-based)

    @property
    def design(self) -> Design:
        return self.codebook.design

    @property
    def missing_responses(self) -> int:
        """Item responses left missing (the "model" policy), which the likelihood leaves out."""
        return int(self.items.isna().to_numpy().sum())

    def outcome_table(self) -> FirmTable:
        cols = ["firm_id", "size", "capinno", "activity", "internationalized"]
        return FirmTable(self.firms[cols].copy(), self.source, self.provenance)

    def cells(self) -> CellTable:
        return self.outcome_table().to_cells()


def reverse_code(values, item: Item):
    """Flip an item so that higher always means more capability (the codebook's ``reverse``)."""
    if not item.reverse:
        return values
    if item.type == "ordinal":
        return item.levels[0] + item.levels[1] - values
    if item.type == "binary":
        return 1 - values
    return -values  # counts and continuous: standardization makes the sign flip exact


def coded_items(responses: pd.DataFrame, codebook: Codebook) -> pd.DataFrame:
    """Responses as the CAPINNO construction uses them: reverse-coded per the codebook, as floats."""
    return pd.DataFrame({i.name: reverse_code(np.asarray(responses[i.name], dtype=float), i) for i in codebook.items},
                        index=responses.index)


def _check_keys(table: dict, allowed: set, where: str, path) -> None:
    for key in table:
        if key not in allowed:
            raise SpecError(f"codebook {path}: unknown key '{key}' in {where}{did_you_mean(key, allowed)}")


def measurement_roles(codebook: Codebook) -> Codebook:
    """The codebook as a measurement model reads it: the respondent id and the items only, so that respondents
    missing the outcome, a covariate or a grouping column are kept (those roles are not used)."""
    return replace(codebook, columns={"firm_id": codebook.columns["firm_id"]}, outcome=None, covariates=())


def load_codebook(path: str | Path) -> Codebook:
    """Parse and check a codebook TOML file (unknown keys and wrong types are refused)."""
    return codebook_from_dict(read_toml(path, "codebook"), source=str(path))


def _outcome_column(raw: dict | None, source: str) -> OutcomeColumn | None:
    if raw is None:
        return None
    _check_keys(raw, OUTCOME_KEYS, "[outcome]", source)
    if not isinstance(raw.get("column"), str):
        raise SpecError(f"codebook {source}: [outcome] needs 'column' (the file column holding the outcome)")
    name = raw.get("name", raw["column"])
    _identifier(name, "[outcome] name", source)
    yes, no = (tuple(_text(v) for v in _as_list(raw.get(key, [default]))) for key, default in (("yes", 1), ("no", 0)))
    if set(yes) & set(no):
        raise SpecError(f"codebook {source}: [outcome] value {sorted(set(yes) & set(no))[0]!r} is in both 'yes' and 'no'")
    return OutcomeColumn(raw["column"], name, yes, no, str(raw.get("label", name)))


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def _identifier(name, where: str, source: str) -> None:
    import re

    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise SpecError(f"codebook {source}: {where} {name!r} must be a name of letters, digits and underscores "
                        "(it is used in model formulas)")


def _covariate_column(k: int, raw: dict, source: str) -> CovariateColumn:
    where = f"[[covariate]] number {k}"
    _check_keys(raw, COVARIATE_KEYS, where, source)
    _identifier(raw.get("name"), f"{where} name", source)
    name, kind = raw["name"], raw.get("type")
    if kind not in ("numeric", "categorical"):
        raise SpecError(f"codebook {source}: covariate '{name}' needs type = 'numeric' or 'categorical', not {kind!r}")
    column, label = str(raw.get("column", name)), str(raw.get("label", ""))
    if kind == "numeric":
        for key in ("levels", "labels", "reference"):
            if key in raw:
                raise SpecError(f"codebook {source}: covariate '{name}' is numeric and takes no '{key}'")
        return CovariateColumn(column, Covariate(name, "numeric", label=label))
    levels = raw.get("levels")
    if not isinstance(levels, list) or len(levels) < 2:
        raise SpecError(f"codebook {source}: categorical covariate '{name}' needs levels = [...] (its values in the "
                        "file, at least two)")
    values = tuple(_text(v) for v in levels)
    if len(set(values)) != len(values):
        raise SpecError(f"codebook {source}: covariate '{name}' lists a level twice in 'levels'")
    labels = tuple(str(v) for v in raw.get("labels", values))
    if len(labels) != len(values):
        raise SpecError(f"codebook {source}: covariate '{name}' has {len(values)} levels but {len(labels)} labels")
    reference = _text(raw.get("reference", levels[0]))
    if reference not in values:
        raise SpecError(f"codebook {source}: covariate '{name}' reference {reference!r} is not one of its levels "
                        f"({', '.join(values)})")
    return CovariateColumn(column, Covariate(name, "categorical", labels, values.index(reference), label), values)


def _items(raw: list, source: str) -> tuple[Item, ...]:
    items = []
    for k, entry in enumerate(raw, start=1):
        _check_keys(entry, ITEM_KEYS, f"[[item]] number {k}", source)
        for key in ("name", "dimension", "type"):
            if not isinstance(entry.get(key), str) or not entry.get(key):
                raise SpecError(f"codebook {source}: [[item]] number {k} needs '{key}' as a string")
        if entry["type"] not in ITEM_TYPES:
            raise SpecError(f"codebook {source}: item '{entry['name']}' has type {entry['type']!r}; "
                            f"expected one of {', '.join(ITEM_TYPES)}{did_you_mean(entry['type'], ITEM_TYPES)}")
        levels = entry.get("levels")
        if entry["type"] == "ordinal":
            if not (isinstance(levels, list) and len(levels) == 2 and all(isinstance(v, int) for v in levels)
                    and levels[0] < levels[1] and levels[1] - levels[0] <= 10):
                raise SpecError(f"codebook {source}: ordinal item '{entry['name']}' needs levels = [min, max] (integers, "
                                "2 to 11 levels)")
            levels = (levels[0], levels[1])
        elif levels is not None:
            raise SpecError(f"codebook {source}: item '{entry['name']}' of type {entry['type']} takes no levels")
        if not isinstance(entry.get("reverse", False), bool):
            raise SpecError(f"codebook {source}: item '{entry['name']}': reverse must be true or false")
        items.append(Item(entry["name"], entry["dimension"], entry["type"], levels, entry.get("reverse", False),
                          entry.get("label", ""), entry.get("in_capinno", True)))
    if not items:
        raise SpecError(f"codebook {source}: no [[item]] entries")
    names = [i.name for i in items]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise SpecError(f"codebook {source}: item '{dup}' is listed twice")
    return tuple(items)


def codebook_from_dict(raw: dict[str, Any], *, source: str = "<codebook>") -> Codebook:
    _check_keys(raw, TOP_KEYS, "the top level", source)
    columns = raw.get("columns", {})
    if not isinstance(columns, dict):
        raise SpecError(f"codebook {source}: [columns] must be a table of role = column name")
    for old in ("activity", "size", "outcome"):
        if old in columns:
            raise SpecError(f"codebook {source}: [columns] '{old}' is no longer a column role: declare "
                            f"{'the outcome in [outcome]' if old == 'outcome' else f'{old} as a [[covariate]]'} "
                            "(see models/codebook_example.toml)")
    _check_keys(columns, set(COLUMN_ROLES), "[columns]", source)
    if "firm_id" not in columns:
        raise SpecError(f"codebook {source}: [columns] needs 'firm_id' (the column that identifies each respondent)")
    covariates = tuple(_covariate_column(k, c, source) for k, c in enumerate(raw.get("covariate", []), start=1))
    names = [c.covariate.name for c in covariates]
    if len(set(names)) != len(names) or "capinno" in names:
        dup = "capinno" if "capinno" in names else next(n for n in names if names.count(n) > 1)
        raise SpecError(f"codebook {source}: [[covariate]] name '{dup}' is "
                        f"{'built from the items' if dup == 'capinno' else 'declared twice'}")
    if "employees" in columns and not {"activity", "size"} <= set(names):
        raise SpecError(f"codebook {source}: [columns] 'employees' needs covariates 'activity' and 'size' declared "
                        "(INEGI's size bands depend on the sector)")
    missing = raw.get("missing", {})
    _check_keys(missing, MISSING_KEYS, "[missing]", source)
    policy = missing.get("policy", "error")
    if policy not in MISSING_POLICIES:
        raise SpecError(f"codebook {source}: [missing] policy must be one of {', '.join(map(repr, MISSING_POLICIES))}, "
                        f"not {policy!r}")
    capinno = raw.get("capinno", {})
    _check_keys(capinno, CAPINNO_KEYS, "[capinno]", source)
    return Codebook(dict(columns), _items(raw.get("item", []), source), _outcome_column(raw.get("outcome"), source),
                    covariates, policy, capinno.get("combine", "mean"), capinno.get("rule", "thirds"), source)


def _numeric(frame: pd.DataFrame, path: Path, col: str, expected: str) -> pd.Series:
    values = pd.to_numeric(frame[col], errors="coerce")
    bad = values.isna() & frame[col].notna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(path, expected, column=col, row=row + 1, found=frame[col].iloc[row])
    return values


def _first_bad(mask: pd.Series) -> int:
    return int(np.flatnonzero(mask.to_numpy())[0])


def read_survey(path: str | Path, codebook: Codebook | str | Path) -> SurveyData:
    """Read and validate an item-level survey file described by ``codebook``."""
    path = Path(path)
    cb = codebook if isinstance(codebook, Codebook) else load_codebook(codebook)
    frame, value_labels = open_table(path, suffixes=(".csv", ".parquet", ".sav"), as_text=False)
    return validate_survey(frame, cb, source=path, value_labels=value_labels)


def _check_columns(frame: pd.DataFrame, cb: Codebook, path: Path) -> None:
    derived = {c.column for c in cb.covariates if c.covariate.name == "size"} if "employees" in cb.columns else set()
    named = [(f"the {role} column", col) for role, col in cb.columns.items()]
    named += [("the outcome column", cb.outcome.column)] if cb.outcome else []
    named += [(f"the column of covariate '{c.covariate.name}'", c.column) for c in cb.covariates
              if c.column not in derived]
    for what, col in named:
        if col not in frame.columns:
            raise MismatchError(path, f"{what} ('{col}', as the codebook names it){did_you_mean(col, frame.columns)}",
                                column=col)
    for item in cb.items:
        if item.name not in frame.columns:
            raise MismatchError(path, f"item '{item.name}' listed in the codebook ({item.dimension})"
                                f"{did_you_mean(item.name, frame.columns)}", column=item.name)


def _drop_missing(frame: pd.DataFrame, cb: Codebook, path: Path) -> tuple[pd.DataFrame, tuple[int, ...], np.ndarray]:
    """Refuse missing values, or (listwise) drop their firms: (kept rows, dropped data rows, file row of each kept row).

    Under the "model" policy missing item responses stay (the likelihood leaves them out); respondents
    missing the id, the outcome or a covariate are dropped, as under "listwise".
    """
    used = list(cb.columns.values()) + ([cb.outcome.column] if cb.outcome else [])
    used += [c.column for c in cb.covariates if c.column in frame.columns]
    used += [] if cb.missing == "model" else [i.name for i in cb.items]
    missing = frame[used].isna()
    dropped: tuple[int, ...] = ()
    if missing.to_numpy().any():
        rows = np.flatnonzero(missing.any(axis=1).to_numpy())
        if cb.missing == "error":
            cells = [f"{col} row {r + 1}" for r in rows[:5] for col in np.array(used)[missing.iloc[r].to_numpy()]]
            more = f" and {missing.to_numpy().sum() - len(cells)} more" if missing.to_numpy().sum() > len(cells) else ""
            first_col = np.array(used)[missing.iloc[rows[0]].to_numpy()][0]
            raise InputError(path, f"no missing values (missing: {', '.join(cells)}{more}); set "
                             "[missing] policy = 'listwise' in the codebook to drop such firms, or 'model' to "
                             "leave missing item responses out of the likelihood",
                             column=str(first_col), row=int(rows[0]) + 1)
        dropped = tuple(int(r) + 1 for r in rows)
        frame = frame.drop(index=frame.index[rows])
    frame = frame.reset_index(drop=True)
    row_of = (np.array([r for r in range(1, len(frame) + len(dropped) + 1) if r not in set(dropped)])
              if dropped else np.arange(1, len(frame) + 1))
    return frame, dropped, row_of


@dataclass(frozen=True)
class _Rows:
    """Where a kept row came from in the file, for errors that name it."""

    frame: pd.DataFrame
    path: Path
    row_of: np.ndarray

    def fail(self, col: str, expected: str, i: int, found=None):
        raise InputError(self.path, expected, column=col, row=int(self.row_of[i]),
                         found=self.frame[col].iloc[i] if found is None else found)

    def coded(self, col: str, values: tuple[str, ...], expected: str, codes=None) -> np.ndarray:
        """The column's file values as codes 0, 1, ... in the order of ``values`` (or ``codes``)."""
        text = self.frame[col].map(_text)
        bad = ~text.isin(values)
        if bad.any():
            self.fail(col, expected, _first_bad(bad))
        lookup = dict(zip(values, codes if codes is not None else range(len(values))))
        return text.map(lookup).to_numpy().astype(np.int64)


def _check_value_labels(rows: _Rows, col: CovariateColumn, value_labels: dict) -> None:
    """SPSS value labels of a categorical covariate must agree with the codebook's labels."""
    if col.column not in value_labels:
        return
    file_labels = {_text(k): v for k, v in value_labels[col.column].items()}
    for value, text in zip(col.values, col.covariate.labels):
        found = file_labels.get(value)
        if found is not None and str(found).strip().lower() != text.lower():
            raise MismatchError(rows.path, f"value label {value} = '{text}' as the codebook says", column=col.column,
                                found=f"{value} = '{found}'")


def _covariate(rows: _Rows, col: CovariateColumn, value_labels: dict) -> np.ndarray:
    cov = col.covariate
    if cov.type == "numeric":
        return _numeric(rows.frame, rows.path, col.column, f"a number (covariate '{cov.name}')").to_numpy(dtype=float)
    _check_value_labels(rows, col, value_labels)
    levels = ", ".join(f"{v} {lab}" if v != lab else v for v, lab in zip(col.values, cov.labels))
    return rows.coded(col.column, col.values, f"a level of covariate '{cov.name}' ({levels})")


def _size(rows: _Rows, cb: Codebook, firms: pd.DataFrame, employees: pd.Series) -> np.ndarray:
    """Size codes as given, checked against INEGI's bands from employees and activity; else derived from them."""
    path, size_col = rows.path, next(c for c in cb.covariates if c.covariate.name == "size")
    derived = None
    try:
        derived = inegi_size(employees, firms["activity"], firm_ids=firms["firm_id"], file=str(path))
    except InputError as exc:
        raise InputError(path, exc.expected, column=exc.column, row=int(rows.row_of[exc.row - 1]),
                         found=exc.found) from None
    if size_col.column not in rows.frame.columns:
        return derived
    size = firms["size"].to_numpy()
    bad = pd.Series(derived != size)
    if bad.any():
        i = _first_bad(bad)
        rows.fail(size_col.column, f"size {derived[i]} as INEGI Table 1 gives for {employees.iloc[i]} employees", i,
                  rows.frame[size_col.column].iloc[i])
    return size


def _firm_columns(rows: _Rows, cb: Codebook, value_labels: dict) -> pd.DataFrame:
    frame, path, roles = rows.frame, rows.path, cb.columns
    firms = pd.DataFrame({"firm_id": frame[roles["firm_id"]].astype(str).str.strip()})
    dup = firms["firm_id"].duplicated()
    if dup.any():
        i = _first_bad(dup)
        rows.fail(roles["firm_id"], "a unique firm id (this id appears on an earlier row)", i, firms["firm_id"].iloc[i])
    for col in cb.covariates:
        if col.column in frame.columns:
            firms[col.covariate.name] = _covariate(rows, col, value_labels)
    if "employees" in roles:
        employees = _numeric(frame, path, roles["employees"], "a whole number of employees")
        if (employees != employees.round()).any():
            rows.fail(roles["employees"], "a whole number of employees", _first_bad(employees != employees.round()))
        firms["employees"] = employees.astype(np.int64).to_numpy()
        firms["size"] = _size(rows, cb, firms, firms["employees"])
    if "municipality" in roles:
        firms["municipality"] = frame[roles["municipality"]].astype(str).str.strip().to_numpy()
    if cb.outcome:
        out = cb.outcome
        firms[out.name] = rows.coded(out.column, out.yes + out.no, out.expected(), [1] * len(out.yes) + [0] * len(out.no))
    return firms


def _item_responses(rows: _Rows, cb: Codebook) -> pd.DataFrame:
    items = {}
    for item in cb.items:
        values = _numeric(rows.frame, rows.path, item.name, f"a numeric response ({item.type} item)")
        given = values.notna()
        if item.type in ("ordinal", "binary", "count"):
            bad = given & (values != values.round())
            if bad.any():
                rows.fail(item.name, f"a whole-number response ({item.type} item)", _first_bad(bad))
        if item.type == "ordinal":
            lo, hi = item.levels
            bad = given & ((values < lo) | (values > hi))
            if bad.any():
                rows.fail(item.name, f"a code from {lo} to {hi} (ordinal item)", _first_bad(bad))
        elif item.type == "binary":
            bad = given & ~values.isin([0, 1])
            if bad.any():
                rows.fail(item.name, "0 (no) or 1 (yes) (binary item)", _first_bad(bad))
        elif item.type == "count" and (given & (values < 0)).any():
            rows.fail(item.name, "a non-negative count", _first_bad(given & (values < 0)))
        items[item.name] = values.to_numpy(dtype=float)
    return coded_items(pd.DataFrame(items), cb)


def unused_levels(survey: "SurveyData") -> dict[str, list[int]]:
    """Per ordinal item, the levels no respondent chose (kept in the model: their cutpoints rest on the prior)."""
    out = {}
    for item in survey.codebook.items:
        if item.type == "ordinal" and item.in_capinno:
            chosen = set(survey.items[item.name].dropna().astype(int))
            unused = [v for v in range(item.levels[0], item.levels[1] + 1) if v not in chosen]
            if unused:
                out[item.name] = unused
    return out


def validate_survey(frame: pd.DataFrame, cb: Codebook, *, source: str | Path,
                    value_labels: dict | None = None) -> SurveyData:
    """Validate a survey table already in memory (``source`` names it in errors)."""
    path = Path(source) if not isinstance(source, Path) else source
    _check_columns(frame, cb, path)
    kept, dropped, row_of = _drop_missing(frame.copy(), cb, path)
    rows = _Rows(kept, path, row_of)
    firms = _firm_columns(rows, cb, value_labels or {})
    items = _item_responses(rows, cb)
    index = capinno_index(items, cb.dimension_items(), combine=cb.capinno_combine, rule=cb.capinno_rule,
                          file=str(path), allow_missing=cb.missing == "model")
    firms["capinno_index"] = index["capinno_index"].to_numpy()
    firms["capinno"] = index["capinno"].to_numpy().astype(np.int64)
    provenance = str(kept[PROVENANCE_COLUMN].iloc[0]) if PROVENANCE_COLUMN in kept.columns else "user survey"
    return SurveyData(firms, items, cb, str(path), provenance, dropped)
