"""Party ID on the full 2018 CCES: NUTS against the default guide, per category and state.

Each method runs as ``python -m mrp_numpyro data=cces18_party model=party`` in a fresh process
(wall time: start-up, compilation, fit, checks, poststratification and writing). The table
gives the wall time, the SVI verdict and PSIS k-hat, NUTS's divergences, largest R-hat and
smallest bulk ESS, the national shares, and per category the mean and largest absolute
difference of the state shares from NUTS's (percentage points) and the range of the ratios
of 90 % interval widths.

    python experiments/categorical.py --data-dir ../shared/data

``--extra`` adds overrides to every run (``--extra data.n=20000``); ``--methods`` picks the
runs (``nuts`` must be one of them: it is the reference).
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

import numpy as np
import pandas as pd

from mrp_numpyro.app.tables import markdown

METHODS = {
    # Vectorized chains: with parallel chains (pmap) on the CPU the categorical model's
    # NUTS program grew by about 7 KB per leapfrog step and was killed at 24 GB.
    "nuts": ["inference=nuts", "inference.chain_method=vectorized"],
    "coupled (default guide)": [],
    "meanfield": ["guide=meanfield"],
}


def run_method(name: str, overrides: list[str], out: Path, data_dir: str, extra: list[str]) -> tuple[Path, float]:
    """Run one method in a fresh process; its run directory and wall time."""
    run_dir = out / name.split(" ")[0]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    command = [
        sys.executable,
        "-m",
        "mrp_numpyro",
        "data=cces18_party",
        "model=party",
        f"data.dir={data_dir}",
        *overrides,
        *extra,
        f"hydra.run.dir={run_dir}",
    ]
    t = time.perf_counter()
    subprocess.run(command, check=True)
    return run_dir, time.perf_counter() - t


def compare(run_dir: Path, reference: Path, response: str) -> dict[str, str]:
    """Per category: mean and largest |difference| of state shares from the reference (pp), width-ratio range."""
    est = pd.read_csv(run_dir / "estimates_state.csv")
    ref = pd.read_csv(reference / "estimates_state.csv")
    both = est.merge(ref, on=["state", response], suffixes=("", "_ref"))
    out = {}
    for category, part in both.groupby(response, sort=False):
        diff = 100 * (part["mean"] - part["mean_ref"]).abs()
        ratio = (part["q95"] - part["q5"]) / (part["q95_ref"] - part["q5_ref"])
        out[str(category)] = f"{diff.mean():.2f} / {diff.max():.2f} pp, widths {ratio.min():.2f}-{ratio.max():.2f}"
    return out


def main() -> None:
    """Run the methods and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="experiments/results/categorical")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--extra", nargs="*", default=[])
    args = parser.parse_args()
    if "nuts" not in args.methods:
        parser.error("nuts is the reference: include it in --methods")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = {}
    for name in ["nuts"] + [m for m in args.methods if m != "nuts"]:
        runs[name] = run_method(name, METHODS[name], out, str(Path(args.data_dir).resolve()), args.extra)
    reference = runs["nuts"][0]
    rows = []
    for name, (run_dir, wall) in runs.items():
        summary = json.loads((run_dir / "summary.json").read_text())
        d = summary["diagnostics"]
        shares = summary["national_shares"]
        row = {
            "method": name,
            "wall (s)": f"{wall:.0f}",
            "verdict": summary.get("verdict") or "-",
            "k-hat": f"{d['khat']:.2f}" if "khat" in d else "-",
            "NUTS div / R-hat / ESS": (
                f"{d['divergences']} / {d['max_rhat']:.3f} / {d['min_ess_bulk']:.0f}" if "max_rhat" in d else "-"
            ),
            "national": ", ".join(f"{k} {100 * v:.1f}" for k, v in shares.items()),
        }
        if name != "nuts":
            row.update(compare(run_dir, reference, summary["formula"].split("~")[0].strip()))
        rows.append(row)
    table = markdown(pd.DataFrame(rows).fillna("-"))
    header = f"{platform.processor() or platform.machine()}, {platform.python_version()}; overrides {args.extra}\n\n"
    (out / "table.md").write_text(header + table + "\n")
    print(header + table)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
