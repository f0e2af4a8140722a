"""The hierarchical logit as a plain NumPyro function over arrays, non-centred.

For cell ``c`` with ``trials[c]`` respondents,

    successes[c] ~ Binomial(trials[c], logit^-1(eta[c]))
    eta[c] = Intercept + X[c] @ beta + sum_g sd_g * z_g[group_index[c, g]] * value[c, g]

(evaluated block by block, :mod:`mrp_numpyro.model.blocks`), with ``z_g ~ Normal(0, 1)`` (the
non-centred form, which avoids the funnel between a group's standard deviation and its
effects; :mod:`mrp_numpyro.model.partial` centres each level as far as its data allow),
``sd_g ~ Gamma(shape, scale)``, ``beta ~ Normal(loc, scale / x_scale)`` and
``Intercept ~ Normal(loc, scale)`` on centred predictors (see :mod:`mrp_numpyro.design.priors`);
``value[c, g]`` is 1 for a varying intercept and the cell's value of the column for a varying
slope, whose ``z`` are correlated with its term's other coefficients' when the term is written
with ``|`` (:mod:`mrp_numpyro.model.correlated`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from jax.typing import DTypeLike

from ..design.cells import Design
from ..design.layout import SITES, CorrelatedTerm, ParameterLayout, pack
from ..design.priors import Priors
from ..design.structure import IID, GroupPrior
from .base import MRPModel, Parameterization, register_parameterization, survey_likelihood
from .blocks import GRID_MAX_RATIO, block_predictor
from .categorical import categorical_model
from .centring import Centring, centring_weights
from .correlated import correlated_effects
from .structured import centred_structured, structured_z

__all__ = ["mrp_logit", "NonCentred"]


def mrp_logit(
    rows: Sequence[jax.Array],
    index: jax.Array | None,
    trials: jax.Array,
    successes: jax.Array | None = None,
    *,
    coef_scale: jax.Array,
    group_names: tuple[str, ...],
    group_sizes: tuple[int, ...],
    priors: Priors,
    centring: Centring | None = None,
    group_priors: tuple[GroupPrior, ...] = (),
    correlated: tuple[CorrelatedTerm, ...] = (),
) -> None:
    """Hierarchical binomial logit over aggregated cells.

    Parameters
    ----------
    rows : tuple of arrays (combinations_b, P)
        The cells' design matrix ``D`` (intercept, centred predictors, one-hot levels of
        every group) in blocks, ``CellBlocks.rows`` (:class:`~mrp_numpyro.model.blocks.CellBlocks`).
    index : int array (cells, blocks), or None
        Each cell's row in every block (``CellBlocks.index``);
        ``None``: the cells are every combination of the blocks' rows
        (:func:`mrp_numpyro.model.blocks.likelihood_arrays`).
    trials : int array (cells,), or (combinations_0, ..., combinations_B) over the grid
        Respondents per cell.
    successes : int array, same shape as ``trials``, optional
        Observed "1" answers per cell; ``None`` samples them (prior/posterior prediction).
    coef_scale : array (p,)
        Prior standard deviation of each coefficient (already autoscaled).
    group_names, group_sizes : tuple
        Names and numbers of levels of the varying-intercept terms (static).
    priors : Priors
        Prior hyperparameters (static).
    centring : Centring, optional
        Partial centring (:mod:`mrp_numpyro.model.centring`, static): the model samples every
        ``sd_<g>`` first, then ``u_<g> ~ Normal(0, sd^c)`` with intercepts ``sd^(1 - c) u``
        and weights ``c`` computed at those sds, instead of ``z_<g> ~ Normal(0, 1)`` with
        intercepts ``sd z``; a structured group with a fixed map is centred in its independent
        coordinates (:class:`~mrp_numpyro.model.centring.StructuredParts`). ``None``: non-centred.
    group_priors : tuple of GroupPrior, optional
        Each group's prior (static, :mod:`mrp_numpyro.design.structure`); a structured one is
        sampled non-centred by :func:`~mrp_numpyro.model.structured.structured_z`, or partially
        centred by :func:`~mrp_numpyro.model.structured.centred_structured` with ``centring``.
        Empty: every group ``iid``.
    correlated : tuple of CorrelatedTerm, optional
        Terms whose groups' effects are correlated (static), sampled by
        :func:`~mrp_numpyro.model.correlated.correlated_effects`, partially centred with ``centring``.
    """
    intercept = numpyro.sample(SITES.intercept, dist.Normal(priors.intercept_loc, priors.intercept_scale))
    beta = (
        numpyro.sample(SITES.coefficients, dist.Normal(priors.coef_loc, coef_scale).to_event(1)) if coef_scale.shape[0] else None
    )
    sd_prior = dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale)
    effects: list = [None] * len(group_names)
    structures = group_priors or (IID,) * len(group_names)
    joint = {g for term in correlated for g in term.slots}
    if centring is None:
        sds = []
        for g, (name, size, prior) in enumerate(zip(group_names, group_sizes, structures, strict=True)):
            sd = numpyro.sample(SITES.sd(name), sd_prior)
            sds.append(sd)
            if g in joint:
                continue
            if prior.structured:
                effects[g] = sd * structured_z(name, size, prior, sd)
                continue
            with numpyro.plate(name, size):
                effects[g] = sd * numpyro.sample(SITES.z(name), dist.Normal(0.0, 1.0))
    else:
        # Every sd first: a main effect's weights depend on its interactions' sds.
        sds = [numpyro.sample(SITES.sd(name), sd_prior) for name in group_names]
        weights = centring_weights(sds, centring)
        parts = centring.parts or (None,) * len(group_names)
        for g, (name, size, sd, c, prior, part) in enumerate(
            zip(group_names, group_sizes, sds, weights, structures, parts, strict=True)
        ):
            if g in joint:
                continue
            if part is not None:
                effects[g] = centred_structured(name, prior, part, sd, c)
            elif prior.structured:  # ar1: non-centred
                effects[g] = sd * structured_z(name, size, prior, sd)
            else:
                with numpyro.plate(name, size):
                    effects[g] = sd ** (1.0 - c) * numpyro.sample(SITES.centred(name), dist.Normal(0.0, sd**c))
    for term in correlated:
        c = None if centring is None else [weights[g] for g in term.slots]
        a = correlated_effects(term, group_sizes[term.slots[0]], [sds[g] for g in term.slots], priors, c)
        for j, g in enumerate(term.slots):
            effects[g] = a[:, j]
    eta = block_predictor(pack(intercept, beta, effects), rows, index)
    with numpyro.plate_stack("cells", trials.shape):
        numpyro.sample(SITES.observed, dist.Binomial(total_count=trials, logits=eta), obs=successes)


def _standardise(draws: Mapping[str, np.ndarray], rng_key: jax.Array, *, layout: ParameterLayout) -> dict[str, np.ndarray]:
    """The shared parameters of the non-centred sites: each structured group's ``z`` from its standard normals."""
    return layout.standardise(draws)


@register_parameterization
@dataclass(frozen=True)
class NonCentred(Parameterization):
    """Non-centred coordinates: :func:`~mrp_numpyro.model.noncentred.mrp_logit` as written.

    Each group's intercepts are ``sd_g * z_g`` with ``z_g ~ Normal(0, 1)``.
    """

    name = "noncentred"

    def build(
        self,
        design: Design,
        priors: Priors,
        *,
        dtype: DTypeLike = np.float32,
        max_grid_ratio: float = GRID_MAX_RATIO,
        rng_key: jax.Array | None = None,
    ) -> MRPModel:
        """The non-centred model of ``design`` (see :meth:`~mrp_numpyro.model.base.Parameterization.build`).

        A categorical outcome's is :func:`~mrp_numpyro.model.categorical.mrp_categorical`.
        """
        if design.categorical:
            return categorical_model(design, priors, dtype=dtype, max_grid_ratio=max_grid_ratio)
        blocks, likelihood = survey_likelihood(design, dtype, max_grid_ratio)
        fn = partial(
            mrp_logit,
            coef_scale=jnp.asarray(priors.coef_scales(design.x_scale), dtype),
            group_names=design.group_names,
            group_sizes=design.group_sizes,
            priors=priors,
            group_priors=tuple(g.prior for g in design.layout.groups),
            correlated=design.layout.correlated,
        )
        kwargs = {"rows": tuple(jnp.asarray(r, dtype) for r in blocks.rows), **likelihood}
        layout = design.layout
        return MRPModel(
            design,
            priors,
            fn,
            kwargs,
            latent_sites=layout.noncentred_sites,
            effects=partial(_standardise, layout=layout),
            parameterization=self.name,
        )
