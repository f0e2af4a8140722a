"""The prior of the identified directions ``phi = R' theta'``, ``theta' ~ Normal(m0, S S')``.

``Cov(phi) = A = R' S S' R`` changes with the sds on every step of a fit, so its factor is
recomputed each time. Two factorisations give its density, and the cheaper one is used:

- **through the rows**: the QR factor ``U`` of ``S' R`` (``P' x r``) is a Cholesky factor of
  ``A`` computed without squaring its condition number; cost ``P' r^2``.
- **through the null space**: with ``[R N]`` orthogonal, ``A^-1`` is the Schur complement of
  the null block of ``S^-T S^-1`` written in that basis. For ``u = S^-1 R (phi - R' m0)`` and
  ``M = S^-1 N``::

      (phi - R' m0)' A^-1 (phi - R' m0) = |u - Q Q' u|^2
      log det A = 2 log det S + 2 log |det U_M|

  with ``M = Q U_M`` its QR factorisation: the residual of projecting ``u`` on ``M``'s columns,
  read off the triangular factor of ``[M u]`` without forming ``Q``. Cost ``P' n^2`` for
  ``n`` null directions.

On the case study (``P' = 129``, ``r = 98``, ``n = 31``) and the deep-interaction model
(``P' = 903``, ``r = 700``, ``n = 203``) the null space is the smaller: the log density and
its gradient cost a quarter (case study) and a fifth (deep) of the rows' (BENCHMARKS.md,
``experiments/gradient_cost.py``).

``S`` is ``diag(std)`` with each AR(1) block ``sd L(rho)``
(:mod:`mrp_numpyro.model.prior_coordinates`); ``L^-1`` is the AR(1) innovation map
``e_0 = x_0``, ``e_t = (x_t - rho x_{t-1}) / sqrt(1 - rho^2)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from numpyro.distributions import constraints

from .prior_coordinates import prior_factor

__all__ = ["ProjectedNormal", "cheaper_route"]


def cheaper_route(rank: int, nullity: int) -> str:
    """The factorisation of :class:`ProjectedNormal` with the smaller QR: ``"nullspace"`` when ``nullity < rank``."""
    return "nullspace" if nullity < rank else "rows"


def whiten(std: jax.Array, x: jax.Array, ar1: tuple[tuple[str, int, int], ...], rhos: Mapping[str, jax.Array]) -> jax.Array:
    """``S^-1 x`` for ``x`` (P',) or (P', k), ``S`` as in the module docstring."""
    out = x / (std if x.ndim == 1 else std[:, None])
    for name, start, stop in ar1:
        rho = rhos[name]
        block = out[start:stop]
        out = out.at[start + 1 : stop].set((block[1:] - rho * block[:-1]) / jnp.sqrt(1.0 - rho**2))
    return out


def log_det_factor(std: jax.Array, ar1: tuple[tuple[str, int, int], ...], rhos: Mapping[str, jax.Array]) -> jax.Array:
    """``log det S``: the log sds, and ``(size - 1) log sqrt(1 - rho^2)`` for each AR(1) block's ``L``."""
    out = jnp.sum(jnp.log(std))
    for name, start, stop in ar1:
        out = out + 0.5 * (stop - start - 1) * jnp.log1p(-(rhos[name] ** 2))
    return out


class ProjectedNormal(dist.Distribution):
    """``phi = R' theta'`` for ``theta' ~ Normal(m0, S S')``: ``Normal(R' m0, R' S S' R)`` (the module docstring).

    Parameters
    ----------
    loc : array (r,)
        ``R' m0``.
    R, N : arrays (P', r), (P', n)
        Orthonormal bases of the identified and the null directions.
    std : array (P',)
        ``S``'s diagonal (an AR(1) block's sd).
    ar1 : tuple of (str, int, int)
        The AR(1) blocks of ``theta'``, whose correlation ``rhos[name]`` enters ``S``.
    rhos : mapping of str to array
    route : {"nullspace", "rows"}
        The factorisation that :meth:`log_prob` uses (:func:`cheaper_route`); both give the
        same density. Draws always go through the rows' factor.
    """

    arg_constraints: dict[str, Any] = {}
    support = constraints.real_vector

    def __init__(
        self,
        loc: jax.Array,
        R: jax.Array,
        N: jax.Array,
        std: jax.Array,
        ar1: tuple[tuple[str, int, int], ...] = (),
        rhos: Mapping[str, jax.Array] | None = None,
        *,
        route: str = "nullspace",
    ) -> None:
        if route not in ("nullspace", "rows"):
            raise ValueError(f"route must be 'nullspace' or 'rows', got {route!r}")
        self.loc, self.R, self.N, self.std = loc, R, N, std
        self.ar1, self.rhos, self.route = ar1, dict(rhos or {}), route
        super().__init__(batch_shape=(), event_shape=(R.shape[1],))

    def scale_tril(self) -> jax.Array:
        """A lower Cholesky factor of ``R' S S' R`` (the transposed QR factor of ``S' R``)."""
        upper = jnp.linalg.qr(prior_factor(self.std, self.R, self.ar1, self.rhos), mode="r")
        sign = jnp.where(jnp.diagonal(upper) < 0, -1.0, 1.0)
        return (sign[:, None] * upper).T

    def sample(self, key: jax.Array, sample_shape: tuple[int, ...] = ()) -> jax.Array:
        """Draws ``loc + L e`` with ``L`` from :meth:`scale_tril`."""
        eps = jax.random.normal(key, sample_shape + self.event_shape, self.loc.dtype)
        return self.loc + eps @ self.scale_tril().T

    def log_prob(self, value: jax.Array) -> jax.Array:
        """The log density at ``value`` (..., r), by the factorisation ``route``."""
        if self.route == "rows":
            return dist.MultivariateNormal(self.loc, scale_tril=self.scale_tril()).log_prob(value)
        r = self.event_shape[0]
        # u = S^-1 R (phi - loc) for every draw: rows of value become columns of x.
        x = jnp.reshape(value - self.loc, (-1, r)).T
        u = whiten(self.std, self.R @ x, self.ar1, self.rhos)
        log_det = log_det_factor(self.std, self.ar1, self.rhos)
        n = self.N.shape[1]
        if n:
            # One triangular factor of [M u]: its first n diagonal entries are M's, and the
            # column norms of its lower right block are the residuals |u - Q Q' u|, so Q is
            # never formed (half the cost of a QR that returns it).
            upper = jnp.linalg.qr(jnp.concatenate([whiten(self.std, self.N, self.ar1, self.rhos), u], axis=1), mode="r")
            log_det = log_det + jnp.sum(jnp.log(jnp.abs(jnp.diagonal(upper)[:n])))
            u = upper[n:, n:]
        quad = jnp.sum(u**2, axis=0)
        out = -0.5 * r * np.log(2 * np.pi) - log_det - 0.5 * quad
        return jnp.reshape(out, jnp.shape(value)[:-1])
