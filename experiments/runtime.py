"""Runtime table: NUTS and every guide on CCES subsamples and the full CCES, and mean-field
SVI on synthetic surveys up to millions of respondents.

Each row runs ``python -m mrp_numpyro`` in a fresh process with the compilation cache off
(a cold start) and reads the run's ``summary.json``: time to load and aggregate the data,
fit (compilation included), poststratify 4,000 draws (NUTS: 4 chains x 1,000) over 12,000
cells, peak resident memory of the process, occupied cells, and for NUTS the divergences,
max R-hat and min bulk ESS.

    python experiments/runtime.py --data-dir ../shared/data

On a GPU, a subset with a time limit per row (a row over it is reported, not dropped):

    python experiments/runtime.py --data-dir ../shared/data --extra device=gpu \
        --cces-n all --methods meanfield nuts --timeout 300

Prints a markdown table and writes it, with a CSV, to --out (the CSV after every row).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from mrp_numpyro.app.tables import markdown as table_markdown
from mrp_numpyro.collect import run_row as collect_run_row

# The child reports its own peak resident memory when it exits.
CHILD = (
    "import resource, runpy, sys\n"
    "sys.argv = ['mrp_numpyro', *sys.argv[2:]]\n"
    "try:\n"
    "    runpy.run_module('mrp_numpyro', run_name='__main__')\n"
    "finally:\n"
    "    open(sys.argv_rss, 'w').write(str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss))\n"
)

GUIDES = ["coupled", "meanfield", "fullrank", "lowrank", "iaf"]


def rows(data_dir: Path, cces_n: list[int | None], synthetic_n: list[int], methods: list[str]):
    for n in cces_n:
        for m in methods:
            yield f"cces18 n={n or 'all'}", ["data=cces18", f"data.dir={data_dir}", f"data.n={n or 'null'}"], m
    for n in synthetic_n:
        yield f"synthetic n={n:,}", [f"data.n={n}"], "meanfield"


def run_row(
    label: str, data_args: list[str], method: str, out: Path, extra: tuple[str, ...] = (), timeout: float | None = None
) -> dict:
    run_dir = out / "runs" / f"{label.replace(' ', '_').replace(',', '').replace('=', '')}_{method}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    rss_file = out / "rss.txt"
    code = CHILD.replace("sys.argv_rss", repr(str(rss_file)))
    command = [
        sys.executable,
        "-c",
        code,
        "--",
        *data_args,
        f"method={method}",
        "progress=false",
        "device.compilation_cache_dir=null",
        *extra,
        f"hydra.run.dir={run_dir}",
    ]
    start = time.perf_counter()
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"data": label, "method": method, "wall_s": time.perf_counter() - start, "note": f"stopped at {timeout:.0f} s"}
    except subprocess.CalledProcessError as err:
        # The other rows still run; the table names the failure and the log has its cause.
        print(err.stderr.decode(errors="replace")[-3000:], file=sys.stderr, flush=True)
        return {"data": label, "method": method, "wall_s": time.perf_counter() - start, "note": f"failed (exit {err.returncode})"}
    wall = time.perf_counter() - start
    r = collect_run_row(run_dir)
    return {
        "data": label,
        "method": method,
        "device": r["device"],
        "respondents": r["n_respondents"],
        "cells": r["n_occupied_cells"],
        "wall_s": wall,
        "load_aggregate_s": r["t_load_s"] + r["t_aggregate_s"],
        # Building the model; for NUTS this is the pilot mean-field fit of partial centring.
        "model_s": r["t_model_s"] or 0.0,
        "fit_s": r["t_fit_s"],
        # SVI only: set-up, compilation and steps (fit_s adds the PSIS check on 16,000 draws).
        "optimise_s": r["optimise_s"],
        "poststratify_s": r["t_poststratify_s"],
        "peak_rss_mb": int(rss_file.read_text()) / 1024,
        "steps": r["steps_run"],
        "khat": r["khat"],
        "divergences": r["divergences"],
        "max_rhat": r["max_rhat"],
        "min_ess_bulk": r["min_ess_bulk"],
        "national_pct": r["national_pct"],
        "note": "",
    }


COLUMNS = [
    "data",
    "method",
    "device",
    "respondents",
    "cells",
    "wall_s",
    "load_aggregate_s",
    "model_s",
    "fit_s",
    "optimise_s",
    "poststratify_s",
    "peak_rss_mb",
    "steps",
    "khat",
    "divergences",
    "max_rhat",
    "min_ess_bulk",
    "national_pct",
    "note",
]
# Counts turn into floats in a column that has a stopped row's gaps.
FORMATS = {
    "respondents": ",.0f",
    "cells": ",.0f",
    "peak_rss_mb": ".0f",
    "steps": ".0f",
    "divergences": ".0f",
    "min_ess_bulk": ".0f",
    "max_rhat": ".4f",
}


def markdown(table: pd.DataFrame) -> str:
    return table_markdown(table.reindex(columns=COLUMNS), FORMATS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cces-n", nargs="+", default=["5000", "10000", "all"])
    parser.add_argument("--synthetic-n", nargs="*", type=int, default=[60_000, 600_000, 6_000_000])
    parser.add_argument("--methods", nargs="+", default=["nuts", *GUIDES], choices=["nuts", *GUIDES])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/runtime"))
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every row, e.g. device=gpu")
    parser.add_argument("--timeout", type=float, default=None, help="seconds after which a row is stopped and reported as such")
    parser.add_argument("--table-only", action="store_true", help="re-print the table of an earlier run's runtime.csv")
    args = parser.parse_args()
    if args.table_only:
        # Tables written before some columns existed print them empty.
        print(markdown(pd.read_csv(args.out / "runtime.csv")))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    cces_n = [None if n == "all" else int(n) for n in args.cces_n]
    results = []
    for label, data_args, method in rows(args.data_dir, cces_n, args.synthetic_n, args.methods):
        results.append(run_row(label, data_args, method, args.out, tuple(args.extra), args.timeout))
        print(f"{label} {method}: {results[-1]['wall_s']:.1f} s {results[-1]['note']}", flush=True)
        # After every row, so that a long benchmark stopped midway keeps what it measured.
        pd.DataFrame(results).to_csv(args.out / "runtime.csv", index=False)
    table = pd.DataFrame(results)
    text = markdown(table)
    (args.out / "runtime.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
