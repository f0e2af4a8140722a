import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from mrp_numpyro.poststratification import group_cells, poststratify, summarize


def test_hand_computed_case():
    # Two areas. Area 0: cells with N = 100 and 300, p = 0.2 and 0.6 -> (20 + 180) / 400 = 0.5.
    # Area 1: one cell with N = 50 and p = 0.9 -> 0.9; a cell with N = 0 contributes nothing.
    probs = np.array([[0.2, 0.6, 0.9, 0.1], [0.4, 0.4, 0.5, 0.7]])
    N = np.array([100.0, 300.0, 50.0, 0.0])
    area = np.array([0, 0, 1, 1])
    out = poststratify(probs, N, area, 2)
    np.testing.assert_allclose(out, [[0.5, 0.9], [0.4, 0.5]])
    national = poststratify(probs, N, np.zeros(4, int), 1)
    np.testing.assert_allclose(national[:, 0], [(20 + 180 + 45) / 450, (40 + 120 + 25) / 450])


def test_zero_population_group_is_an_error():
    with pytest.raises(ValueError, match="zero total weight"):
        poststratify(np.ones((1, 2)), np.array([1.0, 0.0]), np.array([0, 1]), 2)


def test_summary_columns():
    draws = np.random.default_rng(1).normal(size=(4000, 2))
    table = summarize(draws, pd.DataFrame({"state": ["A", "B"]}))
    assert list(table.columns) == ["state", "mean", "sd", "q5", "q25", "q50", "q75", "q95"]
    # Standard normal quantiles, within Monte Carlo error of 4,000 draws (se of q5 ~ 0.034).
    np.testing.assert_allclose(table["q5"], -1.645, atol=0.15)
    np.testing.assert_allclose(table["q50"], 0.0, atol=0.1)


def test_group_cells_labels_and_national():
    cells = pd.DataFrame({"state": ["B", "A", "B"], "eth": ["x", "x", "y"]})
    index, labels = group_cells(cells, ["state"])
    assert index.tolist() == [1, 0, 1] and labels["state"].tolist() == ["A", "B"]
    index, labels = group_cells(cells, [])
    assert index.tolist() == [0, 0, 0] and len(labels) == 1


@st.composite
def tables(draw):
    cells = draw(st.integers(1, 30))
    groups = draw(st.integers(1, min(cells, 5)))
    index = np.concatenate([np.arange(groups), draw(arrays(np.int64, cells - groups, elements=st.integers(0, groups - 1)))])
    weights = draw(arrays(np.float64, cells, elements=st.floats(1.0, 1e6)))
    probs = draw(arrays(np.float64, (draw(st.integers(1, 4)), cells), elements=st.floats(0.0, 1.0)))
    return probs, weights, index, groups


@settings(max_examples=60, deadline=None)
@given(tables())
def test_is_a_weighted_mean_bounded_by_cell_probabilities(t):
    probs, weights, index, groups = t
    out = poststratify(probs, weights, index, groups)
    for g in range(groups):
        members = probs[:, index == g]
        assert np.all(out[:, g] >= members.min(axis=1) - 1e-12)
        assert np.all(out[:, g] <= members.max(axis=1) + 1e-12)


@settings(max_examples=60, deadline=None)
@given(tables(), st.randoms(use_true_random=False))
def test_invariant_to_cell_order(t, rnd):
    probs, weights, index, groups = t
    perm = np.arange(len(weights))
    rnd.shuffle(perm)
    np.testing.assert_allclose(
        poststratify(probs, weights, index, groups), poststratify(probs[:, perm], weights[perm], index[perm], groups), rtol=1e-12
    )


@settings(max_examples=60, deadline=None)
@given(tables(), st.floats(0.0, 1.0))
def test_exact_on_constant_probabilities(t, p):
    _, weights, index, groups = t
    out = poststratify(np.full((2, len(weights)), p), weights, index, groups)
    np.testing.assert_allclose(out, p, rtol=1e-12, atol=1e-15)


def _design_and_random_draws(n, seed, formula, chains, draws_per_chain, sd_scale):
    """A synthetic survey's design and random draws of every site, float64, (chain, draw, ...)."""
    from mrp_numpyro.data import load_synthetic
    from mrp_numpyro.design import build_design
    from mrp_numpyro.design.formula import parse_formula

    design = build_design(parse_formula(formula), load_synthetic(n, seed=seed))
    rng = np.random.default_rng(seed + 1)
    shape = (chains, draws_per_chain)
    draws = {"Intercept": rng.normal(size=shape), "beta": rng.normal(size=shape + (len(design.fixed_names),))}
    for name, size in zip(design.group_names, design.group_sizes):
        draws[f"sd_{name}"] = rng.gamma(2.0, sd_scale, size=shape)
        draws[f"z_{name}"] = rng.normal(size=shape + (size,))
    return design, draws


def test_poststratify_draws_matches_a_direct_computation():
    """The chunked, cells-major path equals eta = a + X b + sum_g sd_g z_g[level] computed plainly."""
    from scipy.special import expit

    from mrp_numpyro.poststratification import poststratify_draws

    formula = "abortion ~ (1 | state) + (1 | male:eth) + repvote + factor(region)"
    design, draws = _design_and_random_draws(2000, 4, formula, chains=1, draws_per_chain=7, sd_scale=0.2)
    got = poststratify_draws(draws, design, {"state": ["state"], "national": []}, chunk_size=3)
    post = design.poststrat
    N = post.weights
    states = post.cells["state"].astype(str).to_numpy()
    for d in range(7):
        eta = draws["Intercept"][0, d] + post.X @ draws["beta"][0, d]
        for g, name in enumerate(design.group_names):
            eta = eta + draws[f"sd_{name}"][0, d] * draws[f"z_{name}"][0, d][post.group_index[:, g]]
        p = expit(eta)
        for j, state in enumerate(got["state"].labels["state"]):
            cells = states == state
            assert got["state"].draws[0, d, j] == pytest.approx(np.sum(N[cells] * p[cells]) / N[cells].sum(), rel=1e-12)
        assert got["national"].draws[0, d, 0] == pytest.approx(np.sum(N * p) / N.sum(), rel=1e-12)


def test_float32_draws_are_poststratified_in_float32_to_float64_accuracy():
    """Float32 draws (device.x64=false) give the float64 result to float32 rounding (~1e-6)."""
    from mrp_numpyro.poststratification import poststratify_draws

    formula = "abortion ~ (1 | state) + (1 | eth) + (1 | educ:age) + repvote"
    design, draws = _design_and_random_draws(3000, 2, formula, chains=2, draws_per_chain=50, sd_scale=0.3)
    groupings = {"state": ["state"], "national": []}
    exact = poststratify_draws(draws, design, groupings, chunk_size=16)
    single = poststratify_draws({k: v.astype(np.float32) for k, v in draws.items()}, design, groupings, chunk_size=16)
    # The inputs are rounded to float32 too (relative 6e-8 each); logits of a few units and
    # sums over at most 12,000 cells keep the means' error near 1e-6.
    # A fit's float32 precision, asked for explicitly, holds for draws converted to float64.
    forced = poststratify_draws(draws, design, groupings, chunk_size=16, dtype=np.float32)
    for name in groupings:
        for got in (single, forced):
            np.testing.assert_allclose(got[name].draws, exact[name].draws, rtol=2e-5, atol=1e-6)
            assert not np.array_equal(got[name].draws, exact[name].draws)  # float32 was in use


def test_logistic_in_place_matches_scipy_expit_over_the_range_of_logits():
    from scipy.special import expit

    from mrp_numpyro.poststratification import _expit_inplace

    x = np.linspace(-40, 40, 10_001)
    # 1 + tanh(x/2) cancels for very negative x: the error is absolute, at most a rounding
    # unit (1.1e-16 in float64, 6e-8 in float32), nothing in a weighted mean of probabilities.
    np.testing.assert_allclose(_expit_inplace(x.copy()), expit(x), rtol=1e-12, atol=2.3e-16)
    x32 = x.astype(np.float32)
    got = _expit_inplace(x32.copy())
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expit(x32.astype(np.float64)), rtol=1e-6, atol=1.2e-7)


def test_memory_follows_the_chunk_not_the_number_of_groups():
    """3,000 groups of 12,000 cells: the largest allocation is a chunk's, not a cells x groups matrix.

    Dense, the weights would be 12,000 x 3,000 float64 (288 MB), and the table's design
    matrix 12,000 x 86 (8 MB); the peak traced by tracemalloc (NumPy and SciPy allocate
    through it) must stay within the output (draws x groups), a few chunk-sized (cells x
    chunk) arrays and 4 MB for the rest.
    """
    import dataclasses
    import tracemalloc

    from mrp_numpyro.poststratification import poststratify_draws

    formula = "abortion ~ (1 | state) + (1 | eth) + (1 | educ:age) + repvote"
    design, draws = _design_and_random_draws(2000, 5, formula, chains=1, draws_per_chain=200, sd_scale=0.3)
    post = design.poststrat
    cells = post.cells.assign(county=np.arange(post.n_cells) % 3000)
    design = dataclasses.replace(design, poststrat=dataclasses.replace(post, cells=cells))
    draws = {k: v.astype(np.float32) for k, v in draws.items()}
    peaks = {}
    for chunk in (20, 100):
        tracemalloc.start()
        got = poststratify_draws(draws, design, {"county": ["county"], "national": []}, chunk_size=chunk)
        peaks[chunk] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert got["county"].draws.shape == (1, 200, 3000)
    output = 200 * 3000 * 8
    for chunk, peak in peaks.items():
        assert peak < output + 8 * post.n_cells * chunk * 8 + 4e6, (chunk, peak)
    # The chunk sets the peak (8.6 MB at 20 draws, 20 MB at 100 when measured), well under a
    # tenth of the dense weights alone.
    assert peaks[20] < peaks[100] < 288e6 / 10
