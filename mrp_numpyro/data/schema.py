"""The survey/poststratification schema and the validated data record.

A :class:`SurveySchema` says which column is the binary outcome, which columns
are categorical (with a fixed level order), which are numeric, which column is
the area key, and which area-level predictors are joined on that key. Survey
and poststratification table share one coding of every factor; the checks in
:func:`validate_survey` and :func:`validate_poststrat` enforce it and name the
column and the offending values when they do not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "recode_outcome",
    "SurveySchema",
    "MRPData",
    "Truth",
    "DataError",
    "validate_survey",
    "validate_poststrat",
    "validate_area_table",
    "join_area_predictors",
]


class DataError(ValueError):
    """Raised when a survey, poststratification or area table is malformed."""


def _examples(values: Iterable[Any], k: int = 5) -> str:
    vals = list(pd.unique(pd.Series(list(values), dtype=object)))
    shown = ", ".join(repr(v) for v in vals[:k])
    more = f" (and {len(vals) - k} more)" if len(vals) > k else ""
    return shown + more


@dataclass(frozen=True)
class SurveySchema:
    """Column roles and level orders shared by a survey and its poststratification table.

    Parameters
    ----------
    outcome : str
        Binary outcome column of the survey (0/1).
    area : str
        Column naming the small area (e.g. ``"state"``); it must be one of ``factors``
        and is the key for ``area_factors`` / ``area_numeric``.
    factors : mapping of str to tuple
        Individual-level categorical columns and their level order.
    numeric : tuple of str
        Individual-level numeric columns (e.g. ``male`` coded -0.5/+0.5).
    area_factors : mapping of str to tuple
        Area-level categorical predictors and their level order; the first level is
        the baseline of a ``factor(...)`` term.
    area_numeric : tuple of str
        Area-level numeric predictors.
    count : str
        Population-count column of the poststratification table.
    """

    outcome: str
    area: str
    factors: Mapping[str, tuple]
    numeric: tuple[str, ...] = ()
    area_factors: Mapping[str, tuple] = field(default_factory=dict)
    area_numeric: tuple[str, ...] = ()
    count: str = "N"

    def __post_init__(self) -> None:
        if self.area not in self.factors:
            raise ValueError(f"area column {self.area!r} must be one of the factors {list(self.factors)}")

    @property
    def cell_columns(self) -> tuple[str, ...]:
        """Columns that identify one poststratification cell."""
        return tuple(self.factors) + tuple(self.numeric)

    @property
    def area_columns(self) -> tuple[str, ...]:
        """Area-level predictor columns, joined onto survey and table by the area key."""
        return tuple(self.area_factors) + tuple(self.area_numeric)

    def levels(self, column: str) -> tuple | None:
        """Declared level order of a categorical column, or None for numeric ones."""
        if column in self.factors:
            return tuple(self.factors[column])
        if column in self.area_factors:
            return tuple(self.area_factors[column])
        return None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the schema names: cell columns, then area-level ones."""
        return self.cell_columns + self.area_columns


@dataclass(frozen=True)
class Truth:
    """Known truth of a simulated data set.

    Attributes
    ----------
    area : pandas.Series
        True poststratified value of every area, indexed by area label.
    national : float
        True poststratified national value.
    fixed : dict of str to float
        True intercept (``Intercept``) and coefficients, by coefficient name (``male``,
        ``region[South]``).
    sd : dict of str to float
        True standard deviation of every varying intercept, by formula term (``male:eth``).
    effects : dict of str to array
        True varying intercepts of every term, in the order of the term's levels.
    """

    area: pd.Series
    national: float
    fixed: Mapping[str, float] = field(default_factory=dict)
    sd: Mapping[str, float] = field(default_factory=dict)
    effects: Mapping[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class MRPData:
    """A validated survey, its poststratification table and area predictors.

    ``survey`` and ``poststrat`` already carry the area-level predictor columns,
    joined on ``schema.area``.
    """

    schema: SurveySchema
    survey: pd.DataFrame
    poststrat: pd.DataFrame
    source: str
    truth: Truth | None = None
    notes: tuple[str, ...] = ()


def _require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} is missing column(s) {missing}; it has {list(df.columns)}. Check the spelling or the data config."
        )


def _check_levels(df: pd.DataFrame, column: str, levels: tuple, what: str) -> None:
    bad = ~df[column].isin(levels)
    if bad.any():
        raise DataError(
            f"{what} column {column!r} has {int(bad.sum())} value(s) outside the declared levels "
            f"{list(levels)}: {_examples(df.loc[bad, column])}"
        )


def _check_numeric(df: pd.DataFrame, column: str, what: str) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        raise DataError(
            f"{what} column {column!r} must be numeric and finite; {int(bad.sum())} row(s) are not, "
            f"e.g. {_examples(df.loc[bad, column])}"
        )
    return values.astype(float)


def recode_outcome(survey: pd.DataFrame, column: str, mapping: Mapping, what: str = "survey") -> pd.DataFrame:
    """Recode an outcome column to 0/1 by an explicit mapping, e.g. ``{"Support": 1, "Oppose": 0}``.

    Every value of the column must be a key of ``mapping``; unmapped values are an error that
    lists them, so nothing is silently dropped or guessed.
    """
    mapping = dict(mapping)
    bad_targets = {k: v for k, v in mapping.items() if v not in (0, 1)}
    if bad_targets:
        raise DataError(f"outcome mapping must map to 0 or 1; got {bad_targets}")
    if column not in survey.columns:
        raise DataError(f"{what} is missing the outcome column {column!r}; it has {list(survey.columns)}")
    recoded = survey[column].map(mapping)
    unmapped = recoded.isna()
    if unmapped.any():
        raise DataError(
            f"{what} outcome column {column!r} has {int(unmapped.sum())} value(s) not in the outcome mapping "
            f"{list(mapping)}: {_examples(survey.loc[unmapped, column])}"
        )
    out = survey.copy()
    out[column] = recoded.astype(np.int8)
    return out


def validate_survey(survey: pd.DataFrame, schema: SurveySchema, what: str = "survey") -> pd.DataFrame:
    """Check a respondent-level survey against the schema and return a typed copy.

    Raises
    ------
    DataError
        On missing columns, an outcome that is missing or not 0/1, levels outside the
        schema, or non-numeric values in numeric columns. The message names the column
        and shows example bad values.
    """
    _require_columns(survey, (schema.outcome,) + schema.cell_columns, what)
    if len(survey) == 0:
        raise DataError(f"{what} has no rows")
    out = survey.copy()
    y = pd.to_numeric(out[schema.outcome], errors="coerce")
    bad = y.isna() | ~y.isin([0, 1])
    if bad.any():
        raise DataError(
            f"{what} outcome column {schema.outcome!r} must be 0/1 with no missing values; "
            f"{int(bad.sum())} row(s) are not, e.g. {_examples(out.loc[bad, schema.outcome])}. "
            "Recode it (1 = the answer being estimated, 0 = otherwise) before fitting."
        )
    out[schema.outcome] = y.astype(np.int8)
    for col, levels in schema.factors.items():
        _check_levels(out, col, tuple(levels), what)
        out[col] = pd.Categorical(out[col], categories=list(levels), ordered=False)
    for col in schema.numeric:
        out[col] = _check_numeric(out, col, what)
    return out


def validate_poststrat(poststrat: pd.DataFrame, schema: SurveySchema, what: str = "poststratification table") -> pd.DataFrame:
    """Check a poststratification table and return a typed copy.

    Every cell must appear once, with a finite, non-negative, integer-valued count, and
    every area must have a positive total count.
    """
    _require_columns(poststrat, schema.cell_columns + (schema.count,), what)
    out = poststrat.copy()
    for col, levels in schema.factors.items():
        _check_levels(out, col, tuple(levels), what)
        out[col] = pd.Categorical(out[col], categories=list(levels), ordered=False)
    for col in schema.numeric:
        out[col] = _check_numeric(out, col, what)
    n = pd.to_numeric(out[schema.count], errors="coerce")
    bad = n.isna() | (n < 0) | (n != np.round(n))
    if bad.any():
        raise DataError(
            f"{what} column {schema.count!r} must hold non-negative whole population counts; "
            f"{int(bad.sum())} row(s) do not, e.g. {_examples(out.loc[bad, schema.count])}"
        )
    out[schema.count] = n.astype(float)
    dup = out.duplicated(list(schema.cell_columns), keep=False)
    if dup.any():
        first = out.loc[dup, list(schema.cell_columns)].head(3).to_dict("records")
        raise DataError(f"{what} has {int(dup.sum())} duplicated cell rows, e.g. {first}")
    totals = out.groupby(schema.area, observed=False)[schema.count].sum()
    empty = totals[totals <= 0]
    if len(empty):
        raise DataError(
            f"{what}: every cell of {schema.area} {_examples(empty.index)} has {schema.count} = 0, "
            "so its poststratified value is undefined; drop the area or fix the counts"
        )
    return out


def validate_area_table(table: pd.DataFrame, schema: SurveySchema, what: str = "area predictor table") -> pd.DataFrame:
    """Check the area-level predictor table: one row per area, declared levels, numeric values."""
    _require_columns(table, (schema.area,) + schema.area_columns, what)
    out = table.loc[:, [schema.area, *schema.area_columns]].copy()
    _check_levels(out, schema.area, tuple(schema.factors[schema.area]), what)
    dup = out[schema.area].duplicated(keep=False)
    if dup.any():
        raise DataError(f"{what} lists {schema.area} more than once: {_examples(out.loc[dup, schema.area])}")
    missing = set(schema.factors[schema.area]) - set(out[schema.area])
    if missing:
        raise DataError(f"{what} has no row for {schema.area} {_examples(sorted(missing))}")
    for col, levels in schema.area_factors.items():
        _check_levels(out, col, tuple(levels), what)
        out[col] = pd.Categorical(out[col], categories=list(levels), ordered=False)
    for col in schema.area_numeric:
        out[col] = _check_numeric(out, col, what)
    out[schema.area] = pd.Categorical(out[schema.area], categories=list(schema.factors[schema.area]))
    return out


def join_area_predictors(df: pd.DataFrame, area_table: pd.DataFrame, schema: SurveySchema) -> pd.DataFrame:
    """Attach area-level predictors to every row of ``df`` by the area key."""
    if not schema.area_columns:
        return df
    lookup = area_table.set_index(schema.area)
    out = df.drop(columns=[c for c in schema.area_columns if c in df.columns])
    codes = out[schema.area].cat.codes.to_numpy()
    lookup = lookup.reindex(list(schema.factors[schema.area]))
    for col in schema.area_columns:
        values = lookup[col].to_numpy()[codes]
        if col in schema.area_factors:
            values = pd.Categorical(values, categories=list(schema.area_factors[col]))
        out[col] = values
    return out


def check_survey_in_poststrat(survey: pd.DataFrame, poststrat: pd.DataFrame, schema: SurveySchema) -> list[str]:
    """Check that survey levels appear in the table; return notes on table-only levels.

    A survey level that the table lacks cannot be poststratified and is an error. A
    table level that no respondent has is fine (the hierarchy predicts it) and is
    reported as a note.
    """
    notes = []
    for col in schema.cell_columns:
        in_survey = set(survey[col].dropna().unique().tolist())
        in_table = set(poststrat[col].dropna().unique().tolist())
        absent = in_survey - in_table
        if absent:
            raise DataError(
                f"survey column {col!r} has level(s) absent from the poststratification table: "
                f"{_examples(sorted(absent, key=str))}"
            )
        unseen = in_table - in_survey
        if unseen:
            notes.append(
                f"{col}: {len(unseen)} level(s) of the poststratification table have no respondents "
                f"({_examples(sorted(unseen, key=str))}); they are predicted from the hierarchy"
            )
    return notes


def build_mrp_data(
    survey: pd.DataFrame,
    poststrat: pd.DataFrame,
    area_table: pd.DataFrame | None,
    schema: SurveySchema,
    source: str,
    truth: Truth | None = None,
    notes: tuple[str, ...] = (),
) -> MRPData:
    """Validate the three tables, join the area predictors and return an :class:`MRPData`."""
    survey = validate_survey(survey, schema)
    poststrat = validate_poststrat(poststrat, schema)
    extra = check_survey_in_poststrat(survey, poststrat, schema)
    if schema.area_columns:
        if area_table is None:
            raise DataError(f"the schema names area predictors {list(schema.area_columns)} but no area table was given")
        area_table = validate_area_table(area_table, schema)
        survey = join_area_predictors(survey, area_table, schema)
        poststrat = join_area_predictors(poststrat, area_table, schema)
    return MRPData(
        schema, survey.reset_index(drop=True), poststrat.reset_index(drop=True), source, truth, tuple(notes) + tuple(extra)
    )
