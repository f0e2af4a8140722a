"""Partially centred coordinates: each level centred as far as its data allow (NUTS's default).

Each level's intercept is ``sd_g^(1 - c) * u`` with ``u ~ Normal(0, sd_g^c)``, the weight
``c`` between 0 (non-centred) and 1 (centred) growing with what the data say about the level
against the prior (:mod:`mrp_numpyro.model.centring`). The weights need a guess of every
group's sd; :class:`PartiallyCentred` takes it as ``sd_guess``, or runs ``pilot`` (a quick
fit, :func:`mrp_numpyro.inference.pilot.pilot_sd` in the config) on the non-centred model first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

import jax
import numpy as np
from jax.typing import DTypeLike

from ..design.cells import Design
from ..design.layout import SITES, ParameterLayout
from ..design.priors import Priors
from .base import MRPModel, Parameterization, register_parameterization
from .blocks import GRID_MAX_RATIO
from .centring import SD_CAUTION, Centring, centring_for, centring_weights
from .correlated import decentre_correlated
from .noncentred import NonCentred

log = logging.getLogger(__name__)

__all__ = ["PartiallyCentred"]


def _decentre(
    draws: Mapping[str, np.ndarray], rng_key: jax.Array, *, layout: ParameterLayout, centring: Centring
) -> dict[str, np.ndarray]:
    """``z = a / sd = sd^-c u`` for the partially centred model, ``c`` at each draw's sds.

    A centred structured group has ``a = columns @ (sigma^(1 - c) u)`` (plus ``rw2``'s
    trend); a correlated term's ``u`` is mapped to its standard normals ``e``
    (:func:`~mrp_numpyro.model.correlated.decentre_correlated`), and they, like the
    non-centred ``ar1`` and ``bym2`` groups, to their ``z`` by
    :meth:`~mrp_numpyro.design.layout.ParameterLayout.standardise`.
    """
    group_names = layout.group_names
    centred = {SITES.centred(name) for name in group_names}
    out = {k: v for k, v in draws.items() if k not in centred}
    sds = [np.asarray(draws[SITES.sd(name)], np.float64) for name in group_names]
    parts = centring.parts or (None,) * len(group_names)
    weights = centring_weights(sds, centring)
    for term in layout.correlated:
        decentre_correlated(draws[SITES.centred(term.name)], out, term, layout, weights)
    joint = layout.correlated_slots()
    for g, (slot, sd, c, part) in enumerate(zip(layout.groups, sds, weights, parts, strict=True)):
        u = None if g in joint else draws.get(SITES.centred(slot.name))
        if u is None:  # ar1 and bym2, sampled non-centred; correlated terms, mapped to e above
            continue
        u = np.asarray(u, np.float64)
        if part is None:  # sd (draws,) or, for a categorical outcome, (draws, K - 1)
            out[SITES.z(slot.name)] = u * sd[..., None] ** -c
            continue
        rho = draws.get(SITES.rho(slot.name))
        sigma = part.sigma(sd, None if rho is None else np.asarray(rho, np.float64))
        a = (sigma ** (1.0 - c) * u) @ part.columns.T
        slope = out.pop(SITES.slope(slot.name), None)
        if slope is not None:
            assert slot.prior.trend is not None  # only rw2 has a slope
            a = a + np.asarray(slope, np.float64)[:, None] * slot.prior.trend
        out[SITES.z(slot.name)] = a / sd[:, None]
    return layout.standardise(out)


@register_parameterization
@dataclass(frozen=True)
class PartiallyCentred(Parameterization):
    """Every level centred as far as its data allow, from a guess of each group's sd.

    Parameters
    ----------
    sd_guess : mapping of group name to float, optional
        Each group's sd (a pilot fit's posterior median).
    pilot : callable, optional
        ``pilot(model, rng_key) -> sd_guess``, run on the non-centred model when no
        ``sd_guess`` is given (:func:`mrp_numpyro.inference.pilot.pilot_sd`).
    caution : float
        The guesses are divided by this (:data:`~mrp_numpyro.model.centring.SD_CAUTION`).
    """

    name = "partial"

    sd_guess: Mapping[str, float] | None = None
    pilot: Callable | None = None
    caution: float = SD_CAUTION

    def build(
        self,
        design: Design,
        priors: Priors,
        *,
        dtype: DTypeLike = np.float32,
        max_grid_ratio: float = GRID_MAX_RATIO,
        rng_key: jax.Array | None = None,
    ) -> MRPModel:
        """The partially centred model of ``design``, after the pilot fit when no ``sd_guess`` is given."""
        # The same function and arrays as the non-centred model, which the pilot fits; the
        # centring weights are one more static argument of the function.
        noncentred = NonCentred().build(design, priors, dtype=dtype, max_grid_ratio=max_grid_ratio)
        if not design.group_names:
            log.info("partial centring: the formula has no varying intercepts, so the model is non-centred")
            return noncentred
        sd_guess = self.sd_guess
        if sd_guess is None:
            if self.pilot is None or rng_key is None:
                raise ValueError("partial centring needs sd_guess, the group sds, or a pilot fit and an rng_key to estimate them")
            sd_guess = self.pilot(noncentred, rng_key)
        centring = centring_for(design, sd_guess, self.caution)
        layout = design.layout
        parts = centring.parts or (None,) * len(layout.groups)
        kept = [g.name for g, part in zip(layout.groups, parts, strict=True) if g.prior.structured and part is None]
        if kept:
            log.info("partial centring: %s keep their ar1 or bym2 priors non-centred", ", ".join(kept))
        joint = layout.correlated_slots()
        latent = layout.fixed_sites
        for g, (slot, part) in enumerate(zip(layout.groups, parts, strict=True)):
            if g in joint:
                latent += (SITES.sd(slot.name),)
                continue
            if slot.prior.structured and part is None:
                latent += (SITES.sd(slot.name), *slot.sites)
                continue
            latent += (SITES.sd(slot.name),)
            latent += (SITES.rho(slot.name),) if slot.prior.has_rho else ()
            latent += (SITES.centred(slot.name),)
            latent += (SITES.slope(slot.name),) if slot.prior.trend is not None else ()
        latent += tuple(s for t in layout.correlated for s in (SITES.cholesky(t.name), SITES.centred(t.name)))
        effects = partial(_decentre, layout=layout, centring=centring)
        return MRPModel(
            design,
            priors,
            partial(noncentred.fn, centring=centring),
            noncentred.kwargs,
            latent_sites=latent,
            effects=effects,
            parameterization=self.name,
        )
