"""The Python API (fit, load, compare, report), the examples that use it, and refusals of folders that are not runs."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import arviz as az
import pandas as pd
import pytest

import bayes_intl
from bayes_intl.cli import main
from bayes_intl.errors import InputError
from bayes_intl.runs import EnsembleRun, FittedRun, fit_ensemble

ROOT = Path(__file__).resolve().parents[1]
TINY = {"chains": 2, "draws": 60, "tune": 60}


@pytest.fixture(scope="module")
def paper_run(tmp_path_factory):
    return bayes_intl.fit(ROOT / "models" / "paper_logit.toml", sampler=TINY, seed=5,
                          out=tmp_path_factory.mktemp("runs"))


def test_fit_returns_one_object_with_its_posterior_and_tables(paper_run):
    assert isinstance(paper_run, FittedRun) and isinstance(paper_run.idata, az.InferenceData)
    assert paper_run.idata.posterior.sizes["draw"] == 60 and paper_run.record["sampler"]["draws"] == 60
    assert len(paper_run.table5) == 18 and {"paper", "mle", "mean", "hdi_low", "hdi_high"} <= set(paper_run.table5)
    assert set(paper_run.coefficients["scale"]) == {"log-odds", "odds ratio"}
    from importlib import resources

    shipped = json.loads(resources.files("bayes_intl").joinpath("data/reconstruction.json").read_text())
    assert paper_run.mle.params["Capinno"] == pytest.approx(shipped["refit"]["b"]["Capinno"], abs=1e-9)
    assert paper_run.table5["mle"].tolist() == [paper_run.mle.table5[i] for i in paper_run.table5["id"]]


def test_load_gives_back_the_same_run(paper_run):
    again = bayes_intl.load(paper_run.folder)
    assert isinstance(again, FittedRun) and again.name == paper_run.name and not again.data.firms.empty
    assert again.spec.hash() == paper_run.spec.hash() and again.mle == paper_run.mle
    pd.testing.assert_frame_equal(again.table5, paper_run.table5, check_exact=False, rtol=1e-12)
    assert (again.idata.posterior["slope"].values == paper_run.idata.posterior["slope"].values).all()
    table = bayes_intl.compare([again.folder])
    assert table["run"].tolist() == [paper_run.name] and table["elpd_loo"].iloc[0] < 0


def test_report_from_the_api(paper_run, tmp_path):
    written = bayes_intl.report([paper_run], out=tmp_path / "report")
    assert written.index.exists() and len(written.sections) == 11
    assert (tmp_path / "report" / "tables" / "table5.csv").exists()


def test_ensemble_output_loads_and_is_refused_by_compare_and_report(tmp_path, capsys):
    run = fit_ensemble(ROOT / "models" / "paper_logit.toml", sampler=TINY, seed=2, members=2, out=tmp_path)
    loaded = bayes_intl.load(run.folder)
    assert isinstance(loaded, EnsembleRun) and loaded.record["members"] == 2
    pd.testing.assert_frame_equal(loaded.coefficients, run.coefficients, check_exact=False, rtol=1e-12)
    for command in (["compare", str(run.folder)], ["report", str(run.folder), "--out", str(tmp_path / "r")]):
        assert main(command) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "ensemble" in err and str(run.folder) in err


def test_an_ensemble_of_another_studys_reconstructions_uses_its_predictors_and_cells(tmp_path):
    """Titanic: the shipped ensemble's members, class as three indicators, one cell per class x sex x age."""
    run = fit_ensemble(ROOT / "models" / "paper_logit.toml", sampler=TINY, seed=2, members=2, out=tmp_path,
                       study="titanic")
    assert set(run.coefficients["term"]) == {"class[1st]", "class[2nd]", "class[3rd]", "sex[Female]", "age[Child]",
                                             "Constant"}
    assert len(run.table5) == 16 and (run.table5["members"] == 2).all()
    assert "titanic" in run.record["data_provenance"] and run.record["outcome"] == "survived"
    grouped = fit_ensemble(ROOT / "models" / "hierarchical_logit.toml", sampler=TINY, seed=2, members=1,
                           study="titanic")  # class differences from the study's reference level, Crew
    assert {"class[1st]", "class[2nd]", "class[3rd]"} <= set(grouped.coefficients["term"])


def test_folders_that_are_not_complete_runs_are_refused_in_one_line(paper_run, tmp_path, capsys):
    no_record = tmp_path / "empty"
    no_record.mkdir()
    no_posterior = tmp_path / "no_posterior"
    shutil.copytree(paper_run.folder, no_posterior)
    (no_posterior / "posterior.nc").unlink()
    interrupted = tmp_path / "interrupted"
    shutil.copytree(paper_run.folder, interrupted)
    record = json.loads((interrupted / "run.json").read_text())
    (interrupted / "run.json").write_text(json.dumps(record | {"complete": False}))
    for folder, words in ((no_record, "run.json"), (no_posterior, "posterior.nc is missing"),
                          (interrupted, "interrupted"), (tmp_path / "nowhere", "no such folder")):
        for command in (["compare", str(folder)], ["report", str(folder), "--out", str(tmp_path / "r")]):
            assert main(command) == 2, (folder, command)
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and words in err and "Traceback" not in err
        with pytest.raises(InputError):
            bayes_intl.load(folder)


@pytest.mark.parametrize("script, expected", [
    ("reanalyse_paper.py", "Report: "),
    ("fit_survey_file.py", "Loadings (posterior mean and 94% HDI)"),
    ("compare_priors.py", "sceptical slopes: Normal(mu=0, sigma=0.5)"),
    ("reanalyse_study.py", "Report: "),
])
def test_examples_run_at_tiny_settings(script, expected, tmp_path):
    done = subprocess.run([sys.executable, f"examples/{script}", "--draws", "40", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    assert expected in done.stdout
    for noise in ("Warning", "Traceback", "Sampling: ["):  # no library warning, traceback or log line
        assert noise not in done.stderr, noise
