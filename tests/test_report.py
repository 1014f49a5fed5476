"""The whole pipeline (`bayes-intl run`), its stage cache, and the report it writes."""

import base64
import json
import re
import shutil
from html import unescape
from pathlib import Path

import pandas as pd
import pytest

from bayes_intl.cli import main
from bayes_intl.errors import InputError, SpecError
from bayes_intl.pipeline import run_analysis
from bayes_intl.reporting import RECONSTRUCTED_NOTE, SECTION_TITLES
from bayes_intl.runs import fit
from bayes_intl.spec import load_analysis
from bayes_intl.store import load


def test_run_writes_every_stage_and_a_report(quick_analysis):
    _, result, _ = quick_analysis
    names = [s["name"] for s in result["stages"]]
    # latent_factor (item-level) is fitted in a second process beside paper_logit and the ensembles
    assert names == ["audit", "reconstruct", "survey", "baseline", "fit paper_logit", "ensemble paper_logit",
                     "ensemble latent_factor", "fit latent_factor", "compare", "report"]
    assert not any(s["reused"] for s in result["stages"])
    for stage in result["stages"]:
        assert stage["outputs"] and all(Path(p).exists() for p in stage["outputs"]), stage["name"]
    assert Path(result["report"]).name == "index.html"


def test_stage_outputs_carry_the_same_provenance_as_the_commands(quick_analysis):
    """The analysis's audit and baseline write what `bayes-intl audit` / `baseline` write: hashes,
    package versions and the data's RECONSTRUCTED label on every file."""
    _, _, root = quick_analysis
    audit = json.loads((root / "out" / "audit" / "audit.json").read_text())
    assert set(audit["provenance"]) == {"study_sha256", "versions"}
    baseline = json.loads((root / "out" / "baseline" / "baseline.json").read_text())
    assert len(baseline["data_sha256"]) == 64 and "pymc" in baseline["versions"]
    assert "RECONSTRUCTED" in baseline["data_provenance"].upper()
    assert "pymc" in json.loads((root / "out" / "reconstruct" / "reconstruction.json").read_text())["versions"]
    for name in ("tables.csv", "comparison.csv"):
        assert (root / "out" / "baseline" / name).read_text().upper().startswith("# DATA:"), name
        assert "RECONSTRUCTED" in (root / "out" / "baseline" / name).read_text().splitlines()[0].upper(), name


def test_report_has_every_section_and_embedded_figures(quick_analysis):
    _, result, _ = quick_analysis
    index = Path(result["report"])
    html = index.read_text()
    headings = [unescape(h) for h in re.findall(r"<h2>(.*?)</h2>", html)]
    assert headings == list(SECTION_TITLES)
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) >= 8  # forest, Table 5, rank x2, calibration, separation x2, items, loadings, priors x2
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (index.parent / "report.md").read_text()
    assert all(f"## {title}" in markdown for title in SECTION_TITLES)
    assert RECONSTRUCTED_NOTE in unescape(html) and RECONSTRUCTED_NOTE in markdown
    for figure in re.findall(r"\]\((figures/[^)]+)\)", markdown):
        assert (index.parent / figure).exists()


def test_report_tables_are_labelled_and_match_the_runs(quick_analysis):
    _, result, _ = quick_analysis
    tables = Path(result["report"]).parent / "tables"
    for path in tables.glob("*.csv"):
        assert path.read_text().startswith(f"# {RECONSTRUCTED_NOTE}"), path.name
    table5 = pd.read_csv(tables / "table5.csv", comment="#")
    assert len(table5) == 18
    run = next(r for r in result["runs"] if "paper_logit" in r)
    own = pd.read_csv(Path(run) / "table5.csv", comment="#")
    shown = table5["paper_logit mean [94% HDI]"].str.split(" ").str[0].astype(float)
    assert (shown - own["mean"]).abs().max() < 5e-4  # printed to 3 decimals
    diagnostics = pd.read_csv(tables / "diagnostics.csv", comment="#")
    assert set(diagnostics["model"]) == {"paper_logit", "latent_factor"}


def test_second_run_reuses_every_stage_and_reruns_a_stale_one(quick_analysis):
    analysis, first, root = quick_analysis
    again = run_analysis(analysis, quick=True, out=root / "out", progress=False)
    assert all(s["reused"] for s in again["stages"])
    assert again["runs"] == first["runs"]
    (root / "out" / "audit" / "audit.json").unlink()  # an output gone: that stage must run again
    third = run_analysis(analysis, quick=True, out=root / "out", progress=False)
    reused = {s["name"]: s["reused"] for s in third["stages"]}
    assert reused["audit"] is False and reused["fit paper_logit"] is True
    assert (root / "out" / "audit" / "audit.json").exists()


def test_fit_run_refits_a_run_whose_recorded_hash_differs(quick_analysis, tmp_path):
    analysis, result, root = quick_analysis
    run = Path(next(r for r in result["runs"] if "paper_logit" in r))
    copy = tmp_path / "runs" / run.name
    shutil.copytree(run, copy)
    record = json.loads((copy / "run.json").read_text())
    table = root / "out" / "reconstruct" / "best_table.csv"
    same = fit(analysis.models[0], data=str(table), seed=7, quick=True, out=tmp_path / "runs", reuse=True)
    assert same.reused
    (copy / "run.json").write_text(json.dumps(record | {"data_sha256": "0" * 64}))
    with pytest.raises(InputError, match="data_sha256"):
        load(copy, data_hash=record["data_sha256"])
    refit = fit(analysis.models[0], data=str(table), seed=7, quick=True, out=tmp_path / "runs", reuse=True)
    assert not refit.reused
    assert json.loads((copy / "run.json").read_text())["data_sha256"] == record["data_sha256"]


def test_report_command_json(quick_analysis, tmp_path, capsys):
    _, result, _ = quick_analysis
    assert main(["report", *result["runs"], "--out", str(tmp_path / "report"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"index", "sections", "figures", "written"}
    assert payload["sections"] == list(SECTION_TITLES)
    assert Path(payload["index"]).exists() and payload["figures"] >= 8
    assert (tmp_path / "report" / "inputs" / "audit" / "audit.json").exists()


@pytest.mark.parametrize("text, key", [
    ('models = ["paper_logit.toml"]\nsed = 3\n', "sed"),
    ('models = []\n', "models"),
    ('models = ["nowhere.toml"]\n', "models"),
    ('models = ["paper_logit.toml"]\n[reconstruct]\nchains = 0\n', "reconstruct.chains"),
    ('models = ["paper_logit.toml"]\n[quick.reconstruct]\nsearch = "no"\n', "quick.reconstruct.search"),
])
def test_bad_analysis_files_are_refused_by_key(tmp_path, text, key):
    shutil.copy(Path(__file__).resolve().parents[1] / "models" / "paper_logit.toml", tmp_path)
    (tmp_path / "analysis.toml").write_text(text)
    with pytest.raises(SpecError, match=re.escape(f"key '{key}'")):
        load_analysis(tmp_path / "analysis.toml")


def test_shipped_analysis_file_loads():
    analysis = load_analysis(Path(__file__).resolve().parents[1] / "models" / "analysis.toml")
    assert [Path(m).stem for m in analysis.models] == ["paper_logit", "hierarchical_logit", "coarsened_latent",
                                                       "latent_factor"]
    # The search is opt-in (`bayes-intl reconstruct`, or search = true): its result ships and is checked by a refit.
    assert analysis.reconstruct["search"] is False and analysis.quick_reconstruct["search"] is False


def test_run_command_json_reports_reuse(quick_analysis, capsys):
    analysis, _, root = quick_analysis
    assert main(["run", analysis.source, "--quick", "--out", str(root / "out"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) == {"analysis", "study", "quick", "out", "seconds", "report", "runs", "models_skipped", "stages",
                            "report_sections", "report_tables"}
    assert payload["report_sections"][0].startswith("1. Summary")  # from the cache: the report stage was reused
    assert payload["quick"] is True and Path(payload["report"]).exists()
    assert all(set(s) == {"name", "reused", "seconds", "summary", "outputs"} for s in payload["stages"])
    assert sum(s["reused"] for s in payload["stages"]) >= len(payload["stages"]) - 1


def test_the_summary_scores_every_claim_of_the_study_under_every_model(quick_analysis):
    from bayes_intl.claims import VERDICTS
    from bayes_intl.study import load_study

    _, result, _ = quick_analysis
    tables = Path(result["report"]).parent / "tables"
    claims = pd.read_csv(tables / "claims.csv", comment="#")
    ids = [c.id for c in load_study().claims]
    assert sorted(set(claims["claim"])) == sorted(ids)
    assert len(claims) == len(ids) * len(result["runs"]) and claims["model"].nunique() == len(result["runs"])
    assert claims["probability"].between(0, 1).all() and set(claims["verdict"]) <= set(VERDICTS.values())
    summary = pd.read_csv(tables / "claims_summary.csv", comment="#")
    assert list(summary["claim"]) == ids
    assert result["report_sections"][0].startswith("1. Summary: what survives")  # run --json lists them
    assert {"claims", "claims_summary", "prior_sensitivity", "ensemble_coefficients",
            "ensemble_table5"} <= set(result["report_tables"])


def test_prior_sensitivity_is_in_every_outcome_run_and_in_the_report(quick_analysis):
    import arviz as az

    from bayes_intl.claims import PSENS_THRESHOLD

    _, result, _ = quick_analysis
    frame = pd.read_csv(Path(result["report"]).parent / "tables" / "prior_sensitivity.csv", comment="#")
    assert frame["model"].nunique() == len(result["runs"])
    assert {"intercept", "slope[capinno]"} <= set(frame["variable"])
    assert frame["variable"].str.startswith("p[table5.").sum() == 18 * len(result["runs"])  # every Table 5 cell
    assert (frame[["prior", "likelihood"]] >= 0).all().all()
    flagged = frame["diagnosis"].fillna("")
    assert ((flagged != "") == ((frame["prior"] >= PSENS_THRESHOLD))).all()
    for run in result["runs"]:
        assert "log_prior" in az.from_netcdf(str(Path(run) / "posterior.nc")).groups()


def test_the_ensemble_stages_split_the_spread_and_bound_each_claim(quick_analysis):
    """paper_logit on 3 reconstructions and latent_factor on 1 (the analysis's stated subset), pooled per model."""
    analysis, result, _ = quick_analysis
    stages = {s["name"]: s for s in result["stages"]}
    assert stages["ensemble paper_logit"]["summary"].startswith("paper_logit on 3 reconstructions")
    assert stages["ensemble latent_factor"]["summary"].startswith("latent_factor on 1 reconstruction")
    tables = Path(result["report"]).parent / "tables"
    coefficients = pd.read_csv(tables / "ensemble_coefficients.csv", comment="#")
    assert list(coefficients.columns[:2]) == ["model", "term"]
    assert coefficients.groupby("model")["members"].max().to_dict() == {"latent_factor": 1, "paper_logit": 3}
    paper = coefficients[coefficients["model"] == "paper_logit"]
    assert set(paper["term"]) == {"Capinno", "Activity", "Size", "Constant"}
    assert (paper["between_sd"] < paper["within_sd"]).all()
    assert len(pd.read_csv(tables / "ensemble_table5.csv", comment="#")) == 18 * 2
    claims = pd.read_csv(tables / "claims.csv", comment="#")
    assert (claims["ensemble_low"] <= claims["ensemble_high"]).all() and claims["ensemble_low"].notna().all()


def test_a_bad_ensemble_setting_is_refused_in_one_line(tmp_path):
    from bayes_intl.spec import load_analysis

    models = Path(__file__).resolve().parents[1] / "models"
    path = tmp_path / "analysis.toml"
    path.write_text(f'models = ["{models / "paper_logit.toml"}"]\n[ensemble]\nspec = "{models / "paper_logit.toml"}"\n'
                    "members = -1\n")
    with pytest.raises(SpecError, match=r"key 'ensemble.members': expected a whole number, 0 or more .*, found -1"):
        load_analysis(path)


def test_the_shipped_analysis_states_each_models_share_of_the_ensemble(tmp_path):
    """Default: paper_logit on 50 designs; --quick: on 8; --full: the cheap models on all 250, latent_factor on
    the best 25. --quick and --full together are refused before anything runs."""
    analysis = load_analysis(Path(__file__).resolve().parents[1] / "models" / "analysis.toml")
    share = {mode: {Path(p).stem: n for p, n in analysis.ensemble_for(mode)} for mode in ("default", "quick", "full")}
    assert share["default"] == {"paper_logit": 50} and share["quick"] == {"paper_logit": 8}
    assert share["full"] == {"paper_logit": 250, "hierarchical_logit": 250, "coarsened_latent": 250,
                             "latent_factor": 25}
    with pytest.raises(SpecError, match="--quick and --full exclude each other"):
        run_analysis(analysis, quick=True, full=True, out=tmp_path)
    assert not any(tmp_path.iterdir())
