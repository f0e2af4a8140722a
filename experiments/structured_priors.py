"""Structured priors against independent effects: a first-order random walk on age, over
replications of sparse synthetic surveys (Gao, Kennedy, Simpson and Gelman 2021).

Gao et al. find that when the true age profile is smooth and cells are sparse, a random
walk prior on the age effects, ``(1 | rw1(age))``, estimates small groups such as state by
age better than independent age effects, ``(1 | age)``, because neighbouring age groups
borrow strength from each other. This script repeats that comparison on the package's
synthetic survey with its true age effects drawn from a random walk
(``data.structure={age: rw1}``): for each replication r = 0, ..., reps - 1 it draws a
survey of ``--n`` respondents with seed r and fits both formulas with the default guide.

For every fit, against the synthetic truth (``truth.by``): mean absolute error and RMSE in
percentage points of the posterior means of the 300 state-by-age groups, of the 6 age
groups and of the 50 states; the share of state-by-age groups whose true value lies in
the 90 % interval (q5-q95) and the intervals' mean width; the fit's PSIS k-hat and the
wall time of the run. The summary gives, per model, the median and range over
replications of each metric, the same of the difference rw1 - iid within each replication
(both fit the same survey), and the number of replications in which the random walk's
state-by-age error is the smaller.

    python experiments/structured_priors.py                        # the defaults (BENCHMARKS.md)
    python experiments/structured_priors.py --reps 5 --n 1000 --out rows.csv
    python experiments/structured_priors.py --reps 1 --n 1000 --steps 300 --extra experiment=fast

Prints a Markdown table per replication (``--per-rep``) and the summary table; ``--out``
writes the per-fit rows as CSV. The defaults take about 5 minutes on one core. On cores
shared with other jobs, pin the script to one (``taskset -c 1``): at ``nice`` alone, JAX's
two threads slowed it about tenfold (BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mrp_numpyro import compose_config, run
from mrp_numpyro.app.tables import markdown as table_markdown
from mrp_numpyro.data.schema import Truth

IID = (
    "abortion ~ (1 | state) + (1 | eth) + (1 | educ) + (1 | age) + male + (1 | male:eth)"
    " + (1 | educ:age) + (1 | educ:eth) + repvote + factor(region)"
)
MODELS = {"iid": IID, "rw1": IID.replace("(1 | age)", "(1 | rw1(age))")}
# Name -> columns of every grouping the fits are scored on.
GROUPINGS = {"state_age": ["state", "age"], "age": ["age"], "state": ["state"]}
# The metrics of a fit, as the summary writes them (in this order).
METRICS = {
    "state_age_mae_pp": "state x age MAE (pp)",
    "state_age_rmse_pp": "state x age RMSE (pp)",
    "state_age_cov90": "state x age 90 % coverage",
    "state_age_width90_pp": "state x age 90 % width (pp)",
    "age_mae_pp": "age MAE (pp)",
    "age_rmse_pp": "age RMSE (pp)",
    "state_mae_pp": "state MAE (pp)",
    "state_rmse_pp": "state RMSE (pp)",
    "khat": "k-hat",
    "wall_s": "wall (s)",
}


def overrides(formula: str, n: int, seed: int, steps: int | None, extra: Sequence[str] = ()) -> list[str]:
    """The config of one fit: the survey, the formula, the groupings scored, and no report or checks."""
    # ++ adds a grouping or replaces it (state and national are in the default config).
    groupings = [f"++poststrat.groupings.{name}=[{','.join(cols)}]" for name, cols in GROUPINGS.items()]
    steps_override = [] if steps is None else [f"budget.svi_steps={steps}"]
    return [
        *extra,
        f"data.n={n}",
        f"seed={seed}",
        "data.structure={age: rw1}",
        f"model.formula='{formula}'",
        *groupings,
        *steps_override,
        "report=false",
        "progress=false",
        "checks.loo=false",
        "checks.predictive=[]",
    ]


def errors(summary: pd.DataFrame, truth: pd.Series, columns: Sequence[str]) -> dict[str, float]:
    """Mean absolute error, RMSE, 90 % coverage and mean 90 % width (pp) of a grouping's summary against its truth."""
    table = summary.set_index(list(columns)).join(truth, how="inner")
    if len(table) != len(truth):
        raise ValueError(f"{len(table)} of the {len(truth)} true groups of {list(columns)} have an estimate")
    error = table["mean"] - table["truth"]
    inside = (table["q5"] <= table["truth"]) & (table["truth"] <= table["q95"])
    return {
        "mae_pp": 100 * float(error.abs().mean()),
        "rmse_pp": 100 * float(np.sqrt((error**2).mean())),
        "cov90": float(inside.mean()),
        "width90_pp": 100 * float((table["q95"] - table["q5"]).mean()),
    }


def score(estimates: dict[str, pd.DataFrame], truth: Truth) -> dict[str, float]:
    """Every grouping's errors against the truth, as ``<grouping>_<metric>``."""
    row = {}
    for name, columns in GROUPINGS.items():
        for metric, value in errors(estimates[name], truth.by(columns), columns).items():
            row[f"{name}_{metric}"] = value
    return row


def fit_row(model: str, n: int, seed: int, steps: int | None, extra: Sequence[str] = ()) -> dict[str, float | int | str]:
    """One fit of ``model`` to the survey of replication ``seed``, scored."""
    cfg = compose_config(overrides(MODELS[model], n, seed, steps, extra))
    start = time.perf_counter()
    result = run(cfg, None)
    wall = time.perf_counter() - start
    truth = result.data.truth
    if truth is None:
        raise SystemExit("the synthetic survey came without its truth")
    summaries = {name: result.estimates[name].summary() for name in GROUPINGS}
    khat = result.fit.diagnostics.get("khat", float("nan"))
    return {"rep": seed, "model": model, "n": n, **score(summaries, truth), "khat": float(khat), "wall_s": wall}


def replicate(reps: int, n: int, steps: int | None, extra: Sequence[str] = (), per_rep: bool = False) -> pd.DataFrame:
    """Both models on replications 0, ..., reps - 1; one row per fit."""
    rows = []
    for seed in range(reps):
        fits = [fit_row(model, n, seed, steps, extra) for model in MODELS]
        rows.extend(fits)
        if per_rep:
            print(f"\nreplication {seed}\n\n{markdown_rows(pd.DataFrame(fits))}", flush=True)
        else:
            print(f"replication {seed}: " + ", ".join(f"{r['model']} {r['state_age_mae_pp']:.2f} pp" for r in fits), flush=True)
    return pd.DataFrame(rows)


def markdown_rows(rows: pd.DataFrame) -> str:
    """The per-fit rows of a replication, one per model."""
    return table_markdown(rows[["model", *METRICS]].rename(columns=METRICS), formats={METRICS["wall_s"]: ".1f"})


def wins(rows: pd.DataFrame, metric: str = "state_age_mae_pp") -> int:
    """Replications in which rw1's ``metric`` is below iid's."""
    return int((paired_difference(rows, metric) < 0).sum())


def summary(rows: pd.DataFrame) -> pd.DataFrame:
    """Per metric: each model's median over replications and range, and those of rw1 - iid within a replication."""

    def cell(values: pd.Series, spec: str) -> str:
        return f"{values.median():{spec}} ({values.min():{spec}} to {values.max():{spec}})"

    table = {}
    for model, group in rows.groupby("model", sort=False):
        table[model] = {label: cell(group[key], ".1f" if key == "wall_s" else ".2f") for key, label in METRICS.items()}
    # The same survey fitted by both: their difference is free of the replication's own error.
    table["rw1 - iid"] = {
        label: cell(paired_difference(rows, key), ".1f" if key == "wall_s" else ".3f") for key, label in METRICS.items()
    }
    return pd.DataFrame(table).rename_axis("metric: median (range)").reset_index()


def paired_difference(rows: pd.DataFrame, metric: str) -> pd.Series:
    """rw1's ``metric`` minus iid's, per replication."""
    wide = rows.pivot(index="rep", columns="model", values=metric)
    return wide["rw1"] - wide["iid"]


def report(rows: pd.DataFrame) -> str:
    """The summary table and the count of replications rw1 wins."""
    reps, n = rows["rep"].nunique(), int(rows["n"].iloc[0])
    return (
        f"{reps} replications, n = {n:,}: median (range) over replications\n\n"
        f"{table_markdown(summary(rows))}\n\n"
        f"rw1's state x age MAE below iid's in {wins(rows)} of {reps} replications"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=10, help="replications (seeds 0, ..., reps - 1)")
    parser.add_argument("--n", type=int, default=1500, help="respondents per synthetic survey")
    parser.add_argument("--steps", type=int, default=None, help="SVI steps (default: the default guide's)")
    parser.add_argument("--extra", nargs="*", default=[], help="more config overrides, e.g. experiment=fast")
    parser.add_argument("--per-rep", action="store_true", help="print a table for every replication")
    parser.add_argument("--out", type=Path, help="CSV of the per-fit rows")
    args = parser.parse_args()
    rows = replicate(args.reps, args.n, args.steps, args.extra, per_rep=args.per_rep)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        rows.to_csv(args.out, index=False)
    print("\n" + report(rows))


if __name__ == "__main__":
    main()
