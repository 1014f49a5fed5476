"""Surveys of any shape: codebooks that declare the outcome, its yes/no coding and the covariates; 1, 3 and 5
dimensions on public data (tests/data/README.md) fitted and reported end to end; missing item responses left
out of the likelihood; ordinal levels nobody chose; bad declarations refused by codebook key."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import bayes_intl
from bayes_intl.data import ModelData, model_data
from bayes_intl.errors import MismatchError, SpecError
from bayes_intl.models import build_model
from bayes_intl.spec import load_spec
from bayes_intl.survey import codebook_from_dict, read_survey, unused_levels, validate_survey

ROOT = Path(__file__).resolve().parents[1]
SURVEYS = ROOT / "models" / "surveys"
DATA = ROOT / "tests" / "data"
TINY = {"chains": 2, "draws": 60, "tune": 60}


@pytest.fixture(scope="module")
def bfi_sample(tmp_path_factory) -> Path:
    """The first 200 respondents of bfi (with their missing responses): the same codebooks, a quicker fit."""
    path = tmp_path_factory.mktemp("bfi") / "bfi_200.csv"
    pd.read_csv(DATA / "bfi.csv").head(200).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def runs(bfi_sample):
    return {
        "hs1939_school": bayes_intl.fit(SURVEYS / "hs1939_school.toml", sampler=TINY, seed=1),
        "bfi_college": bayes_intl.fit(SURVEYS / "bfi_college.toml", data=bfi_sample, sampler=TINY, seed=1),
        "bfi_neuroticism": bayes_intl.fit(SURVEYS / "bfi_neuroticism.toml", data=bfi_sample, sampler=TINY, seed=1),
    }


def test_codebooks_with_one_three_and_five_dimensions_fit_with_their_own_outcome_and_covariates(runs):
    dims = {name: run.idata.posterior.sizes.get("dimension") for name, run in runs.items()}
    assert dims == {"hs1939_school": 3, "bfi_college": 5, "bfi_neuroticism": 1}
    school = runs["hs1939_school"]
    # The outcome is named and coded as the codebook declares: school "Grant-White" is 1, "Pasteur" 0.
    raw = pd.read_csv(DATA / "holzinger_swineford_1939.csv").dropna(subset=["grade"])
    assert (school.idata.observed_data["grant_white"].to_numpy() == (raw["school"] == "Grant-White")).all()
    assert school.record["survey"]["dropped_rows"] == [301]  # the pupil with no grade, listwise
    # Covariates enter by their declared names: dummies named by label, numeric ones by name.
    assert set(school.coefficients["term"]) >= {"capinno", "female", "age", "grade[grade 8]", "Constant"}
    assert list(school.table5.columns[:4]) == ["id", "capinno", "female", "grade"]
    assert len(school.table5) == 3 * 2 * 2 and school.table5["paper"].isna().all()
    assert school.table5["mle"].between(0, 1).all()  # the refit predicts the same cells
    college = runs["bfi_college"]
    assert "college_graduate" in college.idata.log_likelihood
    assert list(college.table5.columns[:3]) == ["id", "capinno", "gender"]
    assert college.record["design"]["outcome_label"] == "a college graduate"


def test_missing_item_responses_are_counted_and_reported(runs, bfi_sample):
    run = runs["bfi_college"]
    frame = pd.read_csv(bfi_sample)
    items = [c for c in frame.columns if c[0] in "ACENO" and c[1:].isdigit()]
    kept = frame.dropna(subset=["education"])
    assert run.record["survey"]["missing_responses"] == int(kept[items].isna().sum().sum()) > 0
    assert run.record["survey"]["missing_policy"] == "model"
    observed = run.idata.observed_data["items_ordinal_1_6"]
    assert observed.dims == ("items_ordinal_1_6_response",) and observed.size == kept[items].notna().sum().sum()


def test_a_report_of_user_surveys_names_their_outcomes_and_never_the_paper(runs, tmp_path):
    written = bayes_intl.report(list(runs.values()), out=tmp_path / "report")
    assert written.sections[0] == "1. Coefficients: MLE and each model" and len(written.sections) == 7
    markdown = (tmp_path / "report" / "report.md").read_text()
    for word in ("Sonora", "internationalized", "paper B", "audit"):
        assert word not in markdown, word
    assert not (tmp_path / "report" / "inputs").exists()
    loo = pd.read_csv(tmp_path / "report" / "tables" / "loo.csv", comment="#")
    assert loo["outcome_data"].nunique() == 2  # school vs college: never ranked against each other


def test_missing_responses_leave_exactly_their_terms_out_of_the_likelihood():
    """Each given response contributes the same log-likelihood term as in the complete survey; missing ones none."""
    from bayes_intl.data import load_default
    from bayes_intl.simulate import codebook_dict, simulate_survey

    frame = simulate_survey(load_default(), seed=5).frame
    raw = codebook_dict() | {"missing": {"policy": "model"}}
    full = validate_survey(frame, codebook_from_dict(raw), source="complete")
    holed = frame.copy()
    rng = np.random.default_rng(0)
    for item in ("eo_objectives", "org_training_plan", "cap_fund_sources", "inst_learning_agents"):
        holed.loc[rng.choice(len(holed), 9, replace=False), item] = np.nan
    survey = validate_survey(holed, codebook_from_dict(raw), source="holed")
    assert survey.missing_responses == 36
    spec = load_spec(ROOT / "models" / "measurement_only.toml")
    models = [build_model(spec, ModelData(s.firms, s, s.source, s.provenance, s.design)) for s in (full, survey)]
    point = models[0].initial_point(random_seed=3)
    for block in ("items_binary", "items_count", "items_ordinal_1_5"):
        complete, partial = (m.compile_logp(vars=[m[block]], sum=False)(point)[0] for m in models)
        firm = models[1][f"{block}_firm"].get_value()
        item = models[1][f"{block}_item"].get_value()
        assert partial.shape == (complete.size - 9 * (2 if block == "items_ordinal_1_5" else 1),)
        np.testing.assert_allclose(partial, complete[firm, item], rtol=1e-12)


def test_an_ordinal_level_nobody_chose_is_reported_and_fitted():
    from bayes_intl.data import load_default
    from bayes_intl.simulate import simulate_survey, survey_codebook

    frame = simulate_survey(load_default(), seed=5).frame
    frame["eo_objectives"] = frame["eo_objectives"].clip(lower=2)  # nobody answers 1
    survey = validate_survey(frame, survey_codebook(), source="no ones")
    assert unused_levels(survey) == {"eo_objectives": [1]}
    spec = load_spec(ROOT / "models" / "measurement_only.toml")
    model = build_model(spec, ModelData(survey.firms, survey, survey.source, survey.provenance, survey.design))
    assert model.coords["ordinal_1_5_cut"] == (1, 2, 3, 4)  # the unchosen level keeps its cutpoint
    assert np.isfinite(model.compile_logp()(model.initial_point(random_seed=1)))


def test_a_covariate_the_data_lack_and_a_predictor_nobody_declared_are_refused_by_key(tmp_path):
    codebook = (SURVEYS / "codebook_hs1939_school.toml").read_text().replace('column = "ageyr"', 'column = "age_years"')
    (tmp_path / "codebook.toml").write_text(codebook)
    with pytest.raises(MismatchError, match=r"column 'age_years'.*the column of covariate 'age' \('age_years', as the codebook names it\); did you mean 'ageyr'"):
        read_survey(DATA / "holzinger_swineford_1939.csv", tmp_path / "codebook.toml")
    spec = (SURVEYS / "hs1939_school.toml").read_text().replace('name = "age"', 'name = "height"')
    spec = spec.replace('codebook = "codebook_hs1939_school.toml"', f'codebook = "{SURVEYS / "codebook_hs1939_school.toml"}"')
    spec = spec.replace('source = "../../tests', f'source = "{ROOT}/tests')
    (tmp_path / "spec.toml").write_text(spec)
    with pytest.raises(SpecError) as info:
        bayes_intl.fit(tmp_path / "spec.toml", sampler=TINY)
    message = str(info.value)
    assert "no [[covariate]] named 'height'" in message and "declared: capinno, female, age, grade" in message
    assert len(message.splitlines()) == 1


def test_the_run_records_the_design_and_loads_back_with_it(runs, tmp_path):
    from bayes_intl.store import load, save_run

    run = runs["hs1939_school"]
    folder = save_run(run, tmp_path / run.name)
    record = json.loads((folder / "run.json").read_text())
    assert record["design"]["outcome"] == "grant_white"
    back = load(folder)
    assert back.data.design == run.data.design and not back.data.design.paper


def test_fit_json_reports_the_design_and_the_survey(tmp_path, capsys):
    from bayes_intl.cli import main

    assert main(["fit", str(SURVEYS / "hs1939_school.toml"), "--quick", "--json", "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["design"]["outcome"] == "grant_white"
    assert [c["name"] for c in payload["design"]["covariates"]] == ["capinno", "female", "age", "grade"]
    assert payload["survey"] == {"respondents": 300, "dropped_rows": [301], "missing_policy": "listwise",
                                 "missing_responses": 0, "unused_levels": {}}
    assert {row["term"] for row in payload["coefficients"]} >= {"grade[grade 8]", "female", "age"}


def test_the_five_factor_spec_builds_the_missing_response_likelihood_on_each_items_cutpoints():
    """bfi_five_factors.toml: the measurement model alone on 25 six-point items; respondents without the outcome the
    codebook declares are kept (a measurement model does not read it); the missing responses are left out and each
    given response reads its own item's cutpoints (no per-response copy of them)."""
    spec = load_spec(SURVEYS / "bfi_five_factors.toml")
    model = build_model(spec, model_data(spec))
    assert len(model.coords["dimension"]) == 5 and len(model.coords["item"]) == 25
    responses = model["items_ordinal_1_6_observed"].get_value()
    assert len(responses) == 2800 * 25 - 508
    assert len(model_data(load_spec(SURVEYS / "bfi_college.toml")).firms) == 2577  # the outcome model drops 223
    logp = model.compile_logp(vars=[model["items_ordinal_1_6"]], sum=False)(model.initial_point())[0]
    assert logp.shape == responses.shape and np.isfinite(logp).all()


def test_item_priors_are_needed_only_when_the_structure_or_the_items_use_them():
    """A spec gives second_order_loading, cutpoint, item_intercept and residual_sd only when its structure and items
    need them (bfi_five_factors gives none but cutpoint); one that lacks a needed one is refused naming the key."""
    from bayes_intl.spec import spec_from_dict

    assert set(load_spec(SURVEYS / "bfi_five_factors.toml").priors) == {"loading", "cutpoint", "lkj_eta"}
    spec = load_spec(ROOT / "models" / "measurement_only.toml")
    for key, needed_by in (("cutpoint", "ordinal items"), ("item_intercept", "binary items"),
                           ("second_order_loading", "the second-order structure")):
        priors = {k: v for k, v in spec.raw["priors"].items() if k != key}
        lacking = spec_from_dict(spec.raw | {"priors": priors}, source="lacking.toml")
        with pytest.raises(SpecError, match=f"spec lacking.toml: \\[priors\\] needs '{key}' for {needed_by}"):
            build_model(lacking, model_data(lacking))
