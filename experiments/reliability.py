"""Reliability benchmark: every guide and NUTS on the full 2018 CCES, plus coverage of the
true state values of the synthetic data.

For each method on the CCES, run as ``python -m mrp_numpyro`` in a fresh process: wall time
(start-up, compilation, fit, poststratification and writing), PSIS k-hat and
ESS (VI), national estimate, and against NUTS the mean and largest absolute difference of
state means (percentage points) and the range of 90 % interval width ratios. On the
synthetic data: the share of the 50 states whose true value falls inside the 50 % and 90 %
intervals, over independent replications (different seeds), with a binomial standard
error (approximate: states within one replication share errors).

    python experiments/reliability.py --data-dir ../shared/data

Prints a markdown table and writes it, with a CSV, to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.app.run import run
from mrp_numpyro.compare import compare_runs, overall

STL = "inference.elbo._target_=mrp_numpyro.inference.StickingTheLandingELBO"
DECAY = ["inference.optimizer.step_size.final=2e-4", "budget.svi_steps=30000", "inference.plateau_rtol=null"]
METHODS = {
    "meanfield": ["guide=meanfield"],
    "fullrank": ["guide=fullrank"],
    "lowrank": ["guide=lowrank"],
    "iaf": ["guide=iaf"],
    "coupled": ["guide=coupled"],
    # The same guide on other seeds: how much k-hat moves with the draws and the optimisation.
    "coupled seed 1": ["guide=coupled", "seed=1"],
    "coupled seed 2": ["guide=coupled", "seed=2"],
    # Ablations of guide=coupled: one ingredient changed at a time.
    "coupled, non-centred model": ["guide=coupled", "model/parameterization=noncentred"],
    "coupled, Trace_ELBO": ["guide=coupled", "inference.elbo._target_=numpyro.infer.Trace_ELBO"],
    "fullrank, identified, STL, decay": ["guide=fullrank", "model/parameterization=identified", STL, *DECAY],
    "meanfield, identified, STL, decay": ["guide=meanfield", "model/parameterization=identified", STL, *DECAY],
    "nuts": ["inference=nuts"],
}


def run_dir_of(out: Path, method: str) -> Path:
    """The CCES run directory of a method (its name without spaces or commas)."""
    return out / "cces" / method.replace(", ", "_").replace(" ", "_")


def cces_rows(data_dir: Path, methods: list[str], out: Path) -> pd.DataFrame:
    """Each method in a fresh process, as a user runs it: wall time includes start-up and compilation."""
    rows = []
    for name in methods:
        run_dir = run_dir_of(out, name)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        # Cold start: no persistent compilation cache, as on a user's first run.
        command = [sys.executable, "-m", "mrp_numpyro", "data=cces18", f"data.dir={data_dir}", "progress=false",
                   "device.compilation_cache_dir=null", *METHODS[name], f"hydra.run.dir={run_dir}"]
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        wall = time.perf_counter() - start
        summary = json.loads((run_dir / "summary.json").read_text())
        d = summary["diagnostics"]
        rows.append(
            {
                "method": name,
                "wall_s": wall,
                "fit_s": summary["timings_s"]["fit"],
                "steps": d.get("steps_run"),
                "khat": d.get("khat"),
                "psis_ess": d.get("psis_ess"),
                "verdict": d.get("verdict"),
                "divergences": d.get("divergences"),
                "max_rhat": d.get("max_rhat"),
                "min_ess_bulk": d.get("min_ess_bulk"),
                "national_pct": 100 * summary["national_mean"],
            }
        )
        print(f"{name}: {wall:.1f} s", flush=True)
    table = pd.DataFrame(rows)
    if "nuts" in methods:
        for i, name in enumerate(table["method"]):
            if name == "nuts":
                continue
            c = overall(compare_runs(run_dir_of(out, name), run_dir_of(out, "nuts"))[0])
            table.loc[i, "mean_abs_diff_pp"] = c["mean_abs_diff_pp"]
            table.loc[i, "max_abs_diff_pp"] = c["max_abs_diff_pp"]
            table.loc[i, "ratio90_min"] = c["ratio90_min"]
            table.loc[i, "ratio90_max"] = c["ratio90_max"]
    return table


def coverage_rows(methods: list[str], replications: int, n: int, extra: Sequence[str] = ()) -> pd.DataFrame:
    hits: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for seed in range(replications):
        for name in methods:
            cfg = compose_config([*extra, f"data.n={n}", f"seed={seed}", "progress=false", *METHODS[name]])
            result = run(cfg)
            s = result.estimates["state"].summary().set_index("state").join(result.data.truth.area)
            hits[name].append(
                np.stack([(s["q25"] <= s["truth"]) & (s["truth"] <= s["q75"]), (s["q5"] <= s["truth"]) & (s["truth"] <= s["q95"])])
            )
    rows = []
    for name, h in hits.items():
        h = np.concatenate(h, axis=1)
        cov = h.mean(axis=1)
        se = np.sqrt(cov * (1 - cov) / h.shape[1])
        rows.append({"method": name, "cov50": cov[0], "cov50_se": se[0], "cov90": cov[1], "cov90_se": se[1]})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    def fmt(x, spec):
        return "" if x is None or (isinstance(x, float) and np.isnan(x)) else format(x, spec)

    lines = [
        "| method | wall (s) | k-hat | PSIS ESS | national (%) | mean abs diff vs NUTS (pp) | max abs diff (pp) | 90 % width ratio | 50 % coverage | 90 % coverage |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        ratio = "" if np.isnan(r.get("ratio90_min", np.nan)) else f"{r['ratio90_min']:.2f}-{r['ratio90_max']:.2f}"
        cov50 = "" if np.isnan(r.get("cov50", np.nan)) else f"{r['cov50']:.2f} ± {r['cov50_se']:.2f}"
        cov90 = "" if np.isnan(r.get("cov90", np.nan)) else f"{r['cov90']:.2f} ± {r['cov90_se']:.2f}"
        lines.append(
            f"| {r['method']} | {fmt(r['wall_s'], '.1f')} | {fmt(r.get('khat'), '.2f')} | {fmt(r.get('psis_ess'), '.1f')} | "
            f"{fmt(r['national_pct'], '.2f')} | {fmt(r.get('mean_abs_diff_pp'), '.2f')} | {fmt(r.get('max_abs_diff_pp'), '.2f')} | "
            f"{ratio} | {cov50} | {cov90} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--coverage-methods", nargs="+", choices=list(METHODS), help="methods for the coverage columns (default: --methods)")
    parser.add_argument("--replications", type=int, default=4, help="synthetic replications for coverage (0 skips)")
    parser.add_argument("--synthetic-n", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/reliability"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = cces_rows(args.data_dir, args.methods, args.out)
    if args.replications > 0:
        table = table.merge(coverage_rows(args.coverage_methods or args.methods, args.replications, args.synthetic_n), on="method", how="left")
    table.to_csv(args.out / "reliability.csv", index=False)
    text = markdown(table)
    (args.out / "reliability.md").write_text(text + "\n")
    (args.out / "machine.json").write_text(json.dumps({"platform": platform.platform(), "processor": platform.processor()}) + "\n")
    print(text)


if __name__ == "__main__":
    main()
