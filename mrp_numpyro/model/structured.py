"""A group's standardised intercepts under a structured prior, sampled non-centred or partially centred.

The prior (:mod:`mrp_numpyro.design.structure`) is a map of independent standard normals
``e_<g>`` to ``z_<g>``, with a correlation or mixing weight ``rho_<g>`` for ``ar1`` and
``bym2`` and a trend ``slope_<g>`` for ``rw2``. Sampling ``e`` and mapping it keeps every
structured prior proper and non-centred: no soft sum-to-zero constraint and no funnel
between ``sd_<g>`` and the intercepts. Every parameterisation samples structured groups this
way, except that partial centring (:mod:`mrp_numpyro.model.partial`) centres a fixed map's
independent coordinates as far as the data allow (:func:`centred_structured`) and the
identified coordinates (:mod:`mrp_numpyro.model.identified`) integrate their null directions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist

from ..design.layout import SITES
from ..design.structure import GroupPrior
from .centring import StructuredParts
from .prior_coordinates import ar1_factor

__all__ = ["structured_z", "centred_structured", "rho_prior"]


def rho_prior(kind: str) -> dist.Distribution:
    """``rho``'s prior under a structured prior ``kind``: Uniform(-1, 1) for ``ar1``, Beta(1/2, 1/2) for BYM2's mixing weight."""
    if kind not in ("ar1", "bym2"):
        raise ValueError(f"only ar1 and bym2 priors have a rho, not {kind!r}")
    return dist.Uniform(-1.0, 1.0) if kind == "ar1" else dist.Beta(0.5, 0.5)


def structured_z(name: str, size: int, prior: GroupPrior, sd: jax.Array) -> jax.Array:
    """Sample group ``name``'s structured-prior sites and return its ``z`` (levels,).

    Parameters
    ----------
    name : str
        The group.
    size : int
        Its number of levels.
    prior : GroupPrior
        A structured prior (not ``iid``).
    sd : scalar array
        The group's sd (``rw2``'s trend is ``slope / sd`` in ``z``).
    """
    e = numpyro.sample(SITES.standard(name), dist.Normal(0.0, 1.0).expand([prior.standard_size(size)]).to_event(1))
    rho = numpyro.sample(SITES.rho(name), rho_prior(prior.kind)) if prior.has_rho else None
    if prior.kind == "ar1":
        assert rho is not None
        return ar1_factor(rho, size) @ e
    assert prior.basis is not None
    basis = jnp.asarray(prior.basis, e.dtype)
    m = prior.basis.shape[1]
    z = basis @ e[:m]
    if prior.kind == "bym2":
        assert rho is not None
        z = jnp.sqrt(rho) * z + jnp.sqrt(1.0 - rho) * e[m:]
    if prior.trend is not None:
        slope = numpyro.sample(SITES.slope(name), dist.Normal(0.0, 1.0))
        z = z + (slope / sd) * jnp.asarray(prior.trend, e.dtype)
    return z


def centred_structured(name: str, prior: GroupPrior, parts: StructuredParts, sd: jax.Array, c: jax.Array) -> jax.Array:
    """Sample a structured group with a fixed map partially centred; return its intercepts ``a`` (levels,).

    The intercepts are ``columns @ b`` with ``b_k = sigma_k^(1 - c_k) u_k`` and
    ``u_k ~ Normal(0, sigma_k^c_k)`` (:class:`~mrp_numpyro.model.centring.StructuredParts`),
    so ``b_k ~ Normal(0, sigma_k)`` whatever the weights ``c``; ``rw2``'s trend is added as
    ``slope * t``.
    """
    rho = numpyro.sample(SITES.rho(name), rho_prior(prior.kind)) if prior.has_rho else None
    sigma = parts.sigma(sd, rho)
    u = numpyro.sample(SITES.centred(name), dist.Normal(0.0, sigma**c).to_event(1))
    a = jnp.asarray(parts.columns, u.dtype) @ (sigma ** (1.0 - c) * u)
    if prior.trend is not None:
        a = a + numpyro.sample(SITES.slope(name), dist.Normal(0.0, 1.0)) * jnp.asarray(prior.trend, u.dtype)
    return a
