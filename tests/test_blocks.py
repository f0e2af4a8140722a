"""The blocked linear predictor: the same design matrix, in fewer gathers."""

import jax
import numpy as np
import pytest
from numpyro import handlers
from numpyro.infer.util import log_density

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.data import load_synthetic
from mrp_numpyro.design import build_design
from mrp_numpyro.design.formula import parse_formula
from mrp_numpyro.design.priors import Priors
from mrp_numpyro.model import build_model, cell_logits
from mrp_numpyro.model.blocks import GRID_MAX_RATIO, block_predictor, cell_blocks, likelihood_arrays

# The case study's formula, as conf/model/default.yaml has it.
CCES_FORMULA = compose_config().model.formula


@pytest.fixture(scope="module")
def data():
    return load_synthetic(20_000, seed=3)


@pytest.mark.parametrize(
    "formula",
    [
        CCES_FORMULA,
        # State by ethnicity ties the state block to a demographic column.
        "abortion ~ (1 | state) + (1 | eth) + (1 | state:eth) + male + repvote",
        "abortion ~ male + repvote",
        "abortion ~ (1 | state)",
    ],
)
def test_blocks_rebuild_the_design_matrix(data, formula):
    design = build_design(parse_formula(formula), data)
    blocks = cell_blocks(design)
    D = design.design_matrix()
    np.testing.assert_array_equal(blocks.matrix(), D)
    # Every column of D is in exactly one block.
    cols = np.sort(np.concatenate(blocks.columns))
    np.testing.assert_array_equal(cols, np.arange(D.shape[1]))
    assert blocks.index.shape == (design.survey.n_cells, len(blocks.rows))


def test_cces_formula_splits_into_state_and_demographic_blocks(data):
    design = build_design(parse_formula(CCES_FORMULA), data)
    blocks = cell_blocks(design)
    # State-level terms (state, repvote, region) and the demographic terms (240 combinations
    # of eth, educ, age, male): two gathers over the cells instead of one per term.
    assert sorted(len(r) for r in blocks.rows) == [50, 240]
    assert design.survey.n_cells > 240 * 4


def _term_by_term(draws, design, cells):
    """``eta`` (draws, cells) one term at a time: intercept, predictors, one gather per group."""
    eta = draws["Intercept"][:, None] + draws["beta"] @ cells.X.T
    for g, name in enumerate(design.group_names):
        eta = eta + (draws[f"z_{name}"] * draws[f"sd_{name}"][:, None])[:, cells.group_index[:, g]]
    return eta


def test_block_predictor_equals_the_term_by_term_logits(data):
    design = build_design(parse_formula(CCES_FORMULA), data)
    blocks = cell_blocks(design)
    rng = np.random.default_rng(1)
    draws = {"Intercept": rng.normal(size=3), "beta": rng.normal(size=(3, len(design.fixed_names)))}
    for name, size in zip(design.group_names, design.group_sizes):
        draws[f"sd_{name}"] = rng.uniform(0.1, 1.0, size=3)
        draws[f"z_{name}"] = rng.normal(size=(3, size))
    theta = np.concatenate(
        [draws["Intercept"][:, None], draws["beta"]] + [draws[f"z_{g}"] * draws[f"sd_{g}"][:, None] for g in design.group_names],
        axis=1,
    )
    with jax.enable_x64(True):
        eta = jax.vmap(lambda t: block_predictor(t, blocks.rows, blocks.index))(theta)
    np.testing.assert_allclose(np.asarray(eta), _term_by_term(draws, design, design.survey), atol=1e-10)
    # The poststratifier's predictions, blocked over the table's cells, are the same sums.
    for cells in (design.survey, design.poststrat):
        np.testing.assert_allclose(cell_logits(draws, design, cells), _term_by_term(draws, design, cells), atol=1e-10)


def test_likelihood_arrays_put_every_cell_once_on_the_grid(data):
    design = build_design(parse_formula(CCES_FORMULA), data)
    blocks, s = cell_blocks(design), design.survey
    ratio = np.prod(blocks.grid_shape) / s.n_cells
    grid = likelihood_arrays(blocks, s.trials, s.successes, max_grid_ratio=ratio)
    assert grid["index"] is None and grid["trials"].shape == grid["successes"].shape == blocks.grid_shape
    at_cells = tuple(blocks.index.T)
    np.testing.assert_array_equal(grid["trials"][at_cells], s.trials)
    np.testing.assert_array_equal(grid["successes"][at_cells], s.successes)
    # Every other combination is empty.
    assert grid["trials"].sum() == s.trials.sum() and grid["successes"].sum() == s.successes.sum()
    assert np.count_nonzero(grid["trials"]) == s.n_cells
    # A sparser grid than allowed keeps the survey's cells.
    cells = likelihood_arrays(blocks, s.trials, s.successes, max_grid_ratio=0.99 * ratio)
    assert cells["index"] is blocks.index
    np.testing.assert_array_equal(cells["trials"], s.trials)
    assert (ratio <= GRID_MAX_RATIO) == (likelihood_arrays(blocks, s.trials, s.successes)["index"] is None)


def test_grid_predictor_holds_the_cells_predictor(data):
    design = build_design(parse_formula(CCES_FORMULA), data)
    blocks = cell_blocks(design)
    theta = np.random.default_rng(2).normal(size=design.design_matrix().shape[1])
    with jax.enable_x64(True):
        grid = np.asarray(block_predictor(theta, blocks.rows, None))
        cells = np.asarray(block_predictor(theta, blocks.rows, blocks.index))
    assert grid.shape == blocks.grid_shape
    np.testing.assert_allclose(grid[tuple(blocks.index.T)], cells, atol=1e-12)
    # Every combination is the sum of its blocks' values.
    values = [r @ theta for r in blocks.rows]
    np.testing.assert_allclose(grid, values[0][:, None] + values[1][None, :], atol=1e-12)


@pytest.mark.parametrize("parameterization", ["noncentred", "partial", "identified"])
def test_grid_and_cells_give_the_same_log_density(data, parameterization):
    """Empty combinations have zero trials, which add exactly nothing to the log likelihood."""
    design = build_design(parse_formula(CCES_FORMULA), data)
    sd_guess = {g: 0.4 for g in design.group_names} if parameterization == "partial" else None
    with jax.enable_x64(True):
        grid, cells = (
            build_model(design, Priors(), np.float64, parameterization, sd_guess, max_grid_ratio=r) for r in (np.inf, 0.0)
        )
        assert grid.kwargs["index"] is None and cells.kwargs["index"] is not None
        prior = handlers.trace(handlers.seed(cells.fn, 1)).get_trace(**{**cells.kwargs, "successes": None})
        params = {k: prior[k]["value"] for k in cells.latent_sites}
        lp_grid, _ = log_density(grid.fn, (), dict(grid.kwargs), params)
        lp_cells, _ = log_density(cells.fn, (), dict(cells.kwargs), params)
        assert float(lp_grid) == pytest.approx(float(lp_cells), rel=1e-12)
        # Simulated answers (successes=None) over the grid: none where nobody was asked.
        y = handlers.trace(handlers.seed(grid.fn, 2)).get_trace(**{**grid.kwargs, "successes": None})["y"]["value"]
        assert y.shape == grid.kwargs["trials"].shape
        assert np.all(np.asarray(y)[np.asarray(grid.kwargs["trials"]) == 0] == 0)
        assert np.all(np.asarray(y) <= np.asarray(grid.kwargs["trials"]))
