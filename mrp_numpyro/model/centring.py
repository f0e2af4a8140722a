"""Partial centring of the varying intercepts, level by level, from how much the data say.

For level ``j`` of group ``g`` the data's precision about its intercept ``a_j`` is about
``I_j`` and the prior's is ``1 / sd_g^2``. Their ratio ``kappa_j = I_j sd_g^2`` says which
coordinates suit the level. When the data dominate (``kappa >> 1``: a state with thousands
of respondents, an ethnic group with tens of thousands) the centred form
``a_j ~ Normal(0, sd_g)`` has no funnel, while the non-centred ``a_j = sd_g z_j`` bends into
one (``z_j = a_j / sd_g`` moves with ``sd_g`` while ``a_j`` is pinned); when the prior
dominates (the small interactions) it is the other way round. The partially centred form

    u_j ~ Normal(0, sd_g^c_j),   a_j = sd_g^(1 - c_j) u_j,   c_j = kappa_j / (1 + kappa_j)

(0 non-centred, 1 centred) uses the weight that makes the location of a normal-normal model
independent of its parent (Papaspiliopoulos, Roberts and Skold 2007, "A general framework
for the parametrization of hierarchical models", Statistical Science 22(1)). ``sd_g`` in
``kappa`` is a pilot fit's estimate divided by ``SD_CAUTION``.

**What an interaction can absorb.** An interaction nested in a main effect (``male:eth``
in ``eth``: each of its levels lies in one ethnicity) duplicates it: raising ``eth = k``
and lowering every ``male:eth`` level inside ``k`` by as much leaves the likelihood
unchanged. The data pin ``a_j`` only as far as the interaction's prior keeps it from taking
the effect over. Through nested level ``i`` (data precision ``t_i``) the data see ``a_j``
with variance ``1/t_i + sd_h^2``, so

    I_j = min over groups h nested in g of  sum over i in j of  1 / (1/t_i + sd_h^2)

and ``I_j = t_j`` for a group with nothing nested in it; ``t_j = n_j p (1 - p)`` for the
level's ``n_j`` respondents and the survey's share ``p`` of "1" answers. ``sd_h`` here is
the interaction's *current* sd, taken in full (dividing it by ``SD_CAUTION`` as the pilot
sds are would err towards centring the main effect), so the weights are recomputed at every
evaluation of the log density: where the interaction's sd is large the main effect is left
to its prior and comes out non-centred, where it is small the main effect is centred. On
the 2018 CCES the divergent transitions of weights fixed in advance sat in that corner
(small ethnicity sd, large male:eth sd; BENCHMARKS.md). Given the sds, each ``u_j``'s
density is still exactly the transformed ``Normal(0, sd_g)`` (the change of variables is
triangular: the sds, then each ``u_j`` given them), so the posterior is the same whatever
the weights. A group's own sd is kept at the pilot's value in ``kappa``: weights that also
followed the group's own current sd had no divergences either but mixed the interactions'
sds worse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ..design.cells import Design
from ..design.structure import GroupPrior

__all__ = ["Centring", "StructuredParts", "structured_parts", "centring_for", "centring_weights", "SD_CAUTION"]

# kappa uses the pilot's sd divided by this. A group's sd is uncertain (with a handful of
# levels its posterior spans a factor of ten), and the two errors are not alike: a level
# centred while the data do not pin it sits in a funnel (divergent transitions), one left
# non-centred while they do only costs some mixing. On the full CCES the factor 3 gave
# fewer divergences than the sd itself in exploratory runs (BENCHMARKS.md).
#: The pilot sds are divided by this before they set the weights.
SD_CAUTION = 3.0


@dataclass(frozen=True)
class StructuredParts:
    """A structured group in the coordinates where its prior is independent, which are centred instead of its levels.

    The group's intercepts are ``columns @ b`` with independent ``b_k ~ Normal(0, sigma_k)``:
    ``sigma_k = sd`` for the columns of a fixed map (``rw1``, ``rw2``, ``icar``; ``sd
    sqrt(rho)`` and ``sd sqrt(1 - rho)`` would be BYM2's spatial and independent parts, which
    are not centred, see :func:`structured_parts`; :mod:`mrp_numpyro.design.structure`).
    ``rw2``'s trend keeps its own coefficient.

    Attributes
    ----------
    columns : array (levels, M)
    kind : int array (M,)
        0 for ``sd``, 1 for ``sd sqrt(rho)``, 2 for ``sd sqrt(1 - rho)``.
    """

    columns: np.ndarray
    kind: np.ndarray

    def sigma(self, sd: Any, rho: Any = None) -> Any:
        """Every column's prior sd at the group's sd (and BYM2's rho), NumPy or JAX, any leading batch shape."""
        xp = jnp if isinstance(sd, jax.Array) or isinstance(rho, jax.Array) else np
        sd = xp.asarray(sd)[..., None]
        if rho is None:
            return sd * xp.ones(self.kind.shape)
        rho = xp.asarray(rho)[..., None]
        factor = xp.where(self.kind == 0, 1.0, xp.where(self.kind == 1, xp.sqrt(rho), xp.sqrt(1.0 - rho)))
        return sd * factor


def structured_parts(prior: GroupPrior, levels: int) -> StructuredParts | None:
    """The :class:`StructuredParts` of a structured prior that is centred; None for ``iid``, ``ar1`` and ``bym2``.

    ``rw1``, ``rw2`` and ``icar`` are centred in the columns of their map. ``ar1`` and ``bym2``
    stay non-centred: on the CCES, centring ``ar1``'s innovations (which move with ``rho``
    against levels the data pin) gave 702 divergent transitions in 4,000 draws against 21
    non-centred, and centring both of BYM2's parts (which the data see only through their
    sum) left ``rho`` mixing worse, bulk ESS 186 against 409 (BENCHMARKS.md).
    """
    if prior.basis is None or prior.kind == "bym2":
        return None
    return StructuredParts(prior.basis, np.zeros(prior.basis.shape[1], int))


@dataclass(frozen=True)
class Centring:
    """What the centring weights need besides the current sds.

    Attributes
    ----------
    info : tuple of arrays (levels_g,)
        Data precision ``t_j`` of every level of every group; (K - 1, levels_g) for a
        categorical outcome, one row per non-baseline category.
    nested : tuple of (g, h, array (levels_h, levels_g))
        Group ``h`` nested in group ``g``: the 0/1 matrix maps each occupied level of ``h``
        to the level of ``g`` it lies in.
    scale : tuple of float, or of arrays (K - 1, 1) for a categorical outcome
        Every group's pilot sd divided by the caution factor (``SD_CAUTION``).
    parts : tuple of StructuredParts or None
        Per group: a structured prior centred in its independent coordinates
        (:class:`StructuredParts`); None for an independent group, whose levels are centred,
        and for ``ar1`` and ``bym2``, which stay non-centred. Empty: every group independent.
    """

    info: tuple[np.ndarray, ...]
    nested: tuple[tuple[int, int, np.ndarray], ...]
    scale: tuple[Any, ...]
    parts: tuple[StructuredParts | None, ...] = ()


def centring_for(design: Design, sd: Mapping[str, float], caution: float = SD_CAUTION) -> Centring:
    """The :class:`Centring` of a design: each level's data precision, the nestings, the scales.

    Group ``h`` is nested in ``g`` when it has more levels and all survey cells of each
    occupied level of ``h`` share one level of ``g``.

    Parameters
    ----------
    design : Design
    sd : mapping of group name to float
        A guess of each group's standard deviation (a pilot fit's posterior median).
    caution : float
        The guesses are divided by this (``SD_CAUTION``).
    """
    missing = [g for g in design.group_names if g not in sd]
    if missing:
        raise ValueError(f"centring: no standard deviation given for group(s) {missing}")
    for name in design.group_names:
        value = np.asarray(sd[name], np.float64)
        if not (np.all(np.isfinite(value)) and np.all(value > 0)):
            raise ValueError(f"centring: the standard deviation of {name!r} must be positive, got {sd[name]!r}")
    if not caution > 0:
        raise ValueError(f"centring: caution must be positive, got {caution!r}")
    s = design.survey
    assert s.trials is not None  # the survey's cells have counts
    if design.categorical:
        # Each non-baseline category's share p_k: its linear predictor's Fisher information
        # per respondent is p_k (1 - p_k), the diagonal of the multinomial's.
        assert s.counts is not None
        shares = s.counts.sum(0) / s.trials.sum()
        p = np.delete(shares, design.baseline)[:, None]  # (K - 1, 1)
    else:
        assert s.successes is not None
        p = np.asarray(float(s.successes.sum()) / float(s.trials.sum()))
    # A slope's effect enters a cell times the cell's value: its information has value^2.
    value2 = np.ones(s.group_index.shape) if s.group_value is None else s.group_value**2
    info = tuple(
        np.bincount(s.group_index[:, g], weights=s.trials * value2[:, g], minlength=size) * p * (1.0 - p)
        for g, size in enumerate(design.group_sizes)
    )
    slopes = [slot.slope for slot in design.layout.groups]
    nested = []
    for g, size_g in enumerate(design.group_sizes):
        for h, size_h in enumerate(design.group_sizes):
            # Only effects on the same column absorb one another (intercepts, or one slope's).
            if size_h <= size_g or slopes[h] != slopes[g]:
                continue
            pairs = np.unique(s.group_index[:, [h, g]], axis=0)
            if len(np.unique(pairs[:, 0])) != len(pairs):  # some level of h spans two of g
                continue
            member = np.zeros((size_h, size_g))
            member[pairs[:, 0], pairs[:, 1]] = 1.0
            nested.append((g, h, member))
    # A categorical outcome's scales are (K - 1, 1): one per category, broadcast over the levels.
    scale = tuple(
        np.asarray(sd[name], np.float64)[:, None] / caution if design.categorical else float(sd[name]) / caution
        for name in design.group_names
    )
    parts = tuple(structured_parts(slot.prior, slot.size) for slot in design.layout.groups)
    return Centring(info, tuple(nested), scale, parts if any(p is not None for p in parts) else ())


def centring_weights(sds: Sequence, centring: Centring) -> tuple:
    """Centring weight ``c_j`` in [0, 1) of every level of every group, at the current sds.

    Parameters
    ----------
    sds : sequence of arrays (...,)
        Every group's current sd: JAX arrays inside a model, NumPy arrays for draws, any
        leading batch shape. Only the sds of groups nested in others are used.
    centring : Centring

    Returns
    -------
    tuple of arrays (..., levels_g) or (levels_g,), one per group, of the same kind as ``sds``;
    for a group with :class:`StructuredParts`, (..., M) or (M,), one per column: the data's
    precision about column ``k`` is ``sum_j columns[j, k]^2 I_j`` and its prior sd the pilot's
    (times ``sqrt(1/2)`` for BYM2's two parts, rho's prior mean).
    """
    xp = jnp if any(isinstance(sd, jax.Array) for sd in sds) else np
    out = []
    for g, t in enumerate(centring.info):
        info = xp.asarray(t)
        for gg, h, member in centring.nested:
            if gg == g:
                # 1 / (1/t + s^2) written as t / (1 + t s^2): 0 for unoccupied levels.
                s2 = sds[h][..., None] ** 2
                t_h = centring.info[h]
                info = xp.minimum(info, (t_h / (1.0 + t_h * s2)) @ member)
        scale2: Any = centring.scale[g] ** 2
        parts = centring.parts[g] if centring.parts else None
        if parts is not None:
            info = info @ parts.columns**2
            scale2 = scale2 * np.where(parts.kind == 0, 1.0, 0.5)
        kappa = info * scale2
        out.append(kappa / (1.0 + kappa))
    return tuple(out)
