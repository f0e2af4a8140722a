"""The blocked linear predictor: the same design matrix, in fewer gathers."""

import jax
import numpy as np
import pytest

from mrp_numpyro.blocks import block_predictor, cell_blocks, design_matrix
from mrp_numpyro.config import compose_config
from mrp_numpyro.data import load_synthetic
from mrp_numpyro.design import build_design
from mrp_numpyro.formula import parse_formula
from mrp_numpyro.model import cell_logits

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
    D = design_matrix(design)
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
        [draws["Intercept"][:, None], draws["beta"]]
        + [draws[f"z_{g}"] * draws[f"sd_{g}"][:, None] for g in design.group_names],
        axis=1,
    )
    with jax.enable_x64(True):
        eta = jax.vmap(lambda t: block_predictor(t, blocks.rows, blocks.index))(theta)
    np.testing.assert_allclose(np.asarray(eta), _term_by_term(draws, design, design.survey), atol=1e-10)
    # The poststratifier's predictions, blocked over the table's cells, are the same sums.
    for cells in (design.survey, design.poststrat):
        np.testing.assert_allclose(cell_logits(draws, design, cells), _term_by_term(draws, design, cells), atol=1e-10)
