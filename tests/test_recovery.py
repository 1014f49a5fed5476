"""Slow tier: parameter recovery for hierarchical_logit and latent_factor (make test-slow)."""

from pathlib import Path

import pytest

from bayes_intl.calibration import coverage, recovery
from bayes_intl.spec import load_spec

MODELS = Path(__file__).resolve().parents[1] / "models"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("name", ["hierarchical_logit", "latent_factor"])
def test_true_parameters_inside_94_hdi_in_8_of_10_seeds(name):
    table = coverage(recovery(load_spec(MODELS / f"{name}.toml"), seeds=range(1, 11)))
    assert (table["covered"] >= 8).all(), table[table["covered"] < 8].to_string()
