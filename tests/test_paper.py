import pytest

from bayes_intl.paper import TABLE4_TERMS, load_paper, table5_cells, table5_id


def test_every_figure_has_a_source_and_a_precision():
    paper = load_paper()
    assert len(paper) >= 80
    for fig in paper.values():
        assert fig.table and fig.row and fig.column, fig.id
        float(fig.printed)  # parses
        lo, hi = fig.interval
        assert lo <= fig.value <= hi


def test_printed_precision_survives_trailing_zeros():
    paper = load_paper()
    assert paper["table4.Capinno.wald"].decimals == 3  # printed 13.030
    assert paper["table4.Capinno.wald"].interval == pytest.approx((13.0295, 13.0305), abs=1e-12)
    assert paper["table4.Capinno.sig"].interval == (0.0, 0.0005)  # ".000" cannot go negative
    assert paper["sample.n"].interval == (116, 116)  # counts are exact


def test_tables_are_complete():
    paper = load_paper()
    for term in TABLE4_TERMS:
        for col in ("b", "se", "wald", "sig", "exp_b"):
            assert f"table4.{term}.{col}" in paper
    assert len(table5_cells()) == 18
    assert all(table5_id(*cell[:3]) in paper for cell in table5_cells())
    assert paper.value("sample.IT") + paper.value("sample.MM") == paper.value("sample.n")


def test_with_printed_returns_a_copy():
    paper = load_paper()
    changed = paper.with_printed({"table4.Size.b": "1.115"})
    assert changed.value("table4.Size.b") == 1.115
    assert paper.value("table4.Size.b") == 1.105
