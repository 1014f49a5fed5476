import math

import pytest
from scipy import stats
from scipy.special import expit

from bayes_intl.audit import corner_range, run_audit, sample_size
from bayes_intl.study import load_study as load_paper

TABLE4_TERMS = ("Capinno", "Activity", "Size", "Constant")


def table5_id(size, level, act):
    return f"table5.{size}.{level}.{act}"


def table5_cells():
    """The 18 Table 5 cells of the Sonora study as (size, level, activity, (size, capinno, activity codes))."""
    study = load_paper()
    return [(c.at["size"], c.at["capinno"], c.at["activity"],
             tuple(study.at_codes(c.at)[k] for k in ("size", "capinno", "activity"))) for c in study.table_cells()]


@pytest.fixture(scope="module")
def audit():
    return run_audit()


def _by_id(result):
    return {r.id: r for r in result.records}


def test_every_required_figure_gets_a_verdict_and_an_interval(audit):
    records = _by_id(audit)
    for term in TABLE4_TERMS:
        for col in ("wald", "sig", "exp_b"):
            assert f"table4.{term}.{col}" in records
        if term != "Constant":
            assert f"table4.{term}.ci_lower" in records and f"table4.{term}.ci_upper" in records
    for cell in table5_cells():
        r = records[table5_id(*cell[:3])]
        assert r.recomputed_low <= r.recomputed_high
    for fid in ("table2.Constant.b", "table2.Constant.se", "table2.Constant.wald", "table2.Constant.sig",
                "table2.Constant.exp_b", "table3.no.pct", "table3.yes.pct", "table3.overall.pct",
                "equation2.p", "text.small_MM_average.p", "equation1.n", "text.link"):
        assert fid in records


def test_published_paper_is_consistent_given_rounding_except_the_probit_label(audit):
    bad = [r.id for r in audit.records if not r.consistent]
    assert bad == ["text.link"]
    assert all(j.feasible for j in audit.joint)


def test_recomputed_intervals_contain_the_point_recomputation(audit):
    """Independent point recomputation from the printed values must fall in each recomputed interval."""
    paper = load_paper()
    records = _by_id(audit)
    z = stats.norm.ppf(0.975)
    for term in TABLE4_TERMS:
        b, se = paper.value(f"table4.{term}.b"), paper.value(f"table4.{term}.se")
        point = {"wald": (b / se) ** 2, "exp_b": math.exp(b)}
        if term != "Constant":
            point |= {"ci_lower": math.exp(b - z * se), "ci_upper": math.exp(b + z * se)}
        for col, value in point.items():
            r = records[f"table4.{term}.{col}"]
            assert r.recomputed_low <= value <= r.recomputed_high, (term, col)
    beta = {t: paper.value(f"table4.{t}.b") for t in TABLE4_TERMS}
    for size, level, act, (s, c, a) in table5_cells():
        p = expit(beta["Constant"] + c * beta["Capinno"] + a * beta["Activity"] + s * beta["Size"])
        r = records[table5_id(size, level, act)]
        assert r.recomputed_low <= p <= r.recomputed_high


def test_table2_from_counts(audit):
    records = _by_id(audit)
    assert records["table2.Constant.b"].recomputed_low == pytest.approx(math.log(40 / 76))
    assert records["table2.Constant.se"].recomputed_low == pytest.approx(math.sqrt(1 / 40 + 1 / 76))
    assert records["table2.Constant.exp_b"].recomputed_low == pytest.approx(40 / 76)


def test_small_high_mm_is_consistent_only_because_of_rounding(audit):
    """0.8651 from the printed B would print as 0.87; only the B's own rounding lets it be 0.86."""
    r = _by_id(audit)["table5.small.high.MM"]
    assert r.consistent
    assert r.recomputed_low < 0.865 < r.recomputed_high


def test_perturbed_coefficient_flags_exactly_the_cells_it_changes():
    paper = load_paper()
    perturbed = paper.with_printed({"table4.Capinno.b": "1.483"})  # +0.01
    result = run_audit(perturbed)
    flagged = {r.id for r in result.records if r.id.startswith("table5.") and not r.consistent}
    beta = {t: perturbed.value(f"table4.{t}.b") for t in TABLE4_TERMS}
    expected = set()
    for size, level, act, (s, c, a) in table5_cells():
        p = expit(beta["Constant"] + c * beta["Capinno"] + a * beta["Activity"] + s * beta["Size"])
        fig = paper[table5_id(size, level, act)]
        if abs(p - fig.value) > 0.005 + 0.0008:  # clearly outside its printed interval
            expected.add(fig.id)
    assert expected and expected <= flagged
    assert all(table5_id(*cell[:3]).split(".")[2] != "low" for cell in table5_cells()
               if table5_id(*cell[:3]) in flagged)  # capinno = 0 cells cannot change
    records = _by_id(result)
    assert not records["table4.Capinno.exp_b"].consistent
    assert not next(j for j in result.joint if j.model == "step1").feasible


def test_perturbed_wald_is_flagged():
    result = run_audit(load_paper().with_printed({"table4.Size.wald": "3.997"}))
    assert not _by_id(result)["table4.Size.wald"].consistent


def test_joint_box_lies_inside_every_printed_interval(audit):
    paper = load_paper()
    step1 = next(j for j in audit.joint if j.model == "step1")
    for term in step1.terms:
        blo, bhi = paper[f"table4.{term.term}.b"].interval
        slo, shi = paper[f"table4.{term.term}.se"].interval
        assert blo - 1e-12 <= term.b[0] <= term.b[1] <= bhi + 1e-12
        assert slo - 1e-12 <= term.se[0] <= term.se[1] <= shi + 1e-12
        assert any(term.binding.values())


def test_sample_size_formula():
    n0 = sample_size(672, z=1.96, e=0.10, p=0.5)
    assert n0 == pytest.approx(672 * 1.96**2 * 0.25 / (672 * 0.01 + 1.96**2 * 0.25))
    assert 116 / n0 == pytest.approx(1.380, abs=5e-4)


def test_probit_label_reproduces_no_cell(audit):
    r = _by_id(audit)["text.link"]
    assert not r.consistent and r.recomputed_low == 0


def test_corner_range_of_monotone_function():
    assert corner_range(lambda a, b: a - b, (1, 2), (0, 3)) == (-2, 2)
