"""What every parameterisation of the model builds, and the registry that names them.

A :class:`Parameterization` turns a design and priors into an :class:`MRPModel`: a NumPyro
function with its static settings bound, the survey arrays it runs on, and the map from
the sites it samples back to the parameters every parameterisation shares (``Intercept``,
``beta``, ``sd_<g>``, ``z_<g>``), which the poststratifier and the outputs use. The
posterior is the same in every one; only the coordinates inference moves in differ.

A parameterisation is one module that defines a subclass decorated with
:func:`register_parameterization`, and one YAML file in ``conf/model/parameterization/``
whose ``_target_`` is that class (ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import DTypeLike

from ..design.cells import Design
from ..design.priors import Priors
from .blocks import GRID_MAX_RATIO, CellBlocks, cell_blocks, likelihood_arrays

__all__ = [
    "MRPModel",
    "Parameterization",
    "PARAMETERIZATIONS",
    "register_parameterization",
    "get_parameterization",
    "survey_likelihood",
    "build_model",
]


def _same_effects(draws: Mapping[str, np.ndarray], rng_key: jax.Array) -> dict[str, np.ndarray]:
    """A model that samples the shared parameters themselves."""
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
        The registered name of the coordinates (:data:`~mrp_numpyro.model.base.PARAMETERIZATIONS`).
    """

    design: Design
    priors: Priors
    fn: Callable = field(repr=False)
    kwargs: Mapping[str, Any] = field(repr=False)
    latent_sites: tuple[str, ...] = ()
    effects: Callable = field(default=_same_effects, repr=False)
    parameterization: str = "noncentred"


class Parameterization:
    """Coordinates in which inference explores the posterior; subclasses register under their ``name``.

    Subclasses are frozen dataclasses whose fields are their options (from the YAML file of
    ``conf/model/parameterization/`` or from Python) and implement :meth:`build`.
    """

    #: The name in the registry, in ``summary.json`` and of the YAML file.
    name: ClassVar[str] = ""

    def build(
        self,
        design: Design,
        priors: Priors,
        *,
        dtype: DTypeLike = np.float32,
        max_grid_ratio: float = GRID_MAX_RATIO,
        rng_key: jax.Array | None = None,
    ) -> MRPModel:
        """The model in these coordinates.

        Parameters
        ----------
        design : Design
        priors : Priors
        dtype : numpy float type
            Floating type of the arrays (float32 by default; float64 with x64 enabled).
        max_grid_ratio : float
            The likelihood runs over every combination of the blocks' rows while there are
            at most this many per survey cell (:func:`~mrp_numpyro.model.blocks.likelihood_arrays`).
        rng_key : jax.Array, optional
            For parameterisations that fit something first (a pilot fit).
        """
        raise NotImplementedError


#: Registered parameterisations by name.
PARAMETERIZATIONS: dict[str, type[Parameterization]] = {}


def register_parameterization(cls: type[Parameterization]) -> type[Parameterization]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} needs a name to be registered")
    if PARAMETERIZATIONS.get(cls.name, cls) is not cls:
        raise ValueError(f"parameterization {cls.name!r} is registered already ({PARAMETERIZATIONS[cls.name].__name__})")
    PARAMETERIZATIONS[cls.name] = cls
    return cls


def get_parameterization(name: str, **options: Any) -> Parameterization:
    """The registered parameterisation ``name`` with ``options``, e.g. ``get_parameterization("partial", sd_guess=...)``."""
    try:
        cls = PARAMETERIZATIONS[name]
    except KeyError:
        raise ValueError(f"unknown parameterization {name!r}; the registered ones are {sorted(PARAMETERIZATIONS)}") from None
    accepted: set[str] = {f.name for f in fields(cls)} if is_dataclass(cls) else set()
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise ValueError(f"parameterization {name!r} takes the option(s) {sorted(accepted)}, not {unknown}")
    return cls(**options)


def survey_likelihood(
    design: Design, dtype: DTypeLike, max_grid_ratio: float = GRID_MAX_RATIO
) -> tuple[CellBlocks, dict[str, Any]]:
    """The survey cells' blocks, and the likelihood's arguments every parameterisation shares.

    Returns
    -------
    blocks : CellBlocks
        :func:`~mrp_numpyro.model.blocks.cell_blocks` of the survey cells.
    kwargs : dict
        ``index``, ``trials`` and ``successes`` (:func:`~mrp_numpyro.model.blocks.likelihood_arrays`):
        over the survey cells or over the grid of the blocks' combinations; a categorical
        outcome's ``successes`` have a last axis, the count of each answer.
    """
    s = design.survey
    count_dtype = jnp.int64 if np.dtype(dtype).itemsize == 8 else jnp.int32
    blocks = cell_blocks(design)
    # A categorical outcome's "successes" are every answer's count (cells, K).
    observed = s.counts if design.categorical else s.successes
    assert s.trials is not None and observed is not None  # the survey's cells have counts
    cells = likelihood_arrays(blocks, s.trials, observed, max_grid_ratio)
    return blocks, {
        "index": None if cells["index"] is None else jnp.asarray(cells["index"]),
        # Integer counts: Binomial needs them to simulate data when successes is None.
        "trials": jnp.asarray(cells["trials"], count_dtype),
        "successes": jnp.asarray(cells["successes"], count_dtype),
    }


def build_model(
    design: Design,
    priors: Priors,
    dtype: DTypeLike = np.float32,
    parameterization: str | Parameterization = "noncentred",
    sd_guess: Mapping[str, float] | None = None,
    max_grid_ratio: float = GRID_MAX_RATIO,
) -> MRPModel:
    """Bind the model's static settings and the survey arrays.

    Parameters
    ----------
    design : Design
    priors : Priors
    dtype : numpy dtype
        Floating type of the arrays (float32 by default; float64 with x64 enabled).
    parameterization : str or Parameterization
        The coordinates inference works in, by registered name (``noncentred``, ``partial``,
        ``identified``; :data:`~mrp_numpyro.model.base.PARAMETERIZATIONS`) or as an instance; the posterior is the same.
    sd_guess : mapping of group name to float, optional
        Each group's standard deviation as a pilot fit estimates it: the option ``partial`` needs.
    max_grid_ratio : float
        The likelihood runs over every combination of the blocks' rows while there are at
        most this many per survey cell, else over the survey cells
        (:func:`mrp_numpyro.model.blocks.likelihood_arrays`); the log density is the same.
    """
    if isinstance(parameterization, str):
        options = {} if sd_guess is None else {"sd_guess": sd_guess}
        parameterization = get_parameterization(parameterization, **options)
    return parameterization.build(design, priors, dtype=dtype, max_grid_ratio=max_grid_ratio)
