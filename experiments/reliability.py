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

``--extra`` adds overrides to every CCES run, for instance the deep-interaction model
(``--extra model=deep --replications 0 --out experiments/results/reliability_deep``).

Prints a markdown table, and NUTS's divergences, R-hat and ESS, and writes them, with a CSV, to --out.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mrp_numpyro import compose_config, run
from mrp_numpyro.app.tables import markdown as table_markdown
from mrp_numpyro.collect import add_reference, run_row

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
    "coupled, STL": ["guide=coupled", STL],
    "coupled, STL seed 1": ["guide=coupled", STL, "seed=1"],
    "coupled, STL seed 2": ["guide=coupled", STL, "seed=2"],
    "fullrank, identified, STL, decay": ["guide=fullrank", "model/parameterization=identified", STL, *DECAY],
    "meanfield, identified, STL, decay": ["guide=meanfield", "model/parameterization=identified", STL, *DECAY],
    "nuts": ["inference=nuts"],
}


def run_dir_of(out: Path, method: str) -> Path:
    """The CCES run directory of a method (its name without spaces or commas)."""
    return out / "cces" / method.replace(", ", "_").replace(" ", "_")


def cces_rows(data_dir: Path, methods: list[str], out: Path, extra: Sequence[str] = ()) -> pd.DataFrame:
    """Each method in a fresh process, as a user runs it: wall time includes start-up and compilation.

    ``extra`` overrides go before each method's own (``model=deep``)."""
    rows = []
    for name in methods:
        run_dir = run_dir_of(out, name)
        if run_dir.exists():
            shutil.rmtree(run_dir)
        # Cold start: no persistent compilation cache, as on a user's first run.
        command = [
            sys.executable,
            "-m",
            "mrp_numpyro",
            "data=cces18",
            f"data.dir={data_dir}",
            "progress=false",
            "device.compilation_cache_dir=null",
            *extra,
            *METHODS[name],
            f"hydra.run.dir={run_dir}",
        ]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - start
        # A run that stops itself (a guide's health check) is a row too: its wall time and its
        # error, without estimates.
        rows.append({**run_row(run_dir), "method": name, "wall_s": wall})
        # The run's own INCOMPLETE marker says why it stopped; stderr's last line is Hydra's hint.
        error = "" if done.returncode == 0 else rows[-1]["error"] or " ".join(done.stderr.strip().splitlines()[-1:])
        print(f"{name}: {wall:.1f} s{' FAILED: ' + error if error else ''}", flush=True)
    table = pd.DataFrame(rows)
    if "nuts" in methods:
        # State means and interval widths of every method against NUTS's (the collector's ref_* columns).
        table = add_reference(table, reference=run_dir_of(out, "nuts"))
    return table


def coverage_rows(methods: list[str], replications: int, n: int, extra: Sequence[str] = ()) -> pd.DataFrame:
    hits: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for seed in range(replications):
        for name in methods:
            cfg = compose_config([*extra, f"data.n={n}", f"seed={seed}", "progress=false", *METHODS[name]])
            result = run(cfg)
            s = result.estimates["state"].summary().set_index("state").join(result.data.truth.area)
            hits[name].append(
                np.stack(
                    [(s["q25"] <= s["truth"]) & (s["truth"] <= s["q75"]), (s["q5"] <= s["truth"]) & (s["truth"] <= s["q95"])]
                )
            )
    rows = []
    for name, h in hits.items():
        h = np.concatenate(h, axis=1)
        cov = h.mean(axis=1)
        se = np.sqrt(cov * (1 - cov) / h.shape[1])
        rows.append({"method": name, "cov50": cov[0], "cov50_se": se[0], "cov90": cov[1], "cov90_se": se[1]})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """The BENCHMARKS.md table: one row per method, ranges and coverage with their standard errors."""

    def get(r, key):
        value = r.get(key)
        return None if value is None or (isinstance(value, float) and np.isnan(value)) else value

    def fmt(x, spec):
        return "" if x is None else format(x, spec)

    rows = []
    for r in table.to_dict("records"):
        lo, hi = get(r, "ref_ratio90_min"), get(r, "ref_ratio90_max")
        cov50, cov90 = get(r, "cov50"), get(r, "cov90")
        rows.append(
            {
                "method": r["method"],
                "wall (s)": fmt(get(r, "wall_s"), ".1f"),
                "k-hat": fmt(get(r, "khat"), ".2f"),
                "verdict": get(r, "verdict") or ("stopped" if r.get("status") == "failed" else ""),
                "PSIS ESS": fmt(get(r, "psis_ess"), ".1f"),
                "national (%)": fmt(get(r, "national_pct"), ".2f"),
                "mean abs diff vs NUTS (pp)": fmt(get(r, "ref_mean_abs_diff_pp"), ".2f"),
                "max abs diff (pp)": fmt(get(r, "ref_max_abs_diff_pp"), ".2f"),
                "90 % width ratio": "" if lo is None else f"{lo:.2f}-{hi:.2f}",
                "50 % coverage": "" if cov50 is None else f"{cov50:.2f} ± {r['cov50_se']:.2f}",
                "90 % coverage": "" if cov90 is None else f"{cov90:.2f} ± {r['cov90_se']:.2f}",
            }
        )
    return table_markdown(pd.DataFrame(rows))


def nuts_line(table: pd.DataFrame) -> str:
    """NUTS's own diagnostics, from its row: divergences, largest R-hat, smallest bulk and tail ESS, leapfrog steps."""
    rows = table[table["method"] == "nuts"].to_dict("records")
    if not rows:
        return ""
    r = rows[0]
    return (
        f"NUTS: {r['divergences']:.0f} divergent transitions, max R-hat {r['max_rhat']:.3f}, "
        f"min bulk ESS {r['min_ess_bulk']:.0f}, min tail ESS {r['min_ess_tail']:.0f}, "
        f"{r['mean_leapfrog_steps']:.0f} leapfrog steps per draw, fit {r['t_fit_s']:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument(
        "--coverage-methods", nargs="+", choices=list(METHODS), help="methods for the coverage columns (default: --methods)"
    )
    parser.add_argument("--replications", type=int, default=4, help="synthetic replications for coverage (0 skips)")
    parser.add_argument("--synthetic-n", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path("experiments/results/reliability"))
    parser.add_argument("--extra", nargs="*", default=[], help="overrides for every CCES run, e.g. model=deep")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    table = cces_rows(args.data_dir.resolve(), args.methods, args.out, args.extra)
    if args.replications > 0:
        table = table.merge(
            coverage_rows(args.coverage_methods or args.methods, args.replications, args.synthetic_n), on="method", how="left"
        )
    table.to_csv(args.out / "reliability.csv", index=False)
    text = markdown(table) + "\n\n" + nuts_line(table)
    (args.out / "reliability.md").write_text(text + "\n")
    (args.out / "machine.json").write_text(
        json.dumps({"platform": platform.platform(), "processor": platform.processor()}) + "\n"
    )
    print(text)


if __name__ == "__main__":
    main()
