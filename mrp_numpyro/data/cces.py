"""The 2018 CCES example: the case-study coding, the raw-code cleaning and the loader.

The item is CC18_321d, "allow employers to decline coverage of abortions in insurance
plans" (1 = support, 0 = oppose). Files are read from a directory given by config
(``data.dir``) or by the ``MRP_DATA_DIR`` environment variable; nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import pandas as pd

from .files import load_files, register_survey_format
from .levels import AGE, EDUC, ETH, FIPS_TO_STATE, REGIONS, STATES
from .schema import DataError, MRPData, SurveySchema

CCES18_SCHEMA = SurveySchema(
    outcome="abortion",
    area="state",
    factors={"state": STATES, "eth": ETH, "age": AGE, "educ": EDUC},
    numeric=("male",),
    area_factors={"region": REGIONS},
    area_numeric=("repvote",),
    count="n",
    ordered=("age", "educ"),
)

RAW_COLUMNS = ("inputstate", "gender", "birthyr", "race", "educ", "CC18_321d")

_WHERE_TO_GET = (
    "The 2018 CCES Common Content is on Harvard Dataverse (doi:10.7910/DVN/ZSBZ7K, file "
    "cces18_common_vv.csv); clean it with mrp_numpyro.data.cces.clean_cces_raw or set "
    "data.survey_format=cces18_raw. The cleaned survey (cces_all_clean.csv), the poststratification "
    "table (poststrat_df.csv) and the state predictors (statelevel_predictors.csv) are in the "
    "MRP case-study repository (github.com/JuanLopezMartin/MRPCaseStudy, data_public/chapter1/data)."
)


def clean_cces_raw(raw: pd.DataFrame, year: int = 2018) -> tuple[pd.DataFrame, dict[str, int]]:
    """Recode raw CCES common-content columns into the case-study coding.

    Follows the case study's ``clean_cces()``: abortion = ``abs(CC18_321d - 2)``; state from
    the ``inputstate`` FIPS code (DC and unknown codes dropped); eth from ``race`` (4-8
    collapsed into Other); ``male = abs(gender - 2) - 0.5`` so -0.5 is female; age bins from
    ``year - birthyr``; educ from ``educ`` with 2-year degrees merged into Some college.
    Rows with any unusable value are dropped, and the count dropped for each reason is returned.

    Parameters
    ----------
    raw : pandas.DataFrame
        Must contain ``inputstate, gender, birthyr, race, educ, CC18_321d``.
    year : int
        Survey year, for ages.

    Returns
    -------
    clean : pandas.DataFrame
        Columns ``abortion, state, eth, male, age, educ``.
    dropped : dict
        Rows dropped per reason.
    """
    missing = [c for c in RAW_COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"raw CCES table is missing column(s) {missing}; it has {list(raw.columns)[:20]}...")
    num = {c: pd.to_numeric(raw[c], errors="coerce") for c in RAW_COLUMNS}
    out = pd.DataFrame(index=raw.index)
    out["abortion"] = (num["CC18_321d"] - 2).abs().where(num["CC18_321d"].isin([1, 2]))
    out["state"] = num["inputstate"].map(FIPS_TO_STATE)
    race = num["race"]
    out["eth"] = np.select([race == 1, race == 2, race == 3, race.between(4, 8)], ["White", "Black", "Hispanic", "Other"], "")
    out["eth"] = out["eth"].replace("", np.nan)
    out["male"] = ((num["gender"] - 2).abs() - 0.5).where(num["gender"].isin([1, 2]))
    age = year - num["birthyr"]
    out["age"] = pd.cut(age, bins=[0, 29, 39, 49, 59, 69, 120], labels=list(AGE)).astype(object)
    educ_map = {1: "No HS", 2: "HS", 3: "Some college", 4: "Some college", 5: "4-Year College", 6: "Post-grad"}
    out["educ"] = num["educ"].map(educ_map)
    dropped = {}
    reasons = {
        "abortion": "CC18_321d not 1/2 (skipped or not asked)",
        "state": "inputstate not one of the 50 states (DC or unknown)",
        "eth": "race code unknown",
        "male": "gender not 1/2",
        "age": "birthyr missing or age outside 1-120",
        "educ": "educ code unknown",
    }
    keep = pd.Series(True, index=out.index)
    for col, why in reasons.items():
        bad = out[col].isna() & keep
        if bad.any():
            dropped[why] = int(bad.sum())
        keep &= ~out[col].isna()
    clean = out.loc[keep].reset_index(drop=True)
    clean["abortion"] = clean["abortion"].astype(int)
    return clean, dropped


register_survey_format("cces18_raw", clean_cces_raw)


def load_cces18(
    dir: str | os.PathLike | None = None,  # noqa: A002 - matches the config key data.dir
    n: int | None = None,
    seed: int = 0,
    survey_file: str = "cces_all_clean.csv",
    survey_format: str = "table",
    poststrat_file: str = "poststrat_df.csv",
    predictors_file: str = "statelevel_predictors.csv",
    outcome_map: Mapping | None = None,
) -> MRPData:
    """Load the 2018 CCES abortion-coverage example: :func:`~mrp_numpyro.data.files.load_files` with the CCES schema.

    ``data=cces18`` (``conf/data/cces18.yaml``) is the same call written as config, the
    template for a survey of one's own.

    Parameters
    ----------
    dir : path-like, optional
        Directory with the files; defaults to ``$MRP_DATA_DIR``.
    n : int, optional
        Seeded subsample size, drawn after the whole file is validated; ``None`` keeps all rows.
    seed : int
        Seed of the subsample.
    survey_file : str
        Survey file name, in the case-study coding (``survey_format="table"``) or in raw
        CCES codes (``survey_format="cces18_raw"``, cleaned with :func:`clean_cces_raw`).
    poststrat_file, predictors_file : str
        Poststratification table (count column ``n``) and state-level predictors.
    outcome_map : mapping, optional
        Explicit recoding of the outcome to 0/1 (e.g. ``{"Support": 1, "Oppose": 0}``) for a
        survey file coded otherwise; without it the outcome must already be 0/1.
    """
    if not dir and not os.environ.get("MRP_DATA_DIR"):
        raise DataError(
            "the CCES loader needs the directory holding the files: pass dir (data.dir=PATH in the config) or set "
            "MRP_DATA_DIR. " + _WHERE_TO_GET
        )
    return load_files(
        survey_file=survey_file,
        poststrat_file=poststrat_file,
        predictors_file=predictors_file,
        schema=CCES18_SCHEMA.to_dict(),
        dir=dir,
        survey_format=survey_format,
        outcome_map=outcome_map,
        n=n,
        seed=seed,
        name="cces18",
        about=_WHERE_TO_GET,
    )
