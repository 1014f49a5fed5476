import math

import numpy as np
import pytest
import statsmodels.formula.api as smf

from bayes_intl.baselines import compare, fit_logit, published_tables
from bayes_intl.data import CellTable, load_default


def test_cells_and_firm_rows_give_identical_fits(random_cells):
    cells = CellTable(random_cells, "test", "synthetic test cells")
    by_cells = fit_logit(cells)
    firms = cells.to_firms()
    by_rows = fit_logit(firms)
    np.testing.assert_allclose(by_cells.params, by_rows.params, atol=1e-8)
    np.testing.assert_allclose(by_cells.bse, by_rows.bse, atol=1e-8)
    # and against statsmodels' plain Logit on the expanded rows
    direct = smf.logit("internationalized ~ capinno + activity + size", data=firms.firms).fit(disp=0)
    np.testing.assert_allclose(by_cells.params.to_numpy(), direct.params.to_numpy(), atol=1e-8)
    np.testing.assert_allclose(by_cells.bse.to_numpy(), direct.bse.to_numpy(), atol=1e-8)


def test_table2_is_the_constant_only_model(random_cells):
    fit = fit_logit(CellTable(random_cells, "test", "synthetic"))
    y, n = random_cells["y"].sum(), random_cells["n"].sum()
    t2 = fit.table("Table 2").set_index("id")["value"]
    assert t2["table2.Constant.b"] == pytest.approx(math.log(y / (n - y)))
    assert t2["table2.Constant.se"] == pytest.approx(math.sqrt(1 / y + 1 / (n - y)))


def test_size_as_two_dummies(random_cells):
    fit = fit_logit(CellTable(random_cells, "test", "synthetic"),
                    formula="internationalized ~ capinno + activity + C(size)")
    assert {"C(size)[T.1]", "C(size)[T.2]"} <= set(fit.params.index)
    assert len(fit.table("Table 5")) == 18
    assert fit.notes == ()


def test_separated_term_is_reported_not_crashed():
    """No internationalized medium firm: size as dummies separates, and the refit says so in one note."""
    cells = load_default().cells.copy()
    cells.loc[cells["size"] == 2, "y"] = 0
    fit = fit_logit(CellTable(cells, "separated.csv", "test"), formula="internationalized ~ capinno + activity + C(size)")
    assert fit.table("Table 4")["value"].notna().all()
    assert [note.split(":")[0] for note in fit.notes] == ["C(size)[T.2]"]


def test_an_outcome_without_variation_is_one_note_per_term_and_no_library_warning():
    """All firms not internationalized: statsmodels' 14 PerfectSeparationWarnings become plain notes
    (the suite turns any warning into an error, so one leaking would fail here)."""
    cells = load_default().cells.assign(y=0)
    fit = fit_logit(CellTable(cells, "all_zero.csv", "test"))
    assert fit.notes[0] == "the outcome 'internationalized' is 0 for every firm: no coefficient can be estimated"
    assert {note.split(":")[0] for note in fit.notes[1:]} == {"Constant", "Capinno", "Activity", "Size"}


def test_default_reconstruction_reproduces_table3_and_compare_is_one_call():
    fit = fit_logit(load_default())
    side = compare(published_tables(), fit.tables)
    assert {"published", "refit", "difference", "same_when_printed"} <= set(side.columns)
    t3 = side[side["table"] == "Table 3"].set_index("id")
    assert t3.loc[["table3.no.no", "table3.no.yes", "table3.yes.no", "table3.yes.yes"], "refit"].tolist() == [65, 11, 13, 27]
    assert side["refit"].notna().all()
    assert len(side[side["table"] == "Table 5"]) == 18
