"""The survey as a run directory keeps it: its cells, the area table and the schema.

A fit depends on the survey only through its cells (respondents with identical predictors)
and their counts, so a run saves those, not the respondents: ``survey_cells.csv`` (one row
per occupied combination of the schema's cell columns, with the count of "1" answers and
of respondents), ``areas.csv`` and ``schema.json``. From them the design of the fit can be
rebuilt exactly against any other poststratification table
(:mod:`mrp_numpyro.app.repoststratify`).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..outputs import write_csv, write_json
from .schema import DataError, MRPData, SurveySchema

__all__ = ["FIT_DATA_FILES", "survey_cells", "save_fit_data", "load_schema", "load_fit_data"]

FIT_DATA_FILES = {"schema": "schema.json", "cells": "survey_cells.csv", "areas": "areas.csv"}


def survey_cells(data: MRPData) -> tuple[pd.DataFrame, SurveySchema]:
    """The survey aggregated over the schema's cell columns, and the pre-aggregated schema that reads it."""
    schema = data.schema
    trials = schema.trials or next(n for n in ("respondents", "respondents_", "trials_") if n not in schema.columns)
    survey = data.survey
    counts = survey[schema.trials] if schema.trials else pd.Series(1, index=survey.index)
    frame = survey[list(schema.cell_columns)].assign(**{schema.outcome: survey[schema.outcome], trials: counts})
    cells = frame.groupby(list(schema.cell_columns), observed=True, sort=True)[[schema.outcome, trials]].sum().reset_index()
    for c in schema.factors:
        cells[c] = cells[c].astype(str)
    return cells, replace(schema, trials=trials)


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
