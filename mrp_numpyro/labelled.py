"""Labelled views of a fit and its estimates: ArviZ InferenceData and xarray Datasets.

The arrays of :mod:`mrp_numpyro.inference` and :mod:`mrp_numpyro.poststratification` carry no
names; here they get the coefficient names, the level labels and the dimension names that
``posterior.nc`` and ``poststrat_draws.nc`` are written with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import arviz as az
import xarray as xr

from .design.cells import Design
from .design.layout import SITES
from .inference.result import Fit
from .poststratification import Poststratified

__all__ = ["level_dim", "to_inference_data", "poststrat_dataset", "CATEGORY_DIM"]

#: The dimension of a categorical outcome's non-baseline categories in ``posterior.nc``.
CATEGORY_DIM = "category"


def level_dim(name: str) -> str:
    """Dimension name of a grouping's (or a varying intercept's) levels in NetCDF outputs."""
    return f"{name}_level"


def to_inference_data(fit: Fit, design: Design) -> az.InferenceData:
    """ArviZ InferenceData of a fit's latent draws, labelled with coefficient and level names.

    Adds ``r_<group>`` = ``sd_<group> * z_<group>``, the varying intercepts (or slopes,
    ``r_state__male``) on the logit scale (rstanarm's ``b[...]``); a correlated term's
    ``cor_<term>`` has the term's coefficients on both of its dimensions. A categorical outcome's parameters have a dimension
    :data:`CATEGORY_DIM` of the non-baseline categories first.
    """
    posterior = dict(fit.draws)
    coords: dict[str, Any] = {}
    lead: list[str] = []
    if design.categorical:
        lead = [CATEGORY_DIM]
        coords[CATEGORY_DIM] = list(design.categories)
    dims: dict[str, list[str]] = {SITES.intercept: lead} | {SITES.sd(g): lead for g in design.group_names}
    if SITES.coefficients in posterior:
        coords["coef"] = list(design.fixed_names)
        dims[SITES.coefficients] = lead + ["coef"]
    for slot in design.layout.groups:
        sd, z, effect = SITES.sd(slot.name), SITES.z(slot.name), SITES.effect(slot.name)
        # A term's intercepts and slopes share its factor's levels.
        dim = level_dim(slot.factor)
        coords[dim] = list(slot.levels)
        dims[z] = lead + [dim]
        dims[effect] = lead + [dim]
        posterior[effect] = posterior[sd][..., None] * posterior[z]
    for term in design.layout.correlated:
        rows, cols = f"{term.name}_coef", f"{term.name}_coef_"
        coords[rows] = coords[cols] = list(term.coefficients)
        dims[SITES.correlation(term.name)] = [rows, cols]
    sample_stats = {"diverging": fit.traces["diverging"]} if "diverging" in fit.traces else None
    dims = {k: v for k, v in dims.items() if v and k in posterior}
    return az.from_dict(posterior=posterior, sample_stats=sample_stats, coords=coords, dims=dims)


def poststrat_dataset(estimates: Mapping[str, Poststratified]) -> xr.Dataset:
    """Poststratified draws as one xarray Dataset: one variable per grouping.

    A grouping ``name`` has dimensions ``(chain, draw, name_level)``; the level labels join
    multi-column groups with ":" and each column's values are kept as extra coordinates. A
    categorical outcome's shares have a last dimension named after the outcome (``party``)
    with every answer.
    """
    variables = {}
    for name, est in estimates.items():
        last: tuple[str, ...] = (est.category_name,) if est.categories else ()
        coords: dict[str, Any] = {est.category_name: list(est.categories)} if est.categories else {}
        if not est.columns:
            variables[name] = xr.DataArray(est.draws[:, :, 0], dims=("chain", "draw", *last), coords=coords)
            continue
        dim = level_dim(name)
        labels = est.labels.astype(str).agg(":".join, axis=1).tolist()
        coords[dim] = labels
        if len(est.columns) > 1:
            coords.update({f"{name}_{c}": (dim, est.labels[c].astype(str).tolist()) for c in est.columns})
        variables[name] = xr.DataArray(est.draws, dims=("chain", "draw", dim, *last), coords=coords)
    return xr.Dataset(variables)
