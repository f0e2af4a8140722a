"""Command line: a saved fit poststratified to another table, without refitting.

::

    python -m mrp_numpyro.poststratify RUN_DIR --table OTHER.csv [--by state --by state,eth]
        [--count COLUMN] [--calibrate TARGETS.csv [--target-column target]] [--out DIR]

Each ``--by`` is one grouping (comma-separated columns are crossed); the run's groupings by
default, and the national value always. ``--calibrate`` shifts every draw's cell logits in
each listed area so that the area's value equals its target (a CSV with the area column
and ``target``); the other groupings are then estimated from the shifted cells. The output
directory (``RUN_DIR/poststratify-TABLE`` by default, never overwritten) gets the same
estimate files and figures as a run, ``calibration_shifts.csv`` when calibrated, and
``poststratify.json``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from .app import report
from .app.repoststratify import Repoststratified, repoststratify, summary_of
from .app.rundir import run_directory
from .calibration import Calibration, read_targets
from .data.saved import load_schema
from .data.schema import DataError
from .labelled import poststrat_dataset
from .outputs import write_csv, write_json, write_netcdf

log = logging.getLogger("mrp_numpyro")

__all__ = ["main", "write_outputs"]


def write_outputs(out: Path, result: Repoststratified, summary: dict) -> None:
    """The estimate tables, the draws, the figures of the area grouping and ``poststratify.json`` (last)."""
    for name, table in result.tables.items():
        write_csv(out / f"estimates_{name}.csv", table)
    write_netcdf(out / "poststrat_draws.nc", poststrat_dataset(result.groupings))
    if result.shifts is not None:
        write_csv(out / "calibration_shifts.csv", result.shifts.summary())
    for name, est in result.groupings.items():
        if len(est.columns) == 1:
            (area,) = est.columns
            table = result.tables[name]
            report.plot_state_estimates(table, out / f"{name}_estimates.png", area, f"{name} estimates, {out.name}")
            if set(table[area].astype(str)) <= set(report.STATE_TILES):
                report.plot_state_map(table, out / f"{name}_map.png", area)
    write_json(out / "poststratify.json", summary)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mrp_numpyro.poststratify", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a finished run directory of python -m mrp_numpyro")
    parser.add_argument("--table", required=True, type=Path, help="the poststratification table (CSV or Parquet)")
    parser.add_argument("--by", action="append", default=None, help="a grouping, e.g. state or state,eth (repeatable)")
    parser.add_argument("--count", help="the table's count column, if not the fit's")
    parser.add_argument("--calibrate", type=Path, help="CSV of known area values to calibrate to")
    parser.add_argument("--calibrate-column", help="area column of the calibration file (default: the fit's area)")
    parser.add_argument("--target-column", default="target", help="value column of the calibration file")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws of levels the fit never saw")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--out", type=Path, help="output directory (default RUN_DIR/poststratify-TABLE)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (2 for bad input, with the message on stderr)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s][%(name)s][%(levelname)s] %(message)s")
    out = args.out or args.run_dir / f"poststratify-{args.table.stem}"
    try:
        schema = load_schema(args.run_dir)
        calibration: Calibration | None = None
        if args.calibrate is not None:
            calibration = read_targets(str(args.calibrate), args.calibrate_column or schema.area, args.target_column)
        groupings = None
        if args.by:
            groupings = {"_".join(cols): cols for cols in ([c.strip() for c in by.split(",") if c.strip()] for by in args.by)}
            groupings["national"] = []
        if out.exists() and any(out.iterdir()):
            raise FileExistsError(f"{out} is not empty; the command never overwrites, choose another --out")
        # Everything is read and checked before the output directory is claimed, so a bad
        # table or target leaves nothing behind.
        result = repoststratify(
            args.run_dir,
            args.table,
            groupings=groupings,
            count=args.count,
            calibration=calibration,
            seed=args.seed,
            chunk_size=args.chunk_size,
        )
        with run_directory(out):
            for note in result.notes:
                log.info(note)
            write_outputs(out, result, summary_of(result, args.run_dir, args.table, calibration))
    except (DataError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    log.info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
