"""Calibration of cell predictions to known area totals: the logit shift.

Given an area's known value (an election result, a registration count), every posterior
draw's cell logits in that area are shifted by one constant, chosen so that the area's
poststratified value equals the known one (Ghitza and Gelman, 2013; ccesMRPrun's
``calib_oneway``). The shift keeps the model's ordering of cells within the area and moves
the area as a whole; estimates for any other grouping (eth within state, the nation) are
then poststratified from the shifted cells.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

from .data.schema import DataError

__all__ = ["Calibration", "logit_shifts", "read_targets"]


@dataclass(frozen=True)
class Calibration:
    """Known values of some areas.

    Attributes
    ----------
    column : str
        The area column of the poststratification table (``state``).
    targets : mapping of str to float
        Known value of each calibrated area, in (0, 1); areas not listed are not shifted.
    source : str
        Where the targets came from, for messages (the file).
    """

    column: str
    targets: Mapping[str, float]
    source: str = "calibration targets"

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.targets.items() if not (np.isfinite(v) and 0.0 < v < 1.0)}
        if bad:
            raise DataError(f"{self.source}: calibration targets must lie strictly between 0 and 1; got {bad}")


def read_targets(path: str, column: str, value: str = "target") -> Calibration:
    """Read calibration targets from a CSV with the area ``column`` and a ``value`` column."""
    try:
        table = pd.read_csv(path, dtype={column: str})
    except FileNotFoundError as err:
        raise DataError(f"calibration file {path!r} was not found") from err
    missing = [c for c in (column, value) if c not in table.columns]
    if missing:
        raise DataError(f"calibration file {path!r} is missing column(s) {missing}; it has {list(table.columns)}")
    dup = table[column].duplicated(keep=False)
    if dup.any():
        raise DataError(f"calibration file {path!r} lists {column} more than once: {sorted(set(table.loc[dup, column]))}")
    values = pd.to_numeric(table[value], errors="coerce")
    if values.isna().any():
        bad = table.loc[values.isna(), value].head(5).tolist()
        raise DataError(f"calibration file {path!r} column {value!r} must be numeric; got {bad}")
    targets = dict(zip(table[column].astype(str), values.astype(float), strict=True))
    return Calibration(column, targets, source=f"calibration file {path!r} column {value!r}")


def logit_shifts(
    logits: np.ndarray, weights: np.ndarray, area_index: np.ndarray, targets: np.ndarray, tol: float = 1e-12
) -> np.ndarray:
    """The shift of every area and draw that makes its poststratified value its target.

    Solves ``sum_c w_c expit(eta_cd + delta_ad) / sum_c w_c = t_a`` for ``delta`` by Newton's
    method safeguarded by bisection: the left side increases in ``delta`` from 0 to 1, so
    the root exists and is unique for every target in (0, 1).

    Parameters
    ----------
    logits : array (cells, draws)
    weights : array (cells,)
        Population counts.
    area_index : int array (cells,)
        Area of every cell in ``[0, len(targets))``.
    targets : array (areas,)
        Target of each area; NaN leaves the area unshifted.
    tol : float
        Largest error of an area's value accepted.

    Returns
    -------
    array (areas, draws), float64
    """
    logits = np.asarray(logits, dtype=np.float64)
    n_areas, n_draws = len(targets), logits.shape[1]
    totals = np.bincount(area_index, weights=weights, minlength=n_areas)
    if np.any(totals <= 0):
        raise DataError(f"calibrated area(s) {np.flatnonzero(totals <= 0).tolist()} have no population")
    # Sparse (cells x areas): one non-zero per cell, so thousands of areas cost no more than fifty.
    n_cells = logits.shape[0]
    W = sparse.csr_matrix((weights / totals[area_index], (np.arange(n_cells), area_index)), shape=(n_cells, n_areas)).T.tocsr()
    active = np.isfinite(targets)
    t = np.where(active, targets, 0.5)[:, None]
    # Every cell's logit lies within [min, max]; a shift beyond that range by logit(t) +- 40
    # puts the area's value on the far side of the target, so the root is bracketed.
    lo = np.full((n_areas, n_draws), -np.abs(logits).max() - 40.0)
    hi = -lo
    delta = np.log(t / (1.0 - t)) - (W @ logits)
    delta = np.broadcast_to(delta, (n_areas, n_draws)).copy()
    for _ in range(200):
        p = expit(logits + delta[area_index])
        f = W @ p - t
        if np.all(np.abs(f[active]) <= tol):
            break
        lo = np.where(f < 0, delta, lo)
        hi = np.where(f > 0, delta, hi)
        slope = W @ (p * (1.0 - p))
        with np.errstate(divide="ignore", invalid="ignore"):
            step = delta - f / slope
        inside = np.isfinite(step) & (step > lo) & (step < hi)
        delta = np.where(inside, step, 0.5 * (lo + hi))
    else:  # pragma: no cover - bisection halves the bracket every step
        raise RuntimeError("calibration did not converge in 200 iterations")
    return np.where(active[:, None], delta, 0.0)
