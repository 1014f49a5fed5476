"""The hostile-input suite (tests/hostile/cases.toml): one clear line naming file, column/key and row,
the exit code of its kind, and existing reports left untouched."""

import hashlib
import tomllib
from pathlib import Path

import pytest

from bayes_intl.cli import main
from bayes_intl.data import read_outcome_data

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = ROOT / "tests" / "hostile"
CASES = tomllib.loads((HOSTILE / "cases.toml").read_text())["case"]


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def existing_reports(tmp_path):
    """An output folder that already holds a report and a run, as a user's would."""
    out = tmp_path / "reports"
    (out / "runs" / "paper_logit-earlier").mkdir(parents=True)
    (out / "runs" / "paper_logit-earlier" / "run.json").write_text('{"complete": true}\n')
    (out / "baseline.json").write_text('{"earlier": "result"}\n')
    (out / "tables.csv").write_text("a,b\n1,2\n")
    return out


def test_suite_is_large_and_every_file_exists():
    assert len(CASES) >= 30
    missing = [c["file"] for c in CASES if not (HOSTILE / c["file"]).exists() and not c["file"].startswith("no_such")]
    assert missing == []
    assert len({c["file"] for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["file"] for c in CASES])
def test_hostile_input_is_refused_clearly(case, existing_reports, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    for key, value in case.get("env", {}).items():
        monkeypatch.setenv(key, value)
    before = snapshot(existing_reports)
    file = HOSTILE / case["file"]
    argv = [a.replace("{file}", str(file)).replace("{out}", str(existing_reports)) for a in case["command"]]
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == case["exit"], err
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"bayes-intl {argv[0]}: error: ")
    for fragment in case["expect"]:
        assert fragment in err, (fragment, err)
    assert snapshot(existing_reports) == before


def test_a_byte_order_mark_is_read_not_refused():
    with_bom = read_outcome_data(HOSTILE / "bom.csv")
    assert (HOSTILE / "bom.csv").read_bytes()[:3] == b"\xef\xbb\xbf"
    assert list(with_bom.cells.columns[:3]) == ["size", "capinno", "activity"]
    assert with_bom.cells["n"].tolist() == [10, 10, 10, 8]
