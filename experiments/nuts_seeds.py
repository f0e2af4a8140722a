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
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def divergent_tails(run_dir: Path) -> str:
    """Groups whose sd is in its lowest or highest tenth on average over the divergent draws."""
    post = xr.open_dataset(run_dir / "posterior.nc", group="posterior")
    stats = xr.open_dataset(run_dir / "posterior.nc", group="sample_stats")
    diverging = stats["diverging"].values.reshape(-1).astype(bool)
    if not diverging.any():
        return ""
    parts = []
    for name in post.data_vars:
        if not name.startswith("sd_"):
            continue
        v = post[name].values.reshape(-1)
        pct = 100 * np.mean(v[None, :] < v[diverging][:, None], axis=1)
        if np.mean(pct) < 10 or np.mean(pct) > 90:
            parts.append(f"{name[3:]} {np.median(pct):.0f}")
    return "; ".join(parts)


def run_one(data_args: list[str], parameterization: str, seed: int, out: Path, extra: tuple[str, ...] = ()) -> dict:
    label = "_".join(a.split("=")[-1] for a in data_args[2:]) or "all"
    run_dir = out / "runs" / f"{label}_{parameterization}_seed{seed}"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    command = [sys.executable, "-m", "mrp_numpyro", *data_args, "inference=nuts", f"seed={seed}",
               f"model/parameterization={parameterization}", "progress=false", "report=false",
               "device.compilation_cache_dir=null", *extra, f"hydra.run.dir={run_dir}"]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    s = json.loads((run_dir / "summary.json").read_text())
    d, t = s["diagnostics"], s["timings_s"]
    return {
        "respondents": s["n_respondents"],
        "parameterization": s["parameterization"],
        "seed": seed,
        "wall_s": wall,
        "model_s": t.get("model", 0.0),
        "fit_s": t["fit"],
        "divergences": d["divergences"],
        "leapfrog_steps": d["mean_leapfrog_steps"],
        "max_rhat": d["max_rhat"],
        "min_ess_bulk": d["min_ess_bulk"],
        "divergent draws: sd percentile (median)": divergent_tails(run_dir),
    }


def markdown(table: pd.DataFrame) -> str:
    cols = list(table.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in table.to_dict("records"):
        cells = []
        for c in cols:
            v = r[c]
            if isinstance(v, float):
                cells.append(f"{v:.4f}" if c == "max_rhat" else f"{v:.0f}" if c in ("min_ess_bulk", "leapfrog_steps") else f"{v:.1f}")
            elif isinstance(v, (int, np.integer)) and c == "respondents":
                cells.append(f"{v:,}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
            ["data.n=null"] if n == "all" else [f"data.n={int(n)}", "data.seed=0"])
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
