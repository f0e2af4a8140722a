"""Checks, after every chunk of SVI steps, that the fit is still numerically sound.

An optimisation can leave the region where its numbers mean anything without any of them
becoming infinite. With the sticking-the-landing estimator and Adam's full-size steps, the
Cholesky factor of a full-rank guide over several hundred coordinates can grow so
ill-conditioned (a condition number of 1e11 and more within 200 steps on the case study's
formula with four state and age interactions, about 900 effects) that its density, which
is evaluated through the inverse of its transform, no longer refers to its own draws: the
ELBO estimates then climb to 1e27, and every step and the PSIS check after them are wasted.
Two checks catch it at the end of the chunk where it happens:

- the median ELBO of the chunk must stay below zero: the log evidence of count data,
  ``log p(y)``, is at most 0, and the ELBO is below it whatever the guide;
- a guide whose density is evaluated through an inverse (full rank, scale-coupled) must
  invert its own draws: ``T^-1(T(u))`` within :data:`INVERSION_TOL` of ``u`` for a few
  standard normal ``u``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.linalg import solve_triangular
from numpyro.infer.autoguide import AutoMultivariateNormal

from .guides import AutoCoupledNormal
from .result import FitError

__all__ = ["INVERSION_TOL", "inversion_error", "check_chunk"]

#: Largest error of ``T^-1(T(u))`` on standard normal draws ``u`` a sound guide makes. In
#: float32 a factor with condition number ``c`` errs by about ``1e-7 * c``; healthy fits
#: measured 1e-6 to 2e-4, a broken one 3e3.
INVERSION_TOL = 1e-2

# Guides whose density at a draw is computed by inverting their transform.
_INVERTED_GUIDES = (AutoMultivariateNormal, AutoCoupledNormal)


def _round_trip(posterior: dist.Distribution, u: jax.Array) -> jax.Array:
    """``T^-1(T(u))`` for the affine (and coupling) transforms of a standard normal ``u``."""
    if isinstance(posterior, dist.TransformedDistribution):
        z = u
        for t in posterior.transforms:
            z = t(z)
        for t in reversed(posterior.transforms):
            z = t.inv(z)
        return z
    if isinstance(posterior, dist.MultivariateNormal):
        L = posterior.scale_tril
        z = posterior.loc + u @ L.T
        return solve_triangular(L, (z - posterior.loc).T, lower=True).T
    return u


def inversion_error(guide: Any, params: Mapping[str, Any], rng_key: jax.Array, num_draws: int = 16) -> float | None:
    """Largest ``|T^-1(T(u)) - u|`` over ``num_draws`` standard normal ``u``; None for guides not evaluated by inversion.

    Parameters
    ----------
    guide : AutoContinuous
        A fitted guide (set up by its first call).
    params : mapping
        Its constrained parameters (``svi.get_params(state)``).
    rng_key : jax.Array
    num_draws : int
    """
    if not isinstance(guide, _INVERTED_GUIDES):
        return None
    posterior = guide.get_posterior(params)
    u = jax.random.normal(rng_key, (num_draws, guide.latent_dim))
    return float(jnp.max(jnp.abs(_round_trip(posterior, u) - u)))


def check_chunk(guide: Any, params: Mapping[str, Any], chunk_losses: np.ndarray, steps: int, rng_key: jax.Array) -> None:
    """Raise :class:`~mrp_numpyro.inference.result.FitError` if the last chunk left the fit numerically unsound.

    Parameters
    ----------
    guide : AutoContinuous or any guide
    params : mapping
        The guide's constrained parameters after the chunk.
    chunk_losses : array
        The loss (negative ELBO) of every step of the chunk.
    steps : int
        Steps run so far, for the message.
    rng_key : jax.Array
        For the draws of the inversion check.
    """
    finite = chunk_losses[np.isfinite(chunk_losses)]
    elbo = -float(np.median(finite)) if len(finite) else float("nan")
    advice = "lower the optimiser's step size (the steps, not the problem, broke the guide), or sample with NUTS"
    if elbo > 0:
        raise FitError(
            f"SVI stopped after {steps} steps: the median ELBO of the last chunk is {elbo:.3g}, above 0, which the "
            f"log evidence of count data never is, so the guide's density has broken down numerically; {advice}"
        )
    error = inversion_error(guide, params, rng_key)
    if error is not None and not error <= INVERSION_TOL:
        raise FitError(
            f"SVI stopped after {steps} steps: the guide's transform, inverted, misses its own draws by up to "
            f"{error:.3g} (more than {INVERSION_TOL}), so its scale factor has grown too ill-conditioned for its density "
            f"to be evaluated and the ELBO estimates mean nothing from here; {advice}"
        )
