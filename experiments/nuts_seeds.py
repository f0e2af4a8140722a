"""NUTS over several seeds: divergences, mixing and where the divergent draws sit.

One divergence count from one seed says little (the count is small and noisy), so this
runs ``python -m mrp_numpyro inference=nuts`` for every seed and data size asked for, in
fresh processes, and reads each run's ``summary.json`` and ``posterior.nc``. Besides
divergences, mean leapfrog steps per draw, max R-hat and min bulk ESS, it reports where
the divergent draws sit: for every group, the percentile of each divergent draw's sd among
all draws, summarised for the groups whose divergent draws are in their sd's outer tenths.

    python experiments/nuts_seeds.py --data-dir ../shared/data --seeds 0 1 2 3
    python experiments/nuts_seeds.py --data-dir ../shared/data --cces-n 10000 --parameterization noncentred

CCES subsamples keep the data seed at 0; ``--seeds`` sets the sampler's seed. Prints a
markdown table and writes it, with a CSV, to --out.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from mrp_numpyro.app.tables import markdown as table_markdown
from mrp_numpyro.collect import run_row
from mrp_numpyro.design import SITES


def divergent_tails(run_dir: Path) -> str:
    """Groups whose sd is in its lowest or highest tenth on average over the divergent draws."""
    post = xr.open_dataset(run_dir / "posterior.nc", group="posterior")
    stats = xr.open_dataset(run_dir / "posterior.nc", group="sample_stats")
    diverging = stats["diverging"].values.reshape(-1).astype(bool)
    if not diverging.any():
        return ""
    parts = []
    for name in post.data_vars:
        group = SITES.sd_group(name)
        if group is None:
            continue
        v = post[name].values.reshape(-1)
        pct = 100 * np.mean(v[None, :] < v[diverging][:, None], axis=1)
        if np.mean(pct) < 10 or np.mean(pct) > 90:
            parts.append(f"{group} {np.median(pct):.0f}")
    return "; ".join(parts)


def run_one(data_args: list[str], parameterization: str, seed: int, out: Path, extra: tuple[str, ...] = ()) -> dict:
    label = "_".join(a.split("=")[-1] for a in data_args[2:]) or "all"
    run_dir = out / "runs" / f"{label}_{parameterization}_seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    command = [
        sys.executable,
        "-m",
        "mrp_numpyro",
        *data_args,
        "inference=nuts",
        f"seed={seed}",
        f"model/parameterization={parameterization}",
        "progress=false",
        "report=false",
        "device.compilation_cache_dir=null",
        *extra,
        f"hydra.run.dir={run_dir}",
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    r = run_row(run_dir)
    return {
        "respondents": r["n_respondents"],
        "parameterization": r["parameterization"],
        "seed": seed,
        "wall_s": wall,
        "model_s": r["t_model_s"] or 0.0,
        "fit_s": r["t_fit_s"],
        "divergences": r["divergences"],
        "leapfrog_steps": r["mean_leapfrog_steps"],
        "max_rhat": r["max_rhat"],
        "min_ess_bulk": r["min_ess_bulk"],
        "divergent draws: sd percentile (median)": divergent_tails(run_dir),
    }


def markdown(table: pd.DataFrame) -> str:
    return table_markdown(table, {"max_rhat": ".4f", "min_ess_bulk": ".0f", "leapfrog_steps": ".0f"}, default=".1f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cces-n", nargs="+", default=["all"], help="subsample sizes, or all")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    parser.add_argument("--parameterization", nargs="+", default=["partial"], choices=["noncentred", "partial", "identified"])
    parser.add_argument("--out", type=Path, default=Path("experiments/results/nuts_seeds"))
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides for every run, e.g. experiment=fast")
    args = parser.parse_args()
    if not (args.data_dir / "cces_all_clean.csv").is_file():
        sys.exit(f"no CCES data in {args.data_dir}: pass --data-dir")
    args.out.mkdir(parents=True, exist_ok=True)
    records = []
    for n in args.cces_n:
        data_args = ["data=cces18", f"data.dir={args.data_dir}"] + (
            ["data.n=null"] if n == "all" else [f"data.n={int(n)}", "data.seed=0"]
        )
        for p in args.parameterization:
            for seed in args.seeds:
                records.append(run_one(data_args, p, seed, args.out, tuple(args.extra)))
                print(records[-1], flush=True)
    table = pd.DataFrame(records)
    table.to_csv(args.out / "nuts_seeds.csv", index=False)
    text = markdown(table)
    (args.out / "nuts_seeds.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
