"""Model ladder in tiers: structure (no sampling), smoke (2 chains x 50 draws), agreement with the MLE."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bayes_intl import inference as inf
from bayes_intl import summaries
from bayes_intl.data import model_data
from bayes_intl.errors import InputError, SpecError
from bayes_intl.models import build_model
from bayes_intl.registry import REGISTRY, scaled_prior
from bayes_intl.runs import FittedRun, fit_ensemble
from bayes_intl.spec import load_spec, spec_from_dict
from bayes_intl.store import load, save_run
from bayes_intl.summaries import grid_probabilities

MODELS_DIR = Path(__file__).resolve().parents[1] / "models"
SPECS = list(REGISTRY)
pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::RuntimeWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


@pytest.fixture(scope="module")
def loaded():
    out = {}
    for name in SPECS:
        spec = load_spec(MODELS_DIR / f"{name}.toml")
        out[name] = (spec, model_data(spec))
    return out


@pytest.mark.parametrize("name", SPECS)
def test_structure_builds_with_dims_and_finite_logp_and_gradient(name, loaded):
    spec, data = loaded[name]
    model = build_model(spec, data)
    assert len(model.coords["firm"]) == 116
    point = model.initial_point()
    assert np.isfinite(model.compile_logp()(point))
    assert np.all(np.isfinite(model.compile_dlogp()(point)))
    if spec.entry.outcome:
        assert "internationalized" in model.named_vars
        assert model.named_vars_to_dims["internationalized"] == ("firm",)
    if spec.entry.item_level:
        assert len(model.coords["dimension"]) == 4
        assert model.named_vars_to_dims["loading"] == ("item",)


@pytest.mark.parametrize("name", SPECS)
def test_smoke_samples_and_writes_a_loadable_run(name, loaded, tmp_path):
    spec, data = loaded[name]
    tiny = replace(spec.quick, chains=2, draws=50, tune=50)
    model = build_model(spec, data)
    idata = inf.sample(model, tiny, seed=3, progress=False)
    inf.add_predictive(idata, model, spec, seed=3, prior_draws=50)
    assert idata.posterior.sizes["chain"] == 2 and idata.posterior.sizes["draw"] == 50
    mle = summaries.fit_mle(spec, data)
    tables, extras = summaries.derive_tables(spec, idata, data, mle)
    if spec.entry.outcome:
        t5 = tables["table5"]
        assert len(t5) == 18
        assert ((t5["hdi_low"] <= t5["mean"]) & (t5["mean"] <= t5["hdi_high"])).all()
        assert t5[["mean", "p_above_half"]].apply(lambda c: c.between(0, 1)).all().all()
        assert {"Capinno", "Activity", "Size", "Constant"} <= set(tables["coefficients"]["term"])
        assert idata.log_likelihood["internationalized"].shape[-1] == 116
    if spec.entry.item_level:  # positive loadings identify the factor: no sign flipping between chains
        assert float(idata.posterior["loading"].min()) > 0
        assert set(tables["item_ppc"]["item"]) == {i.name for i in data.survey.codebook.items if i.in_capinno}
    record = {"kind": "fit", "run_id": "r", "spec": "s.toml", "spec_sha256": spec.hash(), "spec_document": spec.raw,
              "data": data.source, "data_sha256": "d" * 64, "data_provenance": data.provenance,
              "mle": mle.to_dict() if mle else None}
    folder = save_run(FittedRun(spec, data, idata, mle, tables, record), tmp_path / "run")
    again = load(folder, spec_hash=spec.hash(), data_hash="d" * 64)
    assert again.record["complete"] is True and again.spec.hash() == spec.hash() and again.mle == mle
    assert set(again.tables) == set(tables)
    shown = "slope" if spec.entry.outcome else "loading"
    np.testing.assert_array_equal(again.idata.posterior[shown].values, idata.posterior[shown].values)
    with pytest.raises(InputError, match="spec_sha256"):
        load(folder, spec_hash="0" * 64)


@pytest.mark.parametrize("name", ["paper_logit", "hierarchical_logit"])
def test_table5_predictor_agrees_with_the_models_own_likelihood(name, loaded):
    """The numpy predictor behind Table 5 reproduces the PyMC model's pointwise log-likelihood."""
    spec, data = loaded[name]
    model = build_model(spec, data)
    idata = inf.sample(model, replace(spec.quick, chains=2, draws=30, tune=30), seed=5, progress=False)
    inf.add_predictive(idata, model, spec, seed=5, prior_draws=10)
    p = grid_probabilities(spec, idata.posterior, data.firms, data.firms)  # (draw, firm)
    y = data.firms["internationalized"].to_numpy()
    expected = np.where(y == 1, np.log(p), np.log1p(-p))
    actual = idata.log_likelihood["internationalized"].stack(s=("chain", "draw")).transpose("s", "firm").values
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-9)


def test_paper_logit_agrees_with_the_mle(loaded):
    """Posterior medians within 0.15 of the MLE and posterior SDs within 20% of the MLE SEs."""
    spec, data = loaded["paper_logit"]
    model = build_model(spec, data)
    idata = inf.sample(model, spec.sampler, seed=20150601, progress=False)
    coef = summaries.coefficient_table(spec, idata.posterior, summaries.fit_mle(spec, data))
    coef = coef[coef["scale"] == "log-odds"].set_index("term")
    for term in ("Capinno", "Activity", "Size", "Constant"):
        assert abs(coef.loc[term, "post_median"] - coef.loc[term, "mle_b"]) < 0.15, term
        assert abs(coef.loc[term, "post_sd"] / coef.loc[term, "mle_se"] - 1) < 0.20, term


@pytest.mark.parametrize("change, fragment", [
    ({"model": "paper_logitt"}, "did you mean 'paper_logit'"),
    ({"samplr": {}}, "did you mean 'sampler'"),
    ({"sampler": {"chains": "four"}}, "chains must be a positive whole number"),
    ({"sampler": {"backend": "stan"}}, "backend 'stan'"),
    ({"sampler": {"mass_matrix": "dense"}}, "mass_matrix must be one of diagonal, low_rank"),
    ({"sampler": {"backend": "pymc", "mass_matrix": "low_rank"}}, "'low_rank' with backend 'nutpie' only"),
    ({"priors": {"intercept": {"dist": "Cauchy", "mu": 0, "sigma": 1}, "slope": {"dist": "Normal", "mu": 0, "sigma": 1}}},
     "unknown distribution 'Cauchy'"),
    ({"priors": {"intercept": {"dist": "Normal", "mu": 0, "sd": 1}, "slope": {"dist": "Normal", "mu": 0, "sigma": 1}}},
     "has no parameter 'sd'"),
    ({"priors": {"intercept": {"dist": "Normal", "mu": 0, "sigma": 1}}}, "needs a prior for 'slope'"),
    ({"outcome": {"interactions": [["capinno", "region"]]}}, "interaction term 'region'"),
    ({"schema_version": 2}, "schema_version must be 1"),
    ({"hierarchy": {"deviations": "sum_to_zero"}}, "[hierarchy] deviations must be one of population, zero_sum"),
])
def test_bad_spec_is_refused(change, fragment):
    import tomllib
    raw = tomllib.loads((MODELS_DIR / "paper_logit.toml").read_text()) | change
    with pytest.raises(SpecError) as info:
        spec_from_dict(raw, source="bad.toml")
    assert fragment in str(info.value) and "bad.toml" in str(info.value)


def test_categorical_size_and_interaction_need_no_code(loaded):
    import tomllib
    raw = tomllib.loads((MODELS_DIR / "paper_logit.toml").read_text())
    raw["outcome"] = {"predictors": [{"name": "capinno"}, {"name": "activity"}, {"name": "size", "coding": "categorical"}],
                      "interactions": [["capinno", "activity"]]}
    spec = spec_from_dict(raw)
    data = loaded["paper_logit"][1]
    model = build_model(spec, data)
    assert model.coords["term"] == ("capinno", "activity", "size[small]", "size[medium]", "capinno:activity")
    assert summaries.spec_formula(spec) == "internationalized ~ capinno + activity + C(size) + capinno:activity"
    # The numpy predictor behind Table 5 builds the same dummies and products as the PyMC model.
    idata = _tiny_run(spec, data)
    p = grid_probabilities(spec, idata.posterior, data.firms, data.firms)
    y = data.firms["internationalized"].to_numpy()
    actual = idata.log_likelihood["internationalized"].stack(s=("chain", "draw")).transpose("s", "firm").values
    np.testing.assert_allclose(actual, np.where(y == 1, np.log(p), np.log1p(-p)), rtol=1e-6, atol=1e-9)
    # The refit's dummies carry the model's names, so the coefficient table sets MLE and posterior side by side.
    assert set(summaries.fit_mle(spec, data).params) >= {"size[small]", "size[medium]", "capinno:activity"}


def _tiny_run(spec, data, seed=7):
    model = build_model(spec, data)
    idata = inf.sample(model, replace(spec.quick, chains=2, draws=60, tune=60), seed=seed, progress=False)
    inf.add_predictive(idata, model, spec, seed=seed, prior_draws=20)
    return idata


def test_loo_comparison_on_the_outcome_and_refusal_of_different_data(loaded):
    paper = _tiny_run(*loaded["paper_logit"])
    hier = _tiny_run(*loaded["hierarchical_logit"])
    table = inf.compare_loo({"paper": paper, "hier": hier})
    assert set(table.index) == {"paper", "hier"}
    assert {"elpd_loo", "pareto_k_max", "pareto_k_over_0_7"} <= set(table.columns)
    other = paper.copy()
    other.observed_data["internationalized"] = 1 - other.observed_data["internationalized"]
    with pytest.raises(ValueError, match="different outcome data"):
        inf.compare_loo({"paper": paper, "other": other})


def test_ensemble_splits_between_and_within_spread(loaded):
    spec = loaded["paper_logit"][0]
    run = fit_ensemble(spec, sampler={"chains": 2, "draws": 60, "tune": 60}, seed=1, members=2)
    coef, cells = run.coefficients, run.table5
    assert set(coef["term"]) == {"Capinno", "Activity", "Size", "Constant"}
    assert (coef["members"] == 2).all() and len(cells) == 18
    assert (coef["between_sd"] >= 0).all() and (coef["within_sd"] > 0).all()
    assert (coef["member_mean_min"] <= coef["member_mean_max"]).all()


def test_an_ensemble_swaps_each_members_data_into_one_compiled_model(loaded):
    """paper_logit on two reconstructions: the second member's draws, with its data swapped into the first
    member's compiled model, equal those of a model compiled for it alone; a changed constant (a prior) would
    compile anew."""
    from bayes_intl.data import ModelData
    from bayes_intl.runs import ensemble_tables
    from bayes_intl.spec import Sampler

    spec = loaded["paper_logit"][0]
    data = [ModelData(t.to_firms().firms, None, t.source, t.provenance) for _, t in ensemble_tables()[:2]]
    models = [build_model(spec, d) for d in data]
    assert not np.array_equal(models[0]["design"].get_value(), models[1]["design"].get_value())
    settings = Sampler(backend="nutpie", chains=2, draws=50, tune=50, target_accept=0.9)
    series, alone = inf.SeriesSampler(settings), inf.SeriesSampler(settings)
    series(models[0], seed=3)
    swapped, fresh = series(models[1], seed=4), alone(models[1], seed=4)
    assert series.compiled == 1
    np.testing.assert_array_equal(swapped.posterior["slope"].values, fresh.posterior["slope"].values)
    slope = spec.priors["slope"]
    narrower = replace(slope, params=tuple((k, v / 2 if k == "sigma" else v) for k, v in slope.params))
    other = build_model(replace(spec, priors={**spec.priors, "slope": narrower}), data[1])
    values = {v.name: v.get_value() for v in other.data_vars}
    assert inf._signature(other, values) != inf._signature(models[1], values)


def test_ordered_logit_matches_pymc_and_its_draws_follow_it():
    """The lean ordinal likelihood gives OrderedLogistic's values, finite gradients at the edge
    categories and far from the data, and its random draws have the same category frequencies."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    from bayes_intl.ordinal import ordered_logit_logp, ordered_logit_random

    rng = np.random.default_rng(11)
    eta = rng.normal(0, 3, (40, 6))
    eta[0] = 40.0  # far beyond every cutpoint: the top category is certain
    cut = np.sort(rng.normal(0, 2, (6, 4)), axis=1)
    y = rng.integers(0, 5, (40, 6))
    y[:, 0], y[:, 1] = 0, 4  # every firm in an edge category for two items
    ours = ordered_logit_logp(pt.as_tensor(y), pt.as_tensor(eta), pt.as_tensor(cut)).eval()
    reference = pm.logp(pm.OrderedLogistic.dist(eta=eta, cutpoints=cut), y).eval()
    finite = np.isfinite(reference) & (reference > -700)  # PyMC clips probabilities at 1e-300-ish
    assert finite.sum() > 200
    np.testing.assert_allclose(ours[finite], reference[finite], rtol=1e-8, atol=1e-8)

    eta_v, cut_v = pt.matrix("eta"), pt.matrix("cut")
    total = ordered_logit_logp(pt.as_tensor(y), eta_v, cut_v).sum()
    grads = pytensor.function([eta_v, cut_v], pt.grad(total, [eta_v, cut_v]))(eta, cut)
    assert all(np.isfinite(g).all() for g in grads)
    # The compiled loop's gradient is OrderedLogistic's, in the C and in the numba backend (the sampler's), away
    # from the first firm, whose certain category PyMC's clipped probabilities cannot differentiate.
    rows = slice(1, None)
    ours = ordered_logit_logp(pt.as_tensor(y[rows]), eta_v, cut_v).sum()
    pymc_total = pm.logp(pm.OrderedLogistic.dist(eta=eta_v, cutpoints=cut_v[None, :, :]), y[rows]).sum()
    for mode in ("FAST_RUN", "NUMBA"):
        mine = pytensor.function([eta_v, cut_v], pt.grad(ours, [eta_v, cut_v]), mode=mode)(eta[rows], cut)
        theirs = pytensor.function([eta_v, cut_v], pt.grad(pymc_total, [eta_v, cut_v]))(eta[rows], cut)
        for a, b in zip(mine, theirs):
            np.testing.assert_allclose(a, b, rtol=1e-7, atol=1e-9)

    draws = 20000
    # As PyMC calls it under the signature "(i),(i,k)->(i)": size is the batch shape, without the item axis.
    one = ordered_logit_random(np.full((draws, 1), 0.7), cut[:1], rng=np.random.default_rng(5), size=(draws,))
    assert one.shape == (draws, 1)
    expected = np.exp(pm.logp(pm.OrderedLogistic.dist(eta=0.7, cutpoints=cut[0]), np.arange(5)).eval())
    observed = np.bincount(one.ravel(), minlength=5) / draws
    # Five binomial standard errors per category.
    assert np.all(np.abs(observed - expected) < 5 * np.sqrt(expected * (1 - expected) / draws))


def test_ordered_logit_of_flat_responses_uses_each_items_cutpoints():
    """The missing-response path (one entry per given response, with its item) gives the firm x item values and
    draws from its item's cutpoints."""
    import pytensor.tensor as pt

    from bayes_intl.ordinal import ordered_logit_logp, ordered_logit_random

    rng = np.random.default_rng(3)
    eta = rng.normal(0, 2, (30, 4))
    cut = np.sort(rng.normal(0, 2, (4, 5)), axis=1)
    y = rng.integers(0, 6, (30, 4))
    firm, item = np.nonzero(rng.random((30, 4)) > 0.3)
    matrix = ordered_logit_logp(pt.as_tensor(y), pt.as_tensor(eta), pt.as_tensor(cut)).eval()
    flat = ordered_logit_logp(pt.as_tensor(y[firm, item]), pt.as_tensor(eta[firm, item]), pt.as_tensor(cut),
                              pt.as_tensor(item)).eval()
    np.testing.assert_allclose(flat, matrix[firm, item], rtol=1e-12)
    # An item whose cutpoints all lie far above eta only ever draws category 0.
    cut[2] = [50, 51, 52, 53, 54]
    draws = ordered_logit_random(np.zeros(len(item)), cut, item, rng=rng, size=(len(item),))
    assert np.all(draws[item == 2] == 0) and draws[item != 2].max() > 0


def test_gate_policy_for_per_respondent_scores():
    """Parameters must each pass; per-respondent scores may fall short on tail ESS only, and only for 5% of them."""
    import pandas as pd

    from bayes_intl.inference import _score_shortfall, gate_variables

    def scores(tail_short: int, bulk_short: int = 0) -> pd.DataFrame:
        frame = pd.DataFrame({"r_hat": 1.0, "ess_bulk": 900.0, "ess_tail": 800.0},
                             index=[f"zeta[{i}]" for i in range(100)])
        frame.iloc[:tail_short, 2] = 350.0
        frame.iloc[50:50 + bulk_short, 1] = 380.0
        return frame

    bad, note = _score_shortfall(scores(tail_short=5))
    assert bad.empty and note.startswith("5 of 100 per-respondent scores have tail ESS under 400 (lowest 350)")
    assert len(_score_shortfall(scores(tail_short=6))[0]) == 6
    assert list(_score_shortfall(scores(tail_short=0, bulk_short=1))[0].index) == ["zeta[50]"]
    spec = load_spec(MODELS_DIR / "latent_factor.toml")
    params, firm_level = gate_variables(build_model(spec, model_data(spec)))
    # What a researcher reads is checked; the internal components that build it are not.
    assert set(firm_level) == {"capinno_factor", "factor"}
    assert {"loading", "second_order_loading", "slope", "group_intercept", "group_slope", "cutpoints_ordinal_1_5",
            "municipality_sd"} <= set(params)
    assert not {"zeta", "z_intercept", "z_slope", "z_municipality"} & set(params + firm_level)
    correlated = spec_from_dict(spec.raw | {"measurement": {"structure": "correlated"}})
    params, firm_level = gate_variables(build_model(correlated, model_data(correlated)))
    assert "factor_corr" in params and not {"factor_corr_partial", "z_factor"} & set(params + firm_level)


def test_the_gate_judges_each_correlation_once():
    """The unit diagonal of a correlation matrix is skipped and each off-diagonal correlation is listed once."""
    import arviz as az

    rng = np.random.default_rng(0)
    corr = np.ones((2, 100, 2, 2))
    corr[..., 0, 1] = corr[..., 1, 0] = rng.uniform(-0.5, 0.5, (2, 100))
    idata = az.from_dict(posterior={"factor_corr": corr, "loading": rng.normal(size=(2, 100))},
                         sample_stats={"diverging": np.zeros((2, 100), bool)})
    failing = inf.diagnose(idata, ["factor_corr", "loading"]).failing
    assert [f.split(" (")[0] for f in failing if f.startswith("factor_corr")] == ["factor_corr[1, 0]"]


def test_a_missed_gate_names_the_first_twenty_and_counts_the_rest():
    """25 loadings whose chains disagree: 20 named, all 25 counted (printed as "... and 5 more")."""
    import arviz as az

    rng = np.random.default_rng(2)
    apart = rng.normal(size=(2, 100, 25)) + np.array([0.0, 3.0])[:, None, None]  # the two chains 3 SD apart
    idata = az.from_dict(posterior={"loading": apart}, sample_stats={"diverging": np.zeros((2, 100), bool)})
    d = inf.diagnose(idata, ["loading"])
    assert not d.passed and len(d.failing) == inf.FAILING_SHOWN == 20
    assert d.failing_total == d.to_dict()["failing_total"] == 25


def test_predictive_draws_for_all_draws_at_once_equal_pymcs_draw_by_draw(monkeypatch):
    """The vectorised prior and posterior predictive give PyMC's own draws for the same seed (every random and
    derived variable), on the outcome models and on an item-level model with all item kinds and missing responses;
    the posterior draws in chunks (of 7 here), as a large survey's are."""
    import arviz as az
    import pymc as pm

    from bayes_intl.compile_cache import without_initvals
    from bayes_intl.data import ModelData, load_default
    from bayes_intl.simulate import codebook_dict, simulate_survey
    from bayes_intl.survey import codebook_from_dict, validate_survey

    monkeypatch.setattr(inf, "PREDICTIVE_CHUNK", 7)
    frame = simulate_survey(load_default(), seed=5).frame
    frame.loc[[1, 7, 30], "eo_objectives"] = np.nan
    frame.loc[[2, 9], "cap_fund_sources"] = np.nan
    survey = validate_survey(frame, codebook_from_dict(codebook_dict() | {"missing": {"policy": "model"}}), source="holed")
    holed = ModelData(survey.firms, survey, survey.source, survey.provenance, survey.design)
    cases = [(load_spec(MODELS_DIR / "hierarchical_logit.toml"), None),
             (load_spec(MODELS_DIR / "latent_factor.toml"), None),
             (load_spec(MODELS_DIR / "measurement_only.toml"), holed)]
    for spec, data in cases:
        model = build_model(spec, data if data is not None else model_data(spec))
        with without_initvals(model), model:
            ours = inf.prior_predictive(model, 40, seed=3)
            pymc = pm.sample_prior_predictive(draws=40, random_seed=3)
            for group in ("prior", "prior_predictive"):
                assert set(ours[group].data_vars) == set(pymc[group].data_vars)
                for name in pymc[group].data_vars:
                    np.testing.assert_allclose(ours[group][name], pymc[group][name], rtol=1e-9, err_msg=name)
            posterior = az.InferenceData(posterior=pymc.prior.isel(draw=slice(0, 30))[[v.name for v in model.free_RVs]])
            ours = inf.posterior_predictive(model, posterior, seed=4).posterior_predictive
            pymc = pm.sample_posterior_predictive(posterior, random_seed=4, progressbar=False).posterior_predictive
            assert set(ours.data_vars) == set(pymc.data_vars) == {rv.name for rv in model.observed_RVs}
            for name in pymc.data_vars:
                assert ours[name].dims == pymc[name].dims
                np.testing.assert_allclose(ours[name], pymc[name], rtol=1e-9, err_msg=name)


def test_a_graph_that_cannot_be_vectorised_gets_pymcs_draws_one_at_a_time(monkeypatch):
    """Where PyTensor cannot vectorise a step of a model's graph, the predictive draws come from PyMC's own
    per-draw functions: the same variables and the same draws as calling PyMC directly."""
    import arviz as az
    import pymc as pm
    import pytensor.graph.replace

    def refuse(*_, **__):
        raise NotImplementedError("no vectorised form of this step")

    monkeypatch.setattr(pytensor.graph.replace, "vectorize_graph", refuse)
    spec = load_spec(MODELS_DIR / "paper_logit.toml")
    model = build_model(spec, model_data(spec))
    with model:
        ours = inf.prior_predictive(model, 20, seed=5)
        pymc = pm.sample_prior_predictive(draws=20, random_seed=5)
        np.testing.assert_array_equal(ours.prior_predictive["internationalized"],
                                      pymc.prior_predictive["internationalized"])
        posterior = az.InferenceData(posterior=pymc.prior[[v.name for v in model.free_RVs]])
        ours = inf.posterior_predictive(model, posterior, seed=6).posterior_predictive["internationalized"]
        pymc = pm.sample_posterior_predictive(posterior, random_seed=6, progressbar=False).posterior_predictive
        np.testing.assert_array_equal(ours, pymc["internationalized"])
        densities = posterior.copy()
        inf.add_log_densities(densities, model, "internationalized")
        assert set(densities.groups()) == {"posterior", "log_likelihood", "log_prior"}


def test_log_densities_for_all_draws_at_once_equal_pymcs(monkeypatch):
    """The outcome's pointwise log-likelihood (PSIS-LOO's input) and the log-prior of each prior the spec sets
    (power-scaling's: no internal component, no per-respondent score) equal PyMC's draw-by-draw
    ``compute_log_likelihood`` and ``compute_log_prior``, variable by variable and dim by dim, with the draws in
    chunks (of 7 here), on the models that have an outcome. In the hierarchical population form, ``intercept`` and
    ``slope`` carry the spec's Normal priors in place of the observed groups' means they are sampled through
    (models._group_means)."""
    import arviz as az
    import pymc as pm
    from scipy.stats import norm

    from bayes_intl.compile_cache import without_initvals

    monkeypatch.setattr(inf, "PREDICTIVE_CHUNK", 7)
    for name in ("paper_logit", "coarsened_latent", "latent_factor"):
        spec = load_spec(MODELS_DIR / f"{name}.toml")
        model = build_model(spec, model_data(spec))
        derived = getattr(model, "priors_of_derived", {})
        with without_initvals(model), model:
            prior = pm.sample_prior_predictive(draws=30, random_seed=2).prior
            ours = az.InferenceData(posterior=prior[[v.name for v in model.free_RVs] + list(derived)])
            pymc = ours.copy()
            inf.add_log_densities(ours, model, "internationalized")
            pm.compute_log_likelihood(pymc, var_names=["internationalized"], progressbar=False)
            pm.compute_log_prior(pymc, progressbar=False)
        stood_in = {through for through, _, _ in derived.values()}
        assert (name == "latent_factor") == (stood_in == {"mean_group_intercept", "mean_group_slope"})
        internal = {v for v in pymc.log_prior.data_vars if not scaled_prior(v, pymc.log_prior[v].dims)}
        assert (name == "latent_factor") == ({"z_intercept", "zeta", "capinno_factor"} <= internal)
        stood_in |= internal
        for var, (_, mu, sigma) in derived.items():
            np.testing.assert_allclose(ours.log_prior[var], norm.logpdf(prior[var], mu, sigma), rtol=1e-12)
            assert ours.log_prior[var].dims == prior[var].dims
        for group in ("log_likelihood", "log_prior"):
            extra = set(derived) if group == "log_prior" else set()
            assert set(ours[group].data_vars) == set(pymc[group].data_vars) - stood_in | extra, (name, group)
            for var in set(pymc[group].data_vars) - stood_in:
                assert ours[group][var].dims == pymc[group][var].dims, (name, var)
                # PyTensor's C softplus (PyMC's compiled function) and NumPy's branch differently far in the tails:
                # up to 4e-8 relative on these prior draws, where a firm's outcome has probability around 1e-10.
                np.testing.assert_allclose(ours[group][var], pymc[group][var], rtol=1e-6, atol=1e-12,
                                           err_msg=f"{name} {var}")


def test_zero_sum_deviations_keep_the_group_contrasts_and_make_the_mean_the_groups_average(loaded):
    """``[hierarchy] deviations = "zero_sum"``: each draw's group deviations sum to zero, so ``intercept`` is
    the mean of the group intercepts; the prior on a contrast between two groups is the population model's
    (difference of two groups ~ Normal(0, 2 sd^2) either way); its log-prior holds the spec's priors only."""
    import dataclasses

    spec, data = loaded["hierarchical_logit"]
    zero_sum = dataclasses.replace(spec, deviations="zero_sum")
    model = build_model(zero_sum, data)
    idata = inf.sample(model, replace(spec.quick, chains=2, draws=100, tune=100), seed=4, progress=False)
    inf.add_predictive(idata, model, zero_sum, seed=4, prior_draws=2000)
    post = idata.posterior
    assert np.allclose(post["group_intercept"].mean("group"), post["intercept"], atol=1e-9)
    assert np.allclose(post["group_slope"].mean("group"), post["slope"], atol=1e-9)
    assert {"intercept", "slope", "intercept_sd", "group_sd"} == set(idata.log_prior.data_vars)  # the spec's priors
    prior = idata.prior
    contrast = (prior["group_intercept"].isel(group=0) - prior["group_intercept"].isel(group=1)).values.ravel()
    expected = np.sqrt(2) * prior["intercept_sd"].values.ravel()
    z = contrast / expected  # standard normal under both parameterisations
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.std() - 1) < 4 / np.sqrt(2 * z.size)



def test_population_form_samples_the_groups_mean_and_keeps_the_population_prior(loaded):
    """The default ``population`` deviations are sampled through the observed groups' mean (models._group_means),
    which removes the ridge two groups leave, but the model is the population model exactly: ``intercept`` and
    ``slope`` have the spec's Normal priors, and each group's standardized deviation is N(0, 1), independent of
    them and of the other group's. Checked on 8,000 prior draws within 4 standard errors. A non-Normal prior
    keeps the direct form."""
    import dataclasses

    from bayes_intl.spec import Prior

    spec, data = loaded["hierarchical_logit"]
    model = build_model(spec, data)
    free = {rv.name for rv in model.free_RVs}
    assert {"mean_group_intercept", "mean_group_slope"} <= free and not {"intercept", "slope"} & free
    prior = inf.draw_prior(model, seed=11, draws=8000).prior
    n = prior.sizes["draw"]
    se = 4 / np.sqrt(n)
    for name in ("intercept", "slope"):
        sigma = spec.priors[name].kwargs()["sigma"]
        values = prior[name].values.reshape(n, -1) / sigma
        assert np.all(np.abs(values.mean(0)) < se) and np.all(np.abs(values.std(0) - 1) < se * np.sqrt(0.5))
    z = ((prior["group_intercept"] - prior["intercept"]) / prior["intercept_sd"]).values[0]
    z_slope = ((prior["group_slope"] - prior["slope"]) / prior["group_sd"].rename(varying="term")).values[0]
    columns = np.column_stack([z, z_slope.reshape(n, -1), prior["intercept"].values[0], prior["slope"].values[0]])
    assert np.all(np.abs(columns[:, :-3].mean(0)) < se) and np.all(np.abs(columns[:, :-3].std(0) - 1) < se * np.sqrt(0.5))
    correlation = np.corrcoef(columns.T)
    assert np.all(np.abs(correlation[np.triu_indices_from(correlation, 1)]) < se)

    student = dataclasses.replace(spec, priors=spec.priors | {"slope": Prior("StudentT", (("nu", 3.0), ("mu", 0.0),
                                                                                          ("sigma", 2.5)))})
    assert {"intercept", "slope", "z_intercept"} <= {rv.name for rv in build_model(student, data).free_RVs}


def test_one_factor_binary_items_integrate_the_ability_out_by_quadrature():
    """A one-dimension survey of binary items (the 2PL) is fitted by its marginal likelihood, as ltm fits it:
    each respondent's log-probability equals the ability integrated out numerically (scipy's adaptive quad), for
    slopes up to 3; replicated answers are new respondents' (each item's share right is its marginal probability,
    within 4 standard errors); the model has no per-respondent ability to sample."""
    import pytensor.tensor as pt
    from scipy import integrate, special, stats

    from bayes_intl.models import _marginal_2pl_logp, _marginal_2pl_random

    tau, slope = np.array([2.8, 1.0, 0.25, -1.3, 2.1]), np.array([0.8, 0.3, 3.0, 1.5, 0.65])
    patterns = np.array([[0, 0, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 1], [0, 1, 1, 1, 0], [1, 1, 0, 1, 1]])
    ours = _marginal_2pl_logp(pt.as_tensor(patterns.astype(float)), pt.as_tensor(np.broadcast_to(tau, patterns.shape)),
                              pt.as_tensor(np.broadcast_to(slope, patterns.shape))).eval()

    def density(theta, y):
        p = special.expit(tau + slope * theta)
        return np.prod(p**y * (1 - p) ** (1 - y)) * stats.norm.pdf(theta)

    exact = [np.log(integrate.quad(density, -12, 12, args=(y,), epsabs=0, epsrel=1e-12, limit=200)[0]) for y in patterns]
    np.testing.assert_allclose(ours, exact, rtol=0, atol=1e-6)

    n = 100_000
    drawn = _marginal_2pl_random(tau, slope, rng=np.random.default_rng(1), size=(n,))
    marginal = np.array([integrate.quad(lambda t, j=j: special.expit(tau[j] + slope[j] * t) * stats.norm.pdf(t), -12, 12)[0]
                         for j in range(len(tau))])
    assert drawn.shape == (n, 5) and np.all(np.abs(drawn.mean(0) - marginal) < 4 * np.sqrt(marginal * (1 - marginal) / n))

    spec = load_spec(MODELS_DIR / "irt_2pl.toml")
    model = build_model(spec, model_data(spec))
    assert {rv.name for rv in model.free_RVs} == {"loading", "intercept_binary"}


@pytest.mark.parametrize("deviations", ["population", "zero_sum"])
def test_the_shipped_outcome_models_draw_predictions_for_all_draws_at_once(deviations, loaded, monkeypatch):
    """No shipped outcome model falls back to PyMC's draw-by-draw functions (several times slower on a fit):
    a slice or an indexed assignment in a graph can stop PyTensor vectorising it, and did once (latent_factor's
    item predictor, after the sectors' means became variables)."""
    import arviz as az
    import pymc as pm

    def refuse(*_, **__):
        raise AssertionError("fell back to PyMC's per-draw function")

    for name in ("paper_logit", "hierarchical_logit", "coarsened_latent", "latent_factor"):
        spec, data = loaded[name]
        model = build_model(replace(spec, deviations=deviations), data)
        prior = inf.draw_prior(model, seed=1, draws=20)
        monkeypatch.setattr(pm, "sample_posterior_predictive", refuse)
        monkeypatch.setattr(pm, "compute_log_prior", refuse)
        posterior = az.InferenceData(posterior=prior.prior)
        with inf._predictive_context(model):
            inf.posterior_predictive(model, posterior, seed=2)
            inf.add_log_densities(posterior, model, "internationalized")
        monkeypatch.setattr(pm, "sample_prior_predictive", refuse)
        inf.draw_prior(model, seed=1, draws=20)
        monkeypatch.undo()
