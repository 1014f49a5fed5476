"""The one validation layer: reads outcome data (firm rows or cell counts) and returns typed, checked tables.

Everything downstream trusts these tables. Every refusal names the file, column and row and
says what was expected there. Nothing here mutates the caller's frames.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .errors import InputError, TooLargeError, UnreadableFileError
from .spec import did_you_mean

CODES = {"size": (0, 1, 2), "capinno": (0, 1, 2), "activity": (0, 1)}
CODE_MEANING = {"size": "0 micro, 1 small, 2 medium", "capinno": "0 low, 1 average, 2 high",
                "activity": "0 MM, 1 IT"}
PREDICTORS = ("size", "capinno", "activity")
OUTCOME = "internationalized"
PROVENANCE_COLUMN = "data_provenance"
DEFAULT_DATA = "reconstruction.csv"


@dataclass(frozen=True)
class CellTable:
    """Cell counts: one row per (size, capinno, activity) cell with n firms and y internationalized."""

    cells: pd.DataFrame
    source: str
    provenance: str

    @property
    def n_firms(self) -> int:
        return int(self.cells["n"].sum())

    def weighted(self, outcome: str = OUTCOME) -> pd.DataFrame:
        """Long form for frequency-weighted fitting: each cell as an outcome-1 and outcome-0 row."""
        keys = [c for c in self.cells.columns if c not in ("n", "y", PROVENANCE_COLUMN)]
        yes = self.cells[keys].assign(**{outcome: 1, "weight": self.cells["y"]})
        no = self.cells[keys].assign(**{outcome: 0, "weight": self.cells["n"] - self.cells["y"]})
        long = pd.concat([yes, no], ignore_index=True)
        return long[long["weight"] > 0].reset_index(drop=True)

    @property
    def predictors(self) -> list[str]:
        return [c for c in self.cells.columns if c not in ("n", "y", PROVENANCE_COLUMN)]

    def to_firms(self, outcome: str = OUTCOME) -> "FirmTable":
        """Expand to one row per firm (firm_id 1..n, cells in table order, outcome 1 first)."""
        keys = self.predictors
        rows = []
        for cell in self.cells[keys + ["n", "y"]].itertuples(index=False):
            codes = tuple(cell[:-2])
            rows += [(*codes, 1)] * int(cell.y)
            rows += [(*codes, 0)] * int(cell.n - cell.y)
        firms = pd.DataFrame(rows, columns=[*keys, outcome], dtype="int64")
        firms.insert(0, "firm_id", np.arange(1, len(firms) + 1))
        firms[PROVENANCE_COLUMN] = self.provenance
        return FirmTable(firms, self.source, self.provenance)


@dataclass(frozen=True)
class FirmTable:
    """Firm rows: firm_id, the paper's predictors and the 0/1 outcome (extra columns kept)."""

    firms: pd.DataFrame
    source: str
    provenance: str

    @property
    def n_firms(self) -> int:
        return len(self.firms)

    def weighted(self, outcome: str = OUTCOME) -> pd.DataFrame:
        return self.firms.drop(columns=[PROVENANCE_COLUMN], errors="ignore").assign(weight=1)

    def to_cells(self) -> CellTable:
        grouped = self.firms.groupby(list(PREDICTORS), as_index=False).agg(
            n=(OUTCOME, "size"), y=(OUTCOME, "sum"))
        return CellTable(grouped.astype("int64"), self.source, self.provenance)


OutcomeData = CellTable | FirmTable


def data_hash(data: OutcomeData) -> str:
    """SHA-256 of the validated table's CSV form: the data identity recorded beside every output."""
    frame = data.cells if isinstance(data, CellTable) else data.firms
    return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


MAX_INPUT_MB = 200  # default input size limit; BAYES_INTL_MAX_INPUT_MB overrides it
TABLE_SUFFIXES = (".csv", ".parquet")


def max_input_bytes() -> int:
    return int(float(os.environ.get("BAYES_INTL_MAX_INPUT_MB", MAX_INPUT_MB)) * 2**20)


def _csv_text(path: Path) -> str:
    """A CSV file's text, checked: UTF-8 (a BOM is fine), comma-separated, every row as wide as the header."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UnreadableFileError(path, f"UTF-8 text; byte {exc.start} (line {line}) is not UTF-8 (re-save the file "
                                  "as UTF-8, e.g. 'CSV UTF-8' in Excel)", found=raw[exc.start:exc.start + 1]) from None
    rows = csv.reader(io.StringIO(text))
    header = next(rows, [])
    if len(header) == 1:
        for delimiter, name in ((";", "semicolon"), ("\t", "tab"), ("|", "pipe")):
            if delimiter in header[0]:
                raise UnreadableFileError(path, f"comma-separated columns; the header is {name}-separated (save "
                                          "it with commas, or convert it)", found=header[0][:60])
    for number, row in enumerate(rows, start=1):
        if row and len(row) != len(header):
            raise UnreadableFileError(path, f"{len(header)} fields, as in the header (the file may be truncated "
                                      "or mix delimiters)", row=number, found=f"{len(row)} fields")
    return text


def open_table(path: str | Path, *, suffixes=TABLE_SUFFIXES, as_text: bool = True) -> tuple[pd.DataFrame, dict]:
    """Read a table file for a validation layer, refusing unreadable ones: the frame and any SPSS value labels.

    ``as_text`` keeps CSV cells as strings (the caller parses them); otherwise pandas infers
    numbers and blank cells become missing.
    """
    path = Path(path)
    if not path.exists():
        raise UnreadableFileError(path, "an existing file")
    size = path.stat().st_size
    if size > max_input_bytes():
        raise TooLargeError(path, f"a file of at most {max_input_bytes() / 2**20:.3g} MB (set "
                            "BAYES_INTL_MAX_INPUT_MB to raise the limit)", found=f"{size / 2**20:.3g} MB")
    if size == 0:
        raise UnreadableFileError(path, "a header row and at least one data row; the file is empty")
    suffix = path.suffix.lower()
    if suffix not in suffixes:
        kinds = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]
        raise UnreadableFileError(path, f"a {kinds} file", found=suffix or "no extension")
    labels: dict = {}
    try:
        if suffix == ".csv":
            text = _csv_text(path)
            frame = (pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False) if as_text
                     else pd.read_csv(io.StringIO(text), keep_default_na=True, na_values=[""]))
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        else:
            import pyreadstat

            frame, meta = pyreadstat.read_sav(str(path), apply_value_formats=False)
            labels = meta.variable_value_labels
    except InputError:
        raise
    except Exception as exc:  # parser errors from pandas, pyarrow, pyreadstat
        raise UnreadableFileError(path, f"a readable {suffix} file ({type(exc).__name__}: {exc})") from None
    if frame.empty:
        raise UnreadableFileError(path, "at least one data row below the header")
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame, labels


def _require(frame: pd.DataFrame, path: Path, columns: Iterable[str], what: str) -> None:
    for col in columns:
        if col not in frame.columns:
            present = ", ".join(frame.columns)
            raise InputError(path, f"a column '{col}' ({what}); columns present: {present}", column=col)


def _integers(frame: pd.DataFrame, path: Path, col: str, meaning: str) -> np.ndarray:
    """Column as int64, refusing blanks, text and fractions with the first offending row."""
    raw = frame[col]
    values = pd.to_numeric(raw.astype(str).str.strip() if raw.dtype == object else raw, errors="coerce")
    bad = values.isna() | (values != np.round(values))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        found = raw.iloc[row]
        raise InputError(path, f"an integer code ({meaning})", column=col, row=row + 1,
                         found="" if found is None else found)
    return values.to_numpy().astype(np.int64)


def _check_codes(values: np.ndarray, path: Path, col: str, allowed: tuple[int, ...], meaning: str) -> None:
    bad = ~np.isin(values, allowed)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(path, f"one of {list(allowed)} ({meaning})", column=col, row=row + 1, found=int(values[row]))


def _provenance(frame: pd.DataFrame, default: str) -> str:
    if PROVENANCE_COLUMN in frame.columns and len(frame):
        return str(frame[PROVENANCE_COLUMN].iloc[0])
    return default


def read_outcome_data(path: str | Path, *, outcome: str = OUTCOME, predictors: Iterable[str] = PREDICTORS,
                      codes: dict[str, tuple[int, ...]] | None = None, meanings: dict[str, str] | None = None
                      ) -> OutcomeData:
    """Read and validate firm rows or a cell table (detected by its ``n`` and ``y`` columns).

    Cell tables: the predictors plus ``n`` (firms) and ``y`` (internationalized), non-negative
    integers with y <= n. Firm rows: the predictors plus the 0/1 outcome. ``codes`` and ``meanings``
    give each predictor's allowed codes and what they mean (default: the paper's).
    """
    path = Path(path)
    frame, _ = open_table(path)
    predictors = tuple(predictors)
    codes = CODES if codes is None else codes
    meanings = CODE_MEANING if meanings is None else meanings
    is_cells = "n" in frame.columns or "y" in frame.columns
    _require(frame, path, predictors, "a predictor of the model")
    clean = {}
    for col in predictors:
        meaning = meanings.get(col, "numeric code")
        clean[col] = _integers(frame, path, col, meaning)
        if col in codes:
            _check_codes(clean[col], path, col, codes[col], meaning)
    if is_cells:
        _require(frame, path, ("n", "y"), "cell counts: n firms and y internationalized")
        n = _integers(frame, path, "n", "a count of firms")
        y = _integers(frame, path, "y", "a count of internationalized firms")
        for col, values in (("n", n), ("y", y)):
            if (values < 0).any():
                row = int(np.flatnonzero(values < 0)[0])
                raise InputError(path, "a non-negative count", column=col, row=row + 1, found=int(values[row]))
        if (y > n).any():
            row = int(np.flatnonzero(y > n)[0])
            raise InputError(path, f"y <= n (internationalized firms cannot exceed firms in the cell; n = {n[row]})",
                             column="y", row=row + 1, found=int(y[row]))
        if n.sum() == 0:
            raise InputError(path, "at least one firm (all cell counts n are 0)", column="n")
        cells = pd.DataFrame({**clean, "n": n, "y": y})
        return CellTable(cells, str(path), _provenance(frame, "user data"))
    _require(frame, path, (outcome,), "the 0/1 outcome")
    y = _integers(frame, path, outcome, "1 = internationalized, 0 = not")
    _check_codes(y, path, outcome, (0, 1), "1 = internationalized, 0 = not")
    firms = frame.copy()
    for col, values in {**clean, outcome: y}.items():
        firms[col] = values
    if "firm_id" not in firms.columns:
        firms.insert(0, "firm_id", np.arange(1, len(firms) + 1))
    elif firms["firm_id"].duplicated().any():
        row = int(np.flatnonzero(firms["firm_id"].duplicated().to_numpy())[0])
        raise InputError(path, "a unique firm id", column="firm_id", row=row + 1, found=firms["firm_id"].iloc[row])
    return FirmTable(firms, str(path), _provenance(frame, "user data"))


def default_data_path() -> Path:
    """The embedded default data set (the reconstruction from the published tables)."""
    return Path(str(resources.files("bayes_intl").joinpath(f"data/{DEFAULT_DATA}")))


def load_default() -> CellTable:
    data = read_outcome_data(default_data_path())
    assert isinstance(data, CellTable)
    return data


# --- the data a model specification gets --------------------------------------------------------


@dataclass(frozen=True)
class Covariate:
    """A predictor the data declare: numeric, or categorical with its levels coded 0, 1, ... in declared order.

    In the validated frame a categorical covariate holds its codes; ``labels`` names them and
    ``reference`` is the code that dummy coding leaves out.
    """

    name: str
    type: str = "categorical"  # or "numeric"
    labels: tuple[str, ...] = ()
    reference: int = 0
    label: str = ""

    def to_dict(self) -> dict:
        return {"name": self.name, "type": self.type, "labels": list(self.labels), "reference": self.reference,
                "label": self.label}


@dataclass(frozen=True)
class Design:
    """What the outcome models read from the data: the 0/1 outcome's name and meaning, and the covariates."""

    outcome: str = OUTCOME
    outcome_label: str = "internationalized"  # what 1 means, in words
    covariates: tuple[Covariate, ...] = ()

    def covariate(self, name: str) -> Covariate | None:
        return next((c for c in self.covariates if c.name == name), None)

    @property
    def paper(self) -> bool:
        """The Sonora paper's layout: its outcome and its three predictors coded as the paper codes them."""
        def coding(c):
            return None if c is None else (c.type, c.labels, c.reference)

        return self.outcome == PAPER_DESIGN.outcome and all(
            coding(self.covariate(c.name)) == coding(c) for c in PAPER_DESIGN.covariates)

    def to_dict(self) -> dict:
        return {"outcome": self.outcome, "outcome_label": self.outcome_label,
                "covariates": [c.to_dict() for c in self.covariates]}

    @classmethod
    def from_dict(cls, raw: dict) -> "Design":
        return cls(raw["outcome"], raw["outcome_label"],
                   tuple(Covariate(c["name"], c["type"], tuple(c["labels"]), c["reference"], c["label"])
                         for c in raw["covariates"]))


CAPINNO_COVARIATE = Covariate("capinno", "categorical", ("low", "average", "high"), 0,
                              "CAPINNO, the innovation-capability index cut in thirds")
PAPER_DESIGN = Design(OUTCOME, "internationalized", (
    CAPINNO_COVARIATE,
    Covariate("activity", "categorical", ("MM", "IT"), 0, "Sector: 0 metalworking (MM), 1 information technology (IT)"),
    Covariate("size", "categorical", ("micro", "small", "medium"), 0, "Size by INEGI's bands: 0 micro, 1 small, 2 medium"),
))

SYNTHETIC_SOURCE = "synthetic survey (bayes-intl simulate)"


@dataclass(frozen=True)
class ModelData:
    """What model builders consume: firm rows and, for item-level models, the validated survey.

    A run loaded back from disk has ``survey = None``: its item responses are in the posterior file.
    """

    firms: pd.DataFrame  # firm_id, the outcome, the covariates (categorical as codes)[, municipality]
    survey: object | None  # survey.SurveyData
    source: str
    provenance: str
    design: Design = PAPER_DESIGN

    def sha256(self) -> str:
        """SHA-256 of the firm rows (and item responses): the data identity of every run."""
        frame = self.firms if self.survey is None else pd.concat([self.firms, self.survey.items], axis=1)
        return hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()


def synthetic_survey(table: OutcomeData, *, seed: int, source: str = SYNTHETIC_SOURCE):
    """The synthetic item-level survey behind a cell table or firm rows, validated like a user's file."""
    from .simulate import simulate_survey, survey_codebook
    from .survey import validate_survey

    return validate_survey(simulate_survey(table, seed=seed).frame, survey_codebook(), source=source)


def _check_roles(spec, survey) -> None:
    """A survey feeds an outcome model only when its codebook declares the outcome and every predictor used."""
    from .errors import SpecError

    if not spec.entry.outcome:
        return
    where = f"codebook {survey.codebook.source}"
    if survey.codebook.outcome is None:
        raise SpecError(f"{where}: [outcome] is needed for {spec.model} (spec {spec.source}); a measurement model "
                        "(measurement_only) needs only [columns] firm_id and the items")
    declared = [c.name for c in survey.design.covariates]
    used = [p.name for p in spec.predictors] + ([spec.group] if spec.entry.hierarchical else [])
    for name in used:
        if name not in declared:
            raise SpecError(f"{where}: no [[covariate]] named '{name}', which spec {spec.source} uses"
                            f"{did_you_mean(name, declared)}; declared: {', '.join(declared)}")
    if spec.entry.hierarchical and survey.design.covariate(spec.group).type != "categorical":
        raise SpecError(f"{where}: covariate '{spec.group}' groups the hierarchical outcome ([hierarchy] group in "
                        f"spec {spec.source}) and must be categorical")


def study_design(study) -> Design:
    """The design a study's outcome models read: its outcome and its predictors, levels coded 0, 1, ..."""
    return Design(study.outcome, study.outcome_label, tuple(
        Covariate(p.name, "categorical", p.labels, p.labels.index(p.reference) if p.coding == "indicator" else 0,
                  p.label or p.printed) for p in study.predictors))


def read_study_data(study, path: str | Path | None = None) -> OutcomeData:
    """A study's outcome data: ``path`` (cells or rows with the study's columns and codes) or, by default,
    the reconstruction its file names (``[study] reconstruction``)."""
    if path is None:
        if study.reconstruction is None:
            from .errors import SpecError

            raise SpecError(f"study {study.source}: no reconstruction is shipped with it ([study] reconstruction); "
                            "make one with `bayes-intl reconstruct --study ...` and pass its best_table.csv as --data")
        path = study.reconstruction
    return read_outcome_data(path, outcome=study.outcome, predictors=[p.name for p in study.predictors],
                             codes={p.name: p.codes for p in study.predictors},
                             meanings={p.name: ", ".join(f"{c} {lab}" for c, lab in zip(p.codes, p.labels))
                                       for p in study.predictors})


def study_model_data(study, table: OutcomeData) -> ModelData:
    """Firm rows of a study's data for its outcome models: levels recoded 0, 1, ... in declared order."""
    rows = (table.to_firms(study.outcome) if isinstance(table, CellTable) else table).firms.copy()
    for p in study.predictors:
        rows[p.name] = rows[p.name].map({code: i for i, code in enumerate(p.codes)}).astype("int64")
    return ModelData(rows, None, table.source, table.provenance, study_design(study))


def model_data(spec, path: str | Path | None = None, *, seed: int = 20150601, codebook=None) -> ModelData:
    """The data ``spec`` asks for (or ``path``): the reconstruction, its synthetic survey, or a user's file.

    Item-level models get a survey: the synthetic one for "reconstruction"/"synthetic", else the file
    read with ``codebook`` (default: the spec's, else the synthetic survey's codebook).
    """
    source = str(path) if path is not None else spec.data_source
    if spec.entry.item_level:
        if source in ("synthetic", "reconstruction"):
            survey = synthetic_survey(load_default(), seed=seed)
        else:
            from .simulate import survey_codebook
            from .survey import Codebook, load_codebook, measurement_roles, read_survey

            cb = codebook or spec.codebook or survey_codebook()
            if not spec.entry.outcome:  # only the id and the items: nobody is dropped for a role the model ignores
                cb = measurement_roles(cb if isinstance(cb, Codebook) else load_codebook(cb))
            survey = read_survey(source, cb)
            _check_roles(spec, survey)
        return ModelData(survey.firms, survey, survey.source, survey.provenance, survey.design)
    if source == "synthetic":
        survey = synthetic_survey(load_default(), seed=seed)
        return ModelData(survey.firms, None, survey.source, survey.provenance)
    table = load_default() if source == "reconstruction" else read_outcome_data(source)
    firms = (table.to_firms() if isinstance(table, CellTable) else table).firms
    return ModelData(firms, None, table.source, table.provenance)
