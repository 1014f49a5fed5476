import json
import os
import subprocess
import sys

import pytest

from bayes_intl import store
from bayes_intl.cli import main

GOOD = "size,capinno,activity,n,y\n0,0,0,10,2\n1,1,1,10,5\n2,2,0,10,9\n0,1,1,8,1\n"

def test_baseline_json_on_user_cells(tmp_path, capsys):
    path = tmp_path / "cells.csv"
    path.write_text(GOOD)
    assert main(["baseline", "--data", str(path), "--out", str(tmp_path / "out"), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["fit"]["n_firms"] == 38
    assert set(payload["fit"]["b"]) == {"Constant", "Capinno", "Activity", "Size"}
    assert (tmp_path / "out" / "comparison.csv").read_text().startswith("# data:")


def test_audit_json_and_files(tmp_path, capsys):
    assert main(["audit", "--json", "--out", str(tmp_path)]) == 0
    payload = json.loads(capsys.readouterr().out)
    on_disk = json.loads((tmp_path / "audit.json").read_text())
    assert on_disk["records"] == payload["records"]
    record = next(r for r in on_disk["records"] if r["id"] == "table5.small.high.MM")
    assert set(record) >= {"id", "published", "recomputed_low", "recomputed_high", "consistent", "note"}
    assert (tmp_path / "audit.md").read_text().startswith("# Audit")
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_python_dash_m_runs_the_audit(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bayes_intl", "audit", "--out", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "table4.Size.wald" in proc.stdout and "Joint region" in proc.stdout


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path, monkeypatch):
    target = tmp_path / "audit.json"
    store.write_json(target, {"old": True})

    def boom(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        store.write_json(target, {"new": True})
    assert json.loads(target.read_text()) == {"old": True}
    assert os.listdir(tmp_path) == ["audit.json"]


def test_an_internal_fault_is_one_line_and_its_traceback_only_under_verbose(tmp_path, capsys, monkeypatch):
    """A bug in the program (not bad input) reaches the user as one line naming it; -v shows the traceback."""
    from bayes_intl import audit

    def broken(*args, **kwargs):
        raise IndexError("index 1 is out of bounds for axis 0 with size 1\nmore library detail")

    monkeypatch.setattr(audit, "run_audit", broken)
    assert main(["audit", "--out", str(tmp_path)]) == 70
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (IndexError: index 1 is out of bounds" in err
    assert "Traceback" not in err and "more library detail" not in err
    with pytest.raises(IndexError):
        main(["-v", "audit", "--out", str(tmp_path)])


def test_reconstruct_json_keys(tmp_path, capsys):
    args = ["reconstruct", "--starts", "3", "--rounds", "1", "--solutions", "500", "--firms",
            "--out", str(tmp_path), "--json"]
    assert main(args) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"k", "table", "refit", "classification"} <= set(payload)
    assert set(payload["table"][0]) == {"size", "capinno", "activity", "n", "y"}
    assert sum(row["n"] for row in payload["table"]) == 116
    assert "RECONSTRUCTED" in (tmp_path / "best_firms.csv").read_text().splitlines()[1]


NOISY_COMMAND = """
import argparse, os, subprocess, sys
from bayes_intl import cli

def noisy(args):  # what a solver's C code, a library and a worker process might write meanwhile
    os.write(1, b"HighsMipSolverData::transformNewIntegerFeasibleSolution\\n")
    print("a library's print")
    subprocess.run(["echo", "a worker's print"], check=True)
    cli._emit_json({"ok": 1})
    return 0

parse = argparse.ArgumentParser.parse_args
def parse_into_noisy(self, args=None, namespace=None):
    ns = parse(self, args, namespace)
    ns.func = noisy
    return ns
argparse.ArgumentParser.parse_args = parse_into_noisy
sys.exit(cli.main(sys.argv[1:]))
"""


@pytest.mark.parametrize("as_json", [True, False])
def test_json_stdout_carries_only_the_json(tmp_path, as_json):
    """With --json, writes to file descriptor 1 by C code, libraries or child processes go to stderr."""
    argv = ["audit", "--out", str(tmp_path)] + (["--json"] if as_json else [])
    done = subprocess.run([sys.executable, "-c", NOISY_COMMAND, *argv], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    if as_json:
        assert json.loads(done.stdout) == {"ok": 1}
        for noise in ("HighsMipSolverData", "a library's print", "a worker's print"):
            assert noise in done.stderr
    else:  # without --json nothing is redirected
        assert "a library's print" in done.stdout and "a worker's print" in done.stdout


def test_compile_json_keys_and_the_second_compile_reuses_the_first(capsys):
    """`bayes-intl compile` (what make runs after installing) leaves a compiled model the next compile reuses."""
    keys = {"spec", "model", "backend", "data_sha256", "seconds", "reused", "cached"}
    rows = []
    for _ in range(2):
        assert main(["compile", "models/paper_logit.toml", "--json"]) == 0
        (row,) = json.loads(capsys.readouterr().out)["compiled"]
        assert set(row) == keys
        rows.append(row)
    assert rows[0]["model"] == "paper_logit" and rows[0]["backend"] == "nutpie" and rows[0]["cached"] is True
    assert rows[1]["reused"] is True and rows[1]["data_sha256"] == rows[0]["data_sha256"]
    assert rows[1]["seconds"] > 0
