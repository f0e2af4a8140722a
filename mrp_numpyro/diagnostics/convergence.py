"""Convergence of MCMC chains: split R-hat and bulk and tail ESS (ArviZ) over every parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import arviz as az
import numpy as np

if TYPE_CHECKING:
    import xarray as xr

__all__ = ["convergence_summary"]


def convergence_summary(draws: dict[str, np.ndarray]) -> dict[str, float]:
    """Worst split R-hat and smallest bulk and tail ESS over every scalar of every parameter.

    A scalar that is the same in every draw (the unit diagonal of a correlation matrix) has
    neither, and is left out; any other NaN is kept, so it shows.
    """
    idata = az.from_dict(posterior=draws)
    with np.errstate(invalid="ignore", divide="ignore"):  # the constant scalars, left out below
        rhat = az.rhat(idata)
        bulk = az.ess(idata, method="bulk")
        tail = az.ess(idata, method="tail")
    varying = {k: np.ptp(np.asarray(v).reshape(-1, *np.shape(v)[2:]), axis=0) > 0 for k, v in draws.items()}

    def worst(ds: xr.Dataset, fn: Callable[..., Any]) -> float:
        return float(fn([fn(ds[v].values[varying[str(v)]]) for v in ds.data_vars if np.any(varying[str(v)])]))

    return {"max_rhat": worst(rhat, np.max), "min_ess_bulk": worst(bulk, np.min), "min_ess_tail": worst(tail, np.min)}
