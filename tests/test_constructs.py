import numpy as np
import pandas as pd
import pytest

from bayes_intl.constructs import capinno_band, capinno_index, inegi_size
from bayes_intl.errors import InputError


def test_inegi_size_boundaries():
    employees = [1, 30, 31, 100, 101, 250, 1, 20, 21, 50, 51, 100]
    activity = [0] * 6 + [1] * 6  # MM = industry, IT = services
    assert inegi_size(employees, activity).tolist() == [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2]


@pytest.mark.parametrize("employees, activity", [(251, 0), (101, 1), (0, 0)])
def test_inegi_size_refuses_non_sme_naming_the_firm(employees, activity):
    with pytest.raises(InputError, match=r"column 'employees', row 2.*firm 'F7'"):
        inegi_size([10, employees], [0, activity], firm_ids=["F1", "F7"], file="survey.csv")


def test_band_rules_differ_only_between_the_papers_printed_boundaries():
    x = np.array([0.0, 0.33, 0.334, 0.335, 0.34, 0.66, 0.665, 0.666, 0.67, 1.0])
    assert capinno_band(x, rule="thirds").tolist() == [0, 0, 1, 1, 1, 1, 1, 1, 2, 2]
    assert capinno_band(x, rule="paper").tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]


def test_capinno_index_standardizes_combines_and_normalizes(rng):
    items = pd.DataFrame(rng.normal(size=(40, 4)) * [1, 10, 100, 0.1], columns=["a1", "a2", "b1", "b2"])
    out = capinno_index(items, {"A": ["a1", "a2"], "B": ["b1", "b2"]})
    assert out["capinno_index"].min() == 0 and out["capinno_index"].max() == 1
    z = (items - items.mean()) / items.std(ddof=1)
    raw = (z[["a1", "a2"]].mean(axis=1) + z[["b1", "b2"]].mean(axis=1)) / 2
    expected = (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(out["capinno_index"], expected)
    assert set(out["capinno"]) <= {0, 1, 2}


def test_capinno_refuses_a_constant_item():
    items = pd.DataFrame({"a1": [1, 2, 3], "a2": [4, 4, 4]})
    with pytest.raises(InputError, match="column 'a2'.*varies"):
        capinno_index(items, {"A": ["a1", "a2"]})
