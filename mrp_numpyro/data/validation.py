"""Validation of a survey, its poststratification table and area table against a :class:`~mrp_numpyro.data.schema.SurveySchema`.

Every check names the table (by its file where there is one), the column and example bad
values; :func:`build_mrp_data` runs them all and joins the area predictors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from .schema import DataError, MRPData, SurveySchema, Truth, _examples

__all__ = [
    "recode_outcome",
    "validate_survey",
    "validate_poststrat",
    "validate_area_table",
    "join_area_predictors",
    "check_survey_in_poststrat",
    "build_mrp_data",
]


def _require_columns(df: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise DataError(
            f"{what} is missing column(s) {missing}; it has {list(df.columns)}. Check the spelling or the data config."
        )


def _check_levels(df: pd.DataFrame, column: str, levels: tuple, what: str, hint: str = "") -> None:
    bad = ~df[column].isin(levels)
    if bad.any():
        raise DataError(
            f"{what} column {column!r} has {int(bad.sum())} value(s) outside the declared levels "
            f"{list(levels)}: {_examples(df.loc[bad, column])}{hint}"
        )


# A survey code the table does not know is usually a coding difference, which config fixes.
_RECODE_HINT = "; map survey codes to the table's with data.recode, or drop such rows with data.exclude"


def _check_numeric(df: pd.DataFrame, column: str, what: str) -> pd.Series:
    values = pd.to_numeric(df[column], errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        raise DataError(
            f"{what} column {column!r} must be numeric and finite; {int(bad.sum())} row(s) are not, "
            f"e.g. {_examples(df.loc[bad, column])}"
        )
    return values.astype(float)


def _check_counts(df: pd.DataFrame, successes: str, trials: str, what: str) -> tuple[pd.Series, pd.Series]:
    """Successes and trials of a pre-aggregated survey as int64, or an error naming the rows."""
    k = pd.to_numeric(df[successes], errors="coerce")
    n = pd.to_numeric(df[trials], errors="coerce")
    bad_n = n.isna() | (n < 1) | (n != np.round(n))
    if bad_n.any():
        raise DataError(
            f"{what} trials column {trials!r} must hold positive whole numbers of respondents; "
            f"{int(bad_n.sum())} row(s) do not, e.g. {_examples(df.loc[bad_n, trials])}"
        )
    bad_k = k.isna() | (k < 0) | (k != np.round(k))
    if bad_k.any():
        raise DataError(
            f"{what} outcome column {successes!r} must hold non-negative whole numbers of successes "
            f"(the rows are pre-aggregated: schema.trials={trials!r}); {int(bad_k.sum())} row(s) do not, "
            f"e.g. {_examples(df.loc[bad_k, successes])}"
        )
    over = k > n
    if over.any():
        rows = df.loc[over, [successes, trials]].head(3).to_dict("records")
        raise DataError(
            f"{what}: {int(over.sum())} row(s) have more successes ({successes!r}) than trials ({trials!r}), e.g. {rows}"
        )
    return k.astype(np.int64), n.astype(np.int64)


def recode_outcome(survey: pd.DataFrame, column: str, mapping: Mapping, what: str = "survey", levels: tuple = ()) -> pd.DataFrame:
    """Recode an outcome column by an explicit mapping, e.g. ``{"Support": 1, "Oppose": 0}``.

    The targets are 0 and 1, or for a categorical outcome its declared ``levels``
    (``{"Strong Democrat": "Democrat", ...}``). Every value of the column must be a key of
    ``mapping``; unmapped values are an error that lists them, so nothing is silently
    dropped or guessed.
    """
    mapping = dict(mapping)
    targets = tuple(levels) or (0, 1)
    bad_targets = {k: v for k, v in mapping.items() if v not in targets}
    if bad_targets:
        raise DataError(f"outcome mapping must map to {' or '.join(map(repr, targets))}; got {bad_targets}")
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
    out[column] = recoded.astype(object) if levels else recoded.astype(np.int8)
    return out


def _categorical_outcome(survey: pd.DataFrame, schema: SurveySchema, what: str) -> pd.Categorical:
    """The outcome as a categorical of ``schema.outcome_levels``, every declared level answered at least once."""
    column, levels = schema.outcome, tuple(schema.outcome_levels)
    answers = survey[column]
    missing = answers.isna()
    if missing.any():
        raise DataError(
            f"{what} outcome column {column!r} has {int(missing.sum())} missing answer(s); drop those rows "
            f"(data.exclude) or map them to one of {list(levels)} (data.outcome_map)"
        )
    text = answers.astype(str)
    _check_levels(survey.assign(**{column: text}), column, levels, what, "; map answers to them with data.outcome_map")
    counts = text.value_counts()
    unanswered = [level for level in levels if level not in counts.index]
    if len(levels) - len(unanswered) < 2:
        raise DataError(
            f"{what} outcome column {column!r} has only one answer ({_examples(counts.index)}) of the declared "
            f"{list(levels)}; a categorical model needs respondents in two categories at least"
        )
    if unanswered:
        raise DataError(
            f"{what} outcome column {column!r}: no respondent gave the declared answer(s) {unanswered}; "
            f"drop them from outcome_levels {list(levels)} (the model cannot learn a category no one chose)"
        )
    return pd.Categorical(text, categories=list(levels))


def validate_survey(survey: pd.DataFrame, schema: SurveySchema, what: str = "survey") -> pd.DataFrame:
    """Check a respondent-level survey against the schema and return a typed copy.

    Raises
    ------
    DataError
        On missing columns, an outcome that is missing or not 0/1, levels outside the
        schema, or non-numeric values in numeric columns. The message names the column
        and shows example bad values.
    """
    needed = (schema.outcome,) + ((schema.trials,) if schema.trials else ()) + schema.cell_columns + tuple(schema.noncensus)
    _require_columns(survey, needed, what)
    if len(survey) == 0:
        raise DataError(f"{what} has no rows")
    out = survey.copy()
    if schema.categorical:
        out[schema.outcome] = _categorical_outcome(out, schema, what)
    elif schema.trials is None:
        y = pd.to_numeric(out[schema.outcome], errors="coerce")
        bad = y.isna() | ~y.isin([0, 1])
        if bad.any():
            raise DataError(
                f"{what} outcome column {schema.outcome!r} must be 0/1 with no missing values; "
                f"{int(bad.sum())} row(s) are not, e.g. {_examples(out.loc[bad, schema.outcome])}. "
                "Recode it (1 = the answer being estimated, 0 = otherwise) before fitting."
            )
        out[schema.outcome] = y.astype(np.int8)
    else:
        out[schema.outcome], out[schema.trials] = _check_counts(out, schema.outcome, schema.trials, what)
    for col, levels in schema.factors.items():
        _check_levels(out, col, tuple(levels), what, _RECODE_HINT)
        out[col] = pd.Categorical(out[col], categories=list(levels), ordered=False)
    for col in schema.numeric:
        out[col] = _check_numeric(out, col, what)
    for col, levels in schema.noncensus.items():
        text = out[col].astype(object).where(out[col].notna(), None)
        missing = text.isna()
        if missing.any():
            raise DataError(
                f"{what} non-census column {col!r} has {int(missing.sum())} missing value(s); drop those rows (data.exclude)"
            )
        out[col] = text.astype(str)
        _check_levels(out, col, tuple(levels), what, " (schema.noncensus)")
        out[col] = pd.Categorical(out[col], categories=list(levels), ordered=False)
    return out


def validate_poststrat(
    poststrat: pd.DataFrame, schema: SurveySchema, what: str = "poststratification table", every_area: bool = True
) -> pd.DataFrame:
    """Check a poststratification table and return a typed copy.

    Every cell must appear once, with a finite, non-negative, integer-valued count, and
    every area (every declared one with ``every_area``, else every one the table lists)
    must have a positive total count.
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
    totals = out.groupby(schema.area, observed=not every_area)[schema.count].sum()
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


def check_survey_in_poststrat(
    survey: pd.DataFrame,
    poststrat: pd.DataFrame,
    schema: SurveySchema,
    what: str = "survey",
    table: str = "poststratification table",
) -> list[str]:
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
                f"{what} column {col!r} has level(s) absent from the {table}: {_examples(sorted(absent, key=str))}{_RECODE_HINT}"
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
    names: Mapping[str, str] | None = None,
    complete_table: bool = True,
) -> MRPData:
    """Validate the three tables, join the area predictors and return an :class:`~mrp_numpyro.data.schema.MRPData`.

    ``names`` (keys ``survey``, ``poststrat``, ``areas``) names the tables in error messages,
    e.g. by their files. ``complete_table=False`` accepts a table that covers only some of
    the areas and levels (one to poststratify a saved fit to, not one to fit with).
    """
    names = dict(names or {})
    survey = validate_survey(survey, schema, names.get("survey", "survey"))
    what = names.get("poststrat", "poststratification table")
    poststrat = validate_poststrat(poststrat, schema, what, every_area=complete_table)
    extra = check_survey_in_poststrat(survey, poststrat, schema, names.get("survey", "survey"), what) if complete_table else []
    areas = None
    if schema.area_columns:
        if area_table is None:
            raise DataError(
                f"the schema names area predictors {list(schema.area_columns)} but no area table was given (data.predictors_file)"
            )
        areas = validate_area_table(area_table, schema, names.get("areas", "area predictor table"))
        survey = join_area_predictors(survey, areas, schema)
        poststrat = join_area_predictors(poststrat, areas, schema)
    return MRPData(
        schema,
        survey.reset_index(drop=True),
        poststrat.reset_index(drop=True),
        source,
        truth,
        tuple(notes) + tuple(extra),
        areas=areas,
    )
