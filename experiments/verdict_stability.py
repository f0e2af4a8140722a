"""How much the PSIS check of one fitted guide moves when it is repeated with fresh draws.

The guide is fitted once as configured (the default guide unless ``--extra`` changes it);
then its PSIS check is run ``--repeats`` times, each with ``--draws`` new draws. Printed:
one row per check (k-hat, its bootstrap sd, the verdict), then a summary: the spread of
k-hat over the checks beside the mean bootstrap sd (which estimates it from one check), the
share of checks giving the most common verdict, and the same for checks that pool ``--pool``
consecutive batches of draws (``pool x draws`` draws each).

    python experiments/verdict_stability.py --data-dir ../shared/data --repeats 20
    python experiments/verdict_stability.py --n 10000 --repeats 20 --draws 4000
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import jax
import numpy as np
import pandas as pd
from hydra.utils import instantiate

from mrp_numpyro import compose_config, prepare
from mrp_numpyro.app.tables import markdown
from mrp_numpyro.diagnostics import psis, verdict
from mrp_numpyro.diagnostics.pareto import khat_spread
from mrp_numpyro.inference.svi import check


def repeated_checks(overrides: list[str], repeats: int, draws: int, seed: int = 0) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """One fit, ``repeats`` PSIS checks of it: a row per check and each check's log ratios."""
    cfg = compose_config([*overrides, "progress=false"])
    problem = prepare(cfg)
    method = instantiate(cfg.inference)
    t = time.perf_counter()
    optimised = method.optimise(problem.model, problem.rng_key)
    print(f"fitted in {time.perf_counter() - t:.1f} s; {repeats} checks of {draws} draws each")
    rows, ratios = [], []
    rng = np.random.default_rng(seed)
    for i in range(repeats):
        t = time.perf_counter()
        checked = check(problem.model, optimised, jax.random.fold_in(jax.random.PRNGKey(seed + 1), i), draws)
        spread = khat_spread(checked.log_ratios, rng)
        v = verdict(checked.weights.khat, spread)
        rows.append(
            {
                "check": i,
                "khat": checked.weights.khat,
                "khat_spread": spread,
                "verdict": v.status.value,
                "borderline": v.borderline,
                "seconds": time.perf_counter() - t,
            }
        )
        ratios.append(checked.log_ratios)
    return pd.DataFrame(rows), ratios


def agreement(statuses: list[str]) -> float:
    """Share of the checks that give the most common verdict."""
    return Counter(statuses).most_common(1)[0][1] / len(statuses)


def summary(table: pd.DataFrame, ratios: list[np.ndarray], pool: int) -> pd.DataFrame:
    pooled = [np.concatenate(ratios[i : i + pool]) for i in range(0, len(ratios) - pool + 1, pool)]
    pooled_khat = [psis(r).khat for r in pooled]
    return pd.DataFrame(
        [
            {
                "draws per check": len(ratios[0]),
                "checks": len(table),
                "mean khat": table["khat"].mean(),
                "sd of khat over checks": table["khat"].std(ddof=1),
                "mean bootstrap sd": table["khat_spread"].mean(),
                "verdict agreement": agreement(list(table["verdict"])),
                "borderline share": table["borderline"].mean(),
            },
            {
                "draws per check": len(pooled[0]),
                "checks": len(pooled),
                "mean khat": float(np.mean(pooled_khat)),
                "sd of khat over checks": float(np.std(pooled_khat, ddof=1)) if len(pooled) > 1 else float("nan"),
                "mean bootstrap sd": float("nan"),
                "verdict agreement": agreement([verdict(k).status.value for k in pooled_khat]),
                "borderline share": float("nan"),
            },
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="the CCES files (data=cces18); the synthetic survey when absent")
    parser.add_argument("--n", type=int, help="respondents (a subsample of the CCES, or the synthetic survey's size)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--draws", type=int, default=16_000)
    parser.add_argument("--pool", type=int, default=4, help="batches pooled into one check in the second summary row")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--extra", nargs="*", default=[], help="config overrides, e.g. guide=fullrank")
    args = parser.parse_args()
    overrides = [f"seed={args.seed}", *args.extra]
    if args.data_dir:
        overrides += ["data=cces18", f"data.dir={args.data_dir}"]
    if args.n:
        overrides.append(f"data.n={args.n}")
    table, ratios = repeated_checks(overrides, args.repeats, args.draws, args.seed)
    print(markdown(table, default=".3f"))
    print()
    print(markdown(summary(table, ratios, args.pool), default=".3f"))


if __name__ == "__main__":
    main()
