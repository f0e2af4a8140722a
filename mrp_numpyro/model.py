"""The hierarchical logit as a plain NumPyro function over arrays, and its predictions.

For cell ``c`` with ``trials[c]`` respondents,

    successes[c] ~ Binomial(trials[c], logit^-1(eta[c]))
    eta[c] = Intercept + X[c] @ beta + sum_g sd_g * z_g[group_index[c, g]]

with ``z_g ~ Normal(0, 1)`` (the non-centred form, which avoids the funnel between a
group's standard deviation and its effects), ``sd_g ~ Gamma(shape, scale)``,
``beta ~ Normal(loc, scale / x_scale)`` and ``Intercept ~ Normal(loc, scale)`` on centred
predictors (see :mod:`mrp_numpyro.priors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Mapping

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from .design import CellArrays, Design
from .priors import Priors

__all__ = ["mrp_logit", "MRPModel", "build_model", "site_names", "cell_logits", "cell_logits_by_cell", "PARAMETERIZATIONS"]

PARAMETERIZATIONS = ("noncentred", "identified")


def site_names(group: str) -> tuple[str, str]:
    """Sample-site names of a varying intercept's standard deviation and standardised effects."""
    return f"sd_{group}", f"z_{group}"


def mrp_logit(
    X,
    group_index,
    trials,
    successes=None,
    *,
    coef_scale,
    group_names: tuple[str, ...],
    group_sizes: tuple[int, ...],
    priors: Priors,
):
    """Hierarchical binomial logit over aggregated cells.

    Parameters
    ----------
    X : array (cells, p)
        Centred population-level predictors.
    group_index : int array (cells, G)
        Level of each varying-intercept term in each cell.
    trials : array (cells,)
        Respondents per cell.
    successes : array (cells,), optional
        Observed "1" answers per cell; ``None`` samples them (prior/posterior prediction).
    coef_scale : array (p,)
        Prior standard deviation of each coefficient (already autoscaled).
    group_names, group_sizes : tuple
        Names and numbers of levels of the varying-intercept terms (static).
    priors : Priors
        Prior hyperparameters (static).
    """
    eta = numpyro.sample("Intercept", dist.Normal(priors.intercept_loc, priors.intercept_scale))
    if X.shape[1]:
        beta = numpyro.sample("beta", dist.Normal(priors.coef_loc, coef_scale).to_event(1))
        eta = eta + X @ beta
    for g, (name, size) in enumerate(zip(group_names, group_sizes)):
        sd_name, z_name = site_names(name)
        sd = numpyro.sample(sd_name, dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale))
        with numpyro.plate(name, size):
            z = numpyro.sample(z_name, dist.Normal(0.0, 1.0))
        eta = eta + sd * z[group_index[:, g]]
    with numpyro.plate("cells", X.shape[0]):
        numpyro.sample("y", dist.Binomial(total_count=trials, logits=eta), obs=successes)


def _same_effects(draws, rng_key):
    """The non-centred model samples the shared parameters themselves."""
    return dict(draws)


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
        ``noncentred`` (:func:`mrp_logit`) or ``identified``
        (:func:`mrp_numpyro.identified.mrp_logit_identified`).
    """

    design: Design
    priors: Priors
    fn: Callable = field(repr=False)
    kwargs: Mapping[str, np.ndarray] = field(repr=False)
    latent_sites: tuple[str, ...] = ()
    effects: Callable = field(default=_same_effects, repr=False)
    parameterization: str = "noncentred"


def build_model(design: Design, priors: Priors, dtype=np.float32, parameterization: str = "noncentred") -> MRPModel:
    """Bind the model's static settings and the survey arrays.

    Parameters
    ----------
    design : Design
    priors : Priors
    dtype : numpy dtype
        Floating type of the arrays (float32 by default; float64 with x64 enabled).
    parameterization : {"noncentred", "identified"}
        The coordinates inference works in; the posterior is the same. ``noncentred`` is
        :func:`mrp_logit`; ``identified`` integrates out the directions the likelihood
        cannot see (:mod:`mrp_numpyro.identified`), which removes their funnels.
    """
    if parameterization not in PARAMETERIZATIONS:
        raise ValueError(f"model.parameterization must be one of {list(PARAMETERIZATIONS)}, got {parameterization!r}")
    s = design.survey
    count_dtype = jnp.int64 if np.dtype(dtype).itemsize == 8 else jnp.int32
    counts = {
        # Integer counts: Binomial needs them to simulate data when successes is None.
        "trials": jnp.asarray(s.trials, count_dtype),
        "successes": jnp.asarray(s.successes, count_dtype),
    }
    sd_sites = tuple(site_names(g)[0] for g in design.group_names)
    if parameterization == "identified":
        # Imported here: identified builds on this module's site names.
        from .identified import identified_arrays, identified_basis, mrp_logit_identified, recover_effects

        basis = identified_basis(design, priors)
        fn = partial(mrp_logit_identified, group_names=design.group_names, priors=priors)
        return MRPModel(
            design,
            priors,
            fn,
            {**identified_arrays(design, basis, dtype), **counts},
            latent_sites=("phi",) + sd_sites,
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
    kwargs = {"X": jnp.asarray(s.X, dtype), "group_index": jnp.asarray(s.group_index), **counts}
    latent = ("Intercept",) + (("beta",) if design.fixed_names else ())
    for g in design.group_names:
        latent += site_names(g)
    return MRPModel(design, priors, fn, kwargs, latent_sites=latent)


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


def cell_logits_by_cell(draws: Mapping[str, np.ndarray], design: Design, cells: CellArrays) -> np.ndarray:
    """:func:`cell_logits` laid out (cells, draws), C-contiguous.

    Built cells-major because gathering whole rows of a level-major effect table is a
    contiguous copy, several times faster than gathering columns.
    """
    eta = np.empty((cells.n_cells, len(draws["Intercept"])))
    eta[:] = np.asarray(draws["Intercept"], dtype=np.float64)[None, :]
    if cells.X.shape[1]:
        eta += cells.X @ np.asarray(draws["beta"], dtype=np.float64).T
    for g, name in enumerate(design.group_names):
        sd_name, z_name = site_names(name)
        effect = np.asarray(draws[z_name], np.float64).T * np.asarray(draws[sd_name], np.float64)[None, :]
        eta += np.ascontiguousarray(effect)[cells.group_index[:, g]]
    return eta
