"""The paper's claims: parsed from the study file, scored from posterior draws, and in the report."""

import numpy as np
import pandas as pd
import pytest

from bayes_intl.baselines import study_grid
from bayes_intl.claims import SUPPORT, VERDICTS, claim_probabilities, claims_table
from bayes_intl.study import load_study


def test_each_kind_of_claim_is_the_share_of_draws_where_it_holds():
    study = load_study()
    grid = study_grid(study)
    draws = 400
    coefficients = {"Capinno": np.linspace(-0.1, 3, draws), "Activity": np.full(draws, -1.0),
                    "Size": np.where(np.arange(draws) < 100, -0.5, 1.0)}
    printed = np.array([study.value(c.id) for c in study.table_cells()])
    probs = np.tile(printed, (draws, 1))
    probs[:200, grid.index[grid["id"] == "table5.small.average.MM"][0]] = 0.45  # half the draws: MM below the cut
    scores = claim_probabilities(study, coefficients, probs, grid)
    assert scores["capinno_raises"] == np.mean(np.linspace(-0.1, 3, draws) > 0)
    assert scores["mm_above_it"] == 1.0 and scores["size_raises"] == 0.75
    assert scores["small_average_mm_internationalized"] == 0.5
    assert scores["small_average_mm_above_it"] == 1.0  # 0.45 is still above IT's 0.20
    assert scores["small_average_it_not_internationalized"] == 1.0
    assert scores["table5_classification"] == 0.5  # every printed cell on its printed side, in the other half


def test_verdicts_across_models_and_prior_scaling():
    study = load_study()
    ids = [c.id for c in study.claims]
    score = lambda p, low=None: {"probability": p, **({"prior_low": low, "prior_high": p} if low else {})}  # noqa: E731
    scores = {"a": {i: score(0.99, 0.98) for i in ids}, "b": {i: score(0.99) for i in ids}}
    scores["a"][ids[0]], scores["b"][ids[0]] = score(0.9), score(0.5)
    scores["b"][ids[1]] = score(0.96)
    scores["a"][ids[2]] = score(0.99, 0.90)  # holds at the prior as given, not when it is scaled
    scores["b"][ids[3]] = score(SUPPORT - 0.01)
    verdict = claims_table(study, scores).drop_duplicates("claim").set_index("claim")["verdict"]
    assert verdict[ids[0]] == VERDICTS["no"] and verdict[ids[1]] == VERDICTS["holds"]
    assert verdict[ids[2]] == VERDICTS["prior"] and verdict[ids[3]] == VERDICTS["depends"]

    class Ensemble:  # what claims_table reads of an EnsembleRun
        spec = type("Spec", (), {"model": "a"})
        claims = pd.DataFrame({"member": [1, 2], "claim": [ids[1], ids[1]], "probability": [0.97, 0.93]})

    table = claims_table(study, scores, [Ensemble()]).set_index(["claim", "model"])
    assert table.loc[(ids[1], "a"), "verdict"] == VERDICTS["reconstruction"]
    assert table.loc[(ids[1], "a"), ["ensemble_low", "ensemble_high"]].tolist() == [0.93, 0.97]
    assert np.isnan(table.loc[(ids[1], "b"), "ensemble_low"])

    class Other(Ensemble):  # a second model's ensemble: the claim fails on a member of b's, not of a's
        spec = type("Spec", (), {"model": "b"})
        claims = pd.DataFrame({"member": [1, 2], "claim": [ids[4], ids[4]], "probability": [0.99, 0.90]})

    both = claims_table(study, scores, [Ensemble(), Other()]).set_index(["claim", "model"])
    assert both.loc[(ids[4], "a"), "verdict"] == VERDICTS["reconstruction"]
    assert both.loc[(ids[4], "b"), ["ensemble_low", "ensemble_high"]].tolist() == [0.90, 0.99]
    assert both.loc[(ids[1], "a"), "verdict"] == VERDICTS["reconstruction"]


def test_prior_scaling_moves_a_claim_the_way_the_prior_pulls():
    """A N(0, 1) prior on a coefficient whose posterior sits at 0.5: a stronger prior pulls it to 0,
    so P(B > 0) falls; a weaker one lets it rise. A flat log-prior changes nothing."""
    from bayes_intl.claims import prior_scaled

    rng = np.random.default_rng(1)
    draws = rng.normal(0.5, 0.6, 4000)
    events = {"positive": draws > 0}
    low, high = prior_scaled(events, -draws**2 / 2)["positive"]
    assert low < events["positive"].mean() < high
    flat = prior_scaled(events, np.zeros(4000))["positive"]
    assert flat == pytest.approx((events["positive"].mean(),) * 2)
