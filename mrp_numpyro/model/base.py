"""The hierarchical logit as a plain NumPyro function over arrays, and its predictions.

For cell ``c`` with ``trials[c]`` respondents,

    successes[c] ~ Binomial(trials[c], logit^-1(eta[c]))
    eta[c] = Intercept + X[c] @ beta + sum_g sd_g * z_g[group_index[c, g]]

(evaluated block by block, :mod:`mrp_numpyro.model.blocks`), with ``z_g ~ Normal(0, 1)`` (the
non-centred form, which avoids the funnel between a group's standard deviation and its
effects; :mod:`mrp_numpyro.model.centring` gives the partially centred form NUTS uses),
``sd_g ~ Gamma(shape, scale)``, ``beta ~ Normal(loc, scale / x_scale)`` and
``Intercept ~ Normal(loc, scale)`` on centred predictors (see :mod:`mrp_numpyro.design.priors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ..design.cells import CellArrays, Design
from ..design.layout import SITES, pack
from ..design.priors import Priors
from .blocks import GRID_MAX_RATIO, CellBlocks, block_predictor, cell_blocks, likelihood_arrays
from .centring import Centring, centring_for, centring_weights

__all__ = ["mrp_logit", "MRPModel", "build_model", "cell_logits", "cell_logits_by_cell", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("noncentred", "partial", "identified")


def mrp_logit(
    rows,
    index,
    trials,
    successes=None,
    *,
    coef_scale,
    group_names: tuple[str, ...],
    group_sizes: tuple[int, ...],
    priors: Priors,
    centring: Centring | None = None,
):
    """Hierarchical binomial logit over aggregated cells.

    Parameters
    ----------
    rows : tuple of arrays (combinations_b, P)
        The cells' design matrix ``D`` (intercept, centred predictors, one-hot levels of
        every group) in blocks, :attr:`mrp_numpyro.model.blocks.CellBlocks.rows`.
    index : int array (cells, blocks), or None
        Each cell's row in every block (:attr:`~mrp_numpyro.model.blocks.CellBlocks.index`);
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
        intercepts ``sd z``. ``None``: non-centred.
    """
    intercept = numpyro.sample(SITES.intercept, dist.Normal(priors.intercept_loc, priors.intercept_scale))
    beta = numpyro.sample(SITES.coefficients, dist.Normal(priors.coef_loc, coef_scale).to_event(1)) if coef_scale.shape[0] else None
    sd_prior = dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale)
    effects = []
    if centring is None:
        for name, size in zip(group_names, group_sizes):
            sd = numpyro.sample(SITES.sd(name), sd_prior)
            with numpyro.plate(name, size):
                effects.append(sd * numpyro.sample(SITES.z(name), dist.Normal(0.0, 1.0)))
    else:
        # Every sd first: a main effect's weights depend on its interactions' sds.
        sds = [numpyro.sample(SITES.sd(name), sd_prior) for name in group_names]
        for name, size, sd, c in zip(group_names, group_sizes, sds, centring_weights(sds, centring)):
            with numpyro.plate(name, size):
                effects.append(sd ** (1.0 - c) * numpyro.sample(SITES.centred(name), dist.Normal(0.0, sd**c)))
    eta = block_predictor(pack(intercept, beta, effects), rows, index)
    with numpyro.plate_stack("cells", trials.shape):
        numpyro.sample(SITES.observed, dist.Binomial(total_count=trials, logits=eta), obs=successes)


def _same_effects(draws, rng_key):
    """The non-centred model samples the shared parameters themselves."""
    return dict(draws)


def _decentre(draws, rng_key, *, group_names, centring):
    """``z = a / sd = sd^-c u`` for the partially centred model, ``c`` at each draw's sds."""
    centred = {SITES.centred(name) for name in group_names}
    out = {k: v for k, v in draws.items() if k not in centred}
    sds = [np.asarray(draws[SITES.sd(name)], np.float64) for name in group_names]
    for name, sd, c in zip(group_names, sds, centring_weights(sds, centring)):
        u = np.asarray(draws[SITES.centred(name)], np.float64)
        out[SITES.z(name)] = u * sd[:, None] ** -c
    return out


@dataclass(frozen=True)
class MRPModel:
    """A model function with its static settings bound, and the survey arrays it is fitted to.

    ``fn(**kwargs)`` runs the model on the survey; inference methods take ``fn`` and
    ``kwargs`` and nothing else, so any NumPyro guide or kernel can be used with it.

    Attributes
    ----------
    latent_sites : tuple of str
        The sample sites inference draws.
    effects : callable
        ``effects(draws, rng_key)`` maps flat draws (draws, ...) of ``latent_sites`` to the
        parameters every parameterisation shares, ``Intercept``, ``beta``, ``sd_<g>`` and
        ``z_<g>``, which the poststratifier and the outputs use.
    parameterization : str
        ``noncentred`` (:func:`mrp_logit`), ``partial`` (the same with centring weights) or ``identified``
        (:func:`mrp_numpyro.model.identified.mrp_logit_identified`).
    """

    design: Design
    priors: Priors
    fn: Callable = field(repr=False)
    kwargs: Mapping[str, np.ndarray] = field(repr=False)
    latent_sites: tuple[str, ...] = ()
    effects: Callable = field(default=_same_effects, repr=False)
    parameterization: str = "noncentred"


def build_model(
    design: Design,
    priors: Priors,
    dtype=np.float32,
    parameterization: str = "noncentred",
    sd_guess: Mapping[str, float] | None = None,
    max_grid_ratio: float = GRID_MAX_RATIO,
) -> MRPModel:
    """Bind the model's static settings and the survey arrays.

    Parameters
    ----------
    design : Design
    priors : Priors
    dtype : numpy dtype
        Floating type of the arrays (float32 by default; float64 with x64 enabled).
    parameterization : {"noncentred", "partial", "identified"}
        The coordinates inference works in; the posterior is the same. ``noncentred`` is
        :func:`mrp_logit`; ``partial`` centres each level as much as its data allow
        (:mod:`mrp_numpyro.model.centring`); ``identified`` integrates out the directions the
        likelihood cannot see (:mod:`mrp_numpyro.model.identified`), which removes their funnels.
    sd_guess : mapping of group name to float, optional
        Each group's standard deviation as a pilot fit estimates it; required by ``partial``.
    max_grid_ratio : float
        The likelihood runs over every combination of the blocks' rows while there are at
        most this many per survey cell, else over the survey cells
        (:func:`mrp_numpyro.model.blocks.likelihood_arrays`); the log density is the same.
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"model.parameterization must be one of {list(PARAMETERIZATIONS)}, got {parameterization!r}")
    if parameterization == "partial" and sd_guess is None:
        raise ValueError("model.parameterization=partial needs sd_guess, the group sds of a pilot fit")
    s = design.survey
    count_dtype = jnp.int64 if np.dtype(dtype).itemsize == 8 else jnp.int32
    blocks = cell_blocks(design)
    cells = likelihood_arrays(blocks, s.trials, s.successes, max_grid_ratio)
    likelihood = {
        "index": None if cells["index"] is None else jnp.asarray(cells["index"]),
        # Integer counts: Binomial needs them to simulate data when successes is None.
        "trials": jnp.asarray(cells["trials"], count_dtype),
        "successes": jnp.asarray(cells["successes"], count_dtype),
    }
    layout = design.layout
    if parameterization == "identified":
        # Imported here: identified builds on this module's site names.
        from .identified import identified_arrays, identified_basis, mrp_logit_identified, recover_effects

        basis = identified_basis(design, priors)
        fn = partial(mrp_logit_identified, group_names=design.group_names, priors=priors)
        return MRPModel(
            design,
            priors,
            fn,
            {**identified_arrays(design, basis, dtype, blocks), **likelihood},
            latent_sites=(SITES.identified,) + layout.sd_sites,
            effects=partial(recover_effects, design=design, basis=basis),
            parameterization=parameterization,
        )
    fn = partial(
        mrp_logit,
        coef_scale=jnp.asarray(priors.coef_scales(design.x_scale), dtype),
        group_names=design.group_names,
        group_sizes=design.group_sizes,
        priors=priors,
    )
    kwargs = {"rows": tuple(jnp.asarray(r, dtype) for r in blocks.rows), **likelihood}
    if parameterization == "partial":
        centring = centring_for(design, sd_guess)
        fn = partial(fn, centring=centring)
        latent = layout.fixed_sites + tuple(s for g in layout.group_names for s in (SITES.sd(g), SITES.centred(g)))
        effects = partial(_decentre, group_names=design.group_names, centring=centring)
        return MRPModel(design, priors, fn, kwargs, latent_sites=latent, effects=effects, parameterization=parameterization)
    return MRPModel(design, priors, fn, kwargs, latent_sites=layout.shared_sites)


def cell_logits(draws: Mapping[str, np.ndarray], design: Design, cells: CellArrays) -> np.ndarray:
    """Linear predictor of every cell for a flat batch of posterior draws.

    Parameters
    ----------
    draws : mapping of site name to array (draws, ...)
        Must hold ``Intercept``, ``beta`` (if there are fixed effects), and ``sd_*``/``z_*``
        of every varying intercept.
    design : Design
    cells : CellArrays
        Survey or poststratification cells.

    Returns
    -------
    array (draws, cells)
    """
    return cell_logits_by_cell(draws, design, cells).T


def cell_logits_by_cell(
    draws: Mapping[str, np.ndarray], design: Design, cells: CellArrays, blocks: CellBlocks | None = None, dtype=np.float64
) -> np.ndarray:
    """:func:`cell_logits` laid out (cells, draws), C-contiguous.

    Evaluated block by block (:mod:`mrp_numpyro.model.blocks`): for the 12,000 cells of the CCES
    table, a state block and a demographic block, so two row gathers per batch of draws
    instead of one per term. Pass ``blocks`` (``cell_blocks(design, cells=cells)``) to
    reuse them over batches, and ``dtype`` to compute in float32.
    """
    blocks = cell_blocks(design, cells=cells) if blocks is None else blocks
    theta = design.layout.pack_draws(draws, dtype)  # (draws, P)
    eta = np.zeros((cells.n_cells, theta.shape[0]), dtype=dtype)
    for b, rows in enumerate(blocks.rows):
        # Only the block's own columns are non-zero: multiply by those alone.
        cols = blocks.columns[b]
        values = np.ascontiguousarray(rows[:, cols].astype(dtype) @ theta[:, cols].T)  # (combinations, draws)
        eta += values[blocks.index[:, b]]
    return eta
