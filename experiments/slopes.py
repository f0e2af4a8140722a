"""Varying slopes on the full 2018 CCES: NUTS against the default guide and mean-field.

The case study's formula with the sex gap varying by state, ``(1 + male | state)``
(``model=slopes``: correlated under rstanarm's decov), and with ``(1 + male || state)``
(independent). Each method runs as ``python -m mrp_numpyro data=cces18 model=slopes`` in a
fresh process (wall time: start-up, compilation, fit, checks, poststratification and
writing). The table gives the wall time, the SVI verdict and PSIS k-hat, NUTS's divergences,
largest R-hat and smallest bulk ESS, the posterior mean of the slopes' sd and of their
correlation with the intercepts, and the mean and largest absolute difference of the state
means from NUTS's (percentage points) with the range of the ratios of 90 % interval widths.

    python experiments/slopes.py --data-dir ../shared/data

``--extra`` adds overrides to every run; ``--forms`` picks the formulas.
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
import xarray as xr

from mrp_numpyro.app.tables import markdown

REST = (
    " + (1 | eth) + (1 | educ) + (1 | age) + male + (1 | male:eth) + (1 | educ:age) + (1 | educ:eth) + repvote + factor(region)"
)
FORMS = {"correlated": "abortion ~ (1 + male | state)" + REST, "independent": "abortion ~ (1 + male || state)" + REST}
METHODS = {"nuts": ["inference=nuts"], "coupled (default guide)": [], "meanfield": ["guide=meanfield"]}


def run_method(form: str, name: str, out: Path, data_dir: str, extra: list[str]) -> tuple[Path, float]:
    """Run one method on one formula in a fresh process; its run directory and wall time."""
    run_dir = out / form / name.split(" ")[0]
    if run_dir.exists():
        shutil.rmtree(run_dir)
    command = [sys.executable, "-m", "mrp_numpyro", "data=cces18", "model=slopes", f"data.dir={data_dir}"]
    command += [f'model.formula="{FORMS[form]}"', *METHODS[name], *extra, f"hydra.run.dir={run_dir}"]
    t = time.perf_counter()
    subprocess.run(command, check=True)
    return run_dir, time.perf_counter() - t


def row(form: str, name: str, run_dir: Path, wall: float, reference: Path) -> dict[str, str]:
    """One line of the table."""
    summary = json.loads((run_dir / "summary.json").read_text())
    d = summary["diagnostics"]
    posterior = xr.open_dataset(run_dir / "posterior.nc", group="posterior")
    cor = f"{float(posterior['cor_state'][..., 0, 1].mean()):.2f}" if "cor_state" in posterior else "-"
    out = {
        "formula": form,
        "method": name,
        "wall (s)": f"{wall:.0f}",
        "verdict / k-hat": f"{summary.get('verdict')} / {d['khat']:.2f}" if "khat" in d else "-",
        "NUTS div / R-hat / ESS": (
            f"{d['divergences']} / {d['max_rhat']:.3f} / {d['min_ess_bulk']:.0f}" if "max_rhat" in d else "-"
        ),
        "sd_state__male": f"{float(posterior['sd_state__male'].mean()):.3f}",
        "cor": cor,
    }
    if run_dir != reference:
        est = pd.read_csv(run_dir / "estimates_state.csv").merge(pd.read_csv(reference / "estimates_state.csv"), on="state")
        diff = 100 * (est["mean_x"] - est["mean_y"]).abs()
        ratio = (est["q95_x"] - est["q5_x"]) / (est["q95_y"] - est["q5_y"])
        out["states vs NUTS"] = f"{diff.mean():.2f} / {diff.max():.2f} pp"
        out["90 % width ratios"] = f"{ratio.min():.2f}-{ratio.max():.2f}"
    return out


def main() -> None:
    """Run every formula and method, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="experiments/results/slopes")
    parser.add_argument("--forms", nargs="+", default=list(FORMS), choices=list(FORMS))
    parser.add_argument("--extra", nargs="*", default=[])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = str(Path(args.data_dir).resolve())
    rows = []
    for form in args.forms:
        runs = {name: run_method(form, name, out, data_dir, args.extra) for name in METHODS}
        reference = runs["nuts"][0]
        rows += [row(form, name, run_dir, wall, reference) for name, (run_dir, wall) in runs.items()]
    table = markdown(pd.DataFrame(rows).fillna("-"))
    header = f"{platform.processor() or platform.machine()}, {platform.python_version()}; overrides {args.extra}\n\n"
    (out / "table.md").write_text(header + table + "\n")
    print(header + table)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
