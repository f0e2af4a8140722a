"""The survey as a run directory keeps it: its cells, the area table and the schema.

A fit depends on the survey only through its cells (respondents with identical predictors)
and their counts, so a run saves those, not the respondents: ``survey_cells.csv`` (one row
per occupied combination of the schema's cell columns, with the count of "1" answers, or
of every answer of a categorical outcome, and of respondents), ``areas.csv`` and
``schema.json``. From them the design of the fit can be rebuilt exactly against any other poststratification table
(:mod:`mrp_numpyro.app.repoststratify`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..outputs import write_csv, write_json
from .schema import DataError, MRPData, SurveySchema

__all__ = ["FIT_DATA_FILES", "survey_cells", "category_column", "save_fit_data", "load_schema", "load_fit_data"]

FIT_DATA_FILES = {"schema": "schema.json", "cells": "survey_cells.csv", "areas": "areas.csv"}


def survey_cells(data: MRPData) -> tuple[pd.DataFrame, SurveySchema]:
    """The survey aggregated over the schema's cell columns, and the pre-aggregated schema that reads it.

    Non-census factors (``schema.noncensus``) are kept as columns: a cell is then a
    combination of the cell columns and of them.
    """
    schema = data.schema
    trials = schema.trials or next(n for n in ("respondents", "respondents_", "trials_") if n not in schema.columns)
    survey = data.survey
    counts = survey[schema.trials] if schema.trials else pd.Series(1, index=survey.index)
    if schema.categorical:
        # A count column per answer, "party[Democrat]", beside the cell's respondents.
        answers = {category_column(schema, c): (survey[schema.outcome] == c).astype(int) for c in schema.outcome_levels}
    else:
        answers = {schema.outcome: survey[schema.outcome]}
    keys = [*schema.cell_columns, *schema.noncensus]
    frame = survey[keys].assign(**answers, **{trials: counts})
    cells = frame.groupby(keys, observed=True, sort=True)[[*answers, trials]].sum().reset_index()
    if schema.categorical:
        # Only the table's answer counts: the schema stays one of respondents.
        return _text_levels(cells, schema), schema
    return _text_levels(cells, schema), replace(schema, trials=trials)


def category_column(schema: SurveySchema, category: str) -> str:
    """The column of ``survey_cells.csv`` counting a categorical outcome's answer ``category``."""
    return f"{schema.outcome}[{category}]"


def _text_levels(cells: pd.DataFrame, schema: SurveySchema) -> pd.DataFrame:
    for c in [*schema.factors, *schema.noncensus]:
        cells[c] = cells[c].astype(str)
    return cells


def save_fit_data(out: str | Path, data: MRPData) -> list[Path]:
    """Write the survey's cells, the area table and the schema into a run directory."""
    out = Path(out)
    cells, schema = survey_cells(data)
    # Levels as text, as the cells are written and as any table is read back.
    saved = schema.to_dict()
    for key in ("factors", "area_factors"):
        saved[key] = {c: [str(v) for v in levels] for c, levels in saved[key].items()}
    paths = [write_json(out / FIT_DATA_FILES["schema"], saved), write_csv(out / FIT_DATA_FILES["cells"], cells)]
    if data.areas is not None:
        paths.append(write_csv(out / FIT_DATA_FILES["areas"], data.areas))
    return paths


def load_schema(run_dir: str | Path) -> SurveySchema:
    """The schema a run directory saved, alone (without reading its cells)."""
    path = Path(run_dir) / FIT_DATA_FILES["schema"]
    if not path.is_file():
        raise DataError(
            f"{run_dir} has no {FIT_DATA_FILES['schema']}: it is not a finished run directory, "
            "or it was written by a version that did not save the survey's cells"
        )
    return SurveySchema.from_dict(json.loads(path.read_text()))


def load_fit_data(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, SurveySchema]:
    """Read what :func:`save_fit_data` wrote: survey cells, area table (or None) and schema."""
    run_dir = Path(run_dir)
    schema = load_schema(run_dir)
    text = {c: str for c in (*schema.factors, *schema.area_factors)}
    cells = pd.read_csv(run_dir / FIT_DATA_FILES["cells"], dtype=text, keep_default_na=False)
    areas_path = run_dir / FIT_DATA_FILES["areas"]
    areas = pd.read_csv(areas_path, dtype=text, keep_default_na=False) if areas_path.is_file() else None
    return cells, areas, schema
