"""Bit-identical estimates across a change of the code: run a fixed set of configurations, compare.

A refactoring that must not change behaviour is checked by running the same configurations
before and after it, and requiring every estimates CSV to be equal byte for byte and every
array of ``poststrat_draws.nc`` and ``posterior.nc`` to be equal exactly:

    python experiments/reproduce.py run OUT_BEFORE --data-dir ../shared/data    # at the old commit
    python experiments/reproduce.py run OUT_AFTER --data-dir ../shared/data     # at the new one
    python experiments/reproduce.py compare OUT_BEFORE OUT_AFTER

The set covers the default run, the full CCES with mean-field SVI and with NUTS, and short
runs of every other guide and parameterisation. ``--only`` runs some of them. The same
machine and the same package versions are needed for bit identity (float rounding depends on
both). Override spellings follow the current config; a run of older code may need the old
ones (``--spell model/parameterization=model.parameterization``).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import xarray as xr

FAST = ["experiment=fast"]
RUNS: dict[str, list[str]] = {
    "default": [],
    "cces_meanfield": ["data=cces18", "data.dir={data_dir}", "guide=meanfield"],
    "cces_nuts": ["data=cces18", "data.dir={data_dir}", "inference=nuts"],
    "fast_fullrank": [*FAST, "guide=fullrank"],
    "fast_lowrank": [*FAST, "guide=lowrank"],
    "fast_iaf": [*FAST, "guide=iaf"],
    "fast_meanfield_identified": [*FAST, "guide=meanfield", "model/parameterization=identified"],
    "fast_nuts_noncentred": [*FAST, "inference=nuts", "model/parameterization=noncentred"],
    "fast_nuts_identified": [*FAST, "inference=nuts", "model/parameterization=identified"],
    "fast_nuts_partial_groupings": [*FAST, "inference=nuts", "+poststrat.groupings.state_eth=[state,eth]"],
    "fast_original": [*FAST, "guide=meanfield", "model=rstanarm_original"],
}


def run_all(out: Path, data_dir: Path, only: list[str] | None, spell: list[tuple[str, str]]) -> None:
    """Every configuration of :data:`RUNS` (or ``only``) into ``out/NAME``, each in a fresh process."""
    out.mkdir(parents=True, exist_ok=True)
    for name, overrides in RUNS.items():
        if only and name not in only:
            continue
        run_dir = out / name
        if run_dir.exists():
            shutil.rmtree(run_dir)
        args = [o.format(data_dir=data_dir) for o in overrides]
        for new, old in spell:
            args = [a.replace(new, old) for a in args]
        command = [sys.executable, "-m", "mrp_numpyro", "progress=false", *args, f"hydra.run.dir={run_dir}"]
        proc = subprocess.run(command, capture_output=True, text=True)
        (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
        print(f"{name}: {'ok' if proc.returncode == 0 else f'failed (exit {proc.returncode}), see {name}.log'}", flush=True)


def _arrays_differ(a: Path, b: Path, group: str | None) -> list[str]:
    with xr.open_dataset(a, group=group, engine="h5netcdf") as x, xr.open_dataset(b, group=group, engine="h5netcdf") as y:
        if set(x.data_vars) != set(y.data_vars):
            return [f"{a.name}/{group}: variables {sorted(x.data_vars)} against {sorted(y.data_vars)}"]
        return [f"{a.name}/{group}/{v}" for v in x.data_vars if not np.array_equal(x[v].values, y[v].values)]


def _has_group(path: Path, group: str) -> bool:
    try:
        xr.open_dataset(path, group=group, engine="h5netcdf").close()
    except OSError:
        return False
    return True


def compare(before: Path, after: Path) -> int:
    """Print, for every run directory of ``before``, whether ``after`` has the same estimates; 1 if any differs."""
    differs = 0
    for run in sorted(p for p in before.iterdir() if p.is_dir()):
        other = after / run.name
        if not (other / "summary.json").is_file():
            print(f"{run.name}: no finished run in {after}")
            differs += 1
            continue
        problems = []
        csvs = sorted(p.name for p in run.glob("estimates_*.csv"))
        if csvs != sorted(p.name for p in other.glob("estimates_*.csv")):
            problems.append("other estimate files")
        problems += [f"{f} differs" for f in csvs if not filecmp.cmp(run / f, other / f, shallow=False)]
        problems += _arrays_differ(run / "poststrat_draws.nc", other / "poststrat_draws.nc", None)
        problems += _arrays_differ(run / "posterior.nc", other / "posterior.nc", "posterior")
        if _has_group(run / "posterior.nc", "sample_stats") or _has_group(other / "posterior.nc", "sample_stats"):
            problems += _arrays_differ(run / "posterior.nc", other / "posterior.nc", "sample_stats")
        print(f"{run.name}: {'identical' if not problems else '; '.join(problems)}")
        differs += bool(problems)
    return 1 if differs else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the configurations into a directory")
    r.add_argument("out", type=Path)
    r.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    r.add_argument("--only", nargs="+", choices=list(RUNS))
    r.add_argument(
        "--spell",
        nargs=2,
        action="append",
        default=[],
        metavar=("NEW", "OLD"),
        help="write an override the way older code spells it",
    )
    c = sub.add_parser("compare", help="compare two directories of runs")
    c.add_argument("before", type=Path)
    c.add_argument("after", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run_all(args.out, args.data_dir.resolve(), args.only, [tuple(s) for s in args.spell])
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    raise SystemExit(main())
