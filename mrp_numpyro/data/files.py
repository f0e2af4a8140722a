"""Any survey and poststratification table from files, described by config alone (``data=files``).

A user's survey reaches the model through four steps, each named in the data config:

1. **read** the survey, the table and the optional area table (CSV, or Parquet by suffix);
2. **rename** columns so that survey, table and area table share names (``columns``);
3. **recode** the survey into the table's coding: drop listed values (``exclude``), cut
   numbers into the table's brackets (``cut``), map codes to codes (``recode``) and the outcome
   to 0/1 (``outcome_map``), each logged with the rows it touched;
4. **validate** the *whole* survey against the schema before any ``n`` subsample, so whether a
   file is accepted never depends on the seed.

Factor values are compared as text (a code read as the number 3 and a level written ``"3"``
in YAML are the same level), so CSV and YAML need not agree on types.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .sampling import subsample
from .schema import DataError, MRPData, SurveySchema, _examples
from .validation import build_mrp_data, check_survey_in_poststrat, recode_outcome, validate_poststrat, validate_survey

__all__ = ["load_files", "read_table", "factor_text", "schema_from_config", "register_survey_format", "SURVEY_FORMATS"]

# Survey formats: a function from the file as read to a table in the schema's columns, with
# the rows it dropped per reason. "table" is the identity; data/cces.py adds "cces18_raw".
SurveyFormat = Callable[[pd.DataFrame], tuple[pd.DataFrame, dict[str, int]]]
SURVEY_FORMATS: dict[str, SurveyFormat] = {"table": lambda df: (df, {})}


def register_survey_format(name: str, reader: SurveyFormat) -> SurveyFormat:
    """Make ``reader`` available as ``data.survey_format=NAME``."""
    SURVEY_FORMATS[name] = reader
    return reader


def _text(value: Any) -> str | None:
    """One factor value as text: missing stays missing, whole numbers lose their ``.0``."""
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, bool | np.bool_):
        return str(value)
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        return str(int(value)) if float(value).is_integer() else str(float(value))
    return str(value)


def _as_text(values: pd.Series) -> pd.Series:
    return values.astype(object).map(_text).astype(object)


def read_table(path: str | os.PathLike, what: str, about: str = "") -> pd.DataFrame:
    """Read a CSV or (by suffix ``.parquet``/``.pq``) Parquet file; R's unnamed row-name column is dropped."""
    path = Path(path)
    if not path.is_file():
        where = f"{path.name!r} was not found in {path.parent.resolve()}"
        raise DataError(f"{what} file {where} (data.dir and data.*_file). {about}".rstrip())
    if path.suffix.lower() in (".parquet", ".pq"):
        df = pd.read_parquet(path)
    else:
        df = pd.read_csv(path, low_memory=False)
    return df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed")])


def _resolve(directory: Path | None, name: str) -> Path:
    path = Path(name).expanduser()
    return path if path.is_absolute() or directory is None else directory / path


def _directory(data_dir: str | os.PathLike | None) -> Path | None:
    if data_dir is not None and str(data_dir) != "":
        return Path(data_dir).expanduser()
    env = os.environ.get("MRP_DATA_DIR")
    return Path(env).expanduser() if env else None


def _levels_from(df: pd.DataFrame | None, column: str, what: str) -> tuple[str, ...]:
    if df is None or column not in df.columns:
        raise DataError(f"factor {column!r} has no declared levels (null) and {what} has no column {column!r} to take them from")
    values = df[column].dropna().unique().tolist()
    return tuple(sorted(values, key=str))


def schema_from_config(
    spec: Mapping[str, Any], poststrat: pd.DataFrame | None = None, areas: pd.DataFrame | None = None
) -> SurveySchema:
    """A :class:`~mrp_numpyro.data.schema.SurveySchema` from the ``data.schema`` mapping of a config.

    Parameters
    ----------
    spec : mapping
        ``outcome``, ``area``, ``factors`` (column -> list of levels, or null to take the
        sorted levels of the poststratification table), ``numeric``, ``area_factors`` (null
        levels come from the area table), ``area_numeric``, ``count``, ``trials``, ``ordered``,
        for a categorical outcome ``outcome_levels`` and ``baseline``, and ``noncensus``
        (survey-only factors and their levels).
    poststrat, areas : pandas.DataFrame, optional
        The tables levels are taken from where ``spec`` gives none, already renamed and as text.
    """
    known = {"outcome", "area", "factors", "numeric", "area_factors", "area_numeric", "count", "trials", "ordered"}
    known |= {"outcome_levels", "baseline", "noncensus"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise DataError(f"data.schema has unknown key(s) {unknown}; the keys are {sorted(known)}")
    for key in ("outcome", "area", "factors"):
        if not spec.get(key):
            raise DataError(f"data.schema.{key} is required (see conf/data/files.yaml)")

    def levels(mapping: Mapping[str, Any] | None, table: pd.DataFrame | None, what: str) -> dict[str, tuple]:
        out = {}
        for column, given in (mapping or {}).items():
            out[column] = _levels_from(table, column, what) if given is None else tuple(_text(v) for v in given)
            if len(set(out[column])) != len(out[column]):
                raise DataError(f"data.schema levels of {column!r} repeat a level: {list(out[column])}")
        return out

    def noncensus(mapping: Mapping[str, Any] | None) -> dict[str, tuple]:
        # No table counts them, so their levels must be written out.
        unlisted = [c for c, given in (mapping or {}).items() if not given]
        if unlisted:
            raise DataError(f"data.schema.noncensus: list the levels of {unlisted} (no table counts them to take them from)")
        return {c: tuple(str(_text(v)) for v in given) for c, given in (mapping or {}).items()}

    try:
        return SurveySchema(
            outcome=spec["outcome"],
            area=spec["area"],
            factors=levels(spec["factors"], poststrat, "the poststratification table"),
            numeric=tuple(spec.get("numeric") or ()),
            area_factors=levels(spec.get("area_factors"), areas, "the area table"),
            area_numeric=tuple(spec.get("area_numeric") or ()),
            count=spec.get("count") or "N",
            trials=spec.get("trials"),
            ordered=tuple(spec.get("ordered") or ()),
            outcome_levels=tuple(str(_text(v)) for v in spec.get("outcome_levels") or ()),
            baseline=None if spec.get("baseline") is None else _text(spec["baseline"]),
            noncensus=noncensus(spec.get("noncensus")),
        )
    except ValueError as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"data.schema: {err}") from err


def _rename(df: pd.DataFrame, mapping: Mapping[str, str] | None, what: str) -> pd.DataFrame:
    mapping = dict(mapping or {})
    missing = [c for c in mapping if c not in df.columns]
    if missing:
        raise DataError(f"data.columns renames column(s) {missing} that {what} does not have; it has {list(df.columns)}")
    return df.rename(columns=mapping)


def factor_text(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy of ``df`` with the named columns (those it has) as text, as the files source compares factors."""
    df = df.copy()
    for c in columns:
        if c in df.columns:
            df[c] = _as_text(df[c])
    return df


def _exclude(survey: pd.DataFrame, exclude: Mapping[str, Sequence[Any]], what: str) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    for column, values in exclude.items():
        if column not in survey.columns:
            raise DataError(f"data.exclude names column {column!r}, which {what} does not have; it has {list(survey.columns)}")
        listed = [_text(v) for v in values]
        drop = _as_text(survey[column]).isin(listed)
        notes.append(f"exclude {column} in {listed}: dropped {int(drop.sum())} of {len(survey)} row(s)")
        survey = survey.loc[~drop]
    return survey, notes


def _cut(survey: pd.DataFrame, cuts: Mapping[str, Mapping[str, Any]], what: str) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    survey = survey.copy()
    for column, rule in cuts.items():
        source, breaks, labels = rule.get("from"), list(rule.get("breaks") or ()), list(rule.get("labels") or ())
        if source not in survey.columns:
            raise DataError(f"data.cut.{column}.from names column {source!r}, which {what} does not have")
        if len(labels) != len(breaks) - 1 or len(breaks) < 2:
            raise DataError(
                f"data.cut.{column}: {len(breaks)} breaks need {max(len(breaks) - 1, 0)} labels, got {len(labels)} ({labels})"
            )
        if any(b >= a for a, b in zip(breaks[1:], breaks[:-1], strict=True)):
            raise DataError(f"data.cut.{column}: breaks must increase, got {breaks}")
        number = pd.to_numeric(survey[source], errors="coerce")
        # Brackets closed on the left, [18, 30) for "18-29", unless right: true.
        right = bool(rule.get("right", False))
        binned = pd.cut(number, bins=breaks, labels=[str(v) for v in labels], right=right)
        outside = binned.isna()
        if outside.any():
            raise DataError(
                f"{what} column {source!r}: {int(outside.sum())} value(s) are missing or outside the breaks {breaks} of "
                f"data.cut.{column}, e.g. {_examples(survey.loc[outside, source])}; "
                "drop them with data.exclude or widen the breaks"
            )
        survey[column] = binned.astype(object)
        notes.append(f"cut {source} into {column} at {breaks}: {len(survey)} row(s)")
    return survey, notes


def _recode(
    survey: pd.DataFrame, recode: Mapping[str, Mapping[Any, Any]], poststrat: pd.DataFrame, what: str
) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    survey = survey.copy()
    for column, mapping in recode.items():
        if column not in survey.columns:
            raise DataError(f"data.recode names column {column!r}, which {what} does not have; it has {list(survey.columns)}")
        pairs: dict[str, str] = {}
        for k, v in mapping.items():
            key, value = _text(k), _text(v)
            if key is None or value is None:
                raise DataError(
                    f"data.recode.{column} maps {k!r} to {v!r}; codes must not be missing (drop rows with data.exclude)"
                )
            pairs[key] = value
        text = _as_text(survey[column])
        # Codes not listed are kept, so they map to themselves. Two survey codes that reach
        # one table level while another table level receives none merge levels the table
        # keeps apart: a copied line of the map, not a deliberate collapse.
        if column in poststrat.columns:
            table_levels = set(poststrat[column].dropna())
            reach: dict[str, set[str]] = {}
            for code in set(text.dropna()):
                reach.setdefault(pairs.get(code, code), set()).add(code)
            starved = sorted(table_levels - set(reach), key=str)
            merged = {v: sorted(ks, key=str) for v, ks in reach.items() if len(ks) > 1 and v in table_levels}
            for v, ks in merged.items():
                both = [k for k in ks if k in table_levels]
                if len(both) > 1:
                    raise DataError(
                        f"data.recode.{column} sends {ks} to {v!r}, but the poststratification table has {both} "
                        f"as separate levels of {column!r}"
                    )
            if merged and starved:
                v, ks = next(iter(merged.items()))
                raise DataError(
                    f"data.recode.{column} sends survey codes {ks} to {v!r}, while the poststratification table's "
                    f"{column} level(s) {starved} receive no code; check the map for a copied line"
                )
        touched = {k: int((text == k).sum()) for k in pairs}
        survey[column] = text.map(lambda t, p=pairs: p.get(t, t) if t is not None else None)
        shown = ", ".join(f"{k!r}->{v!r} ({touched[k]})" for k, v in pairs.items())
        notes.append(f"recode {column}: {sum(touched.values())} of {len(survey)} row(s) changed: {shown}")
    return survey, notes


def load_files(
    survey_file: str,
    poststrat_file: str,
    schema: Mapping[str, Any],
    dir: str | os.PathLike | None = None,  # noqa: A002 - matches the config key data.dir
    predictors_file: str | None = None,
    survey_format: str = "table",
    columns: Mapping[str, Mapping[str, str]] | None = None,
    exclude: Mapping[str, Sequence[Any]] | None = None,
    cut: Mapping[str, Mapping[str, Any]] | None = None,
    recode: Mapping[str, Mapping[Any, Any]] | None = None,
    outcome_map: Mapping[Any, int] | None = None,
    n: int | None = None,
    seed: int = 0,
    name: str = "files",
    about: str = "",
) -> MRPData:
    """Read, recode and validate a survey, its poststratification table and area predictors.

    Parameters
    ----------
    survey_file, poststrat_file : str
        File names under ``dir`` (or absolute paths): CSV, or Parquet by suffix.
    schema : mapping
        The column roles (:func:`schema_from_config`), in the names after ``columns``.
    dir : path-like, optional
        Directory of the files; defaults to ``$MRP_DATA_DIR``, then the working directory.
    predictors_file : str, optional
        Area-level predictors, one row per area (needed when the schema names any).
    survey_format : str
        How the survey file is laid out (``SURVEY_FORMATS``): ``table`` (already one
        column per variable) or ``cces18_raw`` (CCES common-content codes).
    columns : mapping, optional
        ``{survey: {old: new}, poststrat: {...}, predictors: {...}}`` renames per file.
    exclude : mapping, optional
        ``{column: [values]}``: survey rows to drop (e.g. a "Skipped" answer), counted in the log.
    cut : mapping, optional
        ``{new_column: {from: column, breaks: [...], labels: [...], right: false}}``: numbers
        cut into brackets, closed on the left unless ``right``.
    recode : mapping, optional
        ``{column: {survey_code: table_code}}``; codes not listed are kept as they are.
    outcome_map : mapping, optional
        Survey answers to 0/1, e.g. ``{Support: 1, Oppose: 0}``; every answer must be listed.
    n, seed : int, optional
        A seeded subsample of ``n`` respondents, drawn after the whole file is validated.
    name : str
        Name of the data source in logs and summaries (``cces18``).
    about : str
        Where the files come from; added to the error when a file is missing.
    """
    directory = _directory(dir)
    columns = dict(columns or {})
    unknown = sorted(set(columns) - {"survey", "poststrat", "predictors"})
    if unknown:
        raise DataError(f"data.columns has unknown key(s) {unknown}; use survey, poststrat and predictors")
    if survey_format not in SURVEY_FORMATS:
        raise DataError(f"survey_format (data.survey_format) must be one of {sorted(SURVEY_FORMATS)}, got {survey_format!r}")
    survey_path = _resolve(directory, survey_file)
    survey_what = f"survey {survey_path.name!r}"
    raw = read_table(survey_path, "survey", about)
    survey, dropped = SURVEY_FORMATS[survey_format](raw)
    notes = [f"{survey_format} format dropped {k} row(s): {why}" for why, k in dropped.items()]
    survey = _rename(survey, columns.get("survey"), survey_what)
    poststrat_path = _resolve(directory, poststrat_file)
    poststrat = _rename(
        read_table(poststrat_path, "poststratification table", about),
        columns.get("poststrat"),
        f"poststratification table {poststrat_path.name!r}",
    )
    names = {"survey": survey_what, "poststrat": f"poststratification table {poststrat_path.name!r}"}
    areas = None
    if predictors_file:
        areas_path = _resolve(directory, predictors_file)
        names["areas"] = f"area table {areas_path.name!r}"
        areas = _rename(read_table(areas_path, "area predictors", about), columns.get("predictors"), names["areas"])

    factor_columns = [*(schema.get("factors") or {}), *(schema.get("area_factors") or {}), *(schema.get("noncensus") or {})]
    poststrat = factor_text(poststrat, factor_columns)
    areas = None if areas is None else factor_text(areas, factor_columns)
    resolved = schema_from_config(schema, poststrat, areas)

    survey, more = _exclude(survey, exclude or {}, survey_what)
    notes += more
    survey, more = _cut(survey, cut or {}, survey_what)
    notes += more
    survey = factor_text(survey, factor_columns)
    survey, more = _recode(survey, recode or {}, poststrat, survey_what)
    notes += more
    if outcome_map is not None:
        if resolved.trials is not None:
            raise DataError("data.outcome_map recodes answers of respondents; a pre-aggregated survey (schema.trials) has counts")
        # Answers compared as text, as codes are: a Parquet "1" and a YAML 1 are one answer.
        if resolved.outcome not in survey.columns:
            raise DataError(f"{survey_what} is missing the outcome column {resolved.outcome!r}; it has {list(survey.columns)}")
        survey = survey.assign(**{resolved.outcome: _as_text(survey[resolved.outcome])})
        mapping = {_text(k): (_text(v) if resolved.categorical else v) for k, v in outcome_map.items()}
        survey = recode_outcome(survey, resolved.outcome, mapping, what=survey_what, levels=resolved.outcome_levels)
    if resolved.categorical and resolved.outcome in survey.columns:
        # Answers as text, as the declared levels are (a code 2 read as 2.0 is "2").
        survey = survey.assign(**{resolved.outcome: _as_text(survey[resolved.outcome])})
    survey = validate_survey(survey.reset_index(drop=True), resolved, what=survey_what)
    # Every respondent's levels against the table too, before the subsample: a file is
    # accepted or not whatever the seed.
    check_survey_in_poststrat(
        survey, validate_poststrat(poststrat, resolved, names["poststrat"]), resolved, survey_what, names["poststrat"]
    )
    if n is not None and resolved.trials is not None:
        raise DataError(
            f"data.n={n} subsamples respondents, but {survey_what} is pre-aggregated (schema.trials={resolved.trials!r}); "
            "leave data.n unset"
        )
    survey, note = subsample(survey, n, seed)
    if note:
        notes.append(note)
    return build_mrp_data(survey, poststrat, areas, resolved, source=f"{name}:{survey_path}", notes=tuple(notes), names=names)
