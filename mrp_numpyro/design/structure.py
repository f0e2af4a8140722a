"""Structured priors on a group's varying intercepts: random walks, AR(1), ICAR and BYM2.

A varying intercept ``a_g = sd_g * z_g`` has independent ``z_g ~ Normal(0, 1)`` by default.
A structured prior (Gao, Kennedy, Simpson and Gelman 2021, "Improving multilevel regression
and poststratification with structured priors", Bayesian Analysis 16(3)) lets neighbouring
levels share strength instead: adjacent age groups, or states that share a border. Every one
is written here as a fixed linear map of independent standard normals ``e``, so each model
samples it non-centred and proper:

- ``rw1`` / ``rw2`` (an ordered factor): the intrinsic random walk whose precision is
  ``D'D`` for the first or second differences ``D``; ``z = B e`` with ``B B'`` its
  generalised inverse, which puts ``z`` in the space the walk can see. For ``rw1`` that is
  the sum-to-zero constraint (the intercept carries the level); ``rw2`` also leaves the
  linear trend to a coefficient of its own, ``z = B e + (slope / sd) t`` with ``t`` the
  levels' standardised positions and ``slope ~ Normal(0, 1)`` on the logit scale.
- ``ar1`` (an ordered factor): the stationary AR(1) ``z_1 = e_1``,
  ``z_k = rho z_(k-1) + sqrt(1 - rho^2) e_k`` with ``rho ~ Uniform(-1, 1)``; proper, so no
  constraint.
- ``icar`` (areas with an adjacency): the intrinsic CAR, precision ``diag(degree) - W``,
  sum-to-zero within each connected component; an island (an area without neighbours) has
  an independent standard normal ``z`` instead, as Freni-Sterrantino, Ventrucci and Rue
  (2018, Spatial and Spatio-temporal Epidemiology 26) propose.
- ``bym2``: ``z = sqrt(rho) B e_s + sqrt(1 - rho) e_u`` with the scaled ICAR's ``B``, an
  independent part ``e_u`` and the mixing weight ``rho ~ Beta(1/2, 1/2)`` (Riebler, Sorbye,
  Simpson and Rue 2016, Statistical Methods in Medical Research 25(4)).

Each intrinsic part is scaled as Riebler et al. (2016) prescribe, per connected component:
``B`` is divided by the square root of the geometric mean of the marginal variances of its
generalised inverse, so ``sd_g`` is the sd of a typical level under every prior, as under
``iid``, and the ``sd`` prior means the same whatever the structure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["GroupPrior", "IID", "random_walk_prior", "ar1_prior", "icar_prior", "ORDERED_PRIORS", "AREA_PRIORS"]

#: Priors over an ordered factor, and over areas with an adjacency.
ORDERED_PRIORS = ("rw1", "rw2", "ar1")
AREA_PRIORS = ("icar", "bym2")

# Eigenvalues of a structure matrix below this fraction of the largest span its null space
# (exactly zero up to rounding, ~1e-15 relative).
_NULL_RTOL = 1e-10


@dataclass(frozen=True, eq=False)
class GroupPrior:
    """The prior of one group's standardised intercepts ``z_g = a_g / sd_g``.

    Attributes
    ----------
    kind : str
        ``iid`` or a structured prior (``rw1``, ``rw2``, ``ar1``, ``icar``, ``bym2``).
    basis : array (levels, m), or None
        The scaled map ``B`` of the intrinsic part, ``z = B e`` (``rw1``, ``rw2``, ``icar``,
        ``bym2``); None for ``iid`` and ``ar1``.
    trend : array (levels,), or None
        ``rw2``'s standardised linear trend ``t`` (mean 0, sd 1 over the levels).
    scaling : tuple of float
        The scaling factor of every connected component of the intrinsic part (the geometric
        mean of its generalised inverse's diagonal, Riebler et al. 2016) before scaling.
    """

    kind: str = "iid"
    basis: np.ndarray | None = field(default=None, repr=False)
    trend: np.ndarray | None = field(default=None, repr=False)
    scaling: tuple[float, ...] = ()

    @property
    def structured(self) -> bool:
        """Whether this is anything but independent normals."""
        return self.kind != "iid"

    @property
    def has_rho(self) -> bool:
        """Whether the prior has a correlation or mixing parameter ``rho`` (``ar1``, ``bym2``)."""
        return self.kind in ("ar1", "bym2")

    def standard_size(self, levels: int) -> int:
        """Length of the standard normal vector ``e`` the prior maps to ``z``."""
        if self.kind in ("iid", "ar1"):
            return levels
        assert self.basis is not None
        return self.basis.shape[1] + (levels if self.kind == "bym2" else 0)

    def z(self, e: np.ndarray, rho: np.ndarray | None = None, slope_over_sd: np.ndarray | None = None) -> np.ndarray:
        """``z`` (draws, levels) of draws of ``e`` (draws, m) and, where the prior has them, ``rho`` and ``slope / sd``."""
        e = np.asarray(e, np.float64)
        if self.kind == "iid":
            return e
        if self.kind == "ar1":
            assert rho is not None
            rho = np.asarray(rho, np.float64)
            out = np.empty_like(e)
            out[:, 0] = e[:, 0]
            innovation = np.sqrt(1.0 - rho**2)
            for k in range(1, e.shape[1]):
                out[:, k] = rho * out[:, k - 1] + innovation * e[:, k]
            return out
        assert self.basis is not None
        m = self.basis.shape[1]
        z = e[:, :m] @ self.basis.T
        if self.kind == "bym2":
            assert rho is not None
            rho = np.asarray(rho, np.float64)[:, None]
            z = np.sqrt(rho) * z + np.sqrt(1.0 - rho) * e[:, m:]
        if self.trend is not None:
            assert slope_over_sd is not None
            z = z + np.asarray(slope_over_sd, np.float64)[:, None] * self.trend
        return z


#: Independent standard normal intercepts, the default.
IID = GroupPrior()


def _scaled_basis(structure: np.ndarray, components: Sequence[np.ndarray]) -> tuple[np.ndarray, tuple[float, ...]]:
    """``B`` with ``B B'`` the generalised inverse of ``structure``, scaled per component; islands get unit columns."""
    n = structure.shape[0]
    columns: list[np.ndarray] = []
    scaling: list[float] = []
    for comp in components:
        if len(comp) == 1:  # an island: an independent standard normal (Freni-Sterrantino et al. 2018)
            col = np.zeros((n, 1))
            col[comp[0], 0] = 1.0
            columns.append(col)
            continue
        values, vectors = np.linalg.eigh(structure[np.ix_(comp, comp)])
        keep = values > values[-1] * _NULL_RTOL
        part = vectors[:, keep] / np.sqrt(values[keep])
        # The generalised inverse's diagonal is the row sums of squares of part.
        factor = float(np.exp(np.mean(np.log(np.sum(part**2, axis=1)))))
        block = np.zeros((n, part.shape[1]))
        block[comp] = part / np.sqrt(factor)
        columns.append(block)
        scaling.append(factor)
    return np.hstack(columns), tuple(scaling)


def random_walk_prior(levels: int, order: int) -> GroupPrior:
    """The scaled random walk of ``order`` 1 or 2 over ``levels`` ordered levels (module docstring)."""
    if order not in (1, 2):
        raise ValueError(f"a random walk has order 1 or 2, not {order}")
    if levels < order + 1:
        raise ValueError(f"a random walk of order {order} needs at least {order + 1} levels, got {levels}")
    diff = np.diff(np.eye(levels), n=order, axis=0)
    basis, scaling = _scaled_basis(diff.T @ diff, [np.arange(levels)])
    trend = None
    if order == 2:
        position = np.arange(levels, dtype=float)
        trend = (position - position.mean()) / position.std()
    return GroupPrior(f"rw{order}", basis=basis, trend=trend, scaling=scaling)


def ar1_prior(levels: int) -> GroupPrior:
    """The stationary AR(1) over ``levels`` ordered levels."""
    if levels < 2:
        raise ValueError(f"an AR(1) prior needs at least 2 levels, got {levels}")
    return GroupPrior("ar1")


def icar_prior(adjacency: np.ndarray, components: Sequence[np.ndarray], kind: str = "icar") -> GroupPrior:
    """The scaled ICAR (``kind="icar"``) or BYM2 (``kind="bym2"``) over a graph.

    Parameters
    ----------
    adjacency : array (areas, areas)
        Symmetric 0/1 adjacency, in the order of the group's levels.
    components : sequence of int arrays
        The graph's connected components.
    """
    if kind not in AREA_PRIORS:
        raise ValueError(f"kind must be one of {AREA_PRIORS}, not {kind!r}")
    structure = np.diag(adjacency.sum(axis=1)) - adjacency
    basis, scaling = _scaled_basis(structure, components)
    return GroupPrior(kind, basis=basis, scaling=scaling)
