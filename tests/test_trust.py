"""Trust: interrupted runs leave nothing marked complete, reruns are bit-identical, nothing unpickles or evals."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bayes_intl.runs import fit as fit_run

ROOT = Path(__file__).resolve().parents[1]
TINY = "[sampler]\nbackend = \"nutpie\"\nchains = 2\ndraws = 80\ntune = 80\n"


def tiny_spec(tmp_path: Path, draws: int = 80) -> Path:
    text = (ROOT / "models" / "paper_logit.toml").read_text()
    text = re.sub(r"\[sampler\].*?(?=\n\[)", TINY.replace("draws = 80", f"draws = {draws}").rstrip(), text, flags=re.S)
    path = tmp_path / f"paper_logit_{draws}.toml"
    path.write_text(text)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_same_spec_data_and_seed_give_bit_identical_tables(tmp_path):
    spec = tiny_spec(tmp_path)
    first = fit_run(spec, seed=11, out=tmp_path / "a", progress=False, command="test")
    second = fit_run(spec, seed=11, out=tmp_path / "b", progress=False, command="test")
    for name in ("table5.csv", "coefficients.csv", "table5_prior.csv", "capinno_contrast.csv"):
        assert (first.folder / name).read_bytes() == (second.folder / name).read_bytes(), name
    other = fit_run(spec, seed=12, out=tmp_path / "c", progress=False, command="test")
    assert (other.folder / "table5.csv").read_bytes() != (first.folder / "table5.csv").read_bytes()


def test_a_fit_beside_gives_the_same_run_as_a_fit_here_and_raises_its_errors_here(tmp_path, monkeypatch):
    """The analysis fits item-level models in a second process (``FitsBeside``): the run it hands back is
    bit-identical to the same fit in this process, and a fit that fails there fails here with its own error."""
    from bayes_intl import inference
    from bayes_intl.errors import InputError
    from bayes_intl.runs import FitsBeside

    spec = tiny_spec(tmp_path)
    job = {"spec": spec, "seed": 11, "out": tmp_path / "beside", "command": "test"}
    with FitsBeside({"good": job}) as beside:
        run, seconds = beside.take("good")
    assert seconds is not None and not run.reused  # fitted beside, not found saved

    def failing(*args, **kwargs):
        raise InputError("survey.csv", "a response from 1 to 5", column="q3", row=7, found=9)

    monkeypatch.setattr(inference, "sample", failing)  # the second process is forked: it inherits the patch
    with FitsBeside({"bad": job | {"seed": 12}}) as beside:
        with pytest.raises(InputError) as raised:
            beside.take("bad")
    assert str(raised.value) == "file survey.csv, column 'q3', row 7 (line 8): expected a response from 1 to 5, found 9"
    assert (raised.value.column, raised.value.row, raised.value.exit_code) == ("q3", 7, 2)
    monkeypatch.undo()
    here = fit_run(spec, seed=11, out=tmp_path / "here", progress=False, command="test")
    for name in ("table5.csv", "coefficients.csv"):
        assert (run.folder / name).read_bytes() == (here.folder / name).read_bytes(), name
    with FitsBeside({"good": job}) as again:  # saved now: loaded, no second process
        assert again.take("good")[1] is None and again._pool is None


def test_work_beside_gives_what_work_here_gives_and_falls_back_here(monkeypatch):
    """A fit draws its prior and computes its gate in a forked second process (``Beside``): the value comes back
    from there; where the work fails there, or processes cannot fork, it is done here."""
    import multiprocessing

    from bayes_intl.runs import Beside

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    here = os.getpid()
    with Beside(os.getpid) as beside:
        assert beside.result() != here

    def fails_beside(x, *, y):
        if os.getpid() != here:
            raise RuntimeError("fails in the second process")
        return x + y

    with Beside(fails_beside, 1, y=2) as beside:
        assert beside.result() == 3
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    with Beside(os.getpid) as beside:
        assert beside.result() == here


def test_a_second_process_stopped_before_its_result_is_read_ends_quietly(capfd, monkeypatch):
    """The parent stops a second process whose result it no longer needs (SIGTERM); under the command's own
    SIGTERM handler, which the fork inherits, that printed a KeyboardInterrupt traceback from the child once."""
    import numpy as np

    from bayes_intl.cli import _interrupt
    from bayes_intl.errors import INTERRUPTED
    from bayes_intl.runs import Beside

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with Beside(np.ones, 5_000_000):  # 40 MB: the child is still writing it to the pipe when it is stopped
            time.sleep(1.0)
    finally:
        signal.signal(signal.SIGTERM, previous)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert not INTERRUPTED.is_set()


def test_where_processes_cannot_fork_every_fit_runs_here(tmp_path, monkeypatch):
    import multiprocessing

    from bayes_intl import runs

    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])  # as on Windows
    job = {"spec": tiny_spec(tmp_path), "seed": 11, "out": tmp_path / "runs", "command": "test"}
    with runs.FitsBeside({"job": job}) as beside:
        assert beside._pool is None
        run, seconds = beside.take("job")
    assert seconds is None and not run.reused and (run.folder / "run.json").exists()


def test_an_error_here_stops_the_fit_beside_at_once(tmp_path):
    from bayes_intl.runs import FitsBeside

    spec = tiny_spec(tmp_path, draws=5000)
    with pytest.raises(RuntimeError, match="stop"):
        with FitsBeside({"long": {"spec": spec, "seed": 1, "out": tmp_path / "runs"}}) as beside:
            workers = list(beside._pool._pool)
            raise RuntimeError("stop")
    assert workers and not any(w.is_alive() for w in workers)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").glob("*/run.json"))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("when", ["compiling", "drawing"])
def test_killed_mid_sampling_leaves_earlier_runs_intact_and_nothing_complete(tmp_path, sig, when):
    runs = tmp_path / "runs"
    earlier = fit_run(tiny_spec(tmp_path), seed=3, out=runs, progress=False, command="test").folder
    before = digest(earlier)
    long_spec = tiny_spec(tmp_path, draws=2_000_000)
    proc = subprocess.Popen([sys.executable, "-m", "bayes_intl", "-v", "fit", str(long_spec), "--out", str(runs),
                             "--seed", "4", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    for line in proc.stderr:  # wait until the model is compiled and drawing
        if (when == "compiling" and "sampling paper_logit" in line) or ("compiled in" in line and "drawing" in line) \
                or time.monotonic() > deadline:
            break
    time.sleep(0.5 if when == "compiling" else 2)
    assert proc.poll() is None, "the long run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted" in err
    assert digest(earlier) == before
    complete = [p for p in runs.iterdir() if (p / "run.json").exists()
                and json.loads((p / "run.json").read_text()).get("complete")]
    assert complete == [earlier]
    assert not any(p.name.endswith(".tmp") for p in runs.iterdir())


COMPILE_ONCE = """
import json, sys
from dataclasses import replace
import numpy as np
from bayes_intl import inference as inf
from bayes_intl.data import model_data
from bayes_intl.models import build_model
from bayes_intl.spec import load_spec
spec = load_spec(sys.argv[1])
data = model_data(spec)
outcome = np.random.default_rng(int(sys.argv[2])).permutation(data.firms["internationalized"].to_numpy())
data = replace(data, firms=data.firms.assign(internationalized=outcome))
if sys.argv[3] == "series":  # the ensemble's way: compiled with its data swappable
    series = inf.SeriesSampler(spec.sampler)
    idata = series(build_model(spec, data), seed=3)
    hit = series.reused
else:
    idata = inf.sample(build_model(spec, data), spec.sampler, seed=3, progress=False)
    hit = idata.attrs["compile_cache_hit"]
print(json.dumps({"hit": hit, "draws": idata.posterior["intercept"].values.ravel().tolist()}))
"""


@pytest.mark.parametrize("how", ["frozen", "series"])
def test_a_compiled_model_is_reused_by_a_later_process_only_for_the_same_model_and_data(tmp_path, how):
    """nutpie's compiled log-density is found again in a new process (no 8 s recompile) for the same
    model and data, and never for data it has not seen: a stale reuse would sample the wrong posterior.
    Both ways of compiling: a fit's (data frozen in) and an ensemble's (data swappable, ``SeriesSampler``)."""
    spec = tiny_spec(tmp_path, draws=30)
    unseen = str(int.from_bytes(os.urandom(4), "little"))  # outcomes no earlier run compiled

    def fit() -> dict:
        done = subprocess.run([sys.executable, "-c", COMPILE_ONCE, str(spec), unseen, how],
                              capture_output=True, text=True, check=True, timeout=600)
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = fit(), fit()
    assert first["hit"] == 0
    assert second["hit"] == 1
    assert second["draws"] == first["draws"]


def test_no_pickle_or_eval_in_the_package():
    """Saved runs load only from NetCDF and JSON; specs are TOML parsed into closed sets."""
    pattern = re.compile(r"\bimport pickle\b|\bpickle\.|\beval\(|\bexec\(|allow_pickle\s*=\s*True|read_pickle|"
                         r"\bdill\b|cloudpickle|yaml\.load\(|joblib\.load")
    offenders = [f"{p.name}:{i}" for p in (ROOT / "bayes_intl").glob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []
