"""Compare the poststratified estimates of two runs, e.g. a VI run against a NUTS run.

Per state and for the nation: the difference of posterior means (percentage points), the
ratio of 50 % and 90 % central interval widths (run A over run B), and the Wasserstein-1
distance between the two sets of draws (percentage points). Writes ``comparison.csv``
and two figures: state intervals side by side, and the state draws.

Command line::

    python -m mrp_numpyro.compare RUN_A RUN_B [--out DIR] [--labels VI NUTS]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

import numpy as np
import pandas as pd
import xarray as xr
from scipy.stats import wasserstein_distance

from .app.report import pyplot, save_png
from .inference.result import flatten_draws
from .labelled import level_dim
from .outputs import write_csv

__all__ = [
    "RunDraws",
    "compare_draws",
    "compare_runs",
    "overall",
    "load_poststrat_draws",
    "plot_intervals",
    "plot_draws",
    "write_comparison",
    "main",
]


class RunDraws(TypedDict):
    """The area draws of two runs, as :func:`compare_runs` returns them for plotting."""

    a: np.ndarray
    b: np.ndarray
    labels: list[str]


def _width(draws: np.ndarray, level: float) -> np.ndarray:
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return hi - lo


def compare_draws(a: np.ndarray, b: np.ndarray, labels: Sequence[str]) -> pd.DataFrame:
    """Compare two sets of draws (draws x groups) of the same groups.

    Returns
    -------
    pandas.DataFrame
        One row per group: ``mean_a, mean_b, diff_pp`` (100 x (mean_a - mean_b)),
        ``ratio50`` and ``ratio90`` (interval width of a over b) and ``w1_pp`` (Wasserstein-1
        distance, percentage points).
    """
    # A 1-d vector is the draws of a single group.
    a, b = (np.asarray(x, float).reshape(len(x), -1) for x in (a, b))
    if a.shape[1] != b.shape[1] or a.shape[1] != len(labels):
        raise ValueError(f"draws must cover the same {len(labels)} groups, got {a.shape} and {b.shape}")
    table = pd.DataFrame({"group": list(labels)})
    table["mean_a"] = a.mean(0)
    table["mean_b"] = b.mean(0)
    table["diff_pp"] = 100 * (table["mean_a"] - table["mean_b"])
    table["ratio50"] = _width(a, 0.5) / _width(b, 0.5)
    table["ratio90"] = _width(a, 0.9) / _width(b, 0.9)
    table["w1_pp"] = [100 * wasserstein_distance(a[:, j], b[:, j]) for j in range(a.shape[1])]
    return table


def load_poststrat_draws(run_dir: str | Path) -> xr.Dataset:
    """The poststratified draws of a run directory."""
    path = Path(run_dir) / "poststrat_draws.nc"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run_dir} is not a finished mrp_numpyro run directory")
    with xr.open_dataset(path, engine="h5netcdf") as ds:
        return ds.load()


def _flat(da: xr.DataArray) -> np.ndarray:
    """(draws, groups) from a (chain, draw[, level]) array."""
    flat = flatten_draws({"x": da.transpose("chain", "draw", ...).values})["x"]
    return flat.reshape(len(flat), -1)


def compare_runs(run_a: str | Path, run_b: str | Path, area: str = "state") -> tuple[pd.DataFrame, RunDraws]:
    """Compare the area and national estimates of two run directories.

    Returns
    -------
    table : pandas.DataFrame
        :func:`compare_draws` for every area, then a ``national`` row.
    draws : dict
        ``{"a": (draws, areas), "b": (draws, areas), "labels": area labels}`` for plotting.
    """
    da, db = load_poststrat_draws(run_a), load_poststrat_draws(run_b)
    for name in (area, "national"):
        if name not in da or name not in db:
            raise KeyError(f"both runs need the {name!r} grouping (poststrat.groupings)")
    dim = level_dim(area)
    labels = [str(x) for x in da[area].coords[dim].values]
    if labels != [str(x) for x in db[area].coords[dim].values]:
        raise ValueError(f"the two runs estimate different {area} sets")
    # A categorical outcome's shares have a last dimension of answers: a group per area and answer.
    answers = [str(x) for d in da[area].dims if d not in ("chain", "draw", dim) for x in da[area].coords[d].values]
    if answers:
        labels = [f"{label}:{answer}" for label in labels for answer in answers]
    a, b = _flat(da[area]), _flat(db[area])
    table = compare_draws(a, b, labels)
    national = [f"national:{answer}" for answer in answers] if answers else ["national"]
    nat = compare_draws(_flat(da["national"]), _flat(db["national"]), national)
    return pd.concat([table, nat], ignore_index=True), {"a": a, "b": b, "labels": labels}


def overall(table: pd.DataFrame) -> dict[str, float]:
    """One-line summary of a comparison table's area rows (national: a categorical outcome's answer furthest apart)."""
    national = table["group"].astype(str).str.match(r"national(:|$)")
    areas = table[~national]
    nat = table[national].loc[lambda t: t["diff_pp"].abs().idxmax()]
    return {
        "mean_abs_diff_pp": float(areas["diff_pp"].abs().mean()),
        "max_abs_diff_pp": float(areas["diff_pp"].abs().max()),
        "ratio90_min": float(areas["ratio90"].min()),
        "ratio90_max": float(areas["ratio90"].max()),
        "ratio50_min": float(areas["ratio50"].min()),
        "ratio50_max": float(areas["ratio50"].max()),
        "mean_w1_pp": float(areas["w1_pp"].mean()),
        "national_diff_pp": float(nat["diff_pp"]),
        "national_ratio90": float(nat["ratio90"]),
    }


def plot_intervals(a: np.ndarray, b: np.ndarray, labels: Sequence[str], names: Sequence[str], path: Path) -> None:
    """Median, 50 % and 90 % intervals of both runs, one row per area, sorted by run B's median."""
    plt = pyplot()
    qa = np.quantile(a, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0) * 100
    qb = np.quantile(b, [0.05, 0.25, 0.5, 0.75, 0.95], axis=0) * 100
    order = np.argsort(qb[2])
    y = np.arange(len(labels))
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(labels) + 1.5))
    for q, offset, color, name in ((qa, 0.18, "tab:orange", names[0]), (qb, -0.18, "tab:blue", names[1])):
        ax.hlines(y + offset, q[0, order], q[4, order], color=color, lw=1, label=f"{name} 90 %")
        ax.hlines(y + offset, q[1, order], q[3, order], color=color, lw=3.5, alpha=0.8, label=f"{name} 50 %")
        ax.plot(q[2, order], y + offset, "o", color="white", mec=color, ms=3.5)
    ax.set_yticks(y, [labels[i] for i in order], fontsize=7)
    ax.set_xlabel("estimate (%)")
    ax.set_title(f"{names[0]} vs {names[1]}: median, 50 % and 90 % intervals")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_png(fig, path, dpi=120)


def plot_draws(
    a: np.ndarray, b: np.ndarray, labels: Sequence[str], names: Sequence[str], path: Path, max_dots: int = 200
) -> None:
    """A strip of draws per area for both runs, sorted by run B's mean."""
    plt = pyplot()
    rng = np.random.default_rng(0)
    order = np.argsort(b.mean(0))
    fig, ax = plt.subplots(figsize=(7, 0.22 * len(labels) + 1.5))
    for draws, offset, color, name in ((a, 0.18, "tab:orange", names[0]), (b, -0.18, "tab:blue", names[1])):
        take = rng.choice(draws.shape[0], size=min(max_dots, draws.shape[0]), replace=False)
        for row, j in enumerate(order):
            x = draws[take, j] * 100
            ax.plot(x, np.full(x.shape, row + offset) + rng.uniform(-0.08, 0.08, x.shape), ".", ms=1, color=color, alpha=0.4)
        ax.plot([], [], "o", ms=5, color=color, label=name)
    ax.set_yticks(np.arange(len(labels)), [labels[i] for i in order], fontsize=7)
    ax.set_xlabel("estimate (%)")
    ax.set_title(f"draws per area: {names[0]} vs {names[1]}")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    save_png(fig, path, dpi=120)


def write_comparison(
    run_a: str | Path, run_b: str | Path, out: str | Path, names: Sequence[str] = ("A", "B"), area: str = "state"
) -> pd.DataFrame:
    """Compare two runs and write ``comparison.csv``, ``compare_intervals.png`` and ``compare_draws.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    table, draws = compare_runs(run_a, run_b, area=area)
    write_csv(out / "comparison.csv", table)
    plot_intervals(draws["a"], draws["b"], draws["labels"], names, out / "compare_intervals.png")
    plot_draws(draws["a"], draws["b"], draws["labels"], names, out / "compare_draws.png")
    return table


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: compare two run directories, print the table and write it with its figures."""
    parser = argparse.ArgumentParser(prog="python -m mrp_numpyro.compare", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_a", help="run directory A (e.g. a VI run)")
    parser.add_argument("run_b", help="run directory B, the reference (e.g. a NUTS run)")
    parser.add_argument("--out", default=None, help="output directory (default: RUN_A/compare)")
    parser.add_argument("--labels", nargs=2, default=("A", "B"), metavar=("A", "B"), help="names of the two runs in figures")
    args = parser.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.run_a) / "compare"
    table = write_comparison(args.run_a, args.run_b, out, args.labels)
    summary = overall(table)
    print(table.round(3).to_string(index=False))
    print()
    for key, value in summary.items():
        print(f"{key:>18}: {value:.3f}")
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
