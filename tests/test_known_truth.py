"""A known-truth case end to end: real rows (MASS::birthwt) printed as SPSS prints their logit, the study
written from those figures alone, then audit -> reconstruction -> refit and a Bayesian fit, against the truth."""

from pathlib import Path

import numpy as np
import pytest

from bayes_intl.audit import run_audit
from bayes_intl.baselines import fit_logit, printed_study
from bayes_intl.data import read_outcome_data, study_model_data
from bayes_intl.reconstruct import reconstruct
from bayes_intl.spec import read_toml
from bayes_intl.baselines import dump_study
from bayes_intl.study import load_study, parse_study

DATA = Path(__file__).parent / "data" / "known_truth"


@pytest.fixture(scope="module")
def birthwt():
    raw = read_toml(DATA / "birthwt.toml", "study")
    predictors = raw["predictor"]
    true = read_outcome_data(DATA / "birthwt.csv", outcome="low", predictors=[p["name"] for p in predictors],
                             codes={p["name"]: tuple(p.get("codes", range(len(p["labels"])))) for p in predictors})
    return true, parse_study(printed_study(true, raw), "birthwt (printed)")


def test_the_printed_study_is_what_spss_prints_of_the_truth_and_audits_clean(birthwt, tmp_path):
    true, study = birthwt
    fit = fit_logit(true, study=study)
    for term in study.terms:
        key = term.id.split(".", 1)[1]
        assert study[f"{term.id}.b"].printed == f"{fit.params[key]:.3f}".replace("-0.000", "0.000")
        assert abs(study.value(f"{term.id}.se") - fit.bse[key]) <= 0.0005
    assert [study.value(f"table3.{k}") for k in ("no.no", "no.yes", "yes.no", "yes.yes")] == [110, 20, 38, 21]
    audit = run_audit(study)
    assert audit.summary["inconsistent"] == [] and all(j.feasible for j in audit.joint)
    # the study survives a round trip through its TOML text
    path = tmp_path / "birthwt.toml"
    path.write_text(dump_study(printed_study(true, read_toml(DATA / "birthwt.toml", "study"))))
    assert load_study(path).figures.keys() == study.figures.keys()


def test_reconstruction_meets_the_printed_constraints_and_recovers_the_truths_coefficients(birthwt):
    true, study = birthwt
    found = reconstruct(study, seed=3)
    cells = found.best.cells()
    assert "RECONSTRUCTED" in found.best.provenance
    truth_cells = true.firms.groupby(["race", "smoke", "ht", "ui"])["low"].agg(["size", "sum"])
    assert cells["n"].sum() == 189 and cells["y"].sum() == truth_cells["sum"].sum()
    for p in study.predictors:  # every printed margin holds
        by_level = cells.groupby(p.name)["n"].sum()
        assert by_level.to_dict() == true.firms.groupby(p.name).size().to_dict()
    refit = fit_logit(found.best.table(), study=study)
    counts = refit.table("Table 3").set_index("id")["value"]
    assert [counts[f"table3.{k}"] for k in ("no.no", "no.yes", "yes.no", "yes.yes")] == [110, 20, 38, 21]
    truth = fit_logit(true, study=study)
    # k bounds the distance to the printed B and SE; the truth is within 0.0005 of those
    assert found.best.k < 40
    bound = found.best.k * 0.0005 + 0.0005
    assert np.all(np.abs(refit.params - truth.params) <= bound + 1e-9)
    assert np.all(np.abs(refit.bse - truth.bse) <= bound + 1e-9)


@pytest.mark.slow
def test_bayesian_fit_of_the_reconstruction_matches_the_fit_of_the_truth(birthwt):
    from bayes_intl.runs import fit

    true, study = birthwt
    found = reconstruct(study, seed=3)
    sampler = {"chains": 2, "draws": 400, "tune": 400}
    spec = Path(__file__).parents[1] / "models" / "paper_logit.toml"
    on_truth = fit(spec, study=study, data=study_model_data(study, true), sampler=sampler, seed=11)
    on_rec = fit(spec, study=study, data=study_model_data(study, found.best.table()), sampler=sampler, seed=11)
    a = on_truth.coefficients.query("scale == 'log-odds'").set_index("term")
    b = on_rec.coefficients.query("scale == 'log-odds'").set_index("term")
    # Monte Carlo error of each mean is about sd / sqrt(ESS ~ 300): 4 such errors, plus the reconstruction's k
    tolerance = 4 * a["post_sd"] / np.sqrt(300) * np.sqrt(2) + found.best.k * 0.0005
    assert ((a["post_mean"] - b["post_mean"]).abs() <= tolerance).all()
    assert ((b["post_sd"] / a["post_sd"]).between(0.8, 1.25)).all()
