"""A categorical outcome: the baseline-category logit, its shares, its checks and its bad input."""

import re
from dataclasses import replace

import jax
import numpy as np
import pandas as pd
import pytest
from numpyro.infer.util import log_density
from scipy.special import gammaln

from mrp_numpyro.data import DataError, load_synthetic
from mrp_numpyro.data.synthetic import PARTY_LEVELS, PARTY_SCHEMA, SYNTHETIC_SCHEMA
from mrp_numpyro.data.validation import build_mrp_data
from mrp_numpyro.design.cells import CellArrays, build_design
from mrp_numpyro.design.formula import parse_formula
from mrp_numpyro.design.priors import Priors
from mrp_numpyro.model import build_model
from mrp_numpyro.poststratification import poststratify_draws

FORMULA = "party ~ (1 | state) + (1 | eth) + (1 | age) + male + repvote + factor(region)"


@pytest.fixture(scope="module")
def data():
    return load_synthetic(n=3000, seed=1, outcome="party")


@pytest.fixture(scope="module")
def design(data):
    return build_design(parse_formula(FORMULA, columns=data.survey.columns), data)


def _params(design, rng, k):
    params = {"Intercept": rng.normal(size=k), "beta": rng.normal(size=(k, len(design.fixed_names)))}
    for name, size in zip(design.group_names, design.group_sizes, strict=True):
        params[f"sd_{name}"] = rng.uniform(0.2, 0.8, size=k)
        params[f"z_{name}"] = rng.normal(size=(k, size))
    return params


def test_cells_count_every_answer(data, design):
    s = design.survey
    assert s.counts.shape == (s.n_cells, 3) and s.successes is None
    np.testing.assert_array_equal(s.counts.sum(1), s.trials)
    np.testing.assert_array_equal(s.counts.sum(0), data.survey["party"].value_counts().reindex(PARTY_LEVELS).to_numpy())
    assert design.outcome_levels == PARTY_LEVELS and design.categories == ("Republican", "Independent")


def test_multinomial_likelihood_equals_the_respondents_up_to_constant(design):
    """Cells' multinomial log likelihood = sum over respondents of log softmax + sum of log multinomial coefficients."""
    s = design.survey
    per_cell = np.repeat(np.arange(s.n_cells), s.trials)
    answers = np.concatenate([np.repeat(np.arange(3), row) for row in s.counts])
    one_hot = np.eye(3, dtype=np.int64)[answers]
    individual = CellArrays(
        s.X[per_cell], s.group_index[per_cell], s.cells.iloc[per_cell], np.ones(len(answers), np.int64), counts=one_hot
    )
    params = _params(design, np.random.default_rng(0), 2)
    with jax.enable_x64(True):
        model = build_model(design, Priors(), dtype=np.float64)
        model_ind = build_model(replace(design, survey=individual), Priors(), dtype=np.float64)
        lp_cells, _ = log_density(model.fn, (), dict(model.kwargs), params)
        lp_ind, _ = log_density(model_ind.fn, (), dict(model_ind.kwargs), params)
    const = np.sum(gammaln(s.trials + 1.0) - gammaln(s.counts + 1.0).sum(1))
    assert float(lp_cells) - float(lp_ind) == pytest.approx(const, rel=1e-9, abs=1e-6)


def test_two_answers_are_the_binary_logit():
    """Declared as two answers, a 0/1 outcome's categorical model has the binary model's log density."""
    binary = load_synthetic(n=2000, seed=2)
    survey = binary.survey.assign(abortion=binary.survey["abortion"].map({0: "oppose", 1: "support"}))
    schema = replace(SYNTHETIC_SCHEMA, outcome_levels=("oppose", "support"))
    two = build_mrp_data(survey, binary.poststrat, binary.areas, schema, source="two answers")
    formula = "abortion ~ (1 | state) + (1 | eth) + male + repvote"
    d_binary = build_design(parse_formula(formula, columns=binary.survey.columns), binary)
    d_two = build_design(parse_formula(formula, columns=two.survey.columns), two)
    params = _params(d_two, np.random.default_rng(1), 1)
    flat = {k: v[0] for k, v in params.items()}
    with jax.enable_x64(True):
        m_two, m_binary = build_model(d_two, Priors(), dtype=np.float64), build_model(d_binary, Priors(), dtype=np.float64)
        lp_two, _ = log_density(m_two.fn, (), dict(m_two.kwargs), params)
        lp_binary, _ = log_density(m_binary.fn, (), dict(m_binary.kwargs), flat)
    # The multinomial and binomial coefficients are the same numbers.
    assert float(lp_two) == pytest.approx(float(lp_binary), rel=1e-10)


def test_shares_sum_to_one_and_equal_the_dense_sum(design):
    rng = np.random.default_rng(3)
    draws = {k: v[None] for k, v in _stack([_params(design, rng, 2) for _ in range(7)]).items()}
    est = poststratify_draws(draws, design, {"state": ["state"], "national": []}, chunk_size=3, dtype=np.float64)
    for grouping in est.values():
        assert grouping.draws.shape[-1] == 3 and grouping.categories == PARTY_LEVELS
        np.testing.assert_allclose(grouping.draws.sum(-1), 1.0, atol=1e-12)
    # Dense: every cell's softmax of D @ theta with a zero for the baseline, weighted by N.
    post = design.poststrat
    theta = design.layout.pack_draws({k: v[0] for k, v in draws.items()})  # (draws, 2, P)
    eta = np.einsum("cp,dkp->dck", design.design_matrix(post), theta)
    logits = np.concatenate([np.zeros(eta.shape[:2] + (1,)), eta], axis=-1)
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    national = (post.weights[None, :, None] * p).sum(1) / post.weights.sum()
    np.testing.assert_allclose(est["national"].draws[0, :, 0], national, rtol=1e-10)
    table = est["state"].summary()
    assert list(table.columns[:2]) == ["state", "party"] and len(table) == 50 * 3
    assert list(table["party"][:3]) == list(PARTY_LEVELS)


def _stack(dicts):
    return {k: np.stack([d[k] for d in dicts]) for k in dicts[0]}


def test_the_baseline_is_configurable(data):
    schema = replace(PARTY_SCHEMA, baseline="Independent")
    other = build_mrp_data(data.survey, data.poststrat, data.areas, schema, source="baseline Independent")
    d = build_design(parse_formula(FORMULA, columns=other.survey.columns), other)
    assert d.baseline == 2 and d.categories == ("Democrat", "Republican")
    # The same answers, so the same counts; only which linear predictor is zero changes.
    model = build_model(d, Priors())
    assert model.kwargs["successes"].shape[-1] == 3


def _survey(data, answers):
    return data.survey.assign(party=answers)


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        (lambda s: "Democrat", "only one answer"),
        (lambda s: np.where(np.arange(len(s)) == 5, "Green", s["party"]), "'Green'"),
        (
            lambda s: np.where(s["party"] == "Independent", "Democrat", s["party"]),
            "no respondent gave the declared answer(s) ['Independent']",
        ),
        (lambda s: np.where(np.arange(len(s)) == 0, None, s["party"]), "missing answer"),
    ],
)
def test_bad_answers_are_named(data, answers, message):
    survey = _survey(data, answers(data.survey))
    with pytest.raises(DataError, match=re.escape(message)):
        build_mrp_data(survey, data.poststrat, data.areas, PARTY_SCHEMA, source="bad", names={"survey": "survey 'x.csv'"})


def test_bad_schemas_are_refused():
    with pytest.raises(ValueError, match="two or more distinct"):
        replace(PARTY_SCHEMA, outcome_levels=("Democrat",))
    with pytest.raises(ValueError, match="baseline 'Green'"):
        replace(PARTY_SCHEMA, baseline="Green")
    with pytest.raises(ValueError, match="one row per respondent"):
        replace(PARTY_SCHEMA, trials="respondents")


def test_structured_priors_are_refused_with_a_categorical_outcome(data):
    spec = parse_formula("party ~ (1 | rw1(age)) + (1 | state)", columns=data.survey.columns)
    with pytest.raises(DataError, match=r"rw1\(age\).*not yet offered with a categorical outcome"):
        build_design(spec, data)


def test_identified_coordinates_fall_back_and_say_so(design, caplog):
    from mrp_numpyro.model.base import get_parameterization

    with caplog.at_level("WARNING"):
        model = get_parameterization("identified").build(design, Priors())
    assert model.parameterization == "noncentred"
    assert "identified coordinates are written for a 0/1 outcome" in caplog.text


def test_partial_centring_is_the_same_posterior_category_by_category(design):
    """u = sd^c z has density Normal(z; 0, 1) / sd^c per level, at the weights of the current sds."""
    from mrp_numpyro.model.centring import centring_weights
    from mrp_numpyro.model.partial import PartiallyCentred

    sd_guess = {g: np.array([0.3, 0.6]) for g in design.group_names}
    params = _params(design, np.random.default_rng(4), 2)
    with jax.enable_x64(True):
        noncentred = build_model(design, Priors(), dtype=np.float64)
        partial = PartiallyCentred(sd_guess=sd_guess).build(design, Priors(), dtype=np.float64)
        centring = partial.fn.keywords["centring"]
        sds = [params[f"sd_{g}"] for g in design.group_names]
        weights = centring_weights(sds, centring)
        u = dict(params)
        jacobian = 0.0
        for g, sd, c in zip(design.group_names, sds, weights, strict=True):
            u[f"u_{g}"] = u.pop(f"z_{g}") * sd[:, None] ** c
            jacobian += float(np.sum(c * np.log(sd)[:, None]))
        lp_n, _ = log_density(noncentred.fn, (), dict(noncentred.kwargs), params)
        lp_p, _ = log_density(partial.fn, (), dict(partial.kwargs), u)
    assert float(lp_p) == pytest.approx(float(lp_n) - jacobian, rel=1e-10)
    assert 0.0 < float(np.max(weights[0])) < 1.0  # the states are partly centred
    back = partial.effects({k: np.asarray(v)[None] for k, v in u.items()}, jax.random.PRNGKey(0))
    for g in design.group_names:
        np.testing.assert_allclose(back[f"z_{g}"][0], params[f"z_{g}"], rtol=1e-10)


def test_truth_of_any_grouping_is_long(data):
    truth = data.truth
    by_state = truth.by(["state"])
    assert by_state.index.names == ["state", "category"] and len(by_state) == 150
    np.testing.assert_allclose(by_state.groupby(level="state").sum(), 1.0)
    assert truth.national_shares.sum() == pytest.approx(1.0)
    assert isinstance(truth.by(["state", "eth"]).index, pd.MultiIndex)


@pytest.fixture(scope="module")
def party_run(tmp_path_factory):
    """A short run of the default guide on the synthetic party ID, every output written.

    The recovery of the true shares is tested on NUTS's fit of party ID in
    tests/test_noncensus.py, as the first model of the non-census run.
    """
    from mrp_numpyro.app.config import compose_config
    from mrp_numpyro.app.run import run

    out = tmp_path_factory.mktemp("party")
    return run(compose_config(["data.outcome=party", "model=party", "experiment=fast", "progress=false"]), out), out


def test_the_run_writes_every_category(party_run):
    import json

    import xarray as xr

    result, out = party_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["outcome_levels"] == list(PARTY_LEVELS) and summary["baseline"] == "Democrat"
    assert sum(summary["national_shares"].values()) == pytest.approx(1.0)
    # The default guide's identified coordinates fall back to the non-centred ones.
    assert summary["national_mean"] is None and summary["parameterization"] == "noncentred"
    state = pd.read_csv(out / "estimates_state.csv")
    assert list(state.columns[:3]) == ["state", "party", "mean"] and state["truth"].notna().all()
    for level in PARTY_LEVELS:
        assert (out / f"state_estimates_{level}.png").is_file() and (out / f"state_map_{level}.png").is_file()
    with xr.open_dataset(out / "poststrat_draws.nc") as ds:
        assert ds["state"].dims == ("chain", "draw", "state_level", "party")
        np.testing.assert_allclose(ds["national"].sum("party"), 1.0, atol=1e-5)
    with xr.open_dataset(out / "posterior.nc", group="posterior") as post:
        assert post["z_state"].dims == ("chain", "draw", "category", "state_level")
        assert list(post["category"].values) == ["Republican", "Independent"]
    checks = pd.read_csv(out / "predictive_checks.csv")
    assert checks["group"].str.endswith(":Independent").any()
    assert summary["loo"]["n_cells"] == result.problem.design.survey.n_cells
    cells = pd.read_csv(out / "survey_cells.csv")
    assert {f"party[{c}]" for c in PARTY_LEVELS} <= set(cells.columns)
    assert cells[[f"party[{c}]" for c in PARTY_LEVELS]].to_numpy().sum() == 2000
