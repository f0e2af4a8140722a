"""Non-census MRP against census-only MRP: the abortion item with and without party ID.

Each run is ``python -m mrp_numpyro`` in a fresh process with the same inference method (the
default guide unless ``--extra`` says otherwise):

* on the 2018 CCES (``--data-dir``): ``data=cces18_noncensus model=noncensus`` (party fitted
  from the census factors, then the outcome with ``(1 | party)``, poststratified over cells
  x party draw by draw) against the case study's census-only model on the same 59,756
  respondents (those of the survey file with a party ID), per state: the difference of the
  means (percentage points) and the ratio of the 90 % interval widths;
* on the synthetic survey with party ID (``data.party=true``, ``--n`` respondents): both
  models against the known truth, state by state: mean absolute error and 90 % coverage.

    python experiments/noncensus.py --data-dir ../shared/data
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

from mrp_numpyro.app.tables import markdown


def run(name: str, overrides: list[str], out: Path) -> tuple[Path, float]:
    """One run in a fresh process: its directory and wall time."""
    run_dir = out / name
    if run_dir.exists():
        shutil.rmtree(run_dir)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mrp_numpyro", *overrides, f"hydra.run.dir={run_dir}"], check=True)
    return run_dir, time.perf_counter() - t


def state_table(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(run_dir / "estimates_state.csv").set_index("state")


def row(name: str, run_dir: Path, wall: float) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    first = (summary.get("noncensus") or {}).get("party", {})
    return {
        "run": name,
        "wall (s)": round(wall),
        "verdict": summary.get("verdict") or "-",
        "k-hat": round(summary["diagnostics"].get("khat", np.nan), 2),
        "party model verdict / k-hat": (
            f"{first.get('verdict')} / {first.get('diagnostics', {}).get('khat', np.nan):.2f}" if first else "-"
        ),
        "national (%)": round(100 * summary["national_mean"], 2),
    }


def main() -> None:
    """Run both comparisons and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", default="experiments/results/noncensus")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--extra", nargs="*", default=[])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_dir = str(Path(args.data_dir).resolve())
    groupings = ["++poststrat.groupings.state_party=[state,party]"]
    lines = []

    # The CCES: the same respondents (those with a party ID) with and without party.
    cces = ["data=cces18_noncensus", f"data.dir={data_dir}", *args.extra]
    with_party = run("cces_noncensus", [*cces, "model=noncensus", *groupings], out)
    # model=default: the case study's formula, which conf/model/noncensus.yaml extends by (1 | party).
    census_only = run("cces_census_only", cces, out)
    a, b = state_table(with_party[0]), state_table(census_only[0])
    diff = 100 * (a["mean"] - b["mean"])
    ratio = (a["q95"] - a["q5"]) / (b["q95"] - b["q5"])
    rows = [row("CCES, with party (non-census)", *with_party), row("CCES, census factors only", *census_only)]
    lines += [markdown(pd.DataFrame(rows)), ""]
    lines.append(
        f"State means, with party minus census-only: mean {diff.mean():+.2f} pp, mean |difference| {diff.abs().mean():.2f} pp, "
        f"largest {diff.abs().max():.2f} pp ({diff.abs().idxmax()}); 90 % width ratios {ratio.min():.2f}-{ratio.max():.2f} "
        f"(median {ratio.median():.2f})."
    )
    biggest = diff.abs().sort_values(ascending=False).index[:5]
    per_state = pd.DataFrame({"with party": 100 * a["mean"], "census only": 100 * b["mean"], "difference (pp)": diff})
    lines += ["", markdown(per_state.loc[biggest].reset_index(), default=".1f"), ""]
    party = pd.read_csv(with_party[0] / "estimates_state_party.csv")
    spread = party.pivot(index="state", columns="party", values="mean") * 100
    lines.append(
        "Support by party within state (%), across states: "
        + ", ".join(f"{c} {spread[c].min():.0f}-{spread[c].max():.0f}" for c in spread.columns)
        + "."
    )

    # Synthetic: both models against the truth.
    synthetic = ["data.party=true", f"data.n={args.n}", *args.extra]
    s_with = run("synthetic_noncensus", [*synthetic, "model=noncensus"], out)
    s_census = run("synthetic_census_only", synthetic, out)
    rows = []
    for name, (run_dir, wall) in (("synthetic, with party", s_with), ("synthetic, census only", s_census)):
        t = state_table(run_dir)
        inside = (t["q5"] <= t["truth"]) & (t["truth"] <= t["q95"])
        rows.append(
            {
                **row(name, run_dir, wall),
                "state MAE (pp)": round(100 * (t["mean"] - t["truth"]).abs().mean(), 2),
                "state 90 % coverage": round(float(inside.mean()), 2),
                "mean 90 % width (pp)": round(100 * float((t["q95"] - t["q5"]).mean()), 2),
            }
        )
    lines += ["", f"Synthetic survey with party ID, n = {args.n}:", "", markdown(pd.DataFrame(rows))]
    text = "\n".join(lines)
    (out / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
