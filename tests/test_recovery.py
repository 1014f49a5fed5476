"""Slow tier: parameter recovery for hierarchical_logit and latent_factor (make test-slow).

A calibrated model's 94% HDI covers the truth in each seed with probability 0.94, so a parameter's
coverage over S seeds is Binomial(S, 0.94). The thresholds below come from that distribution with a
1% chance of a false alarm for the whole test (Bonferroni over the parameters), not from a fixed
"8 of 10", which a calibrated latent_factor (30 parameters) fails about 42% of the time.
"""

from pathlib import Path

import pytest
from scipy import stats

from bayes_intl.calibration import coverage, recovery
from bayes_intl.spec import load_spec

MODELS = Path(__file__).resolve().parents[1] / "models"
SEEDS = 10
NOMINAL = 0.94
FALSE_ALARM = 0.01


def lowest_acceptable(trials: int, tests: int) -> int:
    """The smallest coverage count a calibrated model reaches except with probability FALSE_ALARM / tests."""
    return int(stats.binom.ppf(FALSE_ALARM / tests, trials, NOMINAL))


def test_thresholds_follow_the_binomial():
    assert lowest_acceptable(10, 1) == 7  # one parameter alone: 8 of 10 would fail 1.8% of calibrated runs
    assert lowest_acceptable(10, 30) == 6  # 30 parameters: P(any below 6 | calibrated) <= 1%
    assert stats.binom.cdf(lowest_acceptable(10, 30) - 1, 10, NOMINAL) * 30 <= FALSE_ALARM


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("name", ["hierarchical_logit", "latent_factor"])
def test_true_parameters_inside_94_hdi_as_often_as_a_calibrated_model_would(name):
    table = coverage(recovery(load_spec(MODELS / f"{name}.toml"), seeds=range(1, SEEDS + 1)))
    per_parameter = lowest_acceptable(SEEDS, len(table))
    assert (table["covered"] >= per_parameter).all(), table[table["covered"] < per_parameter].to_string()
    pooled = lowest_acceptable(SEEDS * len(table), 1)  # all parameters together (seeds shared: approximate)
    assert table["covered"].sum() >= pooled, f"{table['covered'].sum()} of {SEEDS * len(table)} covered"
