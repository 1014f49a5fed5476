"""Simulation-based calibration: a small, fast SBC of paper_logit (the full runs: benchmarks/sbc.py)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayes_intl.calibration import SBC_RANK_DRAWS, SBCSettings, run_sbc, sbc_truths, uniformity
from bayes_intl.cli import main
from bayes_intl.data import model_data
from bayes_intl.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = str(ROOT / "models" / "paper_logit.toml")
SMALL = SBCSettings(sims=40, chains=1, draws=300, tune=300, seed=99)


@pytest.fixture(scope="module")
def small_sbc():
    return run_sbc(SPEC, SMALL, jobs=2)


def test_small_sbc_of_paper_logit_is_uniform(small_sbc):
    ranks, tests = small_sbc
    assert len(ranks) == SMALL.sims * 4  # intercept and three slopes
    assert ranks["rank"].between(0, SBC_RANK_DRAWS).all()
    assert set(tests["parameter"]) == {"intercept", "slope[capinno]", "slope[activity]", "slope[size]"}
    assert not tests["rejected_at_1pct"].any(), tests


def test_ranks_do_not_depend_on_how_the_work_is_split(small_sbc):
    ranks, _ = small_sbc
    serial, _ = run_sbc(SPEC, SBCSettings(sims=6, chains=1, draws=300, tune=300, seed=99), jobs=1)
    expected = ranks[ranks["sim"] < 6].reset_index(drop=True)
    pd.testing.assert_frame_equal(serial.reset_index(drop=True), expected)


def test_truths_come_from_the_prior_and_data_have_the_study_shape():
    spec = load_spec(SPEC)
    truths, simulated = sbc_truths(spec, model_data(spec), SBCSettings(sims=400, seed=5))
    assert simulated["internationalized_observed"].shape == (400, 116)
    assert set(np.unique(simulated["internationalized_observed"])) <= {0, 1}
    # Normal(0, 5) intercept and Normal(0, 2.5) slopes: sample SDs within Monte Carlo error (SE ~ 3.5%)
    assert abs(truths["intercept"].std() / 5.0 - 1) < 0.15
    assert abs(truths["slope[capinno]"].std() / 2.5 - 1) < 0.15


def test_uniformity_rejects_a_miscalibrated_parameter():
    rng = np.random.default_rng(0)
    fine = pd.DataFrame({"sim": range(200), "parameter": "fine", "rank": rng.integers(0, SBC_RANK_DRAWS + 1, 200)})
    peaked = pd.DataFrame({"sim": range(200), "parameter": "overconfident",
                           "rank": np.clip(rng.normal(50, 8, 200).round(), 0, 100).astype(int)})
    tests = uniformity(pd.concat([fine, peaked])).set_index("parameter")
    assert not tests.loc["fine", "rejected_at_1pct"]
    assert tests.loc["overconfident", "rejected_at_1pct"]


def test_sbc_command_writes_tables_plots_and_json(tmp_path, capsys):
    code = main(["sbc", SPEC, "--sims", "8", "--draws", "200", "--tune", "200", "--jobs", "1",
                 "--out", str(tmp_path), "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"model", "settings", "uniformity", "rejected_at_1pct", "divergent_fits", "written"} <= set(payload)
    folder = tmp_path / "paper_logit"
    for name in ("ranks.csv", "uniformity.csv", "ranks.png", "ecdf.png", "sbc.json"):
        assert (folder / name).exists(), name
    assert (folder / "ranks.csv").read_text().startswith("# SIMULATED data")
