"""The hierarchical logit with the directions the data cannot see integrated out.

Write all regression effects of the model as one vector ``theta = (Intercept, beta,
a_1, ..., a_G)`` (``a_g = sd_g * z_g`` the varying intercepts of group ``g``) and the
linear predictor of every survey cell as ``eta = D @ theta``. ``D`` has exact null
directions: shifting all intercepts of a group and lowering ``Intercept`` by as much, or
moving an area-level predictor's coefficient against the state intercepts, or an
interaction's margin against its main effect, leaves ``eta`` unchanged. Along those
directions only the priors, whose scales are the group standard deviations, say where
``theta`` lies; they are what makes the posterior a funnel in any fixed parameterisation.

With the orthonormal split ``theta = R @ phi + N @ psi`` (``R`` spans the row space of
``D``, ``N`` its null space) the likelihood depends on ``phi`` alone. Under the prior
``theta ~ Normal(m0, diag(v(sd)))``, ``phi`` is normal with mean ``R' m0`` and covariance
``R' diag(v) R``, so ``psi`` integrates out exactly:

    p(sd, phi | y)  is proportional to  p(sd) Normal(phi | R' m0, R' diag(v(sd)) R) p(y | D R phi)

and ``psi | phi, sd`` is normal with precision ``N' diag(1/v) N`` and mean
``(N' diag(1/v) N)^-1 N' diag(1/v) (m0 - R phi)``. The model samples ``sd`` and ``phi``;
:func:`recover_effects` draws ``psi`` from that conditional for every posterior draw and
returns the usual ``Intercept``, ``beta``, ``sd_<g>``, ``z_<g>``, so the posterior of every
parameter is the same as the non-centred model's (the prior is the same; only the
coordinates change, with unit Jacobian).

**Structured priors.** A group under a structured prior whose map is fixed
(:mod:`mrp_numpyro.design.structure`: ``rw1``, ``rw2``, ``icar``, ``bym2``) enters in the
coordinates where its prior is independent: ``theta = T theta'`` with ``T`` the identity on
the other effects and, for that group, its basis ``B`` (with prior variance ``sd^2`` per
column; ``sd^2 rho`` under ``bym2``, beside the identity with ``sd^2 (1 - rho)``) and
``rw2``'s trend (prior variance 1); an ``ar1`` group keeps its levels, whose prior is
``sd^2`` times the AR(1) correlation (:mod:`mrp_numpyro.model.prior_coordinates`). The split
above is then made of ``D T``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import scipy.linalg
from jax.typing import DTypeLike

from ..design.cells import Design
from ..design.layout import SITES, ParameterLayout
from ..design.priors import Priors
from .base import MRPModel, Parameterization, register_parameterization, survey_likelihood
from .blocks import GRID_MAX_RATIO, CellBlocks, block_predictor, cell_blocks
from .categorical import categorical_fallback
from .correlated import log_correlated_fallback
from .noncentred import NonCentred
from .prior_coordinates import PriorCoordinates, column_scales, prior_coordinates, prior_precision
from .projected_normal import ProjectedNormal, cheaper_route
from .structured import rho_prior

__all__ = ["Identified", "IdentifiedBasis", "identified_basis", "identified_arrays", "mrp_logit_identified", "recover_effects"]

# Singular values of D below this fraction of the largest are null directions. The exact
# ones are zero to rounding (about 1e-13 relative); real but weak directions are far above.
NULL_RTOL = 1e-9


@dataclass(frozen=True)
class IdentifiedBasis:
    """The split ``T theta' = T (R phi + N psi)`` of a design's regression effects ``theta``.

    Attributes
    ----------
    R : array (P', r)
        Orthonormal basis of the directions the likelihood sees.
    N : array (P', P' - r)
        Orthonormal basis of the null directions.
    m0 : array (P',)
        Prior mean of ``theta'``.
    fixed_var : array (1 + p,)
        Prior variances of the intercept and the coefficients.
    layout : ParameterLayout
        Where each group's intercepts sit in ``theta``.
    coords : PriorCoordinates
        ``theta = T theta'`` and the prior scales of ``theta'`` (:mod:`mrp_numpyro.model.prior_coordinates`).
    """

    R: np.ndarray
    N: np.ndarray
    m0: np.ndarray
    fixed_var: np.ndarray
    layout: ParameterLayout
    coords: PriorCoordinates

    @property
    def T(self) -> np.ndarray:
        """``theta = T theta'``."""
        return self.coords.T

    @property
    def rank(self) -> int:
        """Number of identified directions, the length of ``phi``."""
        return self.R.shape[1]

    def prior_variances(self, sd: Mapping[str, np.ndarray], rho: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
        """Prior variance of every element of ``theta'`` for draws of the group sds (and BYM2's ``rho``): (draws, P').

        An AR(1) block's elements have variance ``sd^2`` and correlation ``rho^|i - j|``
        (:func:`~mrp_numpyro.model.prior_coordinates.prior_precision`).
        """
        rho = rho or {}
        n = len(next(iter(sd.values()))) if sd else 1
        groups = self.layout.groups
        sds = np.stack([np.asarray(sd[g.name], np.float64) for g in groups], axis=-1) if groups else np.zeros((n, 0))
        # Only BYM2's rho scales columns (an AR(1) rho correlates its block instead); the
        # others' is the model's placeholder 0.5.
        rhos = (
            np.stack(
                [np.asarray(rho[g.name] if g.prior.kind == "bym2" else np.full(n, 0.5), np.float64) for g in groups], axis=-1
            )
            if groups
            else np.zeros((n, 0))
        )
        table = column_scales(sds, rhos)
        return (table[:, self.coords.scale_index] * self.coords.base_sd) ** 2


def _grouped(row_basis: np.ndarray, order: Iterable[int]) -> np.ndarray:
    """An orthonormal basis of the same space whose vectors follow the groups one at a time.

    Gram-Schmidt over the projections of the unit vectors of ``theta`` taken in ``order``:
    each new vector is what a group adds to the identified space beyond the groups before
    it. A direction then belongs mostly to one group, and its prior scale to one group sd,
    which is what a guide coupling each coordinate's scale to the sds can follow.
    """
    projector = row_basis @ row_basis.T
    vectors: list[np.ndarray] = []
    for i in order:
        v = projector[:, i].copy()
        for _ in range(2):  # twice is enough for orthogonality to rounding
            for b in vectors:
                v -= (b @ v) * b
        norm = np.linalg.norm(v)
        if norm > 1e-6:
            vectors.append(v / norm)
        if len(vectors) == row_basis.shape[1]:
            break
    if len(vectors) < row_basis.shape[1]:
        # Every direction of the space is some group's, so this does not happen short of a
        # numerically degenerate design; the singular vectors are then the safe basis.
        return row_basis
    return np.column_stack(vectors)


def identified_basis(design: Design, priors: Priors, grouped: bool = True) -> IdentifiedBasis:
    """Split the design's effects into the directions the survey cells see and the rest.

    Parameters
    ----------
    design : Design
    priors : Priors
    grouped : bool
        Build the identified basis group by group (intercept and coefficients first, then
        the groups from the fewest levels to the most), see ``_grouped``; otherwise the
        singular vectors of the design matrix.
    """
    layout = design.layout
    p = layout.n_coefficients
    coef_scale = priors.coef_scales(design.x_scale) if p else np.zeros(0)
    fixed_var = np.concatenate([[priors.intercept_scale**2], np.asarray(coef_scale, np.float64) ** 2])
    coords = prior_coordinates(layout, np.sqrt(fixed_var))
    T = coords.T
    D = design.design_matrix() @ T
    # Only the right singular vectors are needed: with at least as many cells as columns the
    # thin SVD has all of them (and skips a cells x cells matrix); otherwise ask for all.
    try:
        _, sv, vt = np.linalg.svd(D, full_matrices=D.shape[0] < D.shape[1])
    except np.linalg.LinAlgError:
        # LAPACK's divide and conquer (gesdd) does not converge on some 0/1 matrices (five
        # groups over 1,500 synthetic respondents, tests/test_identified.py); gesvd does.
        _, sv, vt = scipy.linalg.svd(D, full_matrices=D.shape[0] < D.shape[1], lapack_driver="gesvd")
    rank = int(np.sum(sv > sv[0] * NULL_RTOL))
    row_basis = vt[:rank].T
    if grouped:
        # The columns of theta' of each group (T's nonzero rows in the group's slice).
        column_group = np.full(T.shape[1], -1)
        for g, slot in enumerate(layout.groups):
            column_group[np.any(T[slot.start : slot.stop] != 0, axis=0)] = g
        order = list(range(layout.n_fixed))
        for g in np.argsort(layout.group_sizes, kind="stable"):
            order.extend(np.flatnonzero(column_group == g).tolist())
        order.extend(np.flatnonzero((column_group == -1) & (np.arange(T.shape[1]) >= layout.n_fixed)).tolist())
        row_basis = _grouped(row_basis, order)
    m0 = np.zeros(D.shape[1])
    m0[0] = priors.intercept_loc
    m0[1 : layout.n_fixed] = priors.coef_loc
    return IdentifiedBasis(
        R=row_basis,
        N=vt[rank:].T,
        m0=m0,
        fixed_var=fixed_var,
        layout=layout,
        coords=coords,
    )


def identified_arrays(
    design: Design, basis: IdentifiedBasis, dtype: DTypeLike, blocks: CellBlocks | None = None
) -> dict[str, jax.Array | tuple[jax.Array, ...]]:
    """Model arrays: the cells' design in blocks times ``T R``, ``R``, ``N``, ``phi``'s prior mean and ``theta'``'s prior scales.

    ``blocks`` are the survey cells' (:func:`~mrp_numpyro.model.blocks.cell_blocks`, computed
    when not given); the cells' ``index`` and counts come from
    :func:`~mrp_numpyro.model.blocks.likelihood_arrays`.
    """
    blocks = cell_blocks(design) if blocks is None else blocks
    to_phi = basis.T @ basis.R
    return {
        "rows": tuple(jnp.asarray(r @ to_phi, dtype) for r in blocks.rows),
        "R": jnp.asarray(basis.R, dtype),
        "N": jnp.asarray(basis.N, dtype),
        "phi_loc": jnp.asarray(basis.R.T @ basis.m0, dtype),
        "base_sd": jnp.asarray(basis.coords.base_sd, dtype),
        "scale_index": jnp.asarray(basis.coords.scale_index),
    }


def mrp_logit_identified(
    rows: Sequence[jax.Array],
    index: jax.Array | None,
    R: jax.Array,
    N: jax.Array,
    phi_loc: jax.Array,
    base_sd: jax.Array,
    scale_index: jax.Array,
    trials: jax.Array,
    successes: jax.Array | None = None,
    *,
    group_names: tuple[str, ...],
    priors: Priors,
    mixed: tuple[str, ...] = (),
    ar1: tuple[tuple[str, int, int], ...] = (),
    route: str = "nullspace",
) -> None:
    """The hierarchical binomial logit in identified coordinates (see the module docstring).

    Parameters
    ----------
    rows : tuple of arrays (combinations_b, r)
        The cells' design matrix in blocks (:mod:`mrp_numpyro.model.blocks`) times the basis ``R``
        of the identified directions.
    index : int array (cells, blocks), or None
        ``None``: the cells are every combination of the blocks' rows
        (:func:`mrp_numpyro.model.blocks.likelihood_arrays`).
    R, N : arrays (P', r), (P', P' - r)
        Orthonormal bases of the identified and the null directions.
    phi_loc : array (r,)
        Prior mean of ``phi``.
    base_sd, scale_index : arrays (P',)
        The prior sd of every element of ``theta'`` is ``base_sd * column_scales(sds, rhos)[scale_index]``
        (:class:`IdentifiedBasis`).
    trials, successes : arrays (cells,), or over the grid of the blocks' combinations
    group_names : tuple of str
    priors : Priors
    mixed : tuple of str
        The groups under a BYM2 prior, whose mixing weight ``rho_<g> ~ Beta(1/2, 1/2)`` is sampled.
    ar1 : tuple of (str, int, int)
        The groups under an AR(1) prior and their blocks of ``theta'``
        (:class:`~mrp_numpyro.model.prior_coordinates.PriorCoordinates`); their
        ``rho_<g> ~ Uniform(-1, 1)`` is sampled.
    route : {"nullspace", "rows"}
        How ``phi``'s prior density is factorised (:mod:`mrp_numpyro.model.projected_normal`).
    """
    sd_draws = [numpyro.sample(SITES.sd(name), dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale)) for name in group_names]
    sds = jnp.stack(sd_draws) if sd_draws else jnp.zeros(0, base_sd.dtype)
    # Only BYM2's groups use their rho in the scales; the others' is a placeholder (0.5 keeps
    # every sqrt's gradient finite).
    rho = {name: numpyro.sample(SITES.rho(name), rho_prior("bym2")) for name in mixed}
    rho |= {name: numpyro.sample(SITES.rho(name), rho_prior("ar1")) for name, _, _ in ar1}
    half = jnp.full((), 0.5, base_sd.dtype)
    rhos = jnp.stack([rho[n] if n in mixed else half for n in group_names]) if group_names else jnp.zeros(0, base_sd.dtype)
    std = base_sd * column_scales(sds, rhos)[scale_index]
    phi = numpyro.sample(SITES.identified, ProjectedNormal(phi_loc, R, N, std, ar1, rho, route=route))
    with numpyro.plate_stack("cells", trials.shape):
        numpyro.sample(SITES.observed, dist.Binomial(total_count=trials, logits=block_predictor(phi, rows, index)), obs=successes)


def recover_effects(
    draws: Mapping[str, np.ndarray], rng_key: jax.Array, *, design: Design, basis: IdentifiedBasis, chunk_size: int = 1000
) -> dict[str, np.ndarray]:
    """Draw the null-space part of the effects given each posterior draw of ``phi`` and the sds.

    Parameters
    ----------
    draws : mapping
        Flat draws (draws, ...) of ``phi`` and ``sd_<g>``.

    Returns
    -------
    dict
        ``Intercept``, ``beta`` (when there are predictors), ``sd_<g>`` and ``z_<g>`` (and
        the ``rho_<g>`` of BYM2 and AR(1) priors), (draws, ...).
    """
    phi = np.asarray(draws[SITES.identified], np.float64)
    n = len(phi)
    sd = {g: np.asarray(draws[SITES.sd(g)], np.float64) for g in design.group_names}
    rho = {g: np.asarray(draws[SITES.rho(g)], np.float64) for g in design.group_names if SITES.rho(g) in draws}
    R, N, m0 = basis.R, basis.N, basis.m0
    theta = phi @ R.T
    if N.shape[1]:
        noise = np.asarray(jax.random.normal(rng_key, (n, N.shape[1])), np.float64)
        for start in range(0, n, chunk_size):
            sl = slice(start, min(n, start + chunk_size))
            sd_sl, rho_sl = {g: v[sl] for g, v in sd.items()}, {g: v[sl] for g, v in rho.items()}
            prec = prior_precision(basis.coords, basis.prior_variances(sd_sl, rho_sl), sd_sl, rho_sl)
            # psi | phi, sd: precision N' P N, mean from the prior's pull towards m0.
            lam = prec.project(N)
            rhs = prec.times(m0 - theta[sl]) @ N
            chol = np.linalg.cholesky(lam)
            mean = np.linalg.solve(lam, rhs[..., None])[..., 0]
            # x = L'^-1 e has covariance (L L')^-1 = lam^-1.
            dev = np.linalg.solve(np.swapaxes(chol, -1, -2), noise[sl][..., None])[..., 0]
            theta[sl] += (mean + dev) @ N.T
    return {**basis.layout.unpack(theta @ basis.T.T, sd), **{SITES.rho(g): v for g, v in rho.items()}}


@register_parameterization
@dataclass(frozen=True)
class Identified(Parameterization):
    """The directions the survey cells cannot see integrated out (the module docstring); the coupled guide's coordinates.

    Parameters
    ----------
    grouped : bool
        Build the identified basis group by group (:func:`~mrp_numpyro.model.identified.identified_basis`).
    prior_route : {"auto", "nullspace", "rows"}
        How the prior density of ``phi`` is factorised (:class:`~mrp_numpyro.model.projected_normal.ProjectedNormal`);
        ``auto`` takes the smaller QR (:func:`~mrp_numpyro.model.projected_normal.cheaper_route`). The density is the same.
    """

    name = "identified"

    grouped: bool = True
    prior_route: str = "auto"

    def __post_init__(self) -> None:
        if self.prior_route not in ("auto", "nullspace", "rows"):
            raise ValueError(f"prior_route must be 'auto', 'nullspace' or 'rows', got {self.prior_route!r}")

    def build(
        self,
        design: Design,
        priors: Priors,
        *,
        dtype: DTypeLike = np.float32,
        max_grid_ratio: float = GRID_MAX_RATIO,
        rng_key: jax.Array | None = None,
    ) -> MRPModel:
        """The identified model of ``design``, with its basis (see :meth:`~mrp_numpyro.model.base.Parameterization.build`)."""
        if design.categorical:
            return categorical_fallback(self.name, design, priors, dtype=dtype, max_grid_ratio=max_grid_ratio)
        if design.layout.correlated:
            # Their prior on theta is not independent given the sds: the split below needs it to be.
            log_correlated_fallback(self.name, design.layout.correlated)
            return NonCentred().build(design, priors, dtype=dtype, max_grid_ratio=max_grid_ratio)
        blocks, likelihood = survey_likelihood(design, dtype, max_grid_ratio)
        basis = identified_basis(design, priors, grouped=self.grouped)
        mixed = tuple(g.name for g in design.layout.structured if g.prior.kind == "bym2")
        route = cheaper_route(basis.rank, basis.N.shape[1]) if self.prior_route == "auto" else self.prior_route
        return MRPModel(
            design,
            priors,
            partial(
                mrp_logit_identified,
                group_names=design.group_names,
                priors=priors,
                mixed=mixed,
                ar1=basis.coords.ar1,
                route=route,
            ),
            {**identified_arrays(design, basis, dtype, blocks), **likelihood},
            latent_sites=(SITES.identified,)
            + design.layout.sd_sites
            + tuple(SITES.rho(g) for g in (*mixed, *(name for name, _, _ in basis.coords.ar1))),
            effects=partial(recover_effects, design=design, basis=basis),
            parameterization=self.name,
        )
