"""Item-level survey files read through a codebook: the validation layer for survey data.

A codebook (TOML) names each column's role (firm id, activity, size or employees, municipality,
outcome) and each item's dimension, type, levels and reverse coding. ``read_survey`` reads .csv,
.parquet or SPSS .sav (value labels checked against the codebook) and returns a frozen
``SurveyData``; every refusal names the file, column and row and what was expected.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constructs import capinno_index, inegi_size
from .data import PROVENANCE_COLUMN, CellTable, FirmTable, open_table
from .errors import InputError, MismatchError, SpecError
from .spec import did_you_mean, read_toml

ITEM_TYPES = ("ordinal", "binary", "count", "continuous")
COLUMN_ROLES = ("firm_id", "activity", "size", "employees", "municipality", "outcome")
TOP_KEYS = {"schema_version", "columns", "activity_labels", "missing", "capinno", "item"}
ITEM_KEYS = {"name", "dimension", "type", "levels", "reverse", "label", "in_capinno"}
CAPINNO_KEYS = {"combine", "rule", "weights"}
MISSING_KEYS = {"policy"}


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
    columns: dict[str, str]
    items: tuple[Item, ...]
    activity_labels: dict[int, str] = field(default_factory=lambda: {0: "MM", 1: "IT"})
    missing: str = "error"  # or "listwise"
    capinno_combine: str = "mean"
    capinno_rule: str = "thirds"
    source: str = "<codebook>"

    @property
    def dimensions(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(i.dimension for i in self.items if i.in_capinno))

    def dimension_items(self) -> dict[str, list[str]]:
        return {d: [i.name for i in self.items if i.dimension == d and i.in_capinno] for d in self.dimensions}

    def hash(self) -> str:
        return hashlib.sha256(repr(self).encode()).hexdigest()


@dataclass(frozen=True)
class SurveyData:
    """A validated survey: firm attributes, item responses (reverse-coded where the codebook says), CAPINNO."""

    firms: pd.DataFrame  # firm_id, activity, size, employees?, municipality?, internationalized?, capinno_index, capinno
    items: pd.DataFrame  # one column per item, indexed like firms
    codebook: Codebook
    source: str
    provenance: str
    dropped: tuple[int, ...] = ()  # data rows removed by listwise deletion (1-based)

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


def load_codebook(path: str | Path) -> Codebook:
    """Parse and check a codebook TOML file (unknown keys and wrong types are refused)."""
    return codebook_from_dict(read_toml(path, "codebook"), source=str(path))


def codebook_from_dict(raw: dict[str, Any], *, source: str = "<codebook>") -> Codebook:
    _check_keys(raw, TOP_KEYS, "the top level", source)
    columns = raw.get("columns", {})
    if not isinstance(columns, dict):
        raise SpecError(f"codebook {source}: [columns] must be a table of role = column name")
    _check_keys(columns, set(COLUMN_ROLES), "[columns]", source)
    if "firm_id" not in columns:
        raise SpecError(f"codebook {source}: [columns] needs 'firm_id' (the column that identifies each respondent)")
    if "employees" in columns and "activity" not in columns:
        raise SpecError(f"codebook {source}: [columns] 'employees' needs 'activity' too (INEGI's size bands depend "
                        "on the sector)")
    missing = raw.get("missing", {})
    _check_keys(missing, MISSING_KEYS, "[missing]", source)
    policy = missing.get("policy", "error")
    if policy not in ("error", "listwise"):
        raise SpecError(f"codebook {source}: [missing] policy must be 'error' or 'listwise', not {policy!r}")
    capinno = raw.get("capinno", {})
    _check_keys(capinno, CAPINNO_KEYS, "[capinno]", source)
    items = []
    for k, entry in enumerate(raw.get("item", []), start=1):
        _check_keys(entry, ITEM_KEYS, f"[[item]] number {k}", source)
        for key in ("name", "dimension", "type"):
            if not isinstance(entry.get(key), str):
                raise SpecError(f"codebook {source}: [[item]] number {k} needs '{key}' as a string")
        if entry["type"] not in ITEM_TYPES:
            raise SpecError(f"codebook {source}: item '{entry['name']}' has type {entry['type']!r}; "
                            f"expected one of {', '.join(ITEM_TYPES)}{did_you_mean(entry['type'], ITEM_TYPES)}")
        levels = entry.get("levels")
        if entry["type"] == "ordinal":
            if not (isinstance(levels, list) and len(levels) == 2 and all(isinstance(v, int) for v in levels)
                    and levels[0] < levels[1]):
                raise SpecError(f"codebook {source}: ordinal item '{entry['name']}' needs levels = [min, max] (integers)")
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
    labels = {int(k): str(v) for k, v in raw.get("activity_labels", {"0": "MM", "1": "IT"}).items()}
    return Codebook(dict(columns), tuple(items), labels, policy, capinno.get("combine", "mean"),
                    capinno.get("rule", "thirds"), source)


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
    for role, col in cb.columns.items():
        if col not in frame.columns:
            raise MismatchError(path, f"the {role} column '{col}' named in the codebook{did_you_mean(col, frame.columns)}",
                                column=col)
    for item in cb.items:
        if item.name not in frame.columns:
            raise MismatchError(path, f"item '{item.name}' listed in the codebook ({item.dimension})"
                                f"{did_you_mean(item.name, frame.columns)}", column=item.name)


def _drop_missing(frame: pd.DataFrame, cb: Codebook, path: Path) -> tuple[pd.DataFrame, tuple[int, ...], np.ndarray]:
    """Refuse missing values, or (listwise) drop their firms: (kept rows, dropped data rows, file row of each kept row)."""
    used = list(cb.columns.values()) + [i.name for i in cb.items]
    missing = frame[used].isna()
    dropped: tuple[int, ...] = ()
    if missing.to_numpy().any():
        rows = np.flatnonzero(missing.any(axis=1).to_numpy())
        if cb.missing == "error":
            cells = [f"{col} row {r + 1}" for r in rows[:5] for col in np.array(used)[missing.iloc[r].to_numpy()]]
            more = f" and {missing.to_numpy().sum() - len(cells)} more" if missing.to_numpy().sum() > len(cells) else ""
            first_col = np.array(used)[missing.iloc[rows[0]].to_numpy()][0]
            raise InputError(path, f"no missing values (missing: {', '.join(cells)}{more}); set "
                             "[missing] policy = 'listwise' in the codebook to drop such firms",
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

    def codes(self, col: str, allowed, expected: str) -> pd.Series:
        values = _numeric(self.frame, self.path, col, expected)
        bad = ~values.isin(list(allowed))
        if bad.any():
            self.fail(col, expected, _first_bad(bad))
        return values


def _activity(rows: _Rows, cb: Codebook, value_labels: dict) -> np.ndarray:
    act_col = cb.columns["activity"]
    if act_col in value_labels:  # SPSS value labels must agree with the codebook
        for code, text in cb.activity_labels.items():
            file_label = value_labels[act_col].get(float(code), value_labels[act_col].get(code))
            if file_label is not None and str(file_label).strip().lower() != text.lower():
                raise MismatchError(rows.path, f"value label {code} = '{text}' as the codebook says", column=act_col,
                                    found=f"{code} = '{file_label}'")
    _numeric(rows.frame, rows.path, act_col,
             f"an activity code ({', '.join(f'{k} {v}' for k, v in cb.activity_labels.items())})")
    return rows.codes(act_col, cb.activity_labels, f"an activity code in {sorted(cb.activity_labels)}") \
        .astype(np.int64).to_numpy()


def _size(rows: _Rows, cb: Codebook, firms: pd.DataFrame) -> np.ndarray:
    """Size codes as given, checked against INEGI's bands when employees are given too; else derived."""
    path = rows.path
    if "size" not in cb.columns:
        try:
            return inegi_size(firms["employees"], firms["activity"], firm_ids=firms["firm_id"], file=str(path))
        except InputError as exc:
            raise InputError(path, exc.expected, column=exc.column, row=int(rows.row_of[exc.row - 1]),
                             found=exc.found) from None
    size_col = cb.columns["size"]
    size = rows.codes(size_col, [0, 1, 2], "a size code (0 micro, 1 small, 2 medium)").astype(np.int64).to_numpy()
    if "employees" in firms:
        derived = inegi_size(firms["employees"], firms["activity"], firm_ids=firms["firm_id"], file=str(path))
        bad = pd.Series(derived != size)
        if bad.any():
            i = _first_bad(bad)
            rows.fail(size_col, f"size {derived[i]} as INEGI Table 1 gives for {firms['employees'].iloc[i]} employees",
                      i, int(size[i]))
    return size


def _firm_columns(rows: _Rows, cb: Codebook, value_labels: dict) -> pd.DataFrame:
    frame, path, roles = rows.frame, rows.path, cb.columns
    firms = pd.DataFrame({"firm_id": frame[roles["firm_id"]].astype(str).str.strip()})
    dup = firms["firm_id"].duplicated()
    if dup.any():
        i = _first_bad(dup)
        rows.fail(roles["firm_id"], "a unique firm id (this id appears on an earlier row)", i, firms["firm_id"].iloc[i])
    if "activity" in roles:
        firms["activity"] = _activity(rows, cb, value_labels)
    if "employees" in roles:
        employees = _numeric(frame, path, roles["employees"], "a whole number of employees")
        if (employees != employees.round()).any():
            rows.fail(roles["employees"], "a whole number of employees", _first_bad(employees != employees.round()))
        firms["employees"] = employees.astype(np.int64).to_numpy()
    if "size" in roles or "employees" in roles:
        firms["size"] = _size(rows, cb, firms)
    if "municipality" in roles:
        firms["municipality"] = frame[roles["municipality"]].astype(str).str.strip().to_numpy()
    if "outcome" in roles:
        expected = "the outcome coded 1 = internationalized, 0 = not"
        firms["internationalized"] = rows.codes(roles["outcome"], [0, 1], expected).astype(np.int64).to_numpy()
    return firms


def _item_responses(rows: _Rows, cb: Codebook) -> pd.DataFrame:
    items = {}
    for item in cb.items:
        values = _numeric(rows.frame, rows.path, item.name, f"a numeric response ({item.type} item)")
        if item.type in ("ordinal", "binary", "count"):
            bad = values != values.round()
            if bad.any():
                rows.fail(item.name, f"a whole-number response ({item.type} item)", _first_bad(bad))
        if item.type == "ordinal":
            lo, hi = item.levels
            bad = (values < lo) | (values > hi)
            if bad.any():
                rows.fail(item.name, f"a code from {lo} to {hi} (ordinal item)", _first_bad(bad))
        elif item.type == "binary":
            if (~values.isin([0, 1])).any():
                rows.fail(item.name, "0 (no) or 1 (yes) (binary item)", _first_bad(~values.isin([0, 1])))
        elif item.type == "count" and (values < 0).any():
            rows.fail(item.name, "a non-negative count", _first_bad(values < 0))
        items[item.name] = values.to_numpy(dtype=float)
    return coded_items(pd.DataFrame(items), cb)


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
                          file=str(path))
    firms["capinno_index"] = index["capinno_index"].to_numpy()
    firms["capinno"] = index["capinno"].to_numpy().astype(np.int64)
    provenance = str(kept[PROVENANCE_COLUMN].iloc[0]) if PROVENANCE_COLUMN in kept.columns else "user survey"
    return SurveyData(firms, items, cb, str(path), provenance, dropped)
