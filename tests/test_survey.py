"""Synthetic surveys round-trip through every file format, and malformed surveys are refused precisely."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_intl.data import load_default
from bayes_intl.errors import InputError, SpecError
from bayes_intl.simulate import ITEM_TABLE, PROVENANCE, codebook_toml, simulate_survey, survey_codebook
from bayes_intl.store import write_frame
from bayes_intl.survey import codebook_from_dict, load_codebook, read_survey

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.fixture(scope="module")
def survey():
    return simulate_survey(load_default(), seed=11)


@pytest.fixture
def csv_of(tmp_path, survey):
    """Write a (modified) copy of the synthetic survey as CSV and return its path."""
    def _write(modify=None, name="survey.csv"):
        frame = survey.frame.copy()
        if modify is not None:
            frame = modify(frame)
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return path
    return _write


def test_round_trip_csv_parquet_sav_give_identical_frames(tmp_path, survey):
    labels = {"activity": {0: "MM", 1: "IT"}}
    read = {}
    for ext in ("csv", "parquet", "sav"):
        path = write_frame(tmp_path / f"s.{ext}", survey.frame, value_labels=labels if ext == "sav" else None)
        read[ext] = read_survey(path, survey.codebook)
    for ext in ("parquet", "sav"):
        pd.testing.assert_frame_equal(read["csv"].firms, read[ext].firms)
        pd.testing.assert_frame_equal(read["csv"].items, read[ext].items)
    assert all(r.provenance == PROVENANCE for r in read.values())


def test_capinno_bands_from_items_equal_the_reconstruction_for_every_firm(survey):
    firms = load_default().to_firms().firms
    data = read_survey_frame(survey)
    assert len(data.firms) == 116
    np.testing.assert_array_equal(data.firms["capinno"].to_numpy(), firms["capinno"].to_numpy())
    # and the survey's outcome table is the reconstruction again
    pd.testing.assert_frame_equal(data.cells().cells.reset_index(drop=True),
                                  load_default().cells.query("n > 0").reset_index(drop=True)[
                                      ["size", "capinno", "activity", "n", "y"]], check_dtype=False)


def read_survey_frame(survey, tmp=Path("/tmp")):
    path = write_frame(tmp / f"bayes_intl_survey_{id(survey)}.parquet", survey.frame)
    try:
        return read_survey(path, survey.codebook)
    finally:
        path.unlink()


def test_simulation_is_deterministic_and_labelled(survey):
    again = simulate_survey(load_default(), seed=11)
    pd.testing.assert_frame_equal(survey.frame, again.frame)
    assert (survey.frame["data_provenance"] == PROVENANCE).all()
    assert survey.truth["items"]["org_equipment_age"]["reverse"] is True
    types = {kind for _, _, kind, *_ in ITEM_TABLE}
    assert types == {"ordinal", "binary", "count", "continuous"}
    assert survey.frame["municipality"].nunique() <= 6


def test_employees_agree_with_size_and_sector(survey):
    from bayes_intl.constructs import inegi_size
    f = survey.frame
    np.testing.assert_array_equal(inegi_size(f["employees"], f["activity"]), f["size"])


def test_committed_example_codebook_is_the_simulated_one():
    assert (MODELS / "codebook_example.toml").read_text() == codebook_toml()
    assert load_codebook(MODELS / "codebook_example.toml") == survey_codebook().__class__(
        **{**survey_codebook().__dict__, "source": str(MODELS / "codebook_example.toml")})


def test_listwise_deletion_reports_what_was_dropped(tmp_path, survey, csv_of):
    def blank(f):
        f = f.copy()
        f["eo_objectives"] = f["eo_objectives"].astype(float)
        f.loc[[3, 7], "eo_objectives"] = np.nan
        return f
    raw = codebook_from_dict({**_raw_codebook(), "missing": {"policy": "listwise"}})
    data = read_survey(csv_of(blank), raw)
    assert data.dropped == (4, 8)
    assert len(data.firms) == 114


def _raw_codebook():
    from bayes_intl.simulate import codebook_dict
    return codebook_dict()


# ---------------------------------------------------------------- malformed surveys

def _set(col, row, value):
    def modify(f):
        f = f.copy()
        f[col] = f[col].astype(object)
        f.loc[row, col] = value
        return f
    return modify


MALFORMED = {
    # name: (modification of the frame, fragments the error must contain)
    "missing_item_column": (lambda f: f.drop(columns=["cap_fund_sources"]), ["column 'cap_fund_sources'", "listed in the codebook"]),
    "missing_outcome_column": (lambda f: f.drop(columns=["internationalized"]), ["column 'internationalized'", "outcome"]),
    "duplicate_firm_id": (_set("firm_id", 5, "F001"), ["column 'firm_id'", "row 6", "unique firm id"]),
    "outcome_two": (_set("internationalized", 2, 2), ["column 'internationalized'", "row 3", "1 = internationalized"]),
    "outcome_yes_text": (_set("internationalized", 0, "yes"), ["column 'internationalized'", "row 1", "'yes'"]),
    "likert_out_of_range": (_set("eo_objectives", 9, 7), ["column 'eo_objectives'", "row 10", "from 1 to 5"]),
    "likert_zero": (_set("inst_learning_agents", 0, 0), ["column 'inst_learning_agents'", "row 1", "from 1 to 5"]),
    "likert_fraction": (_set("eo_objectives", 4, 2.5), ["column 'eo_objectives'", "row 5", "whole-number"]),
    "binary_two": (_set("org_training_plan", 11, 2), ["column 'org_training_plan'", "row 12", "0 (no) or 1 (yes)"]),
    "binary_text": (_set("org_training_plan", 1, "si"), ["column 'org_training_plan'", "row 2", "numeric response"]),
    "negative_count": (_set("cap_investment_projects", 20, -1), ["column 'cap_investment_projects'", "row 21", "non-negative"]),
    "activity_code_2": (_set("activity", 8, 2), ["column 'activity'", "row 9", "a level of covariate 'activity' (0 MM, 1 IT)"]),
    "employees_too_many_industry": (_set("employees", 0, 400), ["column 'employees'", "row 1", "between 1 and"]),
    "employees_text": (_set("employees", 3, "many"), ["column 'employees'", "row 4", "'many'"]),
    "size_disagrees_with_employees": (lambda f: _size_mismatch(f), ["column 'size'", "INEGI Table 1"]),
    "missing_item_value": (_set("eo_objectives", 6, np.nan), ["column 'eo_objectives'", "row 7", "no missing values"]),
    "missing_outcome_value": (_set("internationalized", 12, np.nan), ["column 'internationalized'", "row 13", "no missing"]),
    "constant_item": (lambda f: f.assign(cap_fund_sources=3), ["column 'cap_fund_sources'", "varies across firms"]),
    "size_code_3": (lambda f: _size_code(f), ["column 'size'", "a level of covariate 'size' (0 micro, 1 small, 2 medium)"]),
}


def _size_mismatch(f):
    f = f.copy()
    i = int(np.flatnonzero(f["size"].to_numpy() == 0)[0])
    f.loc[i, "size"] = 1
    return f


def _size_code(f):
    f = f.copy()
    f.loc[0, "size"] = 3
    return f


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_survey_is_refused_with_its_message(case, csv_of, survey):
    modify, fragments = MALFORMED[case]
    path = csv_of(modify)
    with pytest.raises(InputError) as info:
        read_survey(path, survey.codebook)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_empty_survey_file(tmp_path, survey):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(InputError, match="file is empty"):
        read_survey(path, survey.codebook)


def test_non_utf8_survey_file(tmp_path, survey):
    path = tmp_path / "latin1.csv"
    path.write_bytes("firm_id,municipality\nF1,Cajem\xe9\n".encode("latin-1"))
    with pytest.raises(InputError, match="UTF-8"):
        read_survey(path, survey.codebook)


def test_unknown_suffix(tmp_path, survey):
    path = tmp_path / "survey.xlsx"
    path.write_text("x")
    with pytest.raises(InputError, match=r"\.csv, \.parquet or \.sav"):
        read_survey(path, survey.codebook)


def test_sav_value_labels_that_disagree_with_the_codebook(tmp_path, survey):
    path = write_frame(tmp_path / "s.sav", survey.frame, value_labels={"activity": {0: "IT", 1: "MM"}})
    with pytest.raises(InputError, match=r"column 'activity'.*value label 0 = 'MM'"):
        read_survey(path, survey.codebook)


@pytest.mark.parametrize("change, fragment", [
    ({"colums": {}}, "unknown key 'colums'"),
    ({"item": [{"name": "a", "dimension": "d", "type": "likert"}]}, "type 'likert'"),
    ({"item": [{"name": "a", "dimension": "d", "type": "ordinal"}]}, "levels = [min, max]"),
    ({"item": [{"name": "a", "dimension": "d", "type": "binary", "revers": True}]}, "did you mean 'reverse'"),
    ({"missing": {"policy": "drop"}}, "'error', 'listwise', 'model'"),
    ({"item": []}, "no [[item]] entries"),
    ({"item": [{"name": "a", "type": "binary"}]}, "[[item]] number 1 needs 'dimension'"),
    ({"item": [{"name": "a", "dimension": "d", "type": "ordinal", "levels": [0, 11]}]}, "2 to 11 levels"),
    ({"columns": {"firm_id": "id", "activity": "activity"}}, "declare activity as a [[covariate]]"),
    ({"columns": {"firm_id": "id", "outcome": "y"}}, "declare the outcome in [outcome]"),
    ({"outcome": {"column": "y", "yes": [1, 2], "no": [2]}}, "value '2' is in both 'yes' and 'no'"),
    ({"outcome": {"name": "y"}}, "[outcome] needs 'column'"),
    ({"outcome": {"column": "exports share"}}, "[outcome] name 'exports share' must be a name"),
    ({"covariate": [{"name": "sector", "type": "text"}]}, "covariate 'sector' needs type = 'numeric' or 'categorical'"),
    ({"covariate": [{"name": "sector", "type": "categorical", "levels": ["a", "b"], "reference": "c"}]},
     "covariate 'sector' reference 'c' is not one of its levels (a, b)"),
    ({"covariate": [{"name": "sector", "type": "categorical", "levels": ["a", "b"], "labels": ["A"]}]},
     "has 2 levels but 1 labels"),
    ({"covariate": [{"name": "age", "type": "numeric", "levels": [1, 2]}]}, "covariate 'age' is numeric and takes no"),
    ({"covariate": [{"name": "capinno", "type": "numeric"}]}, "'capinno' is built from the items"),
    ({"covariate": [{"name": "age", "type": "numeric"}, {"name": "age", "type": "numeric"}]}, "'age' is declared twice"),
    ({"covariate": [{"name": "age", "type": "numeric", "colum": "AGE"}]}, "did you mean 'column'"),
])
def test_malformed_codebook_is_refused(change, fragment):
    with pytest.raises(SpecError) as info:
        codebook_from_dict({**_raw_codebook(), **change})
    assert fragment in str(info.value)
