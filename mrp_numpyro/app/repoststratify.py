"""A saved fit applied to another poststratification table, without refitting.

A run directory holds the posterior draws (``posterior.nc``), the survey's cells, the area
table and the schema (:mod:`mrp_numpyro.data.saved`), and the config with the formula. From
them the fit's design is rebuilt exactly against a new table (a likely-voter table, another
year's census, a different geography built from the same factors) and the draws are
poststratified to it, optionally calibrated to known area values
(:mod:`mrp_numpyro.calibration`).

Levels of a varying intercept that the fit never saw (a table's new area or age group, and
the interactions they form) are drawn from their group's fitted distribution: for every
draw, ``sd_g * z`` with a new standard normal ``z`` (brms' ``sample_new_levels =
"gaussian"``); the log and ``poststratify.json`` list them. A new level of a factor that
enters as a population-level coefficient has no coefficient and is refused.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from omegaconf import OmegaConf

from ..calibration import Calibration
from ..data.files import factor_text, read_table
from ..data.saved import load_fit_data
from ..data.schema import DataError, SurveySchema
from ..data.validation import build_mrp_data
from ..design.cells import Design, build_design
from ..design.formula import parse_formula
from ..design.layout import SITES
from ..labelled import level_dim
from ..poststratification import Poststratified, poststratify_calibrated, poststratify_draws

log = logging.getLogger("mrp_numpyro")

__all__ = ["Repoststratified", "repoststratify"]


@dataclass(frozen=True)
class Repoststratified:
    """A saved fit poststratified to another table.

    Attributes
    ----------
    groupings : mapping of str to Poststratified
    tables : mapping of str to pandas.DataFrame
        Summary of every grouping.
    design : Design
        The fit's design against the new table.
    new_levels : mapping of str to list of str
        Levels of each varying intercept drawn from its group's distribution.
    shifts : Poststratified or None
        Calibration shift of every area and draw.
    notes : tuple of str
    """

    groupings: Mapping[str, Poststratified]
    tables: Mapping[str, pd.DataFrame]
    design: Design
    new_levels: Mapping[str, list[str]]
    shifts: Poststratified | None
    notes: tuple[str, ...]


def _extended_schema(
    schema: SurveySchema, table: pd.DataFrame, fixed_factors: set[str], what: str
) -> tuple[SurveySchema, list[str]]:
    notes = []
    factors = dict(schema.factors)
    for column, levels in schema.factors.items():
        new = sorted(set(table[column].dropna()) - set(levels), key=str)
        if not new:
            continue
        if column in fixed_factors:
            raise DataError(
                f"{what} column {column!r} has level(s) {new} that the fit never saw; {column} enters the model as "
                "population-level coefficients or under a structured prior, which have no value for a new level"
            )
        factors[column] = tuple(levels) + tuple(new)
        notes.append(f"{column}: level(s) {new} of the table are not in the fit")
    return replace(schema, factors=factors), notes


def _area_table(table: pd.DataFrame, saved: pd.DataFrame | None, schema: SurveySchema, what: str) -> pd.DataFrame | None:
    """The area predictors for the table: its own columns if it has them all, else the fit's."""
    if not schema.area_columns:
        return None
    area = schema.area
    if all(c in table.columns for c in schema.area_columns):
        own = table[[area, *schema.area_columns]].drop_duplicates()
        dup = own[area].duplicated(keep=False)
        if dup.any():
            raise DataError(
                f"{what} gives more than one value of {list(schema.area_columns)} for {area} {sorted(set(own.loc[dup, area]))}"
            )
        if saved is None:
            return own
        # Areas the table does not list keep the fit's values, so every declared area has a row.
        rest = saved[~saved[area].astype(str).isin(own[area])]
        return pd.concat([rest.astype({area: str}), own], ignore_index=True)
    assert saved is not None
    unknown = sorted(set(table[area].dropna()) - set(saved[area].astype(str)), key=str)
    if unknown:
        raise DataError(
            f"{what} has {area} value(s) {unknown} that the fit's area table lacks; give the table the columns "
            f"{list(schema.area_columns)} for them"
        )
    return saved


def _draws(posterior: xr.Dataset, design: Design, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """The fit's draws laid out for ``design``, new levels drawn from their group's distribution."""
    layout = design.layout
    draws: dict[str, np.ndarray] = {SITES.intercept: posterior[SITES.intercept].to_numpy()}
    if layout.fixed_names:
        saved = [str(c) for c in posterior[SITES.coefficients].coords["coef"].to_numpy()]
        if saved != list(layout.fixed_names):
            raise DataError(f"the rebuilt design's coefficients {list(layout.fixed_names)} differ from the fit's {saved}")
        draws[SITES.coefficients] = posterior[SITES.coefficients].to_numpy()
    new_levels: dict[str, list[str]] = {}
    for slot in layout.groups:
        sd, z = SITES.sd(slot.name), SITES.z(slot.name)
        draws[sd] = posterior[sd].to_numpy()
        old = posterior[z]
        position = {str(v): i for i, v in enumerate(old.coords[level_dim(slot.factor)].to_numpy())}
        values = old.to_numpy()
        chains, ndraw = values.shape[:2]
        out = np.empty((chains, ndraw, slot.size), dtype=values.dtype)
        new = [j for j, label in enumerate(slot.levels) if label not in position]
        known = [j for j in range(slot.size) if j not in set(new)]
        out[..., known] = values[..., [position[slot.levels[j]] for j in known]]
        if new:
            out[..., new] = rng.standard_normal((chains, ndraw, len(new)))
            new_levels[slot.name] = [slot.levels[j] for j in new]
        draws[z] = out
    for term in layout.correlated:
        # A new level's coefficients are drawn together, correlated as each draw's matrix says.
        first = layout.groups[term.slots[0]]
        new = [j for j, label in enumerate(first.levels) if label in set(new_levels.get(first.name, ()))]
        if new:
            chol = np.linalg.cholesky(posterior[SITES.correlation(term.name)].to_numpy())  # (chains, draws, J, J)
            z = rng.standard_normal(chol.shape[:2] + (len(new), term.size)) @ np.swapaxes(chol, -1, -2)
            for k, g in enumerate(term.slots):
                draws[SITES.z(layout.groups[g].name)][..., new] = z[..., k]
    return draws, new_levels


def repoststratify(
    run_dir: str | Path,
    table: str | Path | pd.DataFrame,
    *,
    groupings: Mapping[str, Sequence[str]] | None = None,
    count: str | None = None,
    calibration: Calibration | None = None,
    seed: int = 0,
    chunk_size: int = 500,
) -> Repoststratified:
    """Poststratify the draws of a finished run to another table.

    Parameters
    ----------
    run_dir : path-like
        A run directory of ``python -m mrp_numpyro``.
    table : path-like or pandas.DataFrame
        The new poststratification table (CSV or Parquet), with the fit's cell columns and
        a count column; area predictors are taken from it when it has them all, else from
        the fit's area table.
    groupings : mapping, optional
        Name -> columns; the run's ``poststrat.groupings`` by default.
    count : str, optional
        The table's count column, if not the fit's.
    calibration : Calibration, optional
        Known values of some areas to shift the cells to.
    seed : int
        Seed of the draws of new levels.
    chunk_size : int
        Draws predicted at once.
    """
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    cells, saved_areas, schema = load_fit_data(run_dir)
    if schema.categorical:
        raise DataError(
            f"{run_dir} is a fit of the categorical outcome {schema.outcome!r} ({', '.join(schema.outcome_levels)}); "
            "re-poststratifying a saved categorical fit to another table is not offered yet: rerun it with that table"
        )
    formula = str(cfg.model.formula)
    noncensus = [c for c in schema.noncensus if re.search(rf"\b{re.escape(c)}\b", formula.split("~", 1)[-1])]
    if noncensus:
        raise DataError(
            f"{run_dir} fitted the non-census factor(s) {noncensus} ({formula}); re-poststratifying it needs the "
            "shares of its model, which a run does not save yet: rerun it with that table"
        )
    what = "new poststratification table" if isinstance(table, pd.DataFrame) else f"poststratification table {Path(table).name!r}"
    frame = table if isinstance(table, pd.DataFrame) else read_table(table, "poststratification table")
    if len(frame) == 0:
        raise DataError(f"{what} has no rows")
    # A table in the coding of the files the fit read: the config's renames of its table.
    renames = OmegaConf.select(cfg, "data.columns.poststrat", default=None) or {}
    frame = frame.rename(columns={old: new for old, new in renames.items() if old in frame.columns and new not in frame.columns})
    if count is not None:
        if count not in frame.columns:
            raise DataError(f"{what} has no count column {count!r}; it has {list(frame.columns)}")
        if count != schema.count and schema.count in frame.columns:
            log.info("%s: counts from %r, not from its column %r", what, count, schema.count)
            frame = frame.drop(columns=[schema.count])
        frame = frame.rename(columns={count: schema.count})
    needed = [*schema.cell_columns, schema.count]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(
            f"{what} is missing column(s) {missing} that the fit uses (cell columns {list(schema.cell_columns)}, "
            f"count {schema.count!r}); it has {list(frame.columns)}"
        )
    frame = factor_text(frame, [*schema.factors, *schema.area_factors])
    spec = parse_formula(str(cfg.model.formula), columns=[*cells.columns, *schema.area_columns])
    fixed_factors = {c for t in spec.fixed for c in t.columns if c in schema.factors or c in schema.area_factors}
    # A structured prior is a joint prior over the levels it was fitted with: a new one has no place in it.
    fixed_factors |= {g.columns[0] for g in spec.groups if g.structure != "iid"}
    extended, notes = _extended_schema(schema, frame, fixed_factors, what)
    areas = _area_table(frame, saved_areas, extended, what)
    keep = [*needed, *(c for c in extended.area_columns if c not in needed)]
    data = build_mrp_data(
        cells,
        frame[[c for c in keep if c in frame.columns]],
        areas,
        extended,
        source=str(what),
        names={"survey": f"survey cells of {run_dir}", "poststrat": what, "areas": "area table"},
        complete_table=False,
    )
    if calibration is not None:
        if calibration.column not in frame.columns:
            raise DataError(f"{calibration.source}: {what} has no column {calibration.column!r} to calibrate")
        unknown = sorted(set(calibration.targets) - set(frame[calibration.column].dropna().astype(str)))
        if unknown:
            raise DataError(
                f"{calibration.source} names {calibration.column} value(s) {unknown} that {what} lacks; "
                f"it has {sorted(set(frame[calibration.column].dropna().astype(str)))[:10]}"
            )
    design = build_design(spec, data, adjacency=cfg.model.get("adjacency"))
    posterior = xr.open_dataset(run_dir / "posterior.nc", group="posterior")
    draws, new_levels = _draws(posterior.load(), design, np.random.default_rng(seed))
    posterior.close()
    for group, levels in new_levels.items():
        notes.append(f"{group}: {len(levels)} level(s) the fit never saw, drawn from N(0, sd_{group}): {levels[:5]}")
    for note in notes:
        log.info(note)
    if groupings is None:
        groupings = OmegaConf.to_container(cfg.poststrat.groupings, resolve=True)  # type: ignore[assignment]
    assert groupings is not None
    x64 = bool(OmegaConf.select(cfg, "device.x64", default=False))
    if calibration is None:
        estimates = poststratify_draws(draws, design, groupings, chunk_size, dtype=np.float64 if x64 else np.float32)
        shifts = None
    else:
        estimates, shifts = poststratify_calibrated(draws, design, groupings, calibration, chunk_size)
        uncalibrated = sorted(set(shifts.labels[calibration.column].astype(str)) - set(calibration.targets))
        if uncalibrated:
            notes.append(f"calibration: no target for {calibration.column} {uncalibrated}; those areas are not shifted")
            log.info(notes[-1])
    tables = {name: est.summary() for name, est in estimates.items()}
    log.info(
        "poststratified %d draws to %d cells in %.1f s",
        next(iter(draws.values())).size,
        design.poststrat.n_cells,
        time.perf_counter() - t0,
    )
    return Repoststratified(estimates, tables, design, new_levels, shifts, tuple(notes))


def summary_of(result: Repoststratified, run_dir: Path, table: Any, calibration: Calibration | None) -> dict[str, Any]:
    """``poststratify.json``: where the draws and the table came from, new levels, calibration."""
    out: dict[str, Any] = {
        "run_dir": str(run_dir),
        "table": str(table) if not isinstance(table, pd.DataFrame) else "DataFrame",
        "n_cells": result.design.poststrat.n_cells,
        "new_levels": dict(result.new_levels),
        "notes": list(result.notes),
    }
    if calibration is not None and result.shifts is not None:
        area = calibration.column
        table_area = result.tables.get(area)
        achieved = {}
        if table_area is not None:
            values = dict(
                zip(table_area[area].astype(str), result.groupings[area].draws.reshape(-1, len(table_area)).T, strict=True)
            )
            achieved = {k: float(np.max(np.abs(values[k] - v))) for k, v in calibration.targets.items() if k in values}
        out["calibration"] = {
            "column": area,
            "targets": dict(calibration.targets),
            "max_abs_error": max(achieved.values()) if achieved else None,
        }
    return out
