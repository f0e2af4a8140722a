"""Stochastic variational inference with any NumPyro guide."""

from __future__ import annotations

import logging
import time
from typing import Callable

import jax
import numpy as np
from numpyro.infer import SVI, Trace_ELBO

from ..model import MRPModel
from .result import Fit, FitError

log = logging.getLogger(__name__)

__all__ = ["fit_svi"]


def _latent(draws: dict, model: MRPModel) -> dict[str, np.ndarray]:
    keep = {"Intercept", "beta"} | {f"{p}_{g}" for g in model.design.group_names for p in ("sd", "z")}
    return {k: np.asarray(v)[None] for k, v in draws.items() if k in keep}


def fit_svi(
    model: MRPModel,
    rng_key: jax.Array,
    *,
    guide: Callable,
    optimizer,
    num_steps: int = 10_000,
    num_particles: int = 1,
    num_draws: int = 4_000,
    progress_bar: bool = False,
) -> Fit:
    """Fit ``model`` by SVI and draw from the fitted guide.

    Parameters
    ----------
    model : MRPModel
    rng_key : jax.Array
    guide : callable
        Guide factory: ``guide(model_fn)`` returns a NumPyro guide (e.g.
        ``functools.partial(AutoNormal, init_scale=0.1)``; configs build it with ``_partial_``).
    optimizer : numpyro.optim optimizer
    num_steps, num_particles : int
        Optimisation steps and Monte Carlo particles of the ELBO gradient.
    num_draws : int
        Posterior draws taken from the fitted guide.
    progress_bar : bool

    Returns
    -------
    Fit
        One chain of ``num_draws`` draws; diagnostics hold the final ELBO with its Monte Carlo
        error and the number of skipped non-finite steps.

    Raises
    ------
    FitError
        When the optimisation ends with non-finite parameters or ELBO.
    """
    if num_steps < 1 or num_draws < 1 or num_particles < 1:
        raise ValueError(f"num_steps, num_draws and num_particles must be positive, got {num_steps}, {num_draws}, {num_particles}")
    g = guide(model.fn)
    svi = SVI(model.fn, g, optimizer, Trace_ELBO(num_particles=num_particles))
    key_fit, key_draw = jax.random.split(rng_key)
    start = time.perf_counter()
    # stable_update keeps the previous state when a step's loss or gradient is not finite,
    # so a rare overflow skips one step instead of poisoning every parameter.
    result = svi.run(key_fit, num_steps, progress_bar=progress_bar, stable_update=True, **model.kwargs)
    params = jax.device_get(result.params)
    losses = np.asarray(result.losses, dtype=np.float64)
    # Flow guides hold nested parameter pytrees, hence the leaf-wise check.
    bad_params = [k for k, v in params.items() if not all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(v))]
    window = losses[-max(1, min(1000, num_steps // 10)):]
    if bad_params or not np.isfinite(window).any():
        raise FitError(
            f"SVI ended with non-finite parameters {bad_params} or ELBO; lower inference.optimizer.step_size, "
            "raise inference.num_particles, or use inference=nuts"
        )
    draws = g.sample_posterior(key_draw, params, sample_shape=(num_draws,), **model.kwargs)
    draws = _latent(jax.device_get(draws), model)
    seconds = time.perf_counter() - start
    nonfinite = int((~np.isfinite(losses)).sum())
    if nonfinite:
        log.warning("SVI skipped %d of %d steps with a non-finite loss", nonfinite, num_steps)
    for name, v in draws.items():
        if not np.all(np.isfinite(v)):
            raise FitError(f"guide draws of {name!r} are not finite; the fitted guide is unusable")
    finite = window[np.isfinite(window)]
    diagnostics = {
        "guide": type(g).__name__,
        "num_steps": int(num_steps),
        "num_particles": int(num_particles),
        "num_draws": int(num_draws),
        # ELBO = -loss. Its error is the naive standard error of the mean over the last
        # window of steps (autocorrelation between steps is ignored, so it is a lower bound).
        "final_elbo": float(-finite.mean()),
        "final_elbo_se": float(finite.std(ddof=1) / np.sqrt(len(finite))) if len(finite) > 1 else float("nan"),
        "elbo_window": int(len(window)),
        "nonfinite_steps": nonfinite,
    }
    return Fit("svi", draws, diagnostics, seconds, {"elbo": -losses})
