"""The measurement model on public data nobody here made, against published estimates (tests/data/README.md).

Fast forms, at short sampler settings: posterior summaries within the issue's tolerances of lavaan's and
ltm's maximum-likelihood estimates. HS1939: posterior means (posterior SDs about 0.06, Monte Carlo error
under 0.015 at 2 x 300 draws; the full run's means are within 0.016 of lavaan's). LSAT6: posterior
medians, the counterpart of the MLE for these right-skewed slopes (Q3's slope has a posterior SD of 0.26;
with the ability integrated out, 2 x 1000 draws give about 900 effective draws, a Monte Carlo error near
0.01). The full forms, at each spec's default sampler
settings and with the diagnostic gate, are `python benchmarks/references.py` (benchmarks/references.md).
"""

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

import bayes_intl
from bayes_intl.cli import main

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
QUICK = {"chains": 2, "draws": 300, "tune": 300}
LAVAAN_STD_LOADINGS = {"x1": 0.772, "x2": 0.424, "x3": 0.581, "x4": 0.852, "x5": 0.855, "x6": 0.838,
                       "x7": 0.570, "x8": 0.723, "x9": 0.665}
LAVAAN_CORRELATIONS = {("visual", "textual"): 0.459, ("visual", "speed"): 0.471, ("textual", "speed"): 0.283}
LTM_DISCRIMINATION = np.array([0.825, 0.723, 0.891, 0.689, 0.658])
LTM_DIFFICULTY = np.array([-3.360, -1.370, -0.280, -1.866, -3.124])


def test_holzinger_swineford_three_correlated_factors_match_lavaan():
    run = bayes_intl.fit(ROOT / "models" / "cfa_correlated.toml", sampler=QUICK, seed=3)
    assert len(run.data.firms) == 301 and run.diagnostics["divergences"] == 0
    assert run.record["chi_square_ppp"]["ppp"] < 0.05  # lavaan: chi-square 85.3 on 24 df, p < 0.001
    loadings = run.tables["loadings"].set_index("of")
    for item, reference in LAVAAN_STD_LOADINGS.items():
        assert abs(loadings.loc[item, "std_mean"] - reference) < 0.05, item
    correlations = run.tables["factor_correlations"].set_index(["factor", "with"])["mean"]
    for pair, reference in LAVAAN_CORRELATIONS.items():
        assert abs(correlations[pair] - reference) < 0.05, pair


def test_lsat6_one_factor_matches_ltm_2pl():
    run = bayes_intl.fit(ROOT / "models" / "irt_2pl.toml", sampler={"chains": 2, "draws": 1000, "tune": 500}, seed=3)
    assert len(run.data.firms) == 1000 and "second_order_loading" not in run.idata.posterior
    assert "factor" not in run.idata.posterior and run.diagnostics["passed"]  # the ability integrated out
    slopes = run.idata.posterior["loading"].median(("chain", "draw")).to_numpy()
    intercepts = run.idata.posterior["intercept_binary"].median(("chain", "draw")).to_numpy()
    assert np.abs(slopes - LTM_DISCRIMINATION).max() < 0.08
    assert np.abs(intercepts - (-LTM_DISCRIMINATION * LTM_DIFFICULTY)).max() < 0.05


def test_lkj_prior_on_the_factor_correlations_has_the_lkj_marginals():
    """Under LKJ(eta) every correlation of a K x K matrix is 2 Beta(eta - 1 + K/2, same) - 1: checked on prior
    draws of the built model's factor_corr, for pairs early and late in the partial-correlation vine."""
    import pymc as pm

    from bayes_intl.data import model_data
    from bayes_intl.models import build_model
    from bayes_intl.spec import load_spec

    spec = load_spec(ROOT / "models" / "cfa_correlated.toml")
    model = build_model(spec, model_data(spec))
    draws = pm.draw(model["factor_corr"], draws=20000, random_seed=1)  # (draw, 3, 3)
    a = 2.0 - 1 + 3 / 2
    for i, j in ((0, 1), (0, 2), (1, 2)):
        assert stats.kstest((draws[:, i, j] + 1) / 2, stats.beta(a, a).cdf).pvalue > 0.001, (i, j)
    assert np.allclose(np.diagonal(draws, axis1=1, axis2=2), 1) and np.linalg.eigvalsh(draws).min() > 0


def test_second_order_with_two_dimensions_is_refused_in_one_line(tmp_path, capsys):
    codebook = (ROOT / "models" / "codebook_hs1939.toml").read_text().replace('"speed"', '"textual"')
    (tmp_path / "codebook.toml").write_text(codebook)
    spec = (ROOT / "models" / "measurement_only.toml").read_text()
    spec = spec.replace('source = "synthetic"', f'source = "{DATA / "holzinger_swineford_1939.csv"}"')
    spec = spec.replace('codebook = ""', f'codebook = "{tmp_path / "codebook.toml"}"')
    (tmp_path / "spec.toml").write_text(spec)
    assert main(["fit", str(tmp_path / "spec.toml"), "--out", str(tmp_path / "runs")]) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "[measurement] structure = 'second_order' needs at least 3 dimensions" in err and "2 (visual, textual)" in err


def test_a_survey_without_an_outcome_is_refused_for_an_outcome_model_by_codebook_key(tmp_path, capsys):
    spec = re.sub(r'(?m)^codebook = .*$', f'codebook = "{ROOT / "models" / "codebook_hs1939.toml"}"',
                  (ROOT / "models" / "latent_factor.toml").read_text())
    (tmp_path / "latent.toml").write_text(spec)
    args = ["fit", str(tmp_path / "latent.toml"), "--data", str(DATA / "holzinger_swineford_1939.csv"),
            "--out", str(tmp_path)]
    assert main(args) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "[outcome] is needed for latent_factor" in err


def _cfa_idata(y: np.ndarray, draws: int = 200):
    """An InferenceData whose posterior is the true 3-factor CFA of ``_cfa_data`` at every draw (point mass)."""
    import arviz as az

    items = [f"x{j + 1}" for j in range(9)]
    corr = np.array([[1, 0.4, 0.3], [0.4, 1, 0.2], [0.3, 0.2, 1.0]])
    rep = lambda v: np.broadcast_to(v, (1, draws, *np.shape(v))).copy()  # noqa: E731
    dims = {"loading": ["item"], "intercept_continuous": ["continuous_item"], "residual_sd": ["continuous_item"],
            "factor_corr": ["dimension", "dimension_with"], "items_continuous": ["firm", "continuous_item"]}
    coords = {"item": items, "continuous_item": items, "dimension": ["a", "b", "c"], "dimension_with": ["a", "b", "c"]}
    return az.from_dict(posterior={"loading": rep(np.full(9, 0.8)), "intercept_continuous": rep(np.zeros(9)),
                                   "residual_sd": rep(np.full(9, 0.6)), "factor_corr": rep(corr)},
                        observed_data={"items_continuous": y}, dims=dims, coords=coords)


def _cfa_data(rng, n: int = 300, cross: float = 0.0) -> np.ndarray:
    corr = np.array([[1, 0.4, 0.3], [0.4, 1, 0.2], [0.3, 0.2, 1.0]])
    f = rng.multivariate_normal(np.zeros(3), corr, size=n)
    y = 0.8 * np.repeat(f, 3, axis=1) + 0.6 * rng.normal(size=(n, 9))
    y[:, 0] += cross * f[:, 1]  # x1 also measures the second factor: a misfit the chi-square should see
    return y


def test_chi_square_ppp_is_uniform_when_the_model_is_true_and_near_zero_when_it_misfits():
    """blavaan's PPP at the true parameters: over data sets drawn from the model, P(T_rep >= T_obs) is uniform;
    with an unmodelled cross-loading it is near 0 (and on HS1939, where lavaan's chi-square is 85.3 on 24 df)."""
    from bayes_intl.summaries import chi_square_ppp
    from bayes_intl.survey import codebook_from_dict

    codebook = codebook_from_dict({"columns": {"firm_id": "id"}, "item": [
        {"name": f"x{j + 1}", "dimension": "abc"[j // 3], "type": "continuous"} for j in range(9)]})
    rng = np.random.default_rng(11)
    ppp = [chi_square_ppp(_cfa_idata(_cfa_data(rng)), codebook, structure="correlated", seed=k)["ppp"]
           for k in range(30)]
    assert stats.kstest(ppp, "uniform").pvalue > 0.001, ppp
    assert chi_square_ppp(_cfa_idata(_cfa_data(rng, cross=0.8)), codebook, structure="correlated")["ppp"] < 0.01
    two_continuous = codebook_from_dict({"columns": {"firm_id": "id"}, "item": [
        {"name": f"x{j + 1}", "dimension": "abc"[j // 3], "type": "continuous" if j < 2 else "binary"} for j in range(9)]})
    # no chi-square of discrete items
    assert chi_square_ppp(_cfa_idata(_cfa_data(rng)), two_continuous, structure="correlated") is None
