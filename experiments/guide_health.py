"""How a guide's numbers evolve over an SVI fit: the ELBO, its scale factor's condition number and
whether its transform still inverts its own draws, chunk by chunk.

The fit runs as configured (``--extra`` overrides, the default guide unless changed) but
without the checks of :mod:`mrp_numpyro.inference.health`, so that a breakdown is watched to
its end instead of stopped. Prints one row per chunk: steps, median and largest ELBO of the
chunk, the condition number of the guide's scale factor (full-rank and coupled guides) and
the largest ``|T^-1(T(u)) - u|`` over 16 standard normal draws.

    STL=inference.elbo._target_=mrp_numpyro.inference.StickingTheLandingELBO
    python experiments/guide_health.py --data-dir ../shared/data --n 10000 --extra $STL
    python experiments/guide_health.py --data-dir ../shared/data --n 10000 --extra $STL inference.optimizer.step_size.init=0.002
    python experiments/guide_health.py --n 10000   # the default guide: numpyro's standard ELBO

By default the formula is the case study's with four interactions of state and age
(``--formula`` for another) and the step-size schedule spans 1,500 steps of which the first
300 run (``--schedule-steps``, ``--steps``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from numpyro.infer import SVI

from mrp_numpyro import compose_config, prepare
from mrp_numpyro.app.tables import markdown
from mrp_numpyro.inference.health import inversion_error
from mrp_numpyro.inference.loop import run_to_plateau

DEEP = " + (1 | state:eth) + (1 | state:educ) + (1 | state:age) + (1 | eth:age)"


def trace_health(overrides: list[str], steps: int, chunk: int = 100) -> list[dict]:
    """Rows of the ELBO, condition number and inversion error after every ``chunk`` steps."""
    cfg = compose_config([*overrides, "progress=false"])
    problem = prepare(cfg)
    model = problem.model
    method = instantiate(cfg.inference)
    guide = method.guide(model.fn)
    svi = SVI(model.fn, guide, method.optimizer, method.elbo(num_particles=method.num_particles))
    state = jax.jit(svi.init)(jax.random.PRNGKey(int(cfg.seed)), **model.kwargs)
    rows, losses, done = [], [], 0
    while done < steps:
        plateau = run_to_plateau(
            svi, state, model.kwargs, num_steps=done + chunk, check_every=chunk, plateau_rtol=None, losses=losses, done=done
        )
        state, done = plateau.state, plateau.steps
        params = svi.get_params(state)
        elbo = -losses[-1]
        scale = params.get(f"{guide.prefix}_scale_tril")
        rows.append(
            {
                "steps": done,
                "elbo_median": float(np.median(elbo)),
                "elbo_max": float(np.max(elbo)),
                "condition": float(np.linalg.cond(np.asarray(scale, np.float64))) if scale is not None else float("nan"),
                "inversion_error": inversion_error(guide, params, jax.random.PRNGKey(1)),
            }
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=10_000, help="CCES respondents")
    parser.add_argument("--formula", default=None, help="default: the case study's and four interactions of state and age")
    parser.add_argument("--schedule-steps", type=int, default=1500, help="steps the step size decays over")
    parser.add_argument("--steps", type=int, default=300, help="steps run")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides, e.g. inference.optimizer.step_size.init=0.002")
    args = parser.parse_args()
    formula = args.formula or compose_config().model.formula + DEEP
    overrides = [
        "data=cces18",
        f"data.dir={args.data_dir.resolve()}",
        f"data.n={args.n}",
        f"model.formula='{formula}'",
        f"budget.svi_steps={args.schedule_steps}",
        "device.compilation_cache_dir=null",
        *args.extra,
    ]
    table = markdown(
        pd.DataFrame(trace_health(overrides, args.steps)),
        {"elbo_median": ".1f", "elbo_max": ".3g", "condition": ".3g", "inversion_error": ".3g"},
    )
    print(table)


if __name__ == "__main__":
    main()
