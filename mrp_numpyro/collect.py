"""Collect a sweep: one tidy row per run directory of a Hydra multirun.

A row holds what was run (method, data, requested and actual sample size, seed), how long
each stage took, the fit's diagnostics (SVI: steps, k-hat, PSIS ESS, verdict; NUTS:
divergences, R-hat, ESS), the cell-level LOO (elpd, its se and the cells with k > 0.7) where
the run computed it, the national estimate with its 90 % interval, the error against
the synthetic truth where the data have one, and, when a reference is given, the
differences of state means and the interval width ratios against it
(:func:`mrp_numpyro.compare.compare_runs`). Runs that failed or were interrupted (an
``INCOMPLETE`` file) are rows too, with the reason in ``error``.

Command line::

    python -m mrp_numpyro.collect SWEEP_DIR [--reference RUN_DIR | --reference-method nuts] [--out FILE]

Every multirun also collects itself when it ends (the ``collect`` callback in
``conf/config.yaml``) and writes ``sweep.csv`` into its sweep directory.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

from .app.rundir import INCOMPLETE
from .compare import compare_runs, overall
from .outputs import write_csv

log = logging.getLogger(__name__)

__all__ = ["find_runs", "run_row", "collect", "add_reference", "format_table", "CollectSweep", "main"]

# Keys a run's grouping shares with the reference it is compared with (--reference-method).
MATCH_KEYS = ("data", "data_dir", "n", "seed", "formula")
# Diagnostics of either method copied into the row (absent ones are empty).
DIAGNOSTICS = (
    "steps_run",
    "converged",
    "final_elbo",
    "optimise_s",
    "khat",
    "khat_spread",
    "psis_ess",
    "divergences",
    "mean_leapfrog_steps",
    "max_rhat",
    "min_ess_bulk",
    "min_ess_tail",
)
# Columns printed by the command line; sweep.csv has them all.
SHOWN = [
    "run",
    "status",
    "method",
    "data",
    "n_respondents",
    "seed",
    "t_fit_s",
    "t_total_s",
    "verdict",
    "khat",
    "divergences",
    "max_rhat",
    "national_pct",
    "truth_state_mae_pp",
    "ref_mean_abs_diff_pp",
    "ref_max_abs_diff_pp",
    "ref_ratio90_min",
    "ref_ratio90_max",
    "error",
]


def _natural_key(path: Path) -> list:
    # Job directories are numbered 0, 1, ..., 10: sort 2 before 10.
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def find_runs(sweep_dir: str | Path) -> list[Path]:
    """Run directories under ``sweep_dir``: those holding ``summary.json`` or ``INCOMPLETE``.

    The sweep directory itself counts when it is a run directory.
    """
    root = Path(sweep_dir)
    if not root.is_dir():
        raise NotADirectoryError(f"sweep directory {root} does not exist or is not a directory")
    found = {p.parent for name in ("summary.json", INCOMPLETE) for p in root.rglob(name)}
    return sorted(found, key=_natural_key)


def _load_yaml(path: Path) -> DictConfig | ListConfig | None:
    return OmegaConf.load(path) if path.is_file() else None


def _get(cfg: DictConfig | ListConfig | None, key: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    # Unresolved configs (.hydra/config.yaml) may hold interpolations of Hydra's own
    # resolvers; a value that does not resolve here is reported as missing.
    try:
        value = OmegaConf.select(cfg, key, default=default, throw_on_missing=False)
    except Exception:
        return default
    return OmegaConf.to_container(value, resolve=False) if OmegaConf.is_config(value) else value


def _short_target(target: str | None) -> str | None:
    return None if target is None else str(target).rsplit(".", 1)[-1]


def _data_name(target: str | None) -> str | None:
    # mrp_numpyro.data.load_synthetic -> synthetic, the name of its config; a files source
    # (data=cces18, data=files) names itself in data.name.
    name = _short_target(target)
    return name[len("load_") :] if name and name.startswith("load_") else name


def run_row(run_dir: str | Path, area: str = "state") -> dict[str, Any]:
    """One tidy row describing a run directory, finished or not.

    Parameters
    ----------
    run_dir : path-like
        A run directory written by :func:`mrp_numpyro.app.run.run` (``python -m mrp_numpyro``).
    area : str
        The area grouping whose estimates are checked against the synthetic truth.

    Returns
    -------
    dict
        ``status`` is ``ok`` for a finished run and ``failed`` for one with an
        ``INCOMPLETE`` marker; ``error`` then holds the marker's text. ``method`` is the
        configured method's name (``coupled``, ``nuts``), ``inference`` the algorithm.
    """
    run_dir = Path(run_dir)
    # The resolved config is written when a run starts; .hydra/ holds Hydra's copy.
    cfg = _load_yaml(run_dir / "config.yaml") or _load_yaml(run_dir / ".hydra" / "config.yaml")
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    marker = run_dir / INCOMPLETE
    failed = marker.is_file() or not summary
    device = summary.get("device", {})
    row: dict[str, Any] = {
        "run": str(run_dir),
        "status": "failed" if failed else "ok",
        "error": marker.read_text().strip() if marker.is_file() else ("" if summary else "no summary.json"),
        # A run that failed before its summary still has the label its config gave it.
        "method": summary.get("label") or _get(cfg, "inference.label"),
        "inference": summary.get("method"),
        "guide": summary.get("guide"),
        "data": _get(cfg, "data.name") or _data_name(_get(cfg, "data._target_")),
        "data_dir": _get(cfg, "data.dir"),
        "n": _get(cfg, "data.n"),
        "n_respondents": summary.get("n_respondents"),
        "n_occupied_cells": summary.get("n_occupied_cells"),
        "seed": summary.get("seed", _get(cfg, "seed")),
        "formula": summary.get("formula") or _get(cfg, "model.formula"),
        "parameterization": summary.get("parameterization"),
        "device": device.get("device_kind") or device.get("platform"),
    }
    timings = summary.get("timings_s", {})
    for stage in ("load", "aggregate", "model", "fit", "poststratify", "checks", "write", "report"):
        row[f"t_{stage}_s"] = timings.get(stage)
    row["t_total_s"] = sum(timings.values()) if timings else None
    diag = summary.get("diagnostics", {})
    for key in DIAGNOSTICS:
        row[key] = diag.get(key)
    row["verdict"] = summary.get("verdict")
    # Cell-level PSIS-LOO (mrp_numpyro.checking.CellLoo.to_dict), in runs that computed it.
    loo = summary.get("loo") or {}
    for key in ("elpd", "se", "n_high_k"):
        row[f"loo_{key}"] = loo.get(key)
    row.update(_national(run_dir))
    row.update(_truth_errors(run_dir, area))
    return row


def _national(run_dir: Path) -> dict[str, float]:
    path = run_dir / "estimates_national.csv"
    if not path.is_file():
        return {"national_pct": np.nan, "national_q5_pct": np.nan, "national_q95_pct": np.nan}
    table = pd.read_csv(path)
    if len(table) != 1:  # a categorical outcome: a share per answer, no one national value
        return {"national_pct": np.nan, "national_q5_pct": np.nan, "national_q95_pct": np.nan}
    nat = table.iloc[0]
    return {"national_pct": 100 * nat["mean"], "national_q5_pct": 100 * nat["q5"], "national_q95_pct": 100 * nat["q95"]}


def _truth_errors(run_dir: Path, area: str) -> dict[str, float]:
    """Mean absolute error of the area means and 90 % coverage of the truth (synthetic data)."""
    path = run_dir / f"estimates_{area}.csv"
    table = pd.read_csv(path) if path.is_file() else None
    if table is None or "truth" not in table:
        return {"truth_state_mae_pp": np.nan, "truth_state_cov90": np.nan}
    inside = (table["q5"] <= table["truth"]) & (table["truth"] <= table["q95"])
    return {
        "truth_state_mae_pp": 100 * float((table["mean"] - table["truth"]).abs().mean()),
        "truth_state_cov90": float(inside.mean()),
    }


def _comparison(run: Path, reference: Path, area: str) -> dict[str, float]:
    c = overall(compare_runs(run, reference, area=area)[0])
    return {
        "ref_mean_abs_diff_pp": c["mean_abs_diff_pp"],
        "ref_max_abs_diff_pp": c["max_abs_diff_pp"],
        "ref_ratio90_min": c["ratio90_min"],
        "ref_ratio90_max": c["ratio90_max"],
        "ref_national_diff_pp": c["national_diff_pp"],
        "ref_national_ratio90": c["national_ratio90"],
    }


def add_reference(
    table: pd.DataFrame,
    reference: str | Path | None = None,
    reference_method: str | None = None,
    area: str = "state",
) -> pd.DataFrame:
    """Add the differences of every finished run against a reference run.

    Parameters
    ----------
    table : pandas.DataFrame
        Rows of :func:`run_row`.
    reference : path-like, optional
        One finished run directory that every run is compared with (it may lie outside
        the sweep, e.g. a NUTS run on the full data).
    reference_method : str, optional
        Instead of ``reference``: within the sweep, compare each run with the run of this
        method (e.g. ``nuts``) on the same data, sample size, seed and formula.

    Returns
    -------
    pandas.DataFrame
        ``table`` with ``reference`` (the run compared with) and ``ref_*`` columns: mean and
        largest absolute difference of the area means (percentage points), range of the
        90 % interval width ratios (run over reference), national difference and width ratio.
    """
    if reference is not None and reference_method is not None:
        raise ValueError("give either a reference run directory or a reference method, not both")
    table = table.copy()
    table["reference"] = None
    if reference is not None:
        ref = Path(reference)
        if not (ref / "summary.json").is_file():
            raise FileNotFoundError(f"reference {ref} is not a finished run directory (no summary.json)")
        pairs = {i: ref for i in table.index}
    elif reference_method is not None:
        pairs = _pairs_by_method(table, reference_method)
    else:
        return table
    comparisons = {}
    for i, ref in pairs.items():
        run = Path(table.at[i, "run"])
        if table.at[i, "status"] != "ok" or run.resolve() == ref.resolve():
            continue
        table.at[i, "reference"] = str(ref)
        comparisons[i] = _comparison(run, ref, area)
    if comparisons:
        table = table.join(pd.DataFrame.from_dict(comparisons, orient="index"))
    return table


def _pairs_by_method(table: pd.DataFrame, method: str) -> dict[Any, Path]:
    """Index of each run -> the finished run of ``method`` that shares its MATCH_KEYS."""

    def key(row: pd.Series) -> tuple[str, ...]:
        return tuple(str(row[k]) for k in MATCH_KEYS)

    refs = table[(table["method"] == method) & (table["status"] == "ok")]
    by_key: dict[tuple, list[Path]] = {}
    for _, row in refs.iterrows():
        by_key.setdefault(key(row), []).append(Path(row["run"]))
    if refs.empty:
        log.warning("no finished %s run in the sweep to compare with", method)
    pairs = {}
    for i, row in table.iterrows():
        matches = by_key.get(key(row), [])
        if len(matches) > 1:
            raise ValueError(
                f"{len(matches)} {method} runs match {row['run']} ({dict(zip(MATCH_KEYS, key(row), strict=True))}): {matches}"
            )
        if matches:
            pairs[i] = matches[0]
    return pairs


def collect(
    sweep_dir: str | Path,
    reference: str | Path | None = None,
    reference_method: str | None = None,
    area: str = "state",
) -> pd.DataFrame:
    """One row per run directory under ``sweep_dir``, compared with a reference when given.

    Run paths in the ``run`` column are relative to ``sweep_dir``.
    """
    root = Path(sweep_dir)
    runs = find_runs(root)
    if not runs:
        raise FileNotFoundError(f"no run directories (with summary.json or {INCOMPLETE}) under {root}")
    table = add_reference(pd.DataFrame([run_row(r, area) for r in runs]), reference, reference_method, area)
    for col in ("run", "reference"):
        table[col] = [None if p is None else _relative(Path(p), root) for p in table[col]]
    return table


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve())) or "."
    except ValueError:
        return str(path)


def format_table(table: pd.DataFrame) -> str:
    """The main columns, rounded, for a terminal or a log."""
    shown = table[[c for c in SHOWN if c in table]].copy()
    shown = shown.dropna(axis=1, how="all")
    if "error" in shown and not shown["error"].astype(bool).any():
        shown = shown.drop(columns="error")
    return shown.round(3).to_string(index=False)


class CollectSweep(Callback):
    """Hydra callback: when a multirun ends, collect its sweep directory into ``sweep.csv``.

    Configured under ``hydra.callbacks.collect`` (``conf/config.yaml``); the experiment
    presets set ``reference_method``. A sweep with a failed job stops before this runs:
    collect it with ``python -m mrp_numpyro.collect SWEEP_DIR``.

    Parameters
    ----------
    reference_method : str, optional
        Compare each run with the run of this method on the same data (e.g. ``nuts``).
    out : str
        File name of the table, in the sweep directory.
    area : str
        Area grouping compared (the state estimates).
    """

    def __init__(self, reference_method: str | None = None, out: str = "sweep.csv", area: str = "state") -> None:
        self.reference_method = reference_method
        self.out = out
        self.area = area

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Collect the finished sweep into ``sweep.csv`` in its sweep directory."""
        sweep_dir = Path(str(config.hydra.sweep.dir))
        table = collect(sweep_dir, reference_method=self.reference_method, area=self.area)
        write_csv(sweep_dir / self.out, table)
        log.info("sweep of %d runs collected into %s\n%s", len(table), sweep_dir / self.out, format_table(table))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: collect a sweep directory, print its main columns, write the table."""
    parser = argparse.ArgumentParser(prog="python -m mrp_numpyro.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="a multirun directory, e.g. multirun/DATE/TIME")
    ref = parser.add_mutually_exclusive_group()
    ref.add_argument("--reference", type=Path, default=None, help="a finished run directory to compare every run with")
    ref.add_argument(
        "--reference-method",
        default=None,
        metavar="METHOD",
        help="compare each run with the run of METHOD (e.g. nuts) on the same data, n and seed in the sweep",
    )
    parser.add_argument("--out", type=Path, default=None, help="CSV to write (default: SWEEP_DIR/sweep.csv)")
    parser.add_argument("--area", default="state", help="area grouping to compare (default: state)")
    args = parser.parse_args(argv)
    table = collect(args.sweep_dir, args.reference, args.reference_method, args.area)
    out = args.out or args.sweep_dir / "sweep.csv"
    write_csv(out, table)
    print(format_table(table))
    failed = int((table["status"] != "ok").sum())
    print(f"\n{len(table)} runs ({failed} failed); wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
