"""Non-census MRP: a predictor the census table does not count, modelled from the factors it does.

Party ID predicts opinion far better than demographics, but no census table counts it. The
run's formula may then use it (``abortion ~ ... + (1 | party)``, the factor declared in
``schema.noncensus``) if the config gives a model of it from the census factors
(``model.noncensus.party: "party ~ (1 | state) + ..."``, a categorical outcome). The run

1. fits that model with the run's inference method (:func:`fit_noncensus`);
2. predicts every census cell's shares ``P(party | cell)`` in each of its draws;
3. fits the run's own model, whose poststratification table is the census table extended
   to every cell and party (:func:`~mrp_numpyro.design.aggregation.extend_table`);
4. poststratifies draw ``d`` of the second model over counts ``N * P_d(party | cell)``
   from draw ``d`` of the first (:func:`~mrp_numpyro.poststratification.poststratify_draws`),
   so the first model's uncertainty reaches the final intervals.

Groupings may then name the factor too (``state_party: [state, party]``: the estimate by
party within state).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

import jax
import numpy as np
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..data.schema import DataError, MRPData
from ..design.cells import build_design
from ..design.formula import parse_formula
from ..inference.result import Fit, flatten_draws
from ..model import Parameterization
from ..model.blocks import cell_blocks
from ..model.predict import cell_logits_by_cell
from ..outputs import write_csv
from ..poststratification import Poststratified, category_shares, poststratify_draws
from .pipeline import Problem
from .truth import estimate_tables

log = logging.getLogger("mrp_numpyro")

__all__ = ["NoncensusFit", "noncensus_data", "fit_noncensus", "noncensus_summary", "write_noncensus"]


@dataclass(frozen=True)
class NoncensusFit:
    """The fitted model of a non-census factor, and what the run's poststratification takes from it.

    Attributes
    ----------
    column : str
        The factor (``party``).
    problem : Problem
        Its data (the survey with the factor as a categorical outcome), design and model.
    fit : Fit
    estimates : mapping of str to Poststratified
        Its shares by every grouping of the run that does not name the factor.
    cell_shares : array (draws, census cells, levels)
        ``P(level | cell)`` of every census cell in every flat draw.
    """

    column: str
    problem: Problem
    fit: Fit
    estimates: Mapping[str, Poststratified]
    cell_shares: np.ndarray


def noncensus_data(data: MRPData, column: str) -> MRPData:
    """The survey with the non-census factor ``column`` as its categorical outcome, over the census table."""
    schema = data.schema
    if column not in schema.noncensus:
        raise DataError(f"{column!r} is not a non-census factor of the schema ({list(schema.noncensus)})")
    levels = tuple(schema.noncensus[column])
    others = {c: v for c, v in schema.noncensus.items() if c != column}
    retargeted = replace(schema, outcome=column, outcome_levels=levels, baseline=None, noncensus=others)
    return replace(
        data,
        schema=retargeted,
        truth=None if data.truth is None else data.truth.shares(column, levels, data.schema.area),
        source=f"{data.source}, {column} as the outcome",
    )


def _cell_shares(fit: Fit, problem: Problem) -> np.ndarray:
    """Every census cell's share of each level (draws, cells, K) in the fit's flat draws, in the fit's precision."""
    design = problem.design
    post = design.poststrat
    logits = cell_logits_by_cell(flatten_draws(fit.draws), design, post, cell_blocks(design, cells=post), dtype=problem.dtype)
    return np.ascontiguousarray(category_shares(logits, design.baseline).transpose(1, 0, 2))


def fit_noncensus(problem: Problem, cfg: DictConfig, *, progress_bar: bool = False) -> NoncensusFit | None:
    """Fit the model of the run's non-census factor (``model.noncensus.<factor>``); None when the formula has none.

    The model is a categorical outcome over the census factors, fitted with the run's
    inference method and coordinates from a key folded from the run's.

    Raises
    ------
    DataError
        When the formula uses a non-census factor that ``model.noncensus`` gives no model
        of, or that model's formula is not of that factor or uses another non-census factor.
    """
    column = problem.design.noncensus
    if column is None:
        return None
    given = cfg.model.get("noncensus")
    formulas = cast(dict[str, str], OmegaConf.to_container(given, resolve=True)) if given else {}
    if column not in formulas:
        raise DataError(
            f"the formula uses the non-census factor {column!r}, which the poststratification table does not count: "
            f"give a model of it from the census factors, e.g. model.noncensus.{column}='{column} ~ (1 | state) + (1 | eth)'"
        )
    t = time.perf_counter()
    data = noncensus_data(problem.data, column)
    spec = parse_formula(formulas[column], columns=data.survey.columns)
    if spec.response != column:
        raise DataError(f"model.noncensus.{column} must model {column!r}, not {spec.response!r}: {spec.formula}")
    design = build_design(spec, data, adjacency=cfg.model.get("adjacency"))
    if design.noncensus is not None:
        raise DataError(f"model.noncensus.{column} uses the non-census factor {design.noncensus!r}; use census factors only")
    key = jax.random.fold_in(problem.rng_key, 2)
    parameterization: Parameterization = instantiate(cfg.model.parameterization)
    model = parameterization.build(design, problem.priors, dtype=problem.dtype, rng_key=jax.random.fold_in(key, 1))
    first = Problem(data, model, key, problem.dtype, problem.device, {"model": time.perf_counter() - t})
    method = instantiate(cfg.inference)
    log.info("non-census factor %s: fitting %s with %s", column, spec.formula, method.label)
    fitted: Fit = method.fit(model, key, progress_bar=progress_bar)
    log.info("non-census factor %s: fit done in %.1f s: %s", column, fitted.seconds, dict(fitted.diagnostics))
    groupings = cast(dict[str, list[str]], OmegaConf.to_container(cfg.poststrat.groupings, resolve=True))
    own = {name: cols for name, cols in groupings.items() if column not in cols}
    estimates = poststratify_draws(fitted.draws, design, own, chunk_size=int(cfg.poststrat.chunk_size), dtype=problem.dtype)
    return NoncensusFit(column, first, fitted, estimates, _cell_shares(fitted, first))


def noncensus_summary(first: NoncensusFit) -> dict[str, Any]:
    """What ``summary.json`` says of the model of the non-census factor, under ``noncensus``."""
    diagnostics = dict(first.fit.diagnostics)
    national = first.estimates.get("national")
    shares = None
    if national is not None:
        table = national.summary()
        shares = dict(zip(table[first.column], table["mean"].astype(float), strict=True))
    return {
        first.column: {
            "formula": first.problem.design.spec.formula,
            "method": first.fit.method,
            "label": first.fit.name,
            "parameterization": first.problem.model.parameterization,
            "fit_s": round(first.fit.seconds, 4),
            "verdict": diagnostics.get("verdict"),
            "national_shares": shares,
            "diagnostics": diagnostics,
        }
    }


def write_noncensus(out: str | Path, first: NoncensusFit) -> list[Path]:
    """The first model's shares of every grouping, ``estimates_<factor>_<grouping>.csv``, with the truth on synthetic data."""
    tables = estimate_tables(first.problem.data, first.estimates)
    return [write_csv(Path(out) / f"estimates_{first.column}_{name}.csv", table) for name, table in tables.items()]
