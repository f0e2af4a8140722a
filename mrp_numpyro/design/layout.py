"""The one layout of the model's regression effects, and the names of its sample sites.

Every parameterisation, the identified basis, the blocks of the linear predictor, the
poststratifier and the outputs see the regression effects as one vector

    theta = (Intercept, beta_1, ..., beta_p, a_1, ..., a_G),

``a_g = sd_g * z_g`` the varying intercepts of group ``g``, and the survey or table cells'
linear predictor as ``eta = D @ theta`` with ``D`` (:meth:`ParameterLayout.design_matrix`)
a column of ones, the centred predictors and the one-hot levels of every group.
:class:`ParameterLayout` is that order written down once: names, slices, and packing
draws of the shared parameters into ``theta`` and back. :data:`SITES` names the sample
sites, so no other module spells a prefix.
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

from .structure import IID, GroupPrior

__all__ = ["SITES", "SiteNames", "GroupSlot", "ParameterLayout", "pack"]

# NumPy draws or, inside a model, JAX arrays.
_Array = TypeVar("_Array", np.ndarray, jax.Array)


@dataclass(frozen=True)
class SiteNames:
    """Names of the model's sample sites and of the labelled outputs derived from them.

    The shared parameters, which every parameterisation's draws are mapped to
    (``MRPModel.effects``, :class:`~mrp_numpyro.model.base.MRPModel`), are ``Intercept``, ``beta`` and, for each
    varying intercept ``g``, ``sd_<g>`` and ``z_<g>``.
    """

    intercept: str = "Intercept"
    coefficients: str = "beta"
    observed: str = "y"
    #: The identified model's coordinates (:mod:`mrp_numpyro.model.identified`).
    identified: str = "phi"

    def sd(self, group: str) -> str:
        """A varying intercept's standard deviation."""
        return f"sd_{group}"

    def sd_group(self, site: str) -> str | None:
        """The group whose standard deviation ``site`` is (``sd_state`` -> ``state``), or None."""
        prefix = self.sd("")
        return site[len(prefix) :] if site.startswith(prefix) and len(site) > len(prefix) else None

    def z(self, group: str) -> str:
        """A varying intercept's standardised effects ``a_g / sd_g``."""
        return f"z_{group}"

    def centred(self, group: str) -> str:
        """A group's partially centred intercepts ``u`` (:mod:`mrp_numpyro.model.centring`)."""
        return f"u_{group}"

    def standard(self, group: str) -> str:
        """A structured prior's independent standard normals ``e_g`` (:mod:`mrp_numpyro.design.structure`)."""
        return f"e_{group}"

    def rho(self, group: str) -> str:
        """An AR(1) prior's correlation or a BYM2 prior's mixing weight."""
        return f"rho_{group}"

    def slope(self, group: str) -> str:
        """A second-order random walk's linear trend on the logit scale."""
        return f"slope_{group}"

    def effect(self, group: str) -> str:
        """The varying intercepts on the logit scale, ``sd_g * z_g`` (rstanarm's ``b[...]``), in the outputs."""
        return f"r_{group}"


#: The names of every sample site (:class:`~mrp_numpyro.design.layout.SiteNames`).
SITES = SiteNames()


@dataclass(frozen=True)
class GroupSlot:
    """One varying intercept's place in ``theta``, and the prior of its standardised intercepts."""

    name: str
    levels: tuple[str, ...]
    start: int
    prior: GroupPrior = IID

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
        The varying intercepts in formula order, each with its level labels and offset.
    """

    fixed_names: tuple[str, ...]
    groups: tuple[GroupSlot, ...]

    @classmethod
    def build(
        cls, fixed_names: Sequence[str], groups: Iterable[tuple[str, Sequence[str]] | tuple[str, Sequence[str], GroupPrior]]
    ) -> ParameterLayout:
        """The layout of an intercept, ``fixed_names`` and ``(name, levels)`` or ``(name, levels, prior)`` of every group."""
        slots, start = [], 1 + len(fixed_names)
        for name, levels, *prior in groups:
            slots.append(GroupSlot(name, tuple(levels), start, *prior))
            start += len(levels)
        return cls(tuple(fixed_names), tuple(slots))

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
        """Every site of the non-centred model: :attr:`fixed_sites`, then each group's ``sd_<g>`` and :attr:`GroupSlot.sites`."""
        return self.fixed_sites + tuple(s for g in self.groups for s in (SITES.sd(g.name), *g.sites))

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
        interest, is kept; every other draw is passed on.
        """
        out = dict(draws)
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

    def design_matrix(self, X: np.ndarray, group_index: np.ndarray) -> np.ndarray:
        """``D`` of some cells: a column of ones, the predictors ``X`` and every group's one-hot levels.

        Parameters
        ----------
        X : array (cells, p)
        group_index : int array (cells, G)
        """
        n = X.shape[0]
        cols = [np.ones((n, 1)), np.asarray(X, np.float64)]
        for g, slot in enumerate(self.groups):
            onehot = np.zeros((n, slot.size))
            onehot[np.arange(n), group_index[:, g]] = 1.0
            cols.append(onehot)
        return np.hstack(cols)

    def term_columns(self) -> list[list[int]]:
        """The columns of ``D`` of every term: the intercept, each predictor, each group."""
        terms = [[0]] + [[1 + j] for j in range(self.n_coefficients)]
        return terms + [list(range(slot.start, slot.stop)) for slot in self.groups]
