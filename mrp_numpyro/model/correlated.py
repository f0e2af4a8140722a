"""A term's correlated varying coefficients, ``(1 + male | state)``, non-centred or partially centred.

For a term with ``J`` coefficients (the intercept and the slopes) over ``L`` levels, the
model samples each coefficient's sd ``sd_j`` (a site of its own, as every group's), the
Cholesky factor ``L_<t>`` of the correlation matrix ``Omega ~ LKJ(regularization)`` and
independent standard normals ``e_<t>`` (L, J); the standardised effects are ``z = e L'``,
correlated across the coefficients with ``Omega``, and coefficient ``j``'s effects
``sd_j z[:, j]``, so each level's vector of effects is ``Normal(0, diag(sd) Omega diag(sd))``.
The shared parameters are then each coefficient's ``sd`` and ``z`` as for any group, and
``cor_<t> = L L'`` (:meth:`~mrp_numpyro.design.layout.ParameterLayout.standardise`).
Partially centred (NUTS's coordinates), each level is centred coefficient by coefficient
where its data pin it (the large states' intercepts), in the coordinates in which the prior is
independent: ``b_j = sd_j L_jj e_j``, the part of coefficient ``j`` that the ones before it
do not predict (:func:`correlated_effects`). Centring the effects themselves under their
correlated prior instead (``u_l ~ Normal(0, diag(sd^c) Omega diag(sd^c))``) tied each slope
to the correlation whenever its intercept was centred: on the CCES with ``(1 + male | state)``
the correlation's bulk ESS was 28 in 2,000 draws.

Each ``sd_j`` is sampled from the gamma prior of an independent group; under rstanarm's
``decov`` (the default) a factor adds the difference between ``decov``'s density of the
sds (:func:`~mrp_numpyro.design.priors.decov_sd_log_density`) and those gammas, so the
sites and the shared parameters are the same under either prior. The identified coordinates
need an independent prior given the sds and fall back to the non-centred model
(:func:`log_correlated_fallback`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist

from ..design.layout import SITES, CorrelatedTerm, ParameterLayout
from ..design.priors import Priors, decov_sd_log_density

log = logging.getLogger(__name__)

__all__ = ["correlated_effects", "decentre_correlated", "log_correlated_fallback"]


def correlated_effects(
    term: CorrelatedTerm, size: int, sds: Sequence[jax.Array], priors: Priors, weights: Sequence[jax.Array] | None = None
) -> jax.Array:
    """Sample a correlated term's sites, add ``decov``'s factor, and return its effects (levels, J).

    Parameters
    ----------
    term : CorrelatedTerm
    size : int
        The factor's number of levels.
    sds : sequence of arrays ()
        The term's coefficients' sds, already sampled from the gamma prior.
    priors : Priors
    weights : sequence of arrays (levels,), optional
        Partial centring weights ``c`` of each coefficient's levels
        (:func:`~mrp_numpyro.model.centring.centring_weights`), applied to ``b_j = m_j e_j``,
        the part of coefficient ``j`` that the ones before it do not predict (``m_j = sd_j
        L_jj``): ``u_j ~ Normal(0, m_j^c)``, ``e_j = m_j^-c u_j``. None: non-centred,
        ``e ~ Normal(0, 1)``. The effects are ``sd * (e L')`` either way.
    """
    sd = jnp.stack(list(sds), axis=-1)  # (J,)
    if priors.covariance == "decov":
        gamma = dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale).log_prob(sd).sum(-1)
        decov = decov_sd_log_density(sd, priors.sd_shape, priors.sd_scale, priors.concentration)
        numpyro.factor(SITES.covariance_prior(term.name), decov - gamma)
    chol = numpyro.sample(SITES.cholesky(term.name), dist.LKJCholesky(term.size, priors.regularization))
    if weights is None:
        e = numpyro.sample(SITES.standard(term.name), dist.Normal(0.0, 1.0).expand([size, term.size]).to_event(2))
        return sd * (e @ chol.T)
    # Centred in the coordinates where the prior is independent: a = diag(sd) L e, and
    # b_j = m_j e_j ~ Normal(0, m_j) with m_j = sd_j L_jj, as b_j = m_j^(1 - c) u_j.
    c = jnp.stack(list(weights), axis=-1)  # (levels, J)
    m = sd * jnp.diagonal(chol)
    u = numpyro.sample(SITES.centred(term.name), dist.Normal(0.0, m**c).to_event(2))
    return sd * ((u * m ** (-c)) @ chol.T)


def decentre_correlated(
    u: np.ndarray, out: dict[str, np.ndarray], term: CorrelatedTerm, layout: ParameterLayout, weights: Sequence[np.ndarray]
) -> None:
    """Put a partially centred term's standard normals ``e_<t> = m^-c u`` into ``out`` (:func:`correlated_effects`).

    ``u`` (draws, levels, J) are the draws of ``u_<t>`` and ``c`` (draws, levels) the weights at
    each draw's sds; :meth:`~mrp_numpyro.design.layout.ParameterLayout.standardise` then maps
    ``e_<t>`` and ``L_<t>`` to the groups' ``z`` and ``cor_<t>``, as for the non-centred model.
    """
    chol = np.asarray(out[SITES.cholesky(term.name)], np.float64)  # (draws, J, J)
    sd = np.stack([np.asarray(out[SITES.sd(layout.groups[g].name)], np.float64) for g in term.slots], axis=-1)
    m = sd * np.diagonal(chol, axis1=-2, axis2=-1)  # (draws, J)
    c = np.stack([np.asarray(weights[g]) for g in term.slots], axis=-1)  # (draws, levels, J)
    out[SITES.standard(term.name)] = np.asarray(u, np.float64) * m[:, None, :] ** -c


def log_correlated_fallback(name: str, terms: Sequence[CorrelatedTerm]) -> None:
    """Say in the log that coordinates ``name`` give way to the non-centred ones for correlated terms."""
    log.warning(
        "%s coordinates are written for independent varying effects; the correlated term(s) %s are fitted "
        "in non-centred coordinates",
        name,
        ", ".join(f"{t.name} ({' + '.join(t.coefficients)})" for t in terms),
    )
