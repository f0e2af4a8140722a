"""Guides written for hierarchical models, beside numpyro's autoguides.

:class:`AutoCoupledNormal` is a full-rank normal whose spread in every direction may grow
or shrink with the model's scale parameters. In a hierarchical model the effects of a group
spread more when the group's standard deviation is large: the funnel. A Gaussian can only
tilt its ellipse; this guide also lets each effect's scale follow ``exp(gamma @ (log sd -
centre))``, a triangular (autoregressive) transform with a closed-form inverse and Jacobian,
so the guide's density can be evaluated at any draw (needed by the sticking-the-landing
estimator and by PSIS).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions import constraints
from numpyro.distributions.transforms import LowerCholeskyAffine, Transform, biject_to
from numpyro.infer import init_to_uniform
from numpyro.infer.autoguide import AutoContinuous

__all__ = ["AutoCoupledNormal", "ScaleCoupling", "square_scaled_unit_lower_cholesky"]


class _SquareScaledUnitLowerCholesky(type(constraints.scaled_unit_lower_cholesky)):  # type: ignore[misc]
    """numpyro's ``scaled_unit_lower_cholesky``, unconstrained as a square matrix instead of a vector."""


#: A lower Cholesky factor ``diag(softplus(x_ii)) (I + tril(x, -1))`` of a square
#: unconstrained ``x``: the parameters and their Adam updates are numpyro's
#: ``scaled_unit_lower_cholesky``'s, but the map is a mask, not a scatter from a vector of
#: ``d (d + 1) / 2`` entries (250,000 on the deep-interaction model).
square_scaled_unit_lower_cholesky = _SquareScaledUnitLowerCholesky()


class SquareScaledUnitLowerCholeskyTransform(Transform):
    """The map of :data:`square_scaled_unit_lower_cholesky`; its upper triangle is unused (zero gradient)."""

    domain = constraints.independent(constraints.real, 2)
    codomain = square_scaled_unit_lower_cholesky

    def __call__(self, x: jax.Array) -> jax.Array:
        """``diag(softplus(x_ii)) (I + tril(x, -1))``."""
        eye = jnp.eye(x.shape[-1], dtype=x.dtype)
        return (jnp.tril(x, -1) + eye) * jax.nn.softplus(jnp.diagonal(x, axis1=-2, axis2=-1))[..., None]

    def _inverse(self, y: jax.Array) -> jax.Array:
        diag = jnp.diagonal(y, axis1=-2, axis2=-1)
        eye = jnp.eye(y.shape[-1], dtype=y.dtype)
        return jnp.tril(y / diag[..., None], -1) + eye * (diag + jnp.log(-jnp.expm1(-diag)))[..., None]  # softplus^-1

    def log_abs_det_jacobian(self, x: jax.Array, y: jax.Array, intermediates: Any = None) -> jax.Array:
        """Not a bijection of the whole square (the upper triangle is ignored): only for parameters."""
        raise NotImplementedError("the square lower-Cholesky map has no Jacobian; it constrains parameters only")


@biject_to.register(_SquareScaledUnitLowerCholesky)
def _square_scaled_unit_lower_cholesky(constraint: Any) -> Transform:
    return SquareScaledUnitLowerCholeskyTransform()


class ScaleCoupling(Transform):
    """``y_c = loc_c + exp(gamma @ (x_u - loc_u)) * (x_c - loc_c)``; ``y_u = x_u``.

    Parameters
    ----------
    loc : array (d,)
        Centre of the coupling (the guide's mean).
    gamma : array (len(idx_c), len(idx_u))
        Log-scale slope of each coupled coordinate on each scale coordinate.
    idx_c, idx_u : int arrays
        Coupled coordinates and the (unconstrained log-)scale coordinates they follow.
    """

    domain = constraints.real_vector
    codomain = constraints.real_vector

    def __init__(self, loc: jax.Array, gamma: jax.Array, idx_c: np.ndarray, idx_u: np.ndarray) -> None:
        self.loc, self.gamma, self.idx_c, self.idx_u = loc, gamma, idx_c, idx_u

    def _log_factor(self, x: jax.Array) -> jax.Array:
        return (x[..., self.idx_u] - self.loc[self.idx_u]) @ self.gamma.T

    def __call__(self, x: jax.Array) -> jax.Array:
        """Apply the coupling to ``x``."""
        centre = self.loc[self.idx_c]
        return x.at[..., self.idx_c].set(centre + jnp.exp(self._log_factor(x)) * (x[..., self.idx_c] - centre))

    def _inverse(self, y: jax.Array) -> jax.Array:
        # The scale coordinates pass through unchanged, so the factor is known from y.
        centre = self.loc[self.idx_c]
        return y.at[..., self.idx_c].set(centre + jnp.exp(-self._log_factor(y)) * (y[..., self.idx_c] - centre))

    def log_abs_det_jacobian(self, x: jax.Array, y: jax.Array, intermediates: Any = None) -> jax.Array:
        """Log absolute determinant of the Jacobian: the sum of the coupled coordinates' log factors."""
        return jnp.sum(self._log_factor(x), axis=-1)

    def tree_flatten(self) -> tuple[tuple[jax.Array, jax.Array], tuple[tuple[str, str], dict[str, np.ndarray]]]:
        """Arrays and static fields of the transform, for JAX."""
        return (self.loc, self.gamma), (("loc", "gamma"), {"idx_c": self.idx_c, "idx_u": self.idx_u})


class AutoCoupledNormal(AutoContinuous):
    """Full-rank normal with scale coupling to the model's positive parameters.

    The scale coordinates are the unconstrained values of every latent site with positive
    support (the group standard deviations, log) or unit-interval support (a BYM2 mixing
    weight, logit, which scales its group's columns as well); every other coordinate is
    coupled to them. With ``gamma = 0`` (the initial value) this is :class:`numpyro.infer.autoguide.AutoMultivariateNormal`.

    Parameters
    ----------
    model : callable
    prefix : str
    init_loc_fn : callable
    init_scale : float
        Initial standard deviation of every coordinate.
    """

    def __init__(
        self,
        model: Callable[..., Any],
        *,
        prefix: str = "auto",
        init_loc_fn: Callable[..., Any] = init_to_uniform,
        init_scale: float = 0.1,
    ) -> None:
        if not init_scale > 0:
            raise ValueError(f"init_scale must be positive, got {init_scale!r}")
        self._init_scale = init_scale
        super().__init__(model, prefix=prefix, init_loc_fn=init_loc_fn)

    def _setup_prototype(self, *args: Any, **kwargs: Any) -> None:
        super()._setup_prototype(*args, **kwargs)
        # The flat latent vector follows the order of _init_locs (AutoContinuous ravels it).
        scale: list[int] = []
        coupled: list[int] = []
        start = 0
        for name, value in self._init_locs.items():
            size = int(np.size(value))
            support = self.prototype_trace[name]["fn"].support
            # Positive sites are sds; a unit-interval one is a BYM2 mixing weight, which scales its columns too.
            is_scale = support is constraints.positive or support is constraints.unit_interval
            (scale if is_scale else coupled).extend(range(start, start + size))
            start += size
        self._idx_u, self._idx_c = np.asarray(scale, dtype=int), np.asarray(coupled, dtype=int)

    def _get_posterior(self) -> dist.TransformedDistribution:
        loc = numpyro.param(f"{self.prefix}_loc", self._init_latent)
        scale_tril = numpyro.param(
            f"{self.prefix}_scale_tril",
            jnp.identity(self.latent_dim) * self._init_scale,
            constraint=square_scaled_unit_lower_cholesky,
        )
        gamma = numpyro.param(f"{self.prefix}_gamma", jnp.zeros((len(self._idx_c), len(self._idx_u))))
        return dist.TransformedDistribution(
            self.get_base_dist(),
            [LowerCholeskyAffine(loc, scale_tril), ScaleCoupling(loc, gamma, self._idx_c, self._idx_u)],
        )

    def get_base_dist(self) -> dist.Distribution:
        """The standard normal the transforms start from."""
        return dist.Normal(jnp.zeros(self.latent_dim), 1.0).to_event(1)
