"""What one gradient of the identified model costs, by the factorisation of phi's prior, and one SVI step of the default guide.

For the case study's formula and the deep-interaction preset on the full CCES: the sizes
of the split (``P'`` effects, ``r`` seen and ``n`` unseen directions), then the median time
of the jitted log density and gradient with the prior factorised through the rows (QR of
``S' R``, ``P' x r``) and through the null space (QR of ``S^-1 N``, ``P' x n``;
:mod:`mrp_numpyro.model.projected_normal`), and of one step of ``guide=coupled`` with each
(the guide's own update included). Medians of ``--repeats`` batches of 50 calls each,
timed one after another in one process.

    python experiments/gradient_cost.py --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jax
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from numpyro.infer import SVI
from numpyro.infer.util import initialize_model

from mrp_numpyro import compose_config, prepare
from mrp_numpyro.app.tables import markdown
from mrp_numpyro.model.identified import identified_basis

PRESETS = {"case study": "default", "deep interactions": "deep"}


def median_ms(fn, arg, repeats: int, calls: int = 50) -> float:
    """Median over ``repeats`` batches of the time per call, after one call that compiles."""
    jax.block_until_ready(fn(arg))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = fn(arg)
        jax.block_until_ready(out)
        times.append((time.perf_counter() - start) / calls * 1e3)
    return float(np.median(times))


def costs(data_dir: Path, preset: str, route: str, repeats: int) -> dict:
    cfg = compose_config(
        [
            "data=cces18",
            f"data.dir={data_dir}",
            f"model={preset}",
            f"model.parameterization.prior_route={route}",
            "progress=false",
            "device.compilation_cache_dir=null",
        ]
    )
    problem = prepare(cfg)
    model = problem.model
    basis = identified_basis(problem.design, model.priors)
    info = initialize_model(jax.random.PRNGKey(0), model.fn, model_kwargs=model.kwargs)
    gradient = jax.jit(jax.value_and_grad(info.potential_fn))
    method = instantiate(cfg.inference)
    guide = method.guide(model.fn)
    svi = SVI(model.fn, guide, method.optimizer, method.elbo(num_particles=method.num_particles))
    state = jax.jit(svi.init)(jax.random.PRNGKey(0), **model.kwargs)
    step = jax.jit(lambda s: svi.update(s, **model.kwargs)[0])
    return {
        "P'": basis.T.shape[1],
        "r (seen)": basis.rank,
        "n (unseen)": basis.N.shape[1],
        "route": route,
        "gradient (ms)": median_ms(gradient, info.param_info.z, repeats),
        "SVI step (ms)": median_ms(step, state, repeats),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = [
        {"model": label, **costs(args.data_dir.resolve(), preset, route, args.repeats)}
        for label, preset in PRESETS.items()
        for route in ("rows", "nullspace")
    ]
    print(markdown(pd.DataFrame(rows), {"gradient (ms)": ".2f", "SVI step (ms)": ".2f"}))


if __name__ == "__main__":
    main()
