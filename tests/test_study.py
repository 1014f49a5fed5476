import re
from pathlib import Path

import pytest

from bayes_intl.errors import SpecError
from bayes_intl.study import load_study, parse_study, shipped_studies, study_path
from bayes_intl.spec import read_toml

TABLE4_TERMS = ("Capinno", "Activity", "Size", "Constant")


def test_every_figure_has_a_source_and_a_precision():
    paper = load_study()
    assert len(paper.figures) >= 80
    for fig in paper.figures.values():
        assert fig.table and fig.row and fig.column, fig.id
        float(fig.printed)  # parses
        lo, hi = fig.interval
        assert lo <= fig.value <= hi


def test_printed_precision_survives_trailing_zeros():
    paper = load_study()
    assert paper["table4.Capinno.wald"].decimals == 3  # printed 13.030
    assert paper["table4.Capinno.wald"].interval == pytest.approx((13.0295, 13.0305), abs=1e-12)
    assert paper["table4.Capinno.sig"].interval == (0.0, 0.0005)  # ".000" cannot go negative
    assert paper["sample.n"].interval == (116, 116)  # counts are exact


def test_sonora_tables_are_complete_and_coded_as_the_paper_coded_them():
    paper = load_study("sonora")
    for term in TABLE4_TERMS:
        for col in ("b", "se", "wald", "sig", "exp_b"):
            assert f"table4.{term}.{col}" in paper
    assert [t.term for t in paper.terms] == ["capinno", "activity[IT]", "size", "Constant"]
    assert len(paper.table_cells()) == 18 and paper.predicted_table == "Table 5"
    assert paper.value("sample.IT") + paper.value("sample.MM") == paper.value("sample.n")
    assert paper.cut == 0.5 and paper.outcome == "internationalized"
    x = paper.design_matrix(paper.cells())
    assert x.shape == (18, 4) and (x[:, 3] == 1).all()  # Constant last, as in Table 4


def test_with_printed_returns_a_copy():
    paper = load_study()
    changed = paper.with_printed({"table4.Size.b": "1.115"})
    assert changed.value("table4.Size.b") == 1.115
    assert paper.value("table4.Size.b") == 1.105


def test_shipped_studies_are_found_by_name():
    assert "sonora" in shipped_studies()
    assert study_path("sonora").is_file()


def _raw():
    return read_toml(study_path("sonora"), "study")


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r["study"].update(citaton="x"), r"unknown key 'citaton' in \[study\]; did you mean 'citation'\?"),
    (lambda r: r.update(predictors=[]), r"unknown key 'predictors' in the file; did you mean 'predictor'\?"),
    (lambda r: r["coefficient"][1].update(term="sector[IT]"),
     r"\[\[coefficient\]\] #2.term = 'sector\[IT\]' is not a declared predictor's term"),
    (lambda r: r["predictor"].append({"name": "age", "labels": ["young", "old"]}),
     r"predictor term 'age\[old\]' has no row in \[\[coefficient\]\]"),
    (lambda r: r["predicted"][0]["at"].update(region="north"),
     r"\[\[predicted\]\] #1.at.region: no predictor named 'region' is declared"),
    (lambda r: r["margin"][1].update(predictor="sector"),
     r"\[\[margin\]\] #2.predictor = 'sector': no predictor of that name is declared"),
    (lambda r: r["coefficient"][0].update(b=1.473), r"\[\[coefficient\]\] #1.b must be the figure as printed"),
    (lambda r: r.update(schema_version=2), r"schema_version must be 1"),
    (lambda r: r["predictor"][0].update(coding="ordinal"), r"coding must be 'linear' or 'indicator'"),
    (lambda r: r["claim"][0].update(term="region"),
     r"\[\[claim\]\] 'capinno_raises'.term = 'region' is not a term of the study's coefficients"),
    (lambda r: r["claim"][3]["higher"].update(region="north"),
     r"\[\[claim\]\] 'small_average_mm_above_it'.higher.region: no predictor named 'region' is declared"),
    (lambda r: r["claim"][0].update(kind="trend"), r"\[\[claim\]\] 'capinno_raises'.kind must be one of"),
    (lambda r: r["claim"][0].update(sentense="x"), r"unknown key 'sentense' in \[\[claim\]\] #1; did you mean"),
])
def test_a_bad_study_is_refused_in_one_line_naming_the_key(mutate, message):
    raw = _raw()
    mutate(raw)
    with pytest.raises(SpecError, match=message) as info:
        parse_study(raw, "bad.toml")
    text = str(info.value)
    assert text.startswith("study bad.toml: ") and "\n" not in text


def test_a_missing_study_file_is_one_line(tmp_path):
    with pytest.raises(SpecError, match=re.escape(f"study {tmp_path / 'none.toml'}: file not found")):
        load_study(tmp_path / "none.toml")


@pytest.mark.parametrize("name", shipped_studies())
def test_audit_json_works_for_every_shipped_study(name, tmp_path, capsys):
    import json

    from bayes_intl.cli import main

    assert main(["audit", "--study", name, "--out", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["study"]["id"] == name and payload["summary"]["figures_checked"] > 20
    assert payload["provenance"]["study_sha256"]


def test_run_quick_json_on_the_titanic_study_writes_a_report_without_the_sonora_words(tmp_path, capsys):
    import json

    from bayes_intl.cli import main

    assert main(["run", "--study", "titanic", "--quick", "--out", str(tmp_path), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["study"]["id"] == "titanic" and len(payload["runs"]) == 2  # paper_logit, hierarchical by class
    assert len(payload["models_skipped"]) == 2  # no banded predictor, item-level
    stages = {s["name"]: s["summary"] for s in payload["stages"]}
    assert stages["audit"].startswith("54 of 54 checks consistent")
    assert "identical to the shipped table" in stages["reconstruct"]
    report = (tmp_path / "report" / "report.md").read_text()
    assert "capinno" not in report.lower()
    assert "RECONSTRUCTED" in report and "survived" in report
    coefficients = (tmp_path / "report" / "tables" / "coefficients.csv").read_text()
    assert "class[1st]" in coefficients
    runs = sorted(str(p) for p in (tmp_path / "runs").iterdir())
    assert main(["report", *runs, "--study", "sonora", "--out", str(tmp_path / "wrong")]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fitted on titanic, not on study 'sonora'" in err
    assert main(["report", *runs, "--study", "titanic", "--out", str(tmp_path / "again")]) == 0


def test_a_banded_index_of_another_name_feeds_coarsened_latent_and_the_studys_group_feeds_the_hierarchy(tmp_path):
    """Sonora's study with CAPINNO renamed 'innov': the coarsened model reads 'innov' as its latent index; a
    hierarchical spec grouped by a predictor the study lacks takes the study's group = true predictor."""
    import pandas as pd

    from bayes_intl.runs import fit
    from bayes_intl.spec import load_spec

    root = Path(__file__).parents[1]
    text = study_path("sonora").read_text().replace("capinno", "innov")
    text = re.sub(r'reconstruction = ".*"', f'reconstruction = "{tmp_path / "cells.csv"}"', text)
    text = text.replace('reference = "MM"', 'reference = "MM"\ngroup = true')
    (tmp_path / "innov.toml").write_text(text)
    shipped = pd.read_csv(root / "bayes_intl" / "data" / "reconstruction.csv")
    shipped.rename(columns={"capinno": "innov"}).to_csv(tmp_path / "cells.csv", index=False)
    study = load_study(tmp_path / "innov.toml")
    tiny = {"chains": 1, "draws": 60, "tune": 60}
    run = fit(root / "models" / "coarsened_latent.toml", study=study, sampler=tiny, seed=3)
    assert {"innov_latent", "innov_index"} <= set(run.idata.posterior.data_vars)
    assert "innov" in set(run.coefficients["term"]) and len(run.table5) == 18
    assert len(run.tables["capinno_contrast"]) == 6  # high minus low per size x activity
    assert list(run.record["capinno_levels"]) == ["low", "average", "high"]
    import dataclasses

    spec = dataclasses.replace(load_spec(root / "models" / "hierarchical_logit.toml"), group="sector")
    grouped = spec.for_study(study)
    assert (grouped.group, grouped.varying) == ("activity", ())
    assert grouped.raw["hierarchy"]["group"] == "activity"


def test_simulate_refuses_a_study_without_the_capinno_construct_in_one_line(tmp_path, capsys):
    from bayes_intl.cli import main

    assert main(["simulate", "--study", "titanic", "--out", str(tmp_path)]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "titanic" in err and "no item-level construct" in err
    assert not list(tmp_path.iterdir())
