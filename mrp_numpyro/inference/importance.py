"""Draws of a fitted guide and their importance log ratios ``log p(theta, y) - log q(theta)``.

The ratios are what :func:`mrp_numpyro.diagnostics.pareto.psis` smooths into weights and k-hat.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import jax
import numpy as np
from numpyro import handlers
from numpyro.infer.autoguide import AutoDiagonalNormal, AutoLowRankMultivariateNormal, AutoMultivariateNormal
from numpyro.infer.util import log_density

from .guides import AutoCoupledNormal

__all__ = ["guide_draws_and_log_ratios"]

# Guides that draw one latent vector from a distribution whose density is evaluated in
# closed form at any point (affine and scale-coupling transforms of a normal). Their draws
# are taken in one call per chunk and the guide is evaluated at them, a program that
# compiles in about half the time of running the seeded guide once per draw. An
# inverse autoregressive flow has no cheap inverse, so its density is only cheap at its
# own draws: it and any other guide take the seeded path.
_CLOSED_FORM_GUIDES = (AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal, AutoCoupledNormal)


def guide_draws_and_log_ratios(
    model_fn: Callable[..., Any],
    guide: Any,
    params: Mapping[str, jax.Array],
    model_kwargs: Mapping[str, Any],
    rng_key: jax.Array,
    num_draws: int,
    latent_names: Iterable[str],
    chunk_size: int = 1000,
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Draw from a fitted guide and compute ``log p(theta, y) - log q(theta)`` for each draw.

    The guide's trace log density is the density of the constrained draw (autoguides add the
    Jacobian of the constraining transform), so the two terms are on the same space. Guides
    with a closed-form density (mean-field, full-rank, low-rank, coupled) are drawn a chunk
    at a time and evaluated at their draws; any other guide is run seeded once per draw.

    Returns
    -------
    draws : dict of site name to array (num_draws, ...)
    log_ratios : array (num_draws,)
    """
    latent_names = tuple(latent_names)
    # Its first argument is a draw of the closed-form guides, a PRNG key of the others.
    guide_density: Callable[[jax.Array, Mapping[str, jax.Array], Mapping[str, Any]], tuple[jax.Array, Any]]
    if isinstance(guide, _CLOSED_FORM_GUIDES):
        site = f"_{guide.prefix}_latent"

        def guide_density(u: jax.Array, params: Mapping[str, jax.Array], kwargs: Mapping[str, Any]) -> tuple[jax.Array, Any]:
            return log_density(handlers.condition(guide, {site: u}), (), kwargs, params)

        draw = jax.jit(lambda key, params: guide.get_posterior(params).sample(key, (chunk_size,)))

        def chunk_inputs(key: jax.Array) -> jax.Array:
            return draw(key, params)
    else:

        def guide_density(key: jax.Array, params: Mapping[str, jax.Array], kwargs: Mapping[str, Any]) -> tuple[jax.Array, Any]:
            return log_density(handlers.seed(guide, key), (), kwargs, params)

        def chunk_inputs(key: jax.Array) -> jax.Array:
            return jax.random.split(key, chunk_size)

    def one(x: jax.Array, params: Mapping[str, jax.Array], kwargs: Mapping[str, Any]) -> tuple[dict[str, jax.Array], jax.Array]:
        log_q, trace = guide_density(x, params, kwargs)
        latent = {k: trace[k]["value"] for k in latent_names}
        log_p, _ = log_density(model_fn, (), kwargs, latent)
        return latent, log_p - log_q

    # Parameters and survey arrays are arguments, not constants folded into the program,
    # which would slow its compilation. Every chunk has one shape: one compilation.
    batch = jax.jit(jax.vmap(one, in_axes=(0, None, None)))
    draws, ratios = [], []
    for start, key in zip(range(0, num_draws, chunk_size), jax.random.split(rng_key, -(-num_draws // chunk_size)), strict=True):
        d, r = jax.device_get(batch(chunk_inputs(key), params, model_kwargs))
        n = min(chunk_size, num_draws - start)
        draws.append({k: np.asarray(v)[:n] for k, v in d.items()})
        ratios.append(np.asarray(r)[:n])
    out = {k: np.concatenate([d[k] for d in draws]) for k in latent_names}
    return out, np.concatenate(ratios).astype(np.float64)
