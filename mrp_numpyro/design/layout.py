"""The one layout of the model's regression effects, and the names of its sample sites.

Every parameterisation, the identified basis, the blocks of the linear predictor, the
poststratifier and the outputs see the regression effects as one vector

    theta = (Intercept, beta_1, ..., beta_p, a_1, ..., a_G),

``a_g = sd_g * z_g`` the varying effects of group ``g``, and the survey or table cells'
linear predictor as ``eta = D @ theta`` with ``D`` (:meth:`ParameterLayout.design_matrix`)
a column of ones, the centred predictors and the one-hot levels of every group. A "group"
here is one varying coefficient over a factor: ``(1 + male | state)`` has two, the
intercepts ``state`` and the slopes ``state__male``, whose columns of ``D`` hold the cell's
``male`` at its state's level (``GroupSlot.slope``); a term written with ``|`` makes
its groups' standardised effects correlated (:class:`CorrelatedTerm`).
:class:`ParameterLayout` is that order written down once: names, slices, and packing
draws of the shared parameters into ``theta`` and back. :data:`~mrp_numpyro.design.sites.SITES`
(:mod:`mrp_numpyro.design.sites`, imported here too) names the sample sites, so no other
module spells a prefix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import DTypeLike

from .sites import SITES, SiteNames
from .structure import IID, GroupPrior

__all__ = ["SITES", "SiteNames", "GroupSlot", "CorrelatedTerm", "ParameterLayout", "pack"]

# NumPy draws or, inside a model, JAX arrays.
_Array = TypeVar("_Array", np.ndarray, jax.Array)


@dataclass(frozen=True)
class GroupSlot:
    """One varying coefficient's place in ``theta``, and the prior of its standardised effects.

    Attributes
    ----------
    name : str
        ``state`` for intercepts, ``state__male`` for slopes.
    levels : tuple of str
        The factor's level labels.
    start : int
        The first place in ``theta``.
    prior : GroupPrior
        Of the standardised intercepts (``iid`` for slopes).
    slope : str or None
        The numeric column whose coefficient varies; None for varying intercepts.
    term : str or None
        The factor (``state``, ``male:eth``) when it is not ``name``: a slope's.
    """

    name: str
    levels: tuple[str, ...]
    start: int
    prior: GroupPrior = IID
    slope: str | None = None
    term: str | None = None

    @property
    def factor(self) -> str:
        """The name of the factor the effects vary over (its levels' dimension in the outputs)."""
        return self.term or self.name

    @property
    def sites(self) -> tuple[str, ...]:
        """The sites a non-centred model samples for the group's standardised intercepts.

        ``z_<g>`` itself under ``iid``; under a structured prior its standard normals
        ``e_<g>``, and ``rho_<g>`` or ``slope_<g>`` where the prior has them.
        """
        if not self.prior.structured:
            return (SITES.z(self.name),)
        extra: tuple[str, ...] = (SITES.rho(self.name),) if self.prior.has_rho else ()
        extra += (SITES.slope(self.name),) if self.prior.trend is not None else ()
        return (SITES.standard(self.name),) + extra

    @property
    def size(self) -> int:
        """Number of levels."""
        return len(self.levels)

    @property
    def stop(self) -> int:
        """One past the group's last place in ``theta``."""
        return self.start + self.size


@dataclass(frozen=True)
class CorrelatedTerm:
    """A term whose varying coefficients are correlated, ``(1 + male | state)``.

    Attributes
    ----------
    name : str
        The factor (``state``).
    slots : tuple of int
        The positions in ``ParameterLayout.groups`` of its coefficients' groups, in formula order.
    coefficients : tuple of str
        ``Intercept`` and the slopes' columns, labels of the correlation matrix's rows.
    """

    name: str
    slots: tuple[int, ...]
    coefficients: tuple[str, ...]

    @property
    def size(self) -> int:
        """``J``, the number of correlated coefficients."""
        return len(self.slots)


def _correlation_matrix(chol: np.ndarray) -> np.ndarray:
    """``L L'`` with its diagonal exactly 1 (rounding would leave it a hair off, and not constant)."""
    cor = chol @ np.swapaxes(chol, -1, -2)
    J = cor.shape[-1]
    cor[..., np.arange(J), np.arange(J)] = 1.0
    return cor


def _xp(*arrays: object) -> ModuleType:
    """``jax.numpy`` when any argument is a JAX array or tracer (inside a model), else NumPy."""
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def pack(intercept: _Array, beta: _Array | None, effects: Sequence[_Array]) -> _Array:
    """``theta = (Intercept, beta, a_1, ..., a_G)`` from its pieces, NumPy or JAX.

    The one place that fixes the order of :class:`ParameterLayout`; the model functions
    call it with JAX arrays, :meth:`ParameterLayout.pack_draws` with NumPy draws.

    Parameters
    ----------
    intercept : array (...,)
    beta : array (..., p), or None without coefficients
    effects : sequence of arrays (..., levels_g)
        Every group's varying intercepts ``a_g``, in formula order.

    Returns
    -------
    array (..., P)
    """
    xp = _xp(intercept, beta, *effects)
    parts = [xp.reshape(intercept, np.shape(intercept) + (1,))]
    if beta is not None:
        parts.append(beta)
    parts.extend(effects)
    return xp.concatenate(parts, axis=-1)


@dataclass(frozen=True)
class ParameterLayout:
    """Where every regression effect sits in ``theta`` and what its sites are called.

    Attributes
    ----------
    fixed_names : tuple of str
        Names of the population-level coefficients ``beta`` (``male``, ``region[South]``).
    groups : tuple of GroupSlot
        The varying coefficients in formula order, each with its level labels and offset.
    correlated : tuple of CorrelatedTerm
        The terms whose coefficients are correlated.
    """

    fixed_names: tuple[str, ...]
    groups: tuple[GroupSlot, ...]
    correlated: tuple[CorrelatedTerm, ...] = ()

    @classmethod
    def build(
        cls,
        fixed_names: Sequence[str],
        groups: Iterable[tuple],
        correlated: Iterable[CorrelatedTerm] = (),
    ) -> ParameterLayout:
        """The layout of an intercept, ``fixed_names`` and every group.

        Parameters
        ----------
        fixed_names : sequence of str
        groups : iterable of tuples
            ``(name, levels)``, ``(name, levels, prior)`` or ``(name, levels, prior, slope, term)``
            of every group (the fields of :class:`GroupSlot` after ``start``).
        correlated : iterable of CorrelatedTerm
        """
        slots, start = [], 1 + len(fixed_names)
        for name, levels, *rest in groups:
            slots.append(GroupSlot(name, tuple(levels), start, *rest))
            start += len(levels)
        return cls(tuple(fixed_names), tuple(slots), tuple(correlated))

    # -- sizes and slices -------------------------------------------------------------

    @property
    def n_coefficients(self) -> int:
        """``p``, the length of ``beta``."""
        return len(self.fixed_names)

    @property
    def n_fixed(self) -> int:
        """The intercept and the coefficients: ``1 + p``."""
        return 1 + self.n_coefficients

    @property
    def size(self) -> int:
        """``P``, the length of ``theta``."""
        return self.groups[-1].stop if self.groups else self.n_fixed

    @property
    def group_names(self) -> tuple[str, ...]:
        """Names of the varying intercepts, in formula order."""
        return tuple(g.name for g in self.groups)

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Number of levels of every varying intercept."""
        return tuple(g.size for g in self.groups)

    @property
    def group_levels(self) -> tuple[tuple[str, ...], ...]:
        """Level labels of every varying intercept."""
        return tuple(g.levels for g in self.groups)

    @property
    def group_slices(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` of every group's intercepts in ``theta``."""
        return tuple((g.start, g.stop) for g in self.groups)

    def theta_group(self) -> np.ndarray:
        """The group of every element of ``theta``: -1 for the intercept and coefficients."""
        out = np.full(self.size, -1)
        for g, slot in enumerate(self.groups):
            out[slot.start : slot.stop] = g
        return out

    def correlated_slots(self) -> frozenset[int]:
        """The positions of the groups that belong to a correlated term."""
        return frozenset(i for term in self.correlated for i in term.slots)

    def group(self, name: str) -> GroupSlot:
        """The slot of the group called ``name``."""
        for slot in self.groups:
            if slot.name == name:
                return slot
        raise KeyError(f"no varying intercept {name!r}; the model has {list(self.group_names)}")

    # -- site names ---------------------------------------------------------------------

    @property
    def structured(self) -> tuple[GroupSlot, ...]:
        """The groups with a structured prior."""
        return tuple(g for g in self.groups if g.prior.structured)

    @property
    def noncentred_sites(self) -> tuple[str, ...]:
        """Every site of the non-centred model.

        :attr:`fixed_sites`, then each group's ``sd_<g>`` and :attr:`GroupSlot.sites`, the
        groups of a correlated term its ``sd_<g>`` alone, then each correlated term's
        :attr:`correlated_sites`.
        """
        joint = self.correlated_slots()
        own = tuple(s for i, g in enumerate(self.groups) for s in (SITES.sd(g.name), *(() if i in joint else g.sites)))
        return self.fixed_sites + own + self.correlated_sites

    @property
    def correlated_sites(self) -> tuple[str, ...]:
        """Each correlated term's Cholesky factor ``L_<t>`` and standard normals ``e_<t>`` (levels, J)."""
        return tuple(s for t in self.correlated for s in (SITES.cholesky(t.name), SITES.standard(t.name)))

    @property
    def sd_sites(self) -> tuple[str, ...]:
        """``sd_<g>`` of every varying intercept."""
        return tuple(SITES.sd(g) for g in self.group_names)

    @property
    def fixed_sites(self) -> tuple[str, ...]:
        """``Intercept`` and, with predictors, ``beta``."""
        return (SITES.intercept,) + ((SITES.coefficients,) if self.fixed_names else ())

    @property
    def global_sites(self) -> tuple[str, ...]:
        """The parameters shared by every cell: intercept, coefficients and group sds."""
        return self.fixed_sites + self.sd_sites

    @property
    def shared_sites(self) -> tuple[str, ...]:
        """Every site of the shared parameters: :attr:`fixed_sites`, then ``sd_<g>``, ``z_<g>`` per group."""
        return self.fixed_sites + tuple(s for g in self.group_names for s in (SITES.sd(g), SITES.z(g)))

    # -- packing ------------------------------------------------------------------------

    def pack_draws(self, draws: Mapping[str, np.ndarray], dtype: DTypeLike = np.float64) -> np.ndarray:
        """``theta`` (draws, P) of flat draws (draws, ...) of the shared parameters.

        A categorical outcome's parameters carry a category axis after the draws
        (``Intercept`` (draws, K - 1), ``z_<g>`` (draws, K - 1, levels)); its ``theta`` is
        then (draws, K - 1, P), one row of effects per linear predictor.
        """
        intercept = np.asarray(draws[SITES.intercept], dtype)
        beta = np.asarray(draws[SITES.coefficients], dtype).reshape(intercept.shape + (-1,)) if self.fixed_names else None
        effects = [
            np.asarray(draws[SITES.z(g)], dtype) * np.asarray(draws[SITES.sd(g)], dtype)[..., None] for g in self.group_names
        ]
        return pack(intercept, beta, effects)

    def standardise(self, draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Draws of the non-centred sites (:attr:`noncentred_sites`) with each structured group's ``z_<g>``.

        ``e_<g>`` and ``slope_<g>`` are replaced by ``z_<g>``
        (:meth:`~mrp_numpyro.design.structure.GroupPrior.z`); ``rho_<g>``, a parameter of
        interest, is kept; a correlated term's ``e_<t>`` and ``L_<t>`` by its groups'
        correlated ``z_<g> = (e L')[..., j]`` and its correlation matrix ``cor_<t> = L L'``;
        every other draw is passed on.
        """
        out = dict(draws)
        for term in self.correlated:
            if SITES.standard(term.name) not in out:
                continue
            e = np.asarray(out.pop(SITES.standard(term.name)), np.float64)  # (draws, levels, J)
            chol = np.asarray(out.pop(SITES.cholesky(term.name)), np.float64)  # (draws, J, J)
            z = e @ np.swapaxes(chol, -1, -2)
            for j, g in enumerate(term.slots):
                out[SITES.z(self.groups[g].name)] = z[..., j]
            out[SITES.correlation(term.name)] = _correlation_matrix(chol)
        for slot in self.structured:
            if SITES.standard(slot.name) not in out:  # already mapped (a partially centred group)
                continue
            e = out.pop(SITES.standard(slot.name))
            slope = out.pop(SITES.slope(slot.name), None)
            sd = np.asarray(out[SITES.sd(slot.name)], np.float64)
            out[SITES.z(slot.name)] = slot.prior.z(e, out.get(SITES.rho(slot.name)), None if slope is None else slope / sd)
        return out

    def unpack(self, theta: np.ndarray, sd: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The shared parameters of ``theta`` (draws, P) and the groups' sds (draws,).

        Returns
        -------
        dict
            ``Intercept``, ``beta`` (with predictors), ``sd_<g>`` and ``z_<g> = a_g / sd_g``.
        """
        out = {SITES.intercept: theta[:, 0]}
        if self.fixed_names:
            out[SITES.coefficients] = theta[:, 1 : self.n_fixed]
        for slot in self.groups:
            out[SITES.sd(slot.name)] = sd[slot.name]
            out[SITES.z(slot.name)] = theta[:, slot.start : slot.stop] / sd[slot.name][:, None]
        return out

    # -- the design matrix ----------------------------------------------------------------

    def design_matrix(self, X: np.ndarray, group_index: np.ndarray, group_value: np.ndarray | None = None) -> np.ndarray:
        """``D`` of some cells: a column of ones, the predictors ``X`` and every group's one-hot levels.

        Parameters
        ----------
        X : array (cells, p)
        group_index : int array (cells, G)
        group_value : array (cells, G), optional
            What each group's one-hot column holds: 1 for varying intercepts (the default),
            the slope's column for varying slopes (``CellArrays.group_value``).
        """
        n = X.shape[0]
        cols = [np.ones((n, 1)), np.asarray(X, np.float64)]
        for g, slot in enumerate(self.groups):
            onehot = np.zeros((n, slot.size))
            onehot[np.arange(n), group_index[:, g]] = 1.0 if group_value is None else group_value[:, g]
            cols.append(onehot)
        return np.hstack(cols)

    def term_columns(self) -> list[list[int]]:
        """The columns of ``D`` of every term: the intercept, each predictor, each group."""
        terms = [[0]] + [[1 + j] for j in range(self.n_coefficients)]
        return terms + [list(range(slot.start, slot.stop)) for slot in self.groups]
