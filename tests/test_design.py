from dataclasses import replace

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpyro.infer.util import log_density
from scipy.special import gammaln

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.data import load_synthetic
from mrp_numpyro.design import CellArrays, aggregate_cells, build_design
from mrp_numpyro.design.formula import parse_formula
from mrp_numpyro.design.priors import Priors
from mrp_numpyro.model import build_model

# The case study's formula, as conf/model/default.yaml has it.
FORMULA = compose_config().model.formula


@pytest.fixture(scope="module")
def data():
    return load_synthetic(4000, seed=11)


@pytest.fixture(scope="module")
def design(data):
    return build_design(parse_formula(FORMULA), data)


def test_aggregation_preserves_counts(data, design):
    s = design.survey
    assert s.trials.sum() == len(data.survey) == design.n_respondents
    assert s.successes.sum() == data.survey["abortion"].sum()
    assert (s.trials >= 1).all() and (s.successes <= s.trials).all()
    # Same cells and counts as a pandas group-by of the respondents.
    keys = ["male", "repvote", "region", "state", "eth", "educ", "age"]
    expected = data.survey.groupby(keys, observed=True)["abortion"].agg(["size", "sum"]).reset_index()
    got = s.cells.assign(size=s.trials, sum=s.successes)
    got["male"] = got["male"].astype(float)
    got["repvote"] = got["repvote"].astype(float)
    merged = expected.astype({c: str for c in ("region", "state", "eth", "educ", "age")}).merge(
        got.astype({c: str for c in ("region", "state", "eth", "educ", "age")}), on=keys, suffixes=("_pd", "_mrp")
    )
    assert len(merged) == len(expected) == s.n_cells
    assert (merged["size_pd"] == merged["size_mrp"]).all() and (merged["sum_pd"] == merged["sum_mrp"]).all()


def test_aggregate_cells_small_case():
    codes = np.array([[0, 1], [1, 0], [0, 1], [0, 0], [1, 0]])
    cells, trials, successes = aggregate_cells(codes, (2, 2), np.array([1, 0, 0, 1, 1]))
    assert cells.tolist() == [[0, 0], [0, 1], [1, 0]]
    assert trials.tolist() == [1, 2, 2]
    assert successes.tolist() == [1, 1, 1]


def test_design_columns_and_centering(design):
    assert design.fixed_names == ("male", "repvote", "region[North Central]", "region[South]", "region[West]")
    X, t = design.survey.X, design.survey.trials
    np.testing.assert_allclose((X * t[:, None]).sum(0) / t.sum(), 0.0, atol=1e-10)
    assert design.group_sizes == (50, 4, 5, 6, 8, 30, 20)
    assert design.group_levels[4][:2] == ("-0.5:White", "-0.5:Black")
    # Every table cell is predicted, whether or not a respondent is in it.
    assert design.poststrat.n_cells == 12_000
    assert design.poststrat.group_index.max(axis=0).tolist() == [49, 3, 4, 5, 7, 29, 19]


def test_autoscale_follows_rstanarm(data, design):
    # Two-valued predictors are scaled by their range, others by their sd (n - 1).
    assert design.x_scale[0] == 1.0  # male: -0.5 / +0.5
    assert design.x_scale[2:].tolist() == [1.0, 1.0, 1.0]  # region dummies
    assert design.x_scale[1] == pytest.approx(data.survey["repvote"].std(ddof=1), rel=1e-10)
    np.testing.assert_allclose(Priors().coef_scales(design.x_scale), 1.0 / design.x_scale)
    np.testing.assert_allclose(Priors(autoscale=False).coef_scales(design.x_scale), 1.0)


def test_binomial_likelihood_equals_bernoulli_up_to_constant(data, design):
    """The aggregated likelihood is the respondent-level one plus sum log C(n, k)."""
    priors = Priors()
    # Respondent-level design: every respondent is its own cell with one trial.
    s = design.survey
    per_cell = np.repeat(np.arange(s.n_cells), s.trials)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(n - k)] for n, k in zip(s.trials, s.successes)])
    individual = CellArrays(s.X[per_cell], s.group_index[per_cell], s.cells.iloc[per_cell], np.ones(len(y)), y)
    rng = np.random.default_rng(0)
    params = {"Intercept": 0.3, "beta": rng.normal(size=len(design.fixed_names))}
    for name, size in zip(design.group_names, design.group_sizes):
        params[f"sd_{name}"] = 0.4
        params[f"z_{name}"] = rng.normal(size=size)
    with jax.enable_x64(True):
        model = build_model(design, priors, dtype=np.float64)
        model_ind = build_model(replace(design, survey=individual), priors, dtype=np.float64)
        lp_cells, _ = log_density(model.fn, (), dict(model.kwargs), params)
        lp_ind, _ = log_density(model_ind.fn, (), dict(model_ind.kwargs), params)
    const = np.sum(gammaln(s.trials + 1) - gammaln(s.successes + 1) - gammaln(s.trials - s.successes + 1))
    assert float(lp_cells) - float(lp_ind) == pytest.approx(const, rel=1e-9, abs=1e-6)


def test_formula_response_must_be_outcome(data):
    from mrp_numpyro.data.schema import DataError

    with pytest.raises(DataError, match="not the data's outcome"):
        build_design(parse_formula("male ~ (1 | state)"), data)


@st.composite
def respondents(draw):
    sizes = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
    n = draw(st.integers(1, 60))
    codes = np.column_stack([draw(arrays(np.int64, n, elements=st.integers(0, s - 1))) for s in sizes])
    y = draw(arrays(np.int64, n, elements=st.integers(0, 1)))
    return codes, sizes, y


@settings(max_examples=80, deadline=None)
@given(respondents())
def test_aggregation_preserves_trials_and_successes(r):
    codes, sizes, y = r
    cells, trials, successes = aggregate_cells(codes, sizes, y)
    assert trials.sum() == len(y) and successes.sum() == y.sum()
    assert len(np.unique(cells, axis=0)) == len(cells)
    # Each cell holds exactly the respondents with its codes.
    for cell, t, k in zip(cells, trials, successes):
        members = np.all(codes == cell, axis=1)
        assert members.sum() == t and y[members].sum() == k


def _counting_traces(model):
    """``model`` with its function wrapped to count calls: each call is one trace by JAX."""
    calls = {"n": 0}

    def counted(*args, **kwargs):
        calls["n"] += 1
        return model.fn(*args, **kwargs)

    return replace(model, fn=counted), calls


def test_svi_compiles_once_whatever_the_number_of_chunks(design):
    """Tracing the model is a fixed cost: more chunks of steps must not re-trace it."""
    import numpyro
    from numpyro.infer.autoguide import AutoNormal

    from mrp_numpyro.inference import fit_svi

    def traces_for(num_steps):
        model, calls = _counting_traces(build_model(design, Priors()))
        fit_svi(
            model,
            jax.random.PRNGKey(0),
            guide=AutoNormal,
            optimizer=numpyro.optim.Adam(0.01),
            num_steps=num_steps,
            check_every=50,
            plateau_rtol=None,
            num_draws=20,
            importance_resampling=False,
        )
        return calls["n"]

    assert traces_for(100) == traces_for(400)


def test_declared_factor_without_factor_call_is_dummy_coded(data):
    plain = build_design(parse_formula("abortion ~ region + educ + (1 | state)"), data)
    wrapped = build_design(parse_formula("abortion ~ factor(region) + factor(educ) + (1 | state)"), data)
    assert plain.fixed_names == wrapped.fixed_names
    assert plain.fixed_names[:3] == ("region[North Central]", "region[South]", "region[West]")
    np.testing.assert_array_equal(plain.survey.X, wrapped.survey.X)


def test_nuts_compiles_once_for_more_chains_than_devices(design):
    """4 chains on 2 devices run as one compiled program: no more model traces than 2 chains."""
    from mrp_numpyro.inference import fit_nuts

    assert jax.local_device_count() == 2  # tests/conftest.py

    def run(num_chains):
        model, calls = _counting_traces(build_model(design, Priors()))
        fit = fit_nuts(model, jax.random.PRNGKey(0), num_warmup=20, num_samples=10, num_chains=num_chains)
        return calls["n"], fit

    two, _ = run(2)
    four, fit = run(4)
    assert four == two
    assert fit.draws["z_state"].shape[:2] == (4, 10) and fit.traces["diverging"].shape == (4, 10)
    # Each chain is its own: no two chains share a draw.
    first = fit.draws["Intercept"][:, 0]
    assert len(np.unique(first)) == 4 and np.all(np.isfinite(fit.draws["Intercept"]))


def test_nuts_with_progress_bars_runs_chains_in_batches(design):
    """numpyro draws bars only for its own chain methods: 4 chains on 2 devices in 2 parallel batches."""
    from mrp_numpyro.inference import fit_nuts

    fit = fit_nuts(
        build_model(design, Priors()), jax.random.PRNGKey(0), num_warmup=20, num_samples=10, num_chains=4, progress_bar=True
    )
    assert fit.diagnostics["chain_method"] == "parallel"
    assert fit.draws["z_state"].shape[:2] == (4, 10) and len(np.unique(fit.draws["Intercept"][:, 0])) == 4


@pytest.mark.parametrize(("backend", "expected"), [("gpu", "vectorized"), ("cpu", "sequential")])
def test_nuts_on_one_device_vectorizes_chains_only_on_a_gpu(design, monkeypatch, caplog, backend, expected):
    """One GPU runs 4 chains as one batch; one CPU device runs them one after the other."""
    from mrp_numpyro.inference import fit_nuts
    from mrp_numpyro.inference import nuts as nuts_module

    monkeypatch.setattr(nuts_module.jax, "local_device_count", lambda *a, **k: 1)
    monkeypatch.setattr(nuts_module.jax, "default_backend", lambda: backend)
    with caplog.at_level("INFO", logger="mrp_numpyro.inference.nuts"):
        fit = fit_nuts(build_model(design, Priors()), jax.random.PRNGKey(0), num_warmup=20, num_samples=10, num_chains=4)
    assert fit.diagnostics["chain_method"] == expected
    assert f"1 JAX device(s) for 4 chains: {expected}" in caplog.text
    assert fit.draws["z_state"].shape[:2] == (4, 10) and len(np.unique(fit.draws["Intercept"][:, 0])) == 4


def test_the_deep_interaction_preset_has_about_900_effects(data):
    """model=deep: the case study's formula and four state or demographic interactions, 903 effects on the CCES levels."""
    cfg = compose_config(["model=deep"])
    design = build_design(parse_formula(cfg.model.formula), data)
    assert {"state:eth", "state:educ", "state:age", "eth:age"} <= set(design.group_names)
    # 129 effects of the case study, then 50 x 4 + 50 x 5 + 50 x 6 + 4 x 6 = 774 more.
    assert design.layout.size == 129 + 774
