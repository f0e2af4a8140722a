"""A quick mean-field fit whose group standard deviations set up NUTS's coordinates."""

from __future__ import annotations

import logging
import time
from typing import Any

import jax
import numpy as np
import numpyro
from numpyro.infer import SVI, Trace_ELBO, init_to_mean
from numpyro.infer.autoguide import AutoDiagonalNormal

from ..design.layout import SITES
from ..model.base import MRPModel
from .loop import run_to_plateau

log = logging.getLogger(__name__)

__all__ = ["pilot_sd"]


def pilot_sd(
    model: MRPModel,
    rng_key: jax.Array,
    *,
    num_steps: int = 10_000,
    check_every: int = 500,
    plateau_rtol: float = 1e-4,
    step_size: float = 0.01,
) -> dict[str, Any]:
    """Posterior median of every group's standard deviation from a mean-field fit.

    Mean-field intervals are too narrow (BENCHMARKS.md), but its medians of the sds are
    close to NUTS's, which is all :func:`mrp_numpyro.model.centring.centring_weights` needs. The
    fit stops when the chunk-mean ELBO changes by less than ``plateau_rtol``.

    Parameters
    ----------
    model : MRPModel
        Any parameterisation with ``sd_<g>`` sites (non-centred is the natural one).
    rng_key : jax.Array
    num_steps, check_every, plateau_rtol, step_size
        Adam steps at most, per compiled chunk, the plateau criterion and the step size.

    Returns
    -------
    dict of group name to float
        (a categorical outcome's: to an array (K - 1,), each category's sd)
    """
    start = time.perf_counter()
    guide = AutoDiagonalNormal(model.fn, init_loc_fn=init_to_mean, init_scale=0.1)
    svi = SVI(model.fn, guide, numpyro.optim.Adam(step_size), Trace_ELBO())
    state = jax.jit(svi.init)(rng_key, **model.kwargs)
    plateau = run_to_plateau(svi, state, model.kwargs, num_steps=num_steps, check_every=check_every, plateau_rtol=plateau_rtol)
    median = guide.median(svi.get_params(plateau.state))
    categorical = model.design.categorical
    # A categorical outcome's sds are one per category.
    sd = {
        g: np.asarray(median[SITES.sd(g)], np.float64) if categorical else float(median[SITES.sd(g)])
        for g in model.design.group_names
    }
    log.info(
        "pilot mean-field fit: %d steps in %.1f s; group sds %s",
        plateau.steps,
        time.perf_counter() - start,
        {g: np.round(v, 3).tolist() for g, v in sd.items()},
    )
    return sd
