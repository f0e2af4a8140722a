"""A categorical outcome: the baseline-category (multinomial) logit over aggregated cells.

For an outcome with ``K`` answers (party ID: Democrat, Republican, Independent), every
category ``k`` other than the baseline ``b`` has its own linear predictor from the same
formula,

    eta[c, k] = Intercept[k] + X[c] @ beta[k] + sum_g sd_g[k] * z_g[k, group_index[c, g]],

``eta[c, b] = 0``, and the answers of the ``trials[c]`` respondents of cell ``c`` are

    counts[c] ~ Multinomial(trials[c], softmax(eta[c])).

The multinomial counts of a cell are sufficient: the log likelihood of the respondents,
one categorical draw each, is the cells' up to the multinomial coefficients, which do not
depend on the parameters; so the cost follows the occupied cells, as for a 0/1 outcome. Each
category's priors are the binary model's, rstanarm's defaults (:mod:`mrp_numpyro.design.priors`),
independent across categories, as brms sets them for its ``categorical`` family.

The shared parameters gain a category axis after the draws: ``Intercept`` (draws, K - 1),
``beta`` (draws, K - 1, p), ``sd_<g>`` (draws, K - 1), ``z_<g>`` (draws, K - 1, levels), in the
order of :attr:`~mrp_numpyro.design.cells.Design.categories`. The model is sampled non-centred or,
for NUTS, partially centred category by category (:mod:`mrp_numpyro.model.partial`); the
identified coordinates, written for one linear predictor, fall back to the non-centred ones
and say so in the log (:func:`categorical_fallback`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import DTypeLike

from ..design.cells import Design
from ..design.layout import SITES, pack
from ..design.priors import Priors
from .base import MRPModel, survey_likelihood
from .blocks import GRID_MAX_RATIO, block_predictor
from .centring import Centring, centring_weights

log = logging.getLogger(__name__)

__all__ = ["mrp_categorical", "categorical_model", "categorical_fallback", "baseline_logits"]


def baseline_logits(eta: jax.Array, baseline: int) -> jax.Array:
    """The K logits of every cell from its K - 1 linear predictors (last axis), with 0 at ``baseline``."""
    zero = jnp.zeros(eta.shape[:-1] + (1,), eta.dtype)
    return jnp.concatenate([eta[..., :baseline], zero, eta[..., baseline:]], axis=-1)


def mrp_categorical(
    rows: Sequence[jax.Array],
    index: jax.Array | None,
    trials: jax.Array,
    successes: jax.Array | None = None,
    *,
    coef_scale: jax.Array,
    group_names: tuple[str, ...],
    group_sizes: tuple[int, ...],
    priors: Priors,
    n_categories: int,
    baseline: int = 0,
    centring: Centring | None = None,
) -> None:
    """Hierarchical baseline-category logit over aggregated cells, non-centred or partially centred.

    Parameters
    ----------
    rows, index, trials
        As for :func:`~mrp_numpyro.model.noncentred.mrp_logit`.
    successes : int array (cells, K), or (combinations_0, ..., combinations_B, K) over the grid, optional
        Respondents of every cell per answer, in declared order; ``None`` samples them.
    coef_scale : array (p,)
        Prior standard deviation of each coefficient (already autoscaled), in every category.
    group_names, group_sizes : tuple
        Names and numbers of levels of the varying intercepts (static).
    priors : Priors
        Prior hyperparameters (static), the same in every category.
    n_categories : int
        ``K`` (static).
    baseline : int
        The category whose linear predictor is zero (static).
    centring : Centring, optional
        Partial centring (:mod:`mrp_numpyro.model.centring`, static), category by category:
        every ``sd_<g>`` (K - 1,) first, then ``u_<g> ~ Normal(0, sd^c)`` (K - 1, levels) with
        intercepts ``sd^(1 - c) u``. ``None``: ``z_<g> ~ Normal(0, 1)``, non-centred.
    """
    k = n_categories - 1
    p = coef_scale.shape[0]
    intercept = numpyro.sample(SITES.intercept, dist.Normal(priors.intercept_loc, priors.intercept_scale).expand([k]).to_event(1))
    beta = numpyro.sample(SITES.coefficients, dist.Normal(priors.coef_loc, coef_scale).expand([k, p]).to_event(2)) if p else None
    sd_prior = dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale).expand([k]).to_event(1)
    effects = []
    if centring is None:
        for name, size in zip(group_names, group_sizes, strict=True):
            sd = numpyro.sample(SITES.sd(name), sd_prior)
            z = numpyro.sample(SITES.z(name), dist.Normal(0.0, 1.0).expand([k, size]).to_event(2))
            effects.append(sd[:, None] * z)
    else:
        # Every sd first: a main effect's weights depend on its interactions' sds.
        sds = [numpyro.sample(SITES.sd(name), sd_prior) for name in group_names]
        for name, size, sd, c in zip(group_names, group_sizes, sds, centring_weights(sds, centring), strict=True):
            scale = sd[:, None]
            u = numpyro.sample(SITES.centred(name), dist.Normal(0.0, jnp.broadcast_to(scale**c, (k, size))).to_event(2))
            effects.append(scale ** (1.0 - c) * u)
    theta = pack(intercept, beta, effects)  # (K - 1, P)
    logits = baseline_logits(jnp.asarray(block_predictor(theta, rows, index)), baseline)
    with numpyro.plate_stack("cells", trials.shape):
        numpyro.sample(SITES.observed, dist.Multinomial(total_count=trials, logits=logits), obs=successes)


def categorical_model(
    design: Design, priors: Priors, *, dtype: DTypeLike = np.float32, max_grid_ratio: float = GRID_MAX_RATIO
) -> MRPModel:
    """The non-centred model of a design with a categorical outcome (:func:`mrp_categorical`)."""
    if not design.categorical:
        raise ValueError("categorical_model needs a design with a categorical outcome (Design.outcome_levels)")
    blocks, likelihood = survey_likelihood(design, dtype, max_grid_ratio)
    fn = partial(
        mrp_categorical,
        coef_scale=jnp.asarray(priors.coef_scales(design.x_scale), dtype),
        group_names=design.group_names,
        group_sizes=design.group_sizes,
        priors=priors,
        n_categories=len(design.outcome_levels),
        baseline=design.baseline,
    )
    return MRPModel(
        design,
        priors,
        fn,
        {"rows": tuple(jnp.asarray(r, dtype) for r in blocks.rows), **likelihood},
        latent_sites=design.layout.noncentred_sites,
        parameterization="noncentred",
    )


def categorical_fallback(
    name: str, design: Design, priors: Priors, *, dtype: DTypeLike = np.float32, max_grid_ratio: float = GRID_MAX_RATIO
) -> MRPModel:
    """The non-centred categorical model in place of coordinates ``name`` written for one linear predictor, logged."""
    log.warning(
        "%s coordinates are written for a 0/1 outcome; the categorical outcome (%s, baseline %r) is fitted "
        "in non-centred coordinates",
        name,
        ", ".join(design.outcome_levels),
        design.outcome_levels[design.baseline],
    )
    return categorical_model(design, priors, dtype=dtype, max_grid_ratio=max_grid_ratio)
