"""Structured priors on the full 2018 CCES: NUTS against the default guide, side by side.

For each formula (the case study's with BYM2 on the states and random walks over education
and age; with ICAR on the states, a second-order walk over education and AR(1) over age),
one NUTS run (4 x 1,000 + 1,000, partially centred) and one run of the default guide
(``coupled``, identified coordinates), one after the other in this process. Prints one row
per run: the fit's wall time (compilation included), the default guide's k-hat and
verdict, NUTS's divergences, max R-hat and min bulk ESS, and against NUTS the mean and
largest absolute difference of the 50 state means (percentage points) and the range of the
ratios of the states' 90 % interval widths.

    python experiments/structured_cces.py --data-dir ../shared/data --out structured_cces
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.app.run import run
from mrp_numpyro.app.tables import markdown
from mrp_numpyro.compare import compare_runs, overall

REST = " + male + (1 | male:eth) + (1 | educ:age) + (1 | educ:eth) + repvote + factor(region)"
FORMULAS = {
    "bym2(state) rw1(educ) rw1(age)": "abortion ~ (1 | bym2(state)) + (1 | eth) + (1 | rw1(educ)) + (1 | rw1(age))" + REST,
    "icar(state) rw2(educ) ar1(age)": "abortion ~ (1 | icar(state)) + (1 | eth) + (1 | rw2(educ)) + (1 | ar1(age))" + REST,
}
METHODS = {"nuts": ["inference=nuts"], "default guide": []}


def fit_row(label: str, method: str, overrides: list[str], out: Path) -> tuple[dict, Path]:
    """Run one configuration into ``out`` and return its row and run directory."""
    run_dir = out / f"{label.split('(')[0]}_{method.replace(' ', '_')}"
    result = run(compose_config(overrides), run_dir)
    d = result.fit.diagnostics
    row = {"formula": label, "method": method, "fit_s": result.fit.seconds}
    if method == "nuts":
        row |= {"divergences": d["divergences"], "max_rhat": d["max_rhat"], "min_ess_bulk": d["min_ess_bulk"]}
    else:
        row |= {"khat": d["khat"], "verdict": str(d["verdict"])}
    return row, run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("structured_cces"))
    parser.add_argument("--formulas", nargs="*", default=list(FORMULAS), help="labels of FORMULAS to run")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for label in args.formulas:
        common = ["data=cces18", f"data.dir={args.data_dir}", f"model.formula='{FORMULAS[label]}'", "report=false"]
        common += ["progress=false", "checks.loo=false", "checks.predictive=[]"]
        dirs = {}
        for method, extra in METHODS.items():
            row, dirs[method] = fit_row(label, method, [*common, *extra], args.out)
            if method != "nuts":
                table, _ = compare_runs(dirs["nuts"], dirs[method])
                summary = overall(table)
                row |= {k: summary[k] for k in ("mean_abs_diff_pp", "max_abs_diff_pp", "ratio90_min", "ratio90_max")}
            rows.append(row)
            pd.DataFrame(rows).to_csv(args.out / "structured_cces.csv", index=False)
    text = markdown(pd.DataFrame(rows), {"fit_s": ".1f", "max_rhat": ".3f", "min_ess_bulk": ",.0f", "divergences": ",.0f"})
    (args.out / "structured_cces.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
