"""Survey rows into cells, and a census table into the cells of a factor it does not count.

:func:`aggregate_cells` collapses respondents with identical predictors into one cell with
their counts (binomial, or multinomial for a categorical outcome): the likelihood depends on
a respondent only through the cell. :func:`extend_table` repeats every cell of a
poststratification table for every level of a non-census factor (party ID), the table a
model with that factor is poststratified over.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["aggregate_cells", "extend_table"]


def aggregate_cells(
    codes: np.ndarray, sizes: tuple[int, ...], y: np.ndarray, n: np.ndarray | None = None, n_categories: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Collapse respondents with identical predictor codes into binomial (or multinomial) cells.

    Parameters
    ----------
    codes : int array (rows, k)
        Level code of each predictor column.
    sizes : tuple of int
        Number of levels of each column.
    y : array (rows,)
        0/1 outcomes, or successes of pre-aggregated rows; with ``n_categories``, each
        respondent's category code in ``[0, n_categories)``.
    n : int array (rows,), optional
        Respondents of each pre-aggregated row; one each by default.
    n_categories : int, optional
        A categorical outcome's number of categories: ``successes`` is then the count of
        every category in every cell, (cells, n_categories).

    Returns
    -------
    cell_codes : int array (cells, k)
    trials : int array (cells,)
    successes : int array (cells,), or (cells, n_categories)
    """
    radix = np.cumprod((1,) + tuple(sizes[::-1][:-1]))[::-1]
    if np.prod(np.asarray(sizes, dtype=float)) < 2.0**62:
        key = codes @ radix
        unique_keys, inverse = np.unique(key, return_inverse=True)
        cell_codes = (unique_keys[:, None] // radix[None, :]) % np.asarray(sizes)[None, :]
    else:  # too many combinations for one int64 key
        cell_codes, inverse = np.unique(codes, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    if n is None:
        trials = np.bincount(inverse, minlength=len(cell_codes))
    else:
        trials = np.bincount(inverse, weights=n, minlength=len(cell_codes)).astype(np.int64)
    if n_categories is not None:
        if n is not None:
            raise ValueError("a categorical outcome is aggregated from one row per respondent (n must be None)")
        y = np.asarray(y, np.int64)
        flat = np.bincount(inverse * n_categories + y, minlength=len(cell_codes) * n_categories)
        return cell_codes.astype(np.int64), trials, flat.reshape(len(cell_codes), n_categories).astype(np.int64)
    successes = np.bincount(inverse, weights=y, minlength=len(cell_codes)).astype(np.int64)
    return cell_codes.astype(np.int64), trials, successes


def extend_table(table: pd.DataFrame, column: str, levels: tuple) -> tuple[pd.DataFrame, np.ndarray]:
    """The table with every cell repeated for every level of a non-census factor, the levels fastest.

    The counts are the census cell's, unchanged: the poststratifier multiplies them by each
    draw's ``P(level | cell)`` (:func:`mrp_numpyro.poststratification.poststratify_draws`).

    Returns
    -------
    extended : pandas.DataFrame
        ``len(table) * len(levels)`` rows, with ``column`` a categorical of ``levels``.
    census_cells : int array
        The row of ``table`` of every extended cell.
    """
    k = len(levels)
    census_cells = np.repeat(np.arange(len(table)), k)
    extended = table.iloc[census_cells].reset_index(drop=True)
    extended[column] = pd.Categorical.from_codes(np.tile(np.arange(k), len(table)), categories=list(levels))
    return extended, census_cells
