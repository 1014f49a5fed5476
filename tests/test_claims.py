"""The paper's claims: parsed from the study file, scored from posterior draws, and in the report."""

import numpy as np
import pandas as pd

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


def test_verdicts_across_models():
    study = load_study()
    ids = [c.id for c in study.claims]
    scores = {"a": dict.fromkeys(ids, 0.99), "b": {**dict.fromkeys(ids, 0.99), ids[0]: 0.5, ids[1]: 0.96}}
    scores["a"][ids[0]] = 0.9
    table = claims_table(study, scores).drop_duplicates("claim").set_index("claim")["verdict"]
    assert table[ids[0]] == VERDICTS["no"]  # below SUPPORT in both
    assert table[ids[1]] == VERDICTS["holds"] and table[ids[2]] == VERDICTS["holds"]
    scores["b"][ids[2]] = SUPPORT - 0.01
    assert claims_table(study, scores).set_index("claim").loc[ids[2], "verdict"].iloc[0] == VERDICTS["depends"]
