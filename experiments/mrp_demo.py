"""The classic MRP demonstration: state estimates from a 5,000-respondent subsample, by raw
state means and by MRP, each compared with the estimate from the whole survey.

A seeded subsample of the 2018 CCES (``--n``, default 5,000 of 59,810 respondents) is
fitted with MRP (``--method``, default NUTS), and its respondents' raw state means are
computed. Both are compared with the full-data estimate: MRP fitted to every respondent
(``--reference-method``, default mean-field SVI, whose state means are within 0.2 pp of
NUTS's on average on the full CCES; see BENCHMARKS.md). Small states get few respondents
in a subsample, so their raw means are noisy; MRP borrows strength across states and
demographic cells and poststratifies to the census table.

Without ``--data-dir`` it runs on the synthetic survey and compares against the true state
values, which are known there.

    python experiments/mrp_demo.py --data-dir ../shared/data
    python experiments/mrp_demo.py                      # synthetic data, against the truth

Writes to --out: ``mrp_demo.png`` (per state: raw mean, MRP with 50 % and 90 % intervals,
full-data estimate; and absolute error against the number of respondents),
``mrp_demo_states.csv`` (the per-state numbers), ``mrp_demo_errors.csv`` and
``mrp_demo_errors.md`` (mean absolute error, RMSE and largest error of raw means and MRP,
over all states and over states with few respondents), and the run directories of the fits.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta

from mrp_numpyro import RunResult, compose_config, run
from mrp_numpyro.app.report import pyplot, save_png
from mrp_numpyro.app.tables import markdown as table_markdown

# States with fewer respondents than this in the subsample count as small.
FEW = 50


def fit(out: Path, name: str, overrides: Sequence[str]) -> RunResult:
    """One MRP run written to ``out/fits/name`` (replaced if it exists)."""
    run_dir = out / "fits" / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    result = run(compose_config(["progress=false", "report=false", *overrides]), run_dir)
    print(f"{name}: {result.summary['n_respondents']:,} respondents, fit {result.fit.seconds:.1f} s", flush=True)
    return result


def raw_means(result: RunResult) -> pd.DataFrame:
    """Respondents, raw mean and Jeffreys 90 % interval of the outcome per area of a fitted survey.

    The Jeffreys interval (Beta(k + 1/2, n - k + 1/2) quantiles) stays inside [0, 1] and
    is defined for states whose few respondents all answered alike.
    """
    schema = result.data.schema
    survey = result.data.survey
    grouped = survey.groupby(survey[schema.area].astype(str))[schema.outcome]
    table = pd.DataFrame({"n_resp": grouped.size(), "yes": grouped.sum()})
    table["raw"] = table["yes"] / table["n_resp"]
    table["raw_q5"] = beta.ppf(0.05, table["yes"] + 0.5, table["n_resp"] - table["yes"] + 0.5)
    table["raw_q95"] = beta.ppf(0.95, table["yes"] + 0.5, table["n_resp"] - table["yes"] + 0.5)
    return table.drop(columns="yes")


def state_table(small: RunResult, reference: pd.Series) -> pd.DataFrame:
    """Per area: respondents in the subsample, raw mean, MRP summary and the reference."""
    area = small.data.schema.area
    mrp = small.estimates[area].summary()
    mrp = mrp.assign(**{area: mrp[area].astype(str)}).set_index(area)
    table = pd.DataFrame(index=mrp.index.rename(area))
    table = table.join(raw_means(small))
    table["n_resp"] = table["n_resp"].fillna(0).astype(int)
    table["mrp"] = mrp["mean"]
    for q in ("q5", "q25", "q75", "q95"):
        table[f"mrp_{q}"] = mrp[q]
    table["reference"] = reference.reindex(table.index).to_numpy()
    if table["reference"].isna().any():
        raise ValueError(f"the reference has no estimate for {list(table.index[table['reference'].isna()])}")
    return table.reset_index()


def error_table(states: pd.DataFrame, few: int = FEW) -> pd.DataFrame:
    """Errors of raw means and MRP against the reference, in percentage points.

    Rows: each estimator over the states with respondents, over those with fewer than
    ``few`` and those with at least ``few``; MRP also over every state (states without a
    respondent have no raw mean). ``cov90`` is the share of states whose reference value
    lies inside the estimator's 90 % interval (Jeffreys interval for raw means).
    """
    subsets = {
        "states with respondents": states["n_resp"] > 0,
        f"states with < {few} respondents": (states["n_resp"] > 0) & (states["n_resp"] < few),
        f"states with >= {few} respondents": states["n_resp"] >= few,
        "all states": pd.Series(True, index=states.index),
    }
    rows = []
    for subset, mask in subsets.items():
        for name, est, lo, hi in (("raw", "raw", "raw_q5", "raw_q95"), ("MRP", "mrp", "mrp_q5", "mrp_q95")):
            if name == "raw" and subset == "all states":
                continue  # no raw mean where a state has no respondent; else the first row again
            part = states[mask]
            err = 100 * (part[est] - part["reference"])
            inside = (part[lo] <= part["reference"]) & (part["reference"] <= part[hi])
            rows.append(
                {
                    "subset": subset,
                    "estimator": name,
                    "states": len(part),
                    "respondents": int(part["n_resp"].sum()),
                    "mae_pp": float(err.abs().mean()) if len(part) else np.nan,
                    "rmse_pp": float(np.sqrt((err**2).mean())) if len(part) else np.nan,
                    "max_pp": float(err.abs().max()) if len(part) else np.nan,
                    "cov90": float(inside.mean()) if len(part) else np.nan,
                }
            )
    return pd.DataFrame(rows)


HEADERS = {
    "subset": "states",
    "estimator": "estimator",
    "states": "n states",
    "respondents": "respondents",
    "mae_pp": "mean abs error (pp)",
    "rmse_pp": "RMSE (pp)",
    "max_pp": "max abs error (pp)",
    "cov90": "90 % interval covers",
}


def markdown(errors: pd.DataFrame) -> str:
    return table_markdown(errors[list(HEADERS)].rename(columns=HEADERS))


def plot(states: pd.DataFrame, errors: pd.DataFrame, path: Path, title: str, reference_label: str, area: str = "state") -> Path:
    """Per area, sorted by the reference: raw mean, MRP with intervals, reference; and the
    absolute errors against the number of respondents."""
    plt = pyplot()
    s = states.sort_values("reference").reset_index(drop=True)
    y = np.arange(len(s))
    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(13, 0.21 * len(s) + 2.6), gridspec_kw={"width_ratios": [1.35, 1]})

    ax.hlines(y, 100 * s["mrp_q5"], 100 * s["mrp_q95"], color="tab:blue", lw=1.2, label="MRP 90 % interval")
    ax.hlines(y, 100 * s["mrp_q25"], 100 * s["mrp_q75"], color="tab:blue", lw=4, alpha=0.6, label="MRP 50 % interval")
    ax.plot(100 * s["mrp"], y, "o", color="tab:blue", ms=4.5, label=f"MRP, {int(s['n_resp'].sum()):,} respondents")
    has = s["n_resp"] > 0
    ax.plot(100 * s.loc[has, "raw"], y[has], "o", mfc="none", mec="tab:red", mew=1.3, ms=6, label="raw mean, same respondents")
    ax.plot(100 * s["reference"], y, "D", color="black", ms=3.5, label=reference_label)
    ax.set_yticks(y, [f"{a} ({n})" for a, n in zip(s[area], s["n_resp"], strict=True)], fontsize=8)
    ax.set_ylim(-0.8, len(s) - 0.2)
    ax.set_xlabel("estimate (%)", fontsize=10)
    ax.set_ylabel(f"{area} (respondents in the subsample)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8.5, loc="lower right", framealpha=0.95)
    ax.set_title("per state, sorted by the reference", fontsize=10)

    err_raw = 100 * (s.loc[has, "raw"] - s.loc[has, "reference"]).abs()
    err_mrp = 100 * (s["mrp"] - s["reference"]).abs()
    n = s["n_resp"].clip(lower=1)  # a state without respondents is drawn at 1
    ax_err.plot(n[has], err_raw, "o", mfc="none", mec="tab:red", mew=1.3, ms=6, label="raw mean")
    ax_err.plot(n, err_mrp, "o", color="tab:blue", ms=4.5, label="MRP")
    for name, color in (("raw", "tab:red"), ("MRP", "tab:blue")):
        row = errors[(errors["subset"] == "states with respondents") & (errors["estimator"] == name)].iloc[0]
        ax_err.axhline(
            row["mae_pp"], color=color, ls="--", lw=1, label=f"{name}: mean {row['mae_pp']:.1f} pp, max {row['max_pp']:.1f} pp"
        )
    ax_err.set_xscale("log")
    ax_err.set_xlabel(f"respondents in the {area} (log scale)", fontsize=10)
    ax_err.set_ylabel(f"absolute error against the {reference_label.split(',')[0]} (pp)", fontsize=10)
    ax_err.grid(alpha=0.3)
    ax_err.legend(fontsize=8.5, loc="upper right", framealpha=0.95)
    ax_err.set_title("error against the number of respondents", fontsize=10)
    fig.suptitle(title, fontsize=11.5)
    fig.tight_layout()
    return save_png(fig, path, dpi=110)


def demo(
    out: Path,
    data_dir: Path | None = None,
    n: int = 5000,
    seed: int = 0,
    method: str = "nuts",
    reference_method: str = "meanfield",
    overrides: Sequence[str] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fit the subsample (and, on the CCES, the full data), and write the figure and tables.

    Returns
    -------
    states, errors : pandas.DataFrame
        The per-state table and the error table.
    """
    out.mkdir(parents=True, exist_ok=True)
    data = ["data=cces18", f"data.dir={data_dir}"] if data_dir is not None else ["data=synthetic"]
    small = fit(out, f"{method}_n{n}", [*data, f"data.n={n}", f"seed={seed}", f"method={method}", *overrides])
    area = small.data.schema.area
    if small.data.truth is not None:
        reference = small.data.truth.area.rename(index=str)
        reference_label = "true value"
        what = f"synthetic survey, {n:,} respondents (seed {seed})"
    else:
        full = fit(
            out, f"{reference_method}_full", [*data, "data.n=null", f"seed={seed}", f"method={reference_method}", *overrides]
        )
        table = full.estimates[area].summary()
        reference = table.set_index(table[area].astype(str))["mean"]
        reference_label = f"full survey, {full.summary['n_respondents']:,} respondents ({reference_method})"
        what = f"2018 CCES: {n:,} of {full.summary['n_respondents']:,} respondents (seed {seed})"
    states = state_table(small, reference)
    errors = error_table(states)
    states.to_csv(out / "mrp_demo_states.csv", index=False)
    errors.to_csv(out / "mrp_demo_errors.csv", index=False)
    (out / "mrp_demo_errors.md").write_text(markdown(errors) + "\n")
    title = f"Raw state means vs MRP ({method}) on a subsample of the {what}"
    plot(states, errors, out / "mrp_demo.png", title, reference_label, area)
    return states, errors


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="CCES files; without it, the synthetic survey")
    parser.add_argument("--n", type=int, default=5000, help="subsample size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the subsample and of the fits")
    parser.add_argument("--method", default="nuts", help="method fitted to the subsample (conf/method: nuts, meanfield, ...)")
    parser.add_argument("--reference-method", default="meanfield", help="method fitted to the full CCES (nuts for the exact one)")
    parser.add_argument("--out", type=Path, default=Path("experiments/results/mrp_demo"))
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every fit, e.g. experiment=fast")
    args = parser.parse_args(argv)
    states, errors = demo(args.out, args.data_dir, args.n, args.seed, args.method, args.reference_method, args.overrides)
    print(markdown(errors))
    print(f"\nwrote {args.out / 'mrp_demo.png'}")


if __name__ == "__main__":
    main()
