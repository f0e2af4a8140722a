"""The survey cells' linear predictor as a sum over a few small blocks of terms.

Write every regression effect of the model as one vector ``theta = (Intercept, beta, a_1,
..., a_G)`` (``a_g`` the varying intercepts of group ``g``); the linear predictor of the
survey cells is ``eta = D @ theta``, with ``D`` (:meth:`mrp_numpyro.design.cells.Design.design_matrix`,
in the order of :class:`mrp_numpyro.design.layout.ParameterLayout`) holding a column of ones, the
predictors and the one-hot levels of every group. Evaluated term by term, that is
one gather over all cells per group (and one scatter-add per group in the gradient): with
the 2018 CCES formula, seven of each over 6,603 cells, plus a cells x predictors product.

The terms fall into blocks whose values repeat across cells: the state intercept, the
state-level predictors and the region take 50 combinations of values, all demographic terms
together 240. Grouping the columns of ``D`` into such blocks,

    eta[c] = sum_b (E_b @ theta)[index[c, b]],

where ``E_b`` holds the distinct rows of block ``b``'s columns, costs one small product and one
gather over the cells per block: two instead of eight on the CCES, about half the time of a
gradient. The blocks are found from the data (:func:`cell_blocks`), so any formula gets them;
a formula whose terms do not factor gets one block, which is ``D`` itself.

Where the survey fills much of the grid of all combinations of the blocks' rows (6,603 of
the 50 x 240 = 12,000 on the full CCES), the likelihood is cheaper still over the whole
grid: ``eta`` is then an outer sum of the blocks' values, with no gather in the predictor
and no scatter-add in its gradient, and the empty combinations enter with zero trials,
which add exactly nothing to a binomial log likelihood (:func:`likelihood_arrays`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from ..design.cells import CellArrays, Design

__all__ = ["CellBlocks", "cell_blocks", "block_predictor", "likelihood_arrays", "GRID_MAX_RATIO"]

# The grid is used while it has at most this many combinations per survey cell. One
# log-density gradient of the CCES model with a chain on each of 2 Intel cores
# (experiments/profile_fit.py, BENCHMARKS.md): over the full CCES's grid of 12,000 (1.8
# per cell) about 0.72 of the time over its 6,603 cells; at n = 10,000, a grid of 11,700
# over 3,444 cells (3.4 per cell), about 1.25 times. They break even near 2.5.
GRID_MAX_RATIO = 2.0


@dataclass(frozen=True)
class CellBlocks:
    """``D`` as a sum of blocks: ``D[c] = sum_b rows[b][index[c, b]]``.

    Attributes
    ----------
    rows : tuple of arrays (combinations_b, P)
        The distinct rows of each block's columns of ``D``, the other columns zero.
    index : int array (cells, blocks)
        Each cell's row in every block.
    columns : tuple of int arrays
        The columns of ``D`` in each block.
    """

    rows: tuple[np.ndarray, ...]
    index: np.ndarray
    columns: tuple[np.ndarray, ...]

    def matrix(self) -> np.ndarray:
        """``D`` rebuilt from the blocks (for checks)."""
        return sum(r[self.index[:, b]] for b, r in enumerate(self.rows))

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """Number of rows of every block: the shape of the grid of their combinations."""
        return tuple(len(r) for r in self.rows)

    def grid_position(self) -> np.ndarray:
        """Each cell's position in the grid of combinations, flattened (C order)."""
        return np.ravel_multi_index(tuple(self.index.T), self.grid_shape)


def _combinations(a: np.ndarray, b: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """Distinct combinations of two code vectors (cells,): their number and each cell's.

    Codes are consecutive from 0, so ``a * (max(b) + 1) + b`` numbers the pairs without
    collisions and a one-dimensional ``unique`` suffices.
    """
    key = a if b is None else a * (int(b.max()) + 1) + b
    _, inverse = np.unique(key, return_inverse=True)
    inverse = inverse.ravel()
    return int(inverse.max()) + 1, inverse


def _value_codes(values: np.ndarray) -> np.ndarray:
    """Consecutive codes of the distinct values of a column."""
    return np.unique(values, return_inverse=True)[1].ravel().astype(np.int64)


def cell_blocks(design: Design, max_fraction: float = 0.25, cells: CellArrays | None = None) -> CellBlocks:
    """Group the design's terms into blocks with few distinct combinations of values.

    Every term (the intercept, each predictor column, each varying intercept) starts as its
    own block, coded by its distinct values over the cells. The two blocks whose merged
    codes have the fewest distinct combinations relative to the larger of the two are
    merged, again and again, while that number stays at most ``max_fraction`` of the cells:
    a merged block replaces two gathers over all cells by one, at the price of a product
    over its combinations.

    Parameters
    ----------
    design : Design
    max_fraction : float
        Largest number of combinations of a merged block, as a fraction of the cells.
    cells : CellArrays, optional
        The cells to factor; the survey's by default (the poststratification table's for
        predictions).

    Returns
    -------
    CellBlocks
    """
    s = design.survey if cells is None else cells
    p = s.X.shape[1]
    n_cells = s.n_cells
    # Codes over the cells of every term of the layout: the intercept (one value), each
    # predictor (its distinct values), each group (its levels).
    codes = [np.zeros(n_cells, np.int64)]
    codes += [_value_codes(s.X[:, j]) for j in range(p)]
    for g in range(len(design.group_sizes)):
        level = s.group_index[:, g].astype(np.int64)
        # A varying slope's column holds the cell's value at its level: code the pairs.
        codes.append(level if s.group_value is None else _combinations(level, _value_codes(s.group_value[:, g]))[1])
    terms: list[tuple[list[int], np.ndarray]] = list(zip(design.layout.term_columns(), codes, strict=True))
    # (columns of D, combination of each cell, number of combinations) of every block.
    blocks = [(cols, inverse, count) for cols, codes in terms for count, inverse in [_combinations(codes)]]
    limit = max(1, int(max_fraction * n_cells))
    while len(blocks) > 1:
        best: tuple[tuple[float, int], int, int, np.ndarray] | None = None
        for i in range(len(blocks)):
            for k in range(i + 1, len(blocks)):
                count, inverse = _combinations(blocks[i][1], blocks[k][1])
                # Nested terms first (a state-level predictor within state: no more
                # combinations than the larger block), then the smallest growth.
                growth = count / max(blocks[i][2], blocks[k][2])
                if best is None or (growth, count) < best[0]:
                    best = ((growth, count), i, k, inverse)
        assert best is not None  # two blocks or more: one pair at least
        (_, count), i, k, inverse = best
        if count > limit:
            break
        merged = (blocks[i][0] + blocks[k][0], inverse, count)
        blocks = [b for m, b in enumerate(blocks) if m not in (i, k)] + [merged]
    rows, index, columns = [], [], []
    for cols, inverse, count in blocks:
        first = np.zeros(count, np.int64)
        # The first cell of each combination stands for all of them (their rows are equal).
        first[inverse[::-1]] = np.arange(n_cells)[::-1]
        block_cols = np.asarray(sorted(cols))
        # Only these rows of the design matrix are built: combinations x parameters, where
        # the whole of it (cells x parameters) would be 20 GB for a county table.
        E = np.zeros((count, design.layout.size))
        value = None if s.group_value is None else s.group_value[first]
        E[:, block_cols] = design.layout.design_matrix(s.X[first], s.group_index[first], value)[:, block_cols]
        rows.append(E)
        index.append(inverse)
        columns.append(block_cols)
    return CellBlocks(tuple(rows), np.stack(index, axis=1).astype(np.int32), tuple(columns))


def likelihood_arrays(
    blocks: CellBlocks, trials: np.ndarray, successes: np.ndarray, max_grid_ratio: float = GRID_MAX_RATIO
) -> dict:
    """The cells the likelihood runs over: the survey's, or the whole grid of the blocks' combinations.

    Parameters
    ----------
    blocks : CellBlocks
        The survey cells' blocks.
    trials : array (cells,)
        Respondents per survey cell.
    successes : array (cells,), or (cells, K)
        "1" answers per survey cell, or the count of each of a categorical outcome's answers.
    max_grid_ratio : float
        Use the grid while it has at most this many combinations per survey cell.

    Returns
    -------
    dict
        ``index``, ``trials`` and ``successes`` for :func:`block_predictor` and the binomial
        likelihood. Over the grid, ``index`` is ``None`` and the counts are arrays of shape
        ``blocks.grid_shape``, zero where no respondent is; otherwise ``index`` is
        ``blocks.index`` and the counts are the survey's.
    """
    trials, successes = np.asarray(trials), np.asarray(successes)
    n_cells = blocks.index.shape[0]
    size = math.prod(blocks.grid_shape)
    if size <= max_grid_ratio * n_cells:
        position = blocks.grid_position()
        # Distinct cells are distinct combinations (the blocks partition D's columns); the
        # check keeps a cell from being overwritten should that ever not hold.
        if len(np.unique(position)) == n_cells:
            grid_trials = np.zeros(size, trials.dtype)
            grid_successes = np.zeros((size,) + successes.shape[1:], successes.dtype)
            grid_trials[position], grid_successes[position] = trials, successes
            shape = blocks.grid_shape
            return {
                "index": None,
                "trials": grid_trials.reshape(shape),
                "successes": grid_successes.reshape(shape + successes.shape[1:]),
            }
    return {"index": blocks.index, "trials": trials, "successes": successes}


def block_predictor(theta: jax.Array, rows: Sequence[jax.Array], index: jax.Array | None) -> jax.Array | float:
    """``eta = D @ theta`` of every survey cell, evaluated block by block.

    Parameters
    ----------
    theta : array (P,), or (L, P) for L linear predictors
        The effects; or coordinates ``phi`` in a basis ``R`` when ``rows`` are
        ``CellBlocks.rows`` times ``R`` (the identified model). A categorical outcome has a
        row of effects per non-baseline category.
    rows : tuple of arrays (combinations_b, P)
    index : int array (cells, blocks), or None
        Each cell's row in every block; ``None`` evaluates every combination of the blocks'
        rows (the grid of :func:`likelihood_arrays`).

    Returns
    -------
    array (cells,), or (combinations_0, ..., combinations_B) over the grid; with ``L``
    linear predictors, a last axis of length ``L``
    """
    eta: jax.Array | float
    # (combinations_b, L...): the block's values of every linear predictor.
    values = [E @ theta if theta.ndim == 1 else E @ theta.T for E in rows]
    if index is None:
        eta = 0.0
        for b, v in enumerate(values):
            shape = [1] * len(rows)
            shape[b] = v.shape[0]
            eta = eta + jnp.reshape(v, shape + list(v.shape[1:]))
        return eta
    eta = 0.0
    for b, v in enumerate(values):
        eta = eta + jnp.take(v, index[:, b], axis=0)
    return eta
