"""Seeded subsampling of respondents."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from .schema import DataError

log = logging.getLogger(__name__)


def check_n(n: float | None) -> int:
    """Return ``n`` as an int, or raise if it is not a positive whole number."""
    if n is None or isinstance(n, bool) or not float(n).is_integer():
        raise DataError(f"the number of respondents n (data.n) must be a whole number, got {n!r}")
    if n <= 0:
        raise DataError(f"the number of respondents n (data.n) must be positive, got {int(n)}")
    return int(n)


def subsample(df: pd.DataFrame, n: int | None, seed: int) -> tuple[pd.DataFrame, str | None]:
    """Draw ``n`` rows without replacement, reproducibly from ``seed``.

    ``n=None`` or ``n`` at or above the number of rows keeps every row and returns a
    note saying so; ``n <= 0`` is an error.
    """
    if n is None:
        return df, None
    n = check_n(n)
    if n >= len(df):
        note = f"n={n} is at or above the {len(df)} available rows; using all rows"
        log.info(note)
        return df, note
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(df), size=n, replace=False))
    return df.iloc[rows].reset_index(drop=True), None
