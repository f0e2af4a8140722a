"""The coordinates ``theta'`` in which every group's prior is independent, or AR(1) in blocks.

The identified model (:mod:`mrp_numpyro.model.identified`) needs the prior of the regression
effects as ``theta = T theta'`` with ``theta' ~ Normal(m0, S S')`` and ``S`` known given the
sds: diagonal for the intercept, the coefficients and every independent or fixed-map group
(:mod:`mrp_numpyro.design.structure`), and ``sd L(rho)`` on the block of a group under an
AR(1) prior, ``L`` the lower-triangular factor of its correlation ``rho^|i - j|``:

- an ``iid`` group: its levels, with prior sd ``sd``;
- ``rw1``, ``icar``: the columns of the map ``B``, sd ``sd``; ``rw2`` also its trend, sd 1;
- ``bym2``: ``B`` with sd ``sd sqrt(rho)`` beside the identity with sd ``sd sqrt(1 - rho)``;
- ``ar1``: its levels, sd ``sd`` and correlation ``rho^|i - j|`` (the AR(1) precision is
  tridiagonal, which :class:`PriorPrecision` uses).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..design.layout import ParameterLayout

__all__ = [
    "PriorCoordinates",
    "PriorPrecision",
    "prior_coordinates",
    "prior_precision",
    "column_scales",
    "ar1_factor",
    "prior_factor",
]


@dataclass(frozen=True)
class PriorCoordinates:
    """``theta = T theta'`` and the prior scales of ``theta'``.

    Attributes
    ----------
    T : array (P, P')
        The identity where no group has a structured prior.
    scale_index : int array (P',)
        Which scale each element has (:func:`column_scales`): ``3 g`` for group ``g``'s sd,
        ``3 g + 1`` and ``3 g + 2`` for BYM2's ``sd sqrt(rho)`` and ``sd sqrt(1 - rho)``,
        ``3 G`` for a fixed one (``base_sd``).
    base_sd : array (P',)
        The fixed prior sd of every element with scale index ``3 G``, 1 elsewhere.
    ar1 : tuple of (str, int, int)
        Each AR(1) group's name and the ``start, stop`` of its block in ``theta'``.
    """

    T: np.ndarray
    scale_index: np.ndarray
    base_sd: np.ndarray
    ar1: tuple[tuple[str, int, int], ...] = ()


def prior_coordinates(layout: ParameterLayout, fixed_sd: np.ndarray) -> PriorCoordinates:
    """The :class:`PriorCoordinates` of a layout, with the intercept's and coefficients' prior sds ``fixed_sd``."""
    G = len(layout.groups)
    blocks: list[np.ndarray] = [np.vstack([np.eye(layout.n_fixed), np.zeros((layout.size - layout.n_fixed, layout.n_fixed))])]
    index: list[np.ndarray] = [np.full(layout.n_fixed, 3 * G)]
    base: list[np.ndarray] = [np.asarray(fixed_sd, np.float64)]
    ar1: list[tuple[str, int, int]] = []
    column = layout.n_fixed
    for g, slot in enumerate(layout.groups):
        prior = slot.prior
        parts: list[tuple[np.ndarray, int, float]] = []  # (columns, scale index, base sd)
        if prior.basis is None:  # iid and ar1: the levels themselves
            parts.append((np.eye(slot.size), 3 * g, 1.0))
            if prior.kind == "ar1":
                ar1.append((slot.name, column, column + slot.size))
        else:
            parts.append((prior.basis, 3 * g + (1 if prior.kind == "bym2" else 0), 1.0))
            if prior.kind == "bym2":
                parts.append((np.eye(slot.size), 3 * g + 2, 1.0))
            if prior.trend is not None:
                parts.append((prior.trend[:, None], 3 * G, 1.0))
        for cols, idx, sd in parts:
            full = np.zeros((layout.size, cols.shape[1]))
            full[slot.start : slot.stop] = cols
            blocks.append(full)
            index.append(np.full(cols.shape[1], idx))
            base.append(np.full(cols.shape[1], sd))
            column += cols.shape[1]
    return PriorCoordinates(np.hstack(blocks), np.concatenate(index), np.concatenate(base), tuple(ar1))


def column_scales(sds: Any, rhos: Any) -> Any:
    """The scales that ``PriorCoordinates.scale_index`` picks from: per group ``sd, sd sqrt(rho), sd sqrt(1 - rho)``, then 1.

    ``sds`` and ``rhos`` are (..., G): JAX arrays inside a model, NumPy arrays of draws.
    """
    xp = jnp if isinstance(sds, jax.Array) or isinstance(rhos, jax.Array) else np
    per_group = xp.stack([sds, sds * xp.sqrt(rhos), sds * xp.sqrt(1.0 - rhos)], axis=-1)
    per_group = per_group.reshape(per_group.shape[:-2] + (-1,))
    return xp.concatenate([per_group, xp.ones(per_group.shape[:-1] + (1,), per_group.dtype)], axis=-1)


def ar1_factor(rho: jax.Array, size: int) -> jax.Array:
    """``L`` (size, size) with ``L L' = rho^|i - j|``: ``L[k, j] = rho^(k - j)``, times ``sqrt(1 - rho^2)`` for ``j > 0``."""
    ones = jnp.ones(1, jnp.result_type(rho, float))
    powers = jnp.cumprod(jnp.concatenate([ones, jnp.full(size - 1, rho)]))
    innovation = jnp.concatenate([ones, jnp.full(size - 1, jnp.sqrt(1.0 - rho**2))])
    lag = np.subtract.outer(np.arange(size), np.arange(size))
    return jnp.where(lag >= 0, powers[np.clip(lag, 0, None)], 0.0) * innovation[None, :]


def prior_factor(std: jax.Array, R: jax.Array, ar1: tuple[tuple[str, int, int], ...], rhos: Mapping[str, jax.Array]) -> jax.Array:
    """``S' R`` for the prior ``theta' ~ Normal(m0, S S')``: ``Cov(R' theta') = (S' R)' (S' R)``.

    ``S`` is ``diag(std)`` with each AR(1) block ``sd L(rho)``, so that block of ``S' R`` is
    ``L(rho)' (sd R_block)``.
    """
    out = std[:, None] * R
    for name, start, stop in ar1:
        out = out.at[start:stop].set(ar1_factor(rhos[name], stop - start).T @ out[start:stop])
    return out


@dataclass(frozen=True)
class PriorPrecision:
    """The prior precision of ``theta'`` per draw: a diagonal, and each AR(1) block's band beside it.

    Attributes
    ----------
    diagonal : array (draws, P')
    bands : tuple of (array (draws,), int, int)
        Each AR(1) block's off-diagonal value and its ``start, stop``: the value sits at
        every ``(k, k + 1)`` and ``(k + 1, k)`` of the block.
    """

    diagonal: np.ndarray
    bands: tuple[tuple[np.ndarray, int, int], ...]

    def times(self, w: np.ndarray) -> np.ndarray:
        """``precision @ w`` for a vector ``w`` (draws, P') per draw."""
        out = self.diagonal * w
        for value, start, stop in self.bands:
            out[:, start : stop - 1] += value[:, None] * w[:, start + 1 : stop]
            out[:, start + 1 : stop] += value[:, None] * w[:, start : stop - 1]
        return out

    def project(self, N: np.ndarray) -> np.ndarray:
        """``N' precision N`` (draws, k, k) for a basis ``N`` (P', k)."""
        # The diagonal takes few distinct columns (one per group sd and fixed prior sd), so the
        # sum runs over those: draws x columns x k^2 would be 1e11 flops on the deep model.
        columns, which = np.unique(self.diagonal, axis=1, return_inverse=True)
        which = np.asarray(which).ravel()
        grams = np.zeros((columns.shape[1], N.shape[1], N.shape[1]))
        for u in range(columns.shape[1]):
            rows = N[which == u]
            grams[u] = rows.T @ rows
        out = np.tensordot(columns, grams, axes=1)
        for value, start, stop in self.bands:
            pair = N[start : stop - 1].T @ N[start + 1 : stop]
            out += value[:, None, None] * (pair + pair.T)
        return out


def prior_precision(
    coords: PriorCoordinates, variances: np.ndarray, sd: Mapping[str, np.ndarray], rho: Mapping[str, np.ndarray]
) -> PriorPrecision:
    """The :class:`PriorPrecision` of draws of the marginal variances (``sd^2`` on an AR(1) block), sds and rhos."""
    diagonal = 1.0 / variances
    bands = []
    for name, start, stop in coords.ar1:
        r, s2 = np.asarray(rho[name], np.float64), np.asarray(sd[name], np.float64) ** 2
        # The AR(1) correlation's inverse: 1, 1 + rho^2, ..., 1 + rho^2, 1 on the diagonal and
        # -rho beside it, all over (1 - rho^2); the block's over sd^2 as well.
        scale = 1.0 / ((1.0 - r**2) * s2)
        diagonal[:, start:stop] = scale[:, None]
        diagonal[:, start + 1 : stop - 1] *= (1.0 + r**2)[:, None]
        bands.append((-r * scale, start, stop))
    return PriorPrecision(diagonal, tuple(bands))
