"""The shared poststratifier: any method's draws -> area estimates.

The core, :func:`poststratify`, is a pure array function: cell probabilities
(draws x cells) and cell counts N give, for each group of cells, the N-weighted mean
probability (draws x groups). :func:`poststratify_draws` feeds it the predictions of
every poststratification cell - occupied by respondents or not - in chunks of draws, so
memory stays bounded, and aggregates to any number of groupings at once (state, national,
eth within state, ...) through sparse weights, so that a grouping's cost follows the cells,
not cells x groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import DTypeLike
from scipy import sparse

from .calibration import Calibration, logit_shifts
from .data.schema import DataError
from .design.cells import Design
from .inference.result import flatten_draws
from .model.blocks import cell_blocks
from .model.predict import cell_logits_by_cell

__all__ = [
    "poststratify",
    "category_shares",
    "group_cells",
    "Poststratified",
    "poststratify_draws",
    "poststratify_calibrated",
    "summarize",
    "QUANTILES",
]

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


def _expit_inplace(x: np.ndarray) -> np.ndarray:
    """The logistic function, overwriting ``x``: ``(1 + tanh(x / 2)) / 2``.

    NumPy's vectorised ``tanh`` is several times faster than ``scipy.special.expit`` on
    large arrays. For very negative ``x`` the sum cancels, so the error is absolute, at most
    one rounding unit, which a weighted mean of probabilities does not notice.
    """
    x *= 0.5
    np.tanh(x, out=x)
    x += 1.0
    x *= 0.5
    return x


def category_shares(eta: np.ndarray, baseline: int) -> np.ndarray:
    """Every category's probability from the K - 1 linear predictors of a categorical outcome (last axis).

    The softmax of the linear predictors with a zero inserted at ``baseline``, shifted by the
    row maximum so that no exponential overflows. Returns an array with a last axis of K.
    """
    full = np.insert(eta, baseline, 0.0, axis=-1)
    full -= full.max(axis=-1, keepdims=True)
    np.exp(full, out=full)
    full /= full.sum(axis=-1, keepdims=True)
    return full


def _weight_matrix(weights: np.ndarray, group_index: np.ndarray, n_groups: int) -> sparse.csr_matrix:
    """(groups x cells) population shares of every cell in its group, sparse: one entry per cell.

    Dense, a county table's (750,000 cells x 3,100 counties) would take 18 GB; sparse, it
    takes 12 bytes a cell whatever the number of groups.
    """
    weights = np.asarray(weights, dtype=np.float64)
    group_index = np.asarray(group_index)
    if weights.ndim != 1 or group_index.shape != weights.shape:
        raise ValueError(f"weights and group_index must be 1-d of equal length, got {weights.shape} and {group_index.shape}")
    if np.any(~np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("cell weights must be finite and non-negative")
    if group_index.size and (group_index.min() < 0 or group_index.max() >= n_groups):
        raise ValueError(f"group_index must lie in [0, {n_groups})")
    totals = np.bincount(group_index, weights=weights, minlength=n_groups)
    if np.any(totals <= 0):
        raise ValueError(f"group(s) {np.flatnonzero(totals <= 0).tolist()} have zero total weight")
    shares = weights / totals[group_index]
    return sparse.csr_matrix((shares, (group_index, np.arange(weights.size))), shape=(n_groups, weights.size))


def poststratify(cell_probs: np.ndarray, weights: np.ndarray, group_index: np.ndarray, n_groups: int) -> np.ndarray:
    """Population-weighted mean of cell probabilities within each group.

    Parameters
    ----------
    cell_probs : array (draws, cells)
        Predicted probability of every poststratification cell, per posterior draw.
    weights : array (cells,)
        Population count N of every cell (non-negative).
    group_index : int array (cells,)
        Group of every cell, in ``[0, n_groups)``.
    n_groups : int

    Returns
    -------
    array (draws, n_groups)
        ``sum_c N_c p_c / sum_c N_c`` over the cells of each group.
    """
    probs = np.asarray(cell_probs, dtype=np.float64)
    return np.asarray(_weight_matrix(weights, group_index, n_groups) @ probs.T).T


def group_cells(cells: pd.DataFrame, columns: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group index of every cell by ``columns`` (all cells in one group when empty), with labels."""
    columns = list(columns)
    missing = [c for c in columns if c not in cells.columns]
    if missing:
        raise DataError(f"poststratification grouping names column(s) {missing} not in the table {list(cells.columns)}")
    if not columns:
        return np.zeros(len(cells), dtype=np.int64), pd.DataFrame(index=pd.RangeIndex(1))
    grouped = cells.groupby(columns, sort=True, observed=True)
    index = grouped.ngroup().to_numpy()
    labels = grouped.size().reset_index()[columns]
    for c in columns:
        if isinstance(cells[c].dtype, pd.CategoricalDtype):
            labels[c] = labels[c].astype(object)
    return index, labels


def summarize(values: np.ndarray, labels: pd.DataFrame) -> pd.DataFrame:
    """Mean, sd and 5/25/50/75/95 % quantiles of each column of ``values`` (draws x groups)."""
    values = np.asarray(values)
    q = np.quantile(values, QUANTILES, axis=0)
    table = labels.reset_index(drop=True).copy()
    table["mean"] = values.mean(axis=0)
    table["sd"] = values.std(axis=0, ddof=1) if values.shape[0] > 1 else np.nan
    for level, row in zip(QUANTILES, q, strict=True):
        table[f"q{int(round(level * 100))}"] = row
    return table


@dataclass(frozen=True)
class Poststratified:
    """Poststratified draws for one grouping.

    Attributes
    ----------
    name : str
    columns : tuple of str
        Grouping columns (empty for the national value).
    labels : pandas.DataFrame
        One row per group with the grouping columns' values.
    draws : array (chain, draw, groups), or (chain, draw, groups, K)
        The poststratified value of every group; for a categorical outcome, the share of
        every category, which sums to one over the last axis in every draw.
    categories : tuple of str
        A categorical outcome's answers (the last axis of ``draws``); empty for a 0/1 outcome.
    category_name : str
        The column that names the category in :meth:`summary` (the outcome's column).
    """

    name: str
    columns: tuple[str, ...]
    labels: pd.DataFrame
    draws: np.ndarray
    categories: tuple[str, ...] = ()
    category_name: str = "category"

    def summary(self) -> pd.DataFrame:
        """Mean, sd and quantiles of every group (:func:`summarize`).

        A categorical outcome's summary is in long form: a row per group and category, the
        category in the column ``category_name``, the categories fastest.
        """
        if not self.categories:
            return summarize(self.draws.reshape(-1, self.draws.shape[-1]), self.labels)
        k = len(self.categories)
        labels = self.labels.loc[self.labels.index.repeat(k)].reset_index(drop=True)
        labels[self.category_name] = list(self.categories) * len(self.labels)
        return summarize(self.draws.reshape(-1, self.draws.shape[-2] * k), labels)


def _groupings(
    design: Design, groupings: Mapping[str, Sequence[str]]
) -> list[tuple[str, tuple[str, ...], pd.DataFrame, sparse.csr_matrix]]:
    post = design.poststrat
    assert post.weights is not None  # the table's cells have population counts
    prepared = []
    for name, cols in groupings.items():
        index, labels = group_cells(post.cells, cols)
        try:
            W = _weight_matrix(post.weights, index, len(labels))
        except ValueError as err:
            raise DataError(f"poststratification grouping {name!r} ({list(cols)}): {err}") from err
        prepared.append((name, tuple(cols), labels, W))
    return prepared


def poststratify_draws(
    draws: Mapping[str, np.ndarray],
    design: Design,
    groupings: Mapping[str, Sequence[str]],
    chunk_size: int = 500,
    dtype: DTypeLike | None = None,
    cell_shares: np.ndarray | None = None,
) -> dict[str, Poststratified]:
    """Predict every poststratification cell for every draw and aggregate to each grouping.

    Parameters
    ----------
    draws : mapping of site name to array (chain, draw, ...)
        Posterior draws from any method (``Fit.draws``).
    design : Design
    groupings : mapping of name to list of column names
        e.g. ``{"state": ["state"], "national": [], "state_eth": ["state", "eth"]}``.
    chunk_size : int
        Draws predicted at once; bounds memory at about ``chunk_size x cells`` floats.
    dtype : numpy float type, optional
        Precision of the cell predictions. By default float64 if any draws are float64,
        else float32. In float32 a group's mean of probabilities carries a relative error
        of about 1e-6, far below any posterior sd, at half the memory traffic.
    cell_shares : array (draws, census cells, levels), optional
        For a formula with a non-census factor (``design.noncensus``): every census cell's
        share of each of its levels in every flat draw, from a model of the factor, paired
        with ``draws`` draw by draw. The extended cell ``(c, level)`` then counts
        ``N_c * share``, so each draw's estimate carries the first model's uncertainty;
        a group is ``sum N_c share p / sum N_c share`` over its extended cells.
    """
    estimates, _ = _poststratify(draws, design, groupings, chunk_size, dtype, None, cell_shares)
    return estimates


def _extended_weights(design: Design, cell_shares: np.ndarray | None, n_draws: int) -> np.ndarray | None:
    """Each draw's share of every extended cell (draws, extended cells), checked; None without a non-census factor."""
    if design.census_cells is None:
        if cell_shares is not None:
            raise ValueError("cell_shares are for a formula with a non-census factor; this design has none")
        return None
    column = design.noncensus
    if cell_shares is None:
        raise DataError(
            f"the formula uses the non-census factor {column!r}, which the poststratification table does not count: "
            f"its cells need P({column} | cell) from a fitted model of it (model.noncensus.{column})"
        )
    if design.categorical:
        raise DataError(f"a categorical outcome with the non-census factor {column!r} is not offered yet")
    n_census = int(design.census_cells[-1]) + 1
    k = len(design.poststrat.cells[column].cat.categories)
    # Kept in their precision (4,000 draws x 12,000 cells x 3 levels is 0.6 GB in float32); checked in float64.
    shares = np.asarray(cell_shares)
    if shares.shape != (n_draws, n_census, k):
        raise DataError(
            f"the shares of {column!r} have shape {shares.shape}; poststratifying {n_draws} draws over the "
            f"{n_census} census cells and {k} levels needs ({n_draws}, {n_census}, {k}), paired draw by draw"
        )
    gap = np.abs(shares.sum(-1, dtype=np.float64) - 1.0)
    if not np.all(np.isfinite(shares)) or shares.min() < 0 or gap.max() > 1e-4:
        d, c = np.unravel_index(np.nanargmax(np.where(np.isfinite(gap), gap, np.inf)), gap.shape)
        raise DataError(
            f"the shares of {column!r} must be non-negative and sum to one in every cell, so that each cell's "
            f"extended counts sum to its count N; draw {d}, cell {c} has {shares[d, c].round(6).tolist()}"
        )
    return shares.reshape(n_draws, n_census * k)


def poststratify_calibrated(
    draws: Mapping[str, np.ndarray],
    design: Design,
    groupings: Mapping[str, Sequence[str]],
    calibration: Calibration,
    chunk_size: int = 500,
) -> tuple[dict[str, Poststratified], Poststratified]:
    """Poststratify every grouping from cells shifted to the known values of some areas.

    Every draw's cell logits in a calibrated area are shifted by one constant
    (:func:`~mrp_numpyro.calibration.logit_shifts`), in float64, so that the area's value
    equals its target; every grouping is then poststratified from the shifted cells.

    Returns
    -------
    estimates : dict of str to Poststratified
    shifts : Poststratified
        The shift of every area of ``calibration.column`` per draw (0 where no target is given).
    """
    if design.census_cells is not None:
        raise DataError(f"{calibration.source}: calibration with the non-census factor {design.noncensus!r} is not offered yet")
    return _poststratify(draws, design, groupings, chunk_size, np.float64, calibration)  # type: ignore[return-value]


def _poststratify(
    draws: Mapping[str, np.ndarray],
    design: Design,
    groupings: Mapping[str, Sequence[str]],
    chunk_size: int,
    dtype: DTypeLike | None,
    calibration: Calibration | None,
    cell_shares: np.ndarray | None = None,
) -> tuple[dict[str, Poststratified], Poststratified | None]:
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if calibration is not None and design.categorical:
        raise DataError(
            f"{calibration.source}: calibration shifts a 0/1 outcome's logits to known area values; "
            f"it is not defined for the categorical outcome ({', '.join(design.outcome_levels)})"
        )
    post = design.poststrat
    assert post.weights is not None
    chains, ndraw = next(iter(draws.values())).shape[:2]
    flat = flatten_draws(draws)
    mix = _extended_weights(design, cell_shares, chains * ndraw)
    prepared = _groupings(design, groupings)
    if dtype is None:
        dtype = np.float64 if any(np.asarray(v).dtype == np.float64 for v in flat.values()) else np.float32
    weights_t = [W.astype(dtype) for *_, W in prepared]  # (groups, cells), sparse
    shares = (len(design.outcome_levels),) if design.categorical else ()
    outputs = [np.empty((chains * ndraw, W.shape[0]) + shares) for *_, W in prepared]
    blocks = cell_blocks(design, cells=post)
    if calibration is not None:
        area_index, area_labels = group_cells(post.cells, [calibration.column])
        known = area_labels[calibration.column].astype(str)
        unknown = sorted(set(calibration.targets) - set(known))
        if unknown:
            raise DataError(
                f"{calibration.source} name(s) {calibration.column} value(s) {unknown} that the poststratification table lacks"
            )
        targets = known.map(calibration.targets).to_numpy(dtype=float)
        shifts = np.empty((chains * ndraw, len(known)))
    for start in range(0, chains * ndraw, chunk_size):
        batch = {k: v[start : start + chunk_size] for k, v in flat.items()}
        logits = cell_logits_by_cell(batch, design, post, blocks, dtype=dtype)  # (cells, draws)
        if design.categorical:
            probs = category_shares(logits, design.baseline)  # (cells, draws, K)
            cells, d, k = probs.shape
            for out, Wt in zip(outputs, weights_t, strict=True):
                sums = np.asarray(Wt @ probs.reshape(cells, d * k)).reshape(-1, d, k)
                out[start : start + chunk_size] = sums.transpose(1, 0, 2)
            continue
        if calibration is not None:
            delta = logit_shifts(logits, post.weights, area_index, targets)
            logits += delta[area_index]
            shifts[start : start + chunk_size] = delta.T
        probs = _expit_inplace(logits)
        if mix is not None:
            # Each draw's counts N_c * share: the weighted sums over the group's normalised by their own total.
            m = np.ascontiguousarray(mix[start : start + chunk_size].T, dtype=probs.dtype)
            probs *= m
            for out, Wt in zip(outputs, weights_t, strict=True):
                out[start : start + chunk_size] = (np.asarray(Wt @ probs) / np.asarray(Wt @ m)).T
            continue
        for out, Wt in zip(outputs, weights_t, strict=True):
            out[start : start + chunk_size] = np.asarray(Wt @ probs).T
    categories = design.outcome_levels if design.categorical else ()
    estimates = {
        name: Poststratified(name, cols, labels, out.reshape((chains, ndraw) + out.shape[1:]), categories, design.spec.response)
        for (name, cols, labels, _), out in zip(prepared, outputs, strict=True)
    }
    if calibration is None:
        return estimates, None
    shift = Poststratified("shift", (calibration.column,), area_labels, shifts.reshape(chains, ndraw, -1))
    return estimates, shift
