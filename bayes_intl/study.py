"""Studies: a published logistic regression described in one TOML file, read and checked here.

A study file holds the citation, the outcome, each predictor with its levels and its coding as the
paper used it, and every printed figure (the constant-only block, the classification table, the
coefficients, predicted probabilities, the sample's margins, other text figures) as a string with
its table, row and column, so that every comparison can cite it and knows its rounding.
The audit, the refit, the reconstruction and the report read a :class:`Study`; none knows a paper.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import numpy as np
import pandas as pd

from .claims import CLAIM_KEYS, Claim, parse_claims
from .errors import SpecError

SCHEMA_VERSION = 1
CONSTANT = "Constant"
DEFAULT_STUDY = "sonora"
COEFFICIENT_COLUMNS = ("b", "se", "wald", "df", "sig", "exp_b", "ci_lower", "ci_upper")
CLASSIFICATION_KEYS = ("no_no", "no_yes", "yes_no", "yes_yes", "no_pct", "yes_pct", "overall_pct")
_KEYS = {
    "top": ("schema_version", "study", "outcome", "predictor", "constant_only", "classification", "coefficient",
            "predicted", "margin", "figure", "check", "claim"),
    "study": ("id", "title", "citation", "data", "unit", "units", "reconstruction", "stated_link",
              "stated_link_quote", "stated_link_source"),
    "outcome": ("name", "label", "no_label"),
    "predictor": ("name", "printed", "label", "labels", "codes", "coding", "reference", "banded", "group"),
    "constant_only": ("table", "row", "id", *COEFFICIENT_COLUMNS[:6]),
    "classification": ("table", "cut", "no", "yes", *CLASSIFICATION_KEYS),
    "coefficient": ("table", "row", "term", "id", *COEFFICIENT_COLUMNS),
    "predicted": ("table", "row", "column", "at", "p", "id", "note"),
    "margin": ("table", "row", "column", "count", "id", "predictor", "level", "outcome", "note"),
    "figure": ("id", "printed", "table", "row", "column", "kind", "note"),
    "check": ("kind", "figure", "of", "note", "id", "name", "source", "population", "strata", "z", "e", "p",
              "sample"),
}
_KEYS["claim"] = CLAIM_KEYS
CHECK_KINDS = ("sum", "sample_size")


@dataclass(frozen=True)
class Figure:
    """One published figure: its printed text, value, precision and source."""

    id: str
    printed: str
    table: str
    row: str
    column: str
    kind: str = "decimal"  # decimal or probability: rounded to `decimals`; count or constant: exact
    note: str = ""

    @property
    def value(self) -> float:
        return float(self.printed)

    @property
    def decimals(self) -> int:
        return len(self.printed.split(".")[1]) if "." in self.printed else 0

    @property
    def half_unit(self) -> float:
        """Half a unit in the last printed place (0 for exact counts and constants)."""
        return 0.5 * 10.0 ** -self.decimals if self.kind in ("decimal", "probability") else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        """The true values this printed figure stands for, given its rounding."""
        lo, hi = self.value - self.half_unit, self.value + self.half_unit
        if self.column == "sig" or self.kind == "probability":  # ".000" means [0, 0.0005]
            lo = max(lo, 0.0)
        if self.kind == "probability":
            hi = min(hi, 1.0)
        return lo, hi

    @property
    def source(self) -> str:
        return f"{self.table}, row '{self.row}', column '{self.column}'"


class Figures(Mapping[str, Figure]):
    """Read-only mapping from figure id (e.g. ``table4.Size.wald``) to :class:`Figure`."""

    def __init__(self, figures: Mapping[str, Figure]):
        self._figures = MappingProxyType(dict(figures))

    def __getitem__(self, key: str) -> Figure:
        try:
            return self._figures[key]
        except KeyError:
            raise KeyError(f"no published figure with id {key!r}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._figures)

    def __len__(self) -> int:
        return len(self._figures)

    def value(self, key: str) -> float:
        return self[key].value


@dataclass(frozen=True)
class Predictor:
    """A predictor as the paper coded it: levels (labels, codes) and a linear code or indicator dummies."""

    name: str
    printed: str
    labels: tuple[str, ...]
    codes: tuple[int, ...]
    coding: str  # "linear" (one column: the code) or "indicator" (a dummy per non-reference level)
    reference: str
    banded: bool = False  # a banded index (coarsened_latent treats it as a cut latent score)
    label: str = ""
    group: bool = False  # the grouping of a hierarchical model when the spec's [hierarchy] group is absent

    def code(self, level: str) -> int:
        return self.codes[self.labels.index(level)]

    def terms(self) -> list[str]:
        """Its coefficient terms: ``name``, or ``name[level]`` per non-reference level."""
        if self.coding == "linear":
            return [self.name]
        return [f"{self.name}[{lab}]" for lab in self.labels if lab != self.reference]

    def columns(self, levels: pd.Series) -> dict[str, np.ndarray]:
        """The design columns for a vector of level labels."""
        if self.coding == "linear":
            return {self.name: levels.map(dict(zip(self.labels, self.codes))).to_numpy(float)}
        return {f"{self.name}[{lab}]": (levels == lab).to_numpy(float) for lab in self.labels if lab != self.reference}


@dataclass(frozen=True)
class Term:
    """One row of the published coefficients table."""

    term: str  # a predictor term (``size``, ``activity[IT]``) or ``Constant``
    row: str  # as printed
    id: str  # figure-id prefix: ``table4.Size``


@dataclass(frozen=True)
class Predicted:
    """A published predicted probability at one combination of predictor levels."""

    id: str
    at: Mapping[str, str]
    note: str = ""


@dataclass(frozen=True)
class Margin:
    """A published count: the sample (neither set), one predictor level, or one outcome value."""

    id: str
    predictor: str | None = None
    level: str | None = None
    outcome: str | None = None  # "yes" or "no"


@dataclass(frozen=True)
class Check:
    """A relation between text figures the audit verifies (a sum, or a sample-size formula)."""

    kind: str
    fields: Mapping[str, Any]


@dataclass(frozen=True)
class Study:
    """A published logit: what it is about, how its predictors were coded, and every printed figure."""

    id: str
    title: str
    citation: str
    data: str  # "published", or how the figures were made (e.g. printed from a known data set)
    unit: str
    units: str
    outcome: str
    outcome_label: str
    outcome_no_label: str
    predictors: tuple[Predictor, ...]
    figures: Figures
    terms: tuple[Term, ...]
    predicted: tuple[Predicted, ...]
    margins: tuple[Margin, ...]
    checks: tuple[Check, ...]
    constant_only: str | None  # figure-id prefix of the constant-only block
    classification: str | None  # figure-id prefix of the classification table
    cut: float
    stated_link: Mapping[str, str]
    source: str
    reconstruction: str | None = None  # the shipped reconstruction's path (cells), when there is one
    claims: tuple[Claim, ...] = ()  # the paper's conclusions, as statements the models score (claims.py)

    # ------------------------------------------------------------------ figures
    def __getitem__(self, key: str) -> Figure:
        return self.figures[key]

    def __contains__(self, key: str) -> bool:
        return key in self.figures

    def get(self, key: str) -> Figure | None:
        return self.figures.get(key)

    def value(self, key: str) -> float:
        return self.figures.value(key)

    def with_printed(self, overrides: Mapping[str, str]) -> "Study":
        """A copy with some printed figures replaced (for what-if audits and tests)."""
        figures = dict(self.figures)
        for key, printed in overrides.items():
            figures[key] = replace(self.figures[key], printed=printed)
        return replace(self, figures=Figures(figures))

    # ------------------------------------------------------------------ design
    def predictor(self, name: str) -> Predictor:
        return next(p for p in self.predictors if p.name == name)

    @property
    def coefficient_table(self) -> str:
        return self[f"{self.terms[0].id}.b"].table

    @property
    def predicted_table(self) -> str | None:
        """The table holding most of the published predicted probabilities (the paper's Table 5)."""
        tables = [self[c.id].table for c in self.predicted]
        return max(dict.fromkeys(tables), key=tables.count) if tables else None

    def table_cells(self) -> list[Predicted]:
        """The predicted probabilities of :attr:`predicted_table`, in printed order."""
        return [c for c in self.predicted if self[c.id].table == self.predicted_table]

    def logit_figures(self) -> list[Figure]:
        """The figures a refit reproduces: constant-only block, classification, coefficients, predicted table."""
        prefixes = [p for p in (self.constant_only, self.classification) if p] + [t.id for t in self.terms]
        out = [f for f in self.figures.values() if any(f.id.startswith(p + ".") for p in prefixes)]
        return out + [self[c.id] for c in self.table_cells()]

    def term(self, name: str) -> Term:
        return next(t for t in self.terms if t.term == name)

    def cells(self) -> pd.DataFrame:
        """Every combination of predictor levels (declaration order, the last varying fastest), as codes."""
        rows = itertools.product(*[p.codes for p in self.predictors])
        return pd.DataFrame(list(rows), columns=[p.name for p in self.predictors], dtype="int64")

    def design_matrix(self, frame: pd.DataFrame, *, labels: bool = False) -> np.ndarray:
        """Columns in coefficient-table order (Constant as a column of ones) for rows of codes (or labels)."""
        columns: dict[str, np.ndarray] = {CONSTANT: np.ones(len(frame))}
        for p in self.predictors:
            levels = frame[p.name] if labels else frame[p.name].map(dict(zip(p.codes, p.labels)))
            columns |= p.columns(levels.reset_index(drop=True))
        return np.column_stack([columns[t.term] for t in self.terms])

    def at_codes(self, at: Mapping[str, str]) -> dict[str, int]:
        return {name: self.predictor(name).code(level) for name, level in at.items()}

    def printed_term(self, term: str) -> str:
        """The name the note of an audit uses for a term: the predictor's printed name, or the printed row."""
        name = term.split("[")[0]
        p = next((p for p in self.predictors if p.name == name), None)
        if p is None:
            return term
        return p.printed if p.coding == "linear" or len(p.labels) == 2 else self.term(term).row

    def to_dict(self) -> dict:
        """What a run records of its study."""
        return {"id": self.id, "title": self.title, "citation": self.citation, "data": self.data,
                "unit": self.unit, "units": self.units, "source": self.source}


# ---------------------------------------------------------------------- reading


def _table_key(table: str) -> str:
    return re.sub(r"[^0-9a-z]", "", table.lower())


class _Reader:
    """Turns the raw TOML into a Study, refusing the first problem in one line that names the key."""

    def __init__(self, raw: dict, source: str):
        self.raw, self.source = raw, source
        self.figures: dict[str, Figure] = {}

    def fail(self, message: str) -> SpecError:
        return SpecError(f"study {self.source}: {message}")

    def keys(self, table: Any, kind: str, where: str) -> dict:
        from .spec import did_you_mean

        if not isinstance(table, dict):
            raise self.fail(f"{where} must be a table")
        for key in table:
            if key not in _KEYS[kind]:
                raise self.fail(f"unknown key '{key}' in {where}{did_you_mean(key, _KEYS[kind])}")
        return table

    def need(self, table: dict, key: str, where: str, kind: type | None = str):
        if key not in table:
            raise self.fail(f"{where} needs '{key}'")
        value = table[key]
        if kind is not None and not isinstance(value, kind):
            raise self.fail(f"{where}.{key} must be a {'string' if kind is str else kind.__name__}, "
                            f"found {value!r}")
        return value

    def add(self, fig_id: str, printed: Any, table: str, row: str, column: str, where: str, *,
            kind: str = "decimal", note: str = "") -> None:
        if not isinstance(printed, str):
            raise self.fail(f"{where} must be the figure as printed, in quotes (\"0.408\"), found {printed!r}")
        try:
            float(printed)
        except ValueError:
            raise self.fail(f"{where} = {printed!r} is not a number as printed") from None
        if fig_id in self.figures:
            raise self.fail(f"{where}: figure id '{fig_id}' is used twice")
        self.figures[fig_id] = Figure(fig_id, printed, table, row, column, kind, note)

    def arrays(self, key: str) -> list[dict]:
        value = self.raw.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"'{key}' must be an array of tables ([[{key}]])")
        return [self.keys(entry, key, f"[[{key}]] #{i + 1}") for i, entry in enumerate(value)]


def _predictor(r: _Reader, raw: dict, where: str) -> Predictor:
    name = r.need(raw, "name", where)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise r.fail(f"{where}.name {name!r} must be letters, digits and underscores")
    labels = r.need(raw, "labels", where, list)
    if len(labels) < 2 or len(set(map(str, labels))) != len(labels):
        raise r.fail(f"{where}.labels must list at least two distinct levels")
    labels = tuple(str(x) for x in labels)
    codes = tuple(raw.get("codes", range(len(labels))))
    if len(codes) != len(labels) or not all(isinstance(c, int) for c in codes) or len(set(codes)) != len(codes):
        raise r.fail(f"{where}.codes must be {len(labels)} distinct integers, one per label")
    coding = raw.get("coding", "indicator")
    if coding not in ("linear", "indicator"):
        raise r.fail(f"{where}.coding must be 'linear' or 'indicator', not {coding!r}")
    reference = str(raw.get("reference", labels[0]))
    if reference not in labels:
        raise r.fail(f"{where}.reference {reference!r} is not one of its labels {list(labels)}")
    if coding == "linear" and "reference" in raw:
        raise r.fail(f"{where}: a linear-coded predictor takes no 'reference'")
    if coding == "linear" and codes != tuple(range(len(labels))):
        raise r.fail(f"{where}: a linear-coded predictor's codes must be 0, 1, ..., {len(labels) - 1} (its labels "
                     "in order), as the models use the code as the value")
    if raw.get("group") and coding != "indicator":
        raise r.fail(f"{where}: a grouping predictor (group = true) must be indicator-coded")
    return Predictor(name, str(raw.get("printed", name)), labels, codes, coding, reference,
                     bool(raw.get("banded", False)), str(raw.get("label", "")), bool(raw.get("group", False)))


def _coefficients(r: _Reader, predictors: tuple[Predictor, ...]) -> tuple[Term, ...]:
    allowed = {t: p for p in predictors for t in p.terms()}
    terms, table = [], None
    for i, raw in enumerate(r.arrays("coefficient")):
        where = f"[[coefficient]] #{i + 1}"
        term = r.need(raw, "term", where)
        if term != CONSTANT and term not in allowed:
            from .spec import did_you_mean

            raise r.fail(f"{where}.term = {term!r} is not a declared predictor's term (declared: "
                         f"{', '.join(allowed) or 'none'}, and 'Constant'){did_you_mean(term, allowed)}")
        if any(t.term == term for t in terms):
            raise r.fail(f"{where}.term = {term!r} appears twice")
        table = table or r.need(raw, "table", where)
        if raw.get("table", table) != table:
            raise r.fail(f"{where}.table = {raw['table']!r}: every coefficient row belongs to one table ({table!r})")
        row = r.need(raw, "row", where)
        prefix = raw.get("id", f"{_table_key(table)}.{re.sub(r'[^0-9A-Za-z_]', '', row)}")
        for column in ("b", "se"):
            r.need(raw, column, where, None)
        for column in COEFFICIENT_COLUMNS:
            if column in raw:
                r.add(f"{prefix}.{column}", raw[column], table, row, column, f"{where}.{column}",
                      kind="count" if column == "df" else "decimal")
        terms.append(Term(term, row, prefix))
    missing = [t for t in allowed if t not in {x.term for x in terms}]
    if missing:
        raise r.fail(f"predictor term '{missing[0]}' has no row in [[coefficient]]: every declared predictor "
                     f"needs its published B and SE")
    if terms and CONSTANT not in {t.term for t in terms}:
        raise r.fail("[[coefficient]] needs a row with term = 'Constant'")
    return tuple(terms)


def _at(r: _Reader, raw: Any, predictors: tuple[Predictor, ...], where: str, key: str = "at") -> dict[str, str]:
    if not isinstance(raw, dict):
        raise r.fail(f"{where}.{key} must be an inline table like {{ size = \"small\", activity = \"IT\" }}")
    names = {p.name: p for p in predictors}
    for name, level in raw.items():
        if name not in names:
            from .spec import did_you_mean

            raise r.fail(f"{where}.{key}.{name}: no predictor named '{name}' is declared{did_you_mean(name, names)}")
        if str(level) not in names[name].labels:
            raise r.fail(f"{where}.{key}.{name} = {level!r} is not one of its labels {list(names[name].labels)}")
    absent = [n for n in names if n not in raw]
    if absent:
        raise r.fail(f"{where}.{key} needs a level for every predictor; '{absent[0]}' is missing")
    return {p.name: str(raw[p.name]) for p in predictors}


def _blocks(r: _Reader, predictors: tuple[Predictor, ...]) -> dict:
    out: dict[str, Any] = {"constant_only": None, "classification": None, "cut": 0.5}
    if "constant_only" in r.raw:
        raw = r.keys(r.raw["constant_only"], "constant_only", "[constant_only]")
        table = r.need(raw, "table", "[constant_only]")
        prefix = raw.get("id", f"{_table_key(table)}.{CONSTANT}")
        for column in COEFFICIENT_COLUMNS[:6]:
            if column in raw:
                r.add(f"{prefix}.{column}", raw[column], table, raw.get("row", CONSTANT), column,
                      f"[constant_only].{column}", kind="count" if column == "df" else "decimal")
        out["constant_only"] = prefix
    if "classification" in r.raw:
        raw = r.keys(r.raw["classification"], "classification", "[classification]")
        table = r.need(raw, "table", "[classification]")
        prefix = _table_key(table)
        no, yes = str(raw.get("no", "No")), str(raw.get("yes", "Yes"))
        places = {"no_no": (f"observed {no}", f"predicted {no}"), "no_yes": (f"observed {no}", f"predicted {yes}"),
                  "yes_no": (f"observed {yes}", f"predicted {no}"), "yes_yes": (f"observed {yes}", f"predicted {yes}"),
                  "no_pct": (f"observed {no}", "% correct (specificity)"),
                  "yes_pct": (f"observed {yes}", "% correct (sensitivity)"), "overall_pct": ("overall", "% correct")}
        for key in CLASSIFICATION_KEYS[:4]:
            r.need(raw, key, "[classification]", None)
        for key, (row, column) in places.items():
            if key in raw:
                r.add(f"{prefix}.{key.replace('_', '.')}", raw[key], table, row, column, f"[classification].{key}",
                      kind="decimal" if key.endswith("pct") else "count")
        cut = raw.get("cut", "0.5")
        out["cut"] = float(cut) if isinstance(cut, str) and re.fullmatch(r"0?\.\d+", cut) else None
        if not out["cut"]:
            raise r.fail(f"[classification].cut must be a probability as printed, e.g. \"0.5\", found {cut!r}")
        out["classification"] = prefix
    return out


def _predicted(r: _Reader, predictors) -> tuple[Predicted, ...]:
    out = []
    for i, raw in enumerate(r.arrays("predicted")):
        where = f"[[predicted]] #{i + 1}"
        table = r.need(raw, "table", where)
        at = _at(r, r.need(raw, "at", where, dict), predictors, where)
        fid = raw.get("id", f"{_table_key(table)}.{'.'.join(str(v) for v in raw['at'].values())}")
        r.add(fid, r.need(raw, "p", where, None), table, str(raw.get("row", ", ".join(at.values()))),
              str(raw.get("column", "P(Y=1)")), f"{where}.p", kind="probability", note=str(raw.get("note", "")))
        out.append(Predicted(fid, MappingProxyType(at), str(raw.get("note", ""))))
    return tuple(out)


def _margins(r: _Reader, predictors) -> tuple[Margin, ...]:
    names = {p.name: p for p in predictors}
    out = []
    for i, raw in enumerate(r.arrays("margin")):
        where = f"[[margin]] #{i + 1}"
        predictor, level, outcome = raw.get("predictor"), raw.get("level"), raw.get("outcome")
        if predictor is not None:
            if predictor not in names:
                from .spec import did_you_mean

                raise r.fail(f"{where}.predictor = {predictor!r}: no predictor of that name is declared"
                             f"{did_you_mean(predictor, names)}")
            if str(level) not in names[predictor].labels:
                raise r.fail(f"{where}.level = {level!r} is not one of {predictor}'s labels "
                             f"{list(names[predictor].labels)}")
        if outcome is not None and outcome not in ("yes", "no"):
            raise r.fail(f"{where}.outcome must be 'yes' or 'no', not {outcome!r}")
        if predictor is not None and outcome is not None:
            raise r.fail(f"{where}: a margin counts one predictor level or one outcome value, not both")
        fid = raw.get("id") or ("margin." + (f"{predictor}.{level}" if predictor else outcome or "n"))
        r.add(fid, r.need(raw, "count", where, None), r.need(raw, "table", where), str(raw.get("row", "")),
              str(raw.get("column", "count")), f"{where}.count", kind="count", note=str(raw.get("note", "")))
        out.append(Margin(fid, predictor, None if level is None else str(level), outcome))
    return tuple(out)


def _checks(r: _Reader) -> tuple[Check, ...]:
    out = []
    for i, raw in enumerate(r.arrays("check")):
        where = f"[[check]] #{i + 1}"
        kind = r.need(raw, "kind", where)
        if kind not in CHECK_KINDS:
            raise r.fail(f"{where}.kind must be one of {', '.join(CHECK_KINDS)}, not {kind!r}")
        if kind == "sum":
            refs = [r.need(raw, "figure", where), *r.need(raw, "of", where, list)]
        else:
            refs = [r.need(raw, key, where) for key in ("population", "z", "e", "p", "sample")]
            refs += list(raw.get("strata", []))
        for fid in refs:
            if fid not in r.figures:
                raise r.fail(f"{where} refers to figure '{fid}', which the study does not hold")
        out.append(Check(kind, MappingProxyType(dict(raw))))
    return tuple(out)


def parse_study(raw: dict, source: str) -> Study:
    """Check a parsed study file and build the :class:`Study`; every problem is one line naming its key."""
    r = _Reader(raw, source)
    r.keys(raw, "top", "the file")
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise r.fail(f"schema_version must be {SCHEMA_VERSION}, found {raw.get('schema_version')!r}")
    meta = r.keys(r.need(raw, "study", "the file", dict), "study", "[study]")
    outcome = r.keys(r.need(raw, "outcome", "the file", dict), "outcome", "[outcome]")
    raw_predictors = r.arrays("predictor")
    if not 1 <= len(raw_predictors) <= 6:
        raise r.fail(f"a study declares 1 to 6 [[predictor]] tables, found {len(raw_predictors)}")
    predictors = tuple(_predictor(r, p, f"[[predictor]] '{p.get('name', i + 1)}'") for i, p in enumerate(raw_predictors))
    if len({p.name for p in predictors}) != len(predictors):
        raise r.fail("two [[predictor]] tables share a name")
    blocks = _blocks(r, predictors)
    terms = _coefficients(r, predictors)
    if not terms:
        raise r.fail("a study needs its published coefficients ([[coefficient]] rows with B and SE)")
    predicted = _predicted(r, predictors)
    margins = _margins(r, predictors)
    for i, entry in enumerate(r.arrays("figure")):
        where = f"[[figure]] #{i + 1}"
        r.add(r.need(entry, "id", where), r.need(entry, "printed", where, None), r.need(entry, "table", where),
              str(entry.get("row", "")), str(entry.get("column", "")), f"{where}.printed",
              kind=str(entry.get("kind", "decimal")), note=str(entry.get("note", "")))
    checks = _checks(r)
    link = {k: str(meta[f"stated_link{k}"]) for k in ("", "_quote", "_source") if f"stated_link{k}" in meta}
    return Study(
        id=r.need(meta, "id", "[study]"), title=str(meta.get("title", meta["id"])),
        citation=r.need(meta, "citation", "[study]"), data=str(meta.get("data", "published")),
        unit=str(meta.get("unit", "case")), units=str(meta.get("units", meta.get("unit", "case") + "s")),
        outcome=r.need(outcome, "name", "[outcome]"), outcome_label=str(outcome.get("label", outcome["name"])),
        outcome_no_label=str(outcome.get("no_label", f"not {outcome.get('label', outcome['name'])}")),
        predictors=predictors, figures=Figures(r.figures), terms=terms, predicted=predicted, margins=margins,
        checks=checks, constant_only=blocks["constant_only"], classification=blocks["classification"],
        cut=blocks["cut"], stated_link=MappingProxyType(link), source=source,
        reconstruction=str((Path(source).parent / meta["reconstruction"]).resolve()) if "reconstruction" in meta else None,
        claims=parse_claims(r, predictors, terms),
    )


def study_path(name_or_path: str | Path | None = None) -> Path:
    """A shipped study by name (``sonora``) or a study file's path; ``None`` is the default study."""
    name = str(name_or_path or DEFAULT_STUDY)
    shipped = resources.files("bayes_intl").joinpath(f"data/studies/{name}.toml")
    if not name.endswith(".toml") and shipped.is_file():
        return Path(str(shipped))
    return Path(name)


def shipped_studies() -> list[str]:
    folder = resources.files("bayes_intl").joinpath("data/studies")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


@lru_cache(maxsize=16)
def _load(path: str) -> Study:
    from .spec import read_toml
    if not Path(path).exists():
        raise SpecError(f"study {path}: file not found (a study file, or a shipped study: {', '.join(shipped_studies())})")
    return parse_study(read_toml(path, "study"), path)


def load_study(name_or_path: str | Path | None = None) -> Study:
    """Read and check a study file (default: the shipped Sonora study)."""
    return _load(str(study_path(name_or_path)))

