"""Write a survey, a census table and area predictors in a coding other than the package's.

The "bring your own survey" example of the README fits these files with a YAML file and no
Python. They hold the same respondents and cells as a source in the case-study coding (the
synthetic generator by default, or the 2018 CCES with ``--data-dir``), recoded as another
survey house might deliver them:

- survey ``my_survey.csv``: ``q_abortion`` as "Support" / "Oppose" (plus a few "Skipped"
  answers, added rows the config drops), ``st`` as postal codes, ``race`` in six
  lower-case categories, ``gender`` as F / M, ``age_years`` in years, ``edu`` as codes 1-5;
- table ``my_census.parquet``: ``state_abbr, race4, male, age_group, education, population``;
- area table ``my_states.csv``: ``state_abbr, census_region, trump_share``.

``--aggregate`` also writes ``my_crosstab.csv``, the survey as cross-tab rows (``supporters``
of ``respondents`` per cell of the survey's codes), for a pre-aggregated schema.

Usage::

    python experiments/foreign_survey.py --out my_data [--data-dir ../shared/data] [--n 10000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from mrp_numpyro.data import MRPData, load_cces18, load_synthetic
from mrp_numpyro.data.levels import EDUC

# The package's codes -> the foreign survey's codes (the YAML maps them back).
RACE_OTHER = ("asian", "native american", "mixed", "other")
RACE = {"White": "white", "Black": "black", "Hispanic": "hispanic"}
AGE_YEARS = {"18-29": (18, 29), "30-39": (30, 39), "40-49": (40, 49), "50-59": (50, 59), "60-69": (60, 69), "70+": (70, 94)}
EDU = {level: i + 1 for i, level in enumerate(EDUC)}
SKIPPED = 25


def foreign_tables(data: MRPData, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The survey, the table and the area table of ``data`` in the foreign coding."""
    rng = np.random.default_rng(seed)
    s = data.survey
    eth = s["eth"].astype(str).to_numpy()
    race = np.array([RACE.get(e, "") for e in eth], dtype=object)
    other = race == ""
    race[other] = rng.choice(RACE_OTHER, size=int(other.sum()))
    low = np.array([AGE_YEARS[a][0] for a in s["age"].astype(str)])
    high = np.array([AGE_YEARS[a][1] for a in s["age"].astype(str)])
    survey = pd.DataFrame(
        {
            "resp_id": np.arange(1, len(s) + 1),
            "q_abortion": np.where(s["abortion"].to_numpy() == 1, "Support", "Oppose"),
            "st": s["state"].astype(str).to_numpy(),
            "race": race,
            "gender": np.where(s["male"].to_numpy() > 0, "M", "F"),
            "age_years": rng.integers(low, high + 1),
            "edu": s["educ"].astype(str).map(EDU).to_numpy(),
        }
    )
    # Respondents who skipped the item: rows the config excludes, not respondents of the fit.
    skipped = survey.sample(SKIPPED, random_state=seed).assign(q_abortion="Skipped")
    skipped["resp_id"] = np.arange(len(s) + 1, len(s) + 1 + SKIPPED)
    survey = pd.concat([survey, skipped], ignore_index=True)
    p = data.poststrat
    table = pd.DataFrame(
        {
            "state_abbr": p["state"].astype(str),
            "race4": p["eth"].astype(str),
            "male": p["male"].to_numpy(),
            "age_group": p["age"].astype(str),
            "education": p["educ"].astype(str),
            "population": p[data.schema.count].astype(np.int64),
        }
    )
    assert data.areas is not None
    states = pd.DataFrame(
        {
            "state_abbr": data.areas["state"].astype(str),
            "census_region": data.areas["region"].astype(str),
            "trump_share": data.areas["repvote"].to_numpy(),
        }
    )
    return {"survey": survey, "table": table, "states": states}


def crosstab(survey: pd.DataFrame) -> pd.DataFrame:
    """The foreign survey as cross-tab rows: supporters and respondents per combination of its codes."""
    answered = survey[survey["q_abortion"] != "Skipped"].assign(supporters=lambda d: (d["q_abortion"] == "Support").astype(int))
    keys = ["st", "race", "gender", "age_years", "edu"]
    grouped = answered.groupby(keys, sort=True)["supporters"].agg(supporters="sum", respondents="size")
    return grouped.reset_index()


def write(out: str | Path, data: MRPData, seed: int = 0, aggregate: bool = False) -> dict[str, Path]:
    """Write the three files (and the cross-tab with ``aggregate``) into ``out``; return their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = foreign_tables(data, seed)
    paths = {"survey": out / "my_survey.csv", "table": out / "my_census.parquet", "states": out / "my_states.csv"}
    tables["survey"].to_csv(paths["survey"], index=False)
    tables["table"].to_parquet(paths["table"], index=False)
    tables["states"].to_csv(paths["states"], index=False)
    if aggregate:
        paths["crosstab"] = out / "my_crosstab.csv"
        crosstab(tables["survey"]).to_csv(paths["crosstab"], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory to write the files into")
    parser.add_argument("--data-dir", help="the CCES files (../shared/data); the synthetic survey when absent")
    parser.add_argument("--n", type=int, default=10_000, help="respondents of the synthetic survey")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--aggregate", action="store_true", help="also write the survey as cross-tab rows")
    args = parser.parse_args()
    data = load_cces18(args.data_dir) if args.data_dir else load_synthetic(args.n, args.seed)
    for name, path in write(args.out, data, args.seed, args.aggregate).items():
        print(f"{name}: {path}")


if __name__ == "__main__":
    main()
