"""Where a fit's time goes: the measurements behind the runtime table's speed-ups.

Times, on the full 2018 CCES (or any --data-dir / --n), in one process:

1. one log-density gradient of the model, evaluated term by term (one gather per group
   and a cells x predictors product, the form written in the model's docstring) and
   block by block (the package's :func:`mrp_numpyro.model.blocks.block_predictor`), the
   latter over the survey cells and over the grid of the blocks' combinations; each
   inside a compiled loop of 2,000 evaluations so that Python's dispatch is not counted,
   for one chain alone and for a chain on each of the two cores at once (``pmap``, as
   NUTS runs its chains);
2. setting up an SVI fit: ``SVI.init`` run eagerly against compiled with ``jax.jit``, for
   ``AutoNormal`` with ``init_to_median(num_samples=15)`` and for ``AutoDiagonalNormal``
   with ``init_to_mean``;
3. compiling a chunk of 500 SVI steps for both guides.

    python experiments/profile_fit.py --data-dir ../shared/data
    python experiments/profile_fit.py --data-dir ../shared/data --n 10000 --gradient-only

Each set-up is timed in a fresh process (JAX caches compiled operations within one): the
script runs itself with ``--child`` for every measurement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

GUIDES = {"autonormal_median": "AutoNormal, init_to_median(15)", "diagonal_mean": "AutoDiagonalNormal, init_to_mean"}


def _problem(data_dir: str, n: int | None):
    """The case study's model on the CCES, as ``python -m mrp_numpyro data=cces18 guide=meanfield`` builds it."""
    import mrp_numpyro as mrp

    overrides = [
        "data=cces18",
        f"data.dir={data_dir}",
        f"data.n={n or 'null'}",
        "guide=meanfield",
        # Two devices for the two-chain timings; no persistent cache, so compilation is timed.
        "device.host_device_count=2",
        "device.compilation_cache_dir=null",
    ]
    return mrp.prepare(mrp.compose_config(overrides))


def term_by_term(X, group_index, trials, successes=None, *, coef_scale, design, priors):
    """The model with one gather per group: the form of :mod:`mrp_numpyro.model`'s docstring."""
    import numpyro
    import numpyro.distributions as dist

    from mrp_numpyro.design.layout import SITES

    eta = numpyro.sample(SITES.intercept, dist.Normal(priors.intercept_loc, priors.intercept_scale))
    eta = eta + X @ numpyro.sample(SITES.coefficients, dist.Normal(priors.coef_loc, coef_scale).to_event(1))
    for g, (name, size) in enumerate(zip(design.group_names, design.group_sizes, strict=True)):
        sd = numpyro.sample(SITES.sd(name), dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale))
        with numpyro.plate(name, size):
            eta = eta + sd * numpyro.sample(SITES.z(name), dist.Normal(0.0, 1.0))[group_index[:, g]]
    with numpyro.plate("cells", X.shape[0]):
        numpyro.sample(SITES.observed, dist.Binomial(total_count=trials, logits=eta), obs=successes)


def gradient_ms(fn, kwargs, n: int = 2000, devices: int = 1) -> float:
    """ms per log-density gradient: one chain (``jax.jit``), or one chain per core at once (``pmap``, as NUTS runs them)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import init_to_mean
    from numpyro.infer.util import initialize_model, potential_energy

    init = initialize_model(jax.random.PRNGKey(0), fn, model_kwargs=kwargs, init_strategy=init_to_mean)
    vg = jax.value_and_grad(lambda z, kw: potential_energy(fn, (), kw, z))

    def loop(z, kw):
        def body(i, carry):
            z, total = carry
            value, grad = vg(z, kw)
            # Feed the gradient back (scaled to almost nothing) so no evaluation can be skipped.
            return jax.tree_util.tree_map(lambda a, b: a + 1e-12 * b, z, grad), total + value

        return jax.lax.fori_loop(0, n, body, (z, 0.0))

    z = init.param_info.z
    if devices == 1:
        run = jax.jit(loop)
    else:
        run, z = jax.pmap(loop, in_axes=(0, None)), jax.tree_util.tree_map(lambda a: jnp.stack([a] * devices), z)
    jax.block_until_ready(run(z, kwargs))
    best = float("inf")
    for _ in range(3):  # the best of three: other processes only ever add time
        t = time.perf_counter()
        jax.block_until_ready(run(z, kwargs))
        best = min(best, time.perf_counter() - t)
    return 1e3 * best / n


def measure_gradients(data_dir: str, n: int | None) -> dict:
    """Gradient timings term by term and in blocks over the cells and over the grid."""
    import jax.numpy as jnp

    import mrp_numpyro as mrp

    problem = _problem(data_dir, n)
    design, priors, model = problem.design, problem.priors, problem.model
    s = design.survey
    tbt_kwargs = {
        "X": jnp.asarray(s.X, jnp.float32),
        "group_index": jnp.asarray(s.group_index),
        "trials": jnp.asarray(s.trials, jnp.int32),
        "successes": jnp.asarray(s.successes, jnp.int32),
    }
    tbt = partial(
        term_by_term, coef_scale=jnp.asarray(priors.coef_scales(design.x_scale), jnp.float32), design=design, priors=priors
    )
    # The likelihood over the survey cells (gathers) and over the grid of the blocks'
    # combinations (mrp_numpyro.model.blocks.likelihood_arrays).
    layouts = {
        name: mrp.build_model(design, priors, max_grid_ratio=ratio) for name, ratio in (("cells", 0.0), ("grid", float("inf")))
    }
    out = {"cells": s.n_cells}
    for devices in (1, 2):
        out[f"term_by_term_ms_{devices}"] = gradient_ms(tbt, tbt_kwargs, devices=devices)
        for name, m in layouts.items():
            out[f"{name}_ms_{devices}"] = gradient_ms(m.fn, dict(m.kwargs), devices=devices)
    out["blocks"] = [len(r) for r in model.kwargs["rows"]]
    out["default"] = "grid" if model.kwargs["index"] is None else "cells"
    return out


def measure_setup(data_dir: str, n: int | None, guide: str, eager: bool) -> dict:
    """Seconds to set up an SVI fit (eagerly or compiled) and to compile and run 500 steps."""
    import jax
    import numpyro
    from numpyro.infer import SVI, Trace_ELBO, init_to_mean, init_to_median
    from numpyro.infer.autoguide import AutoDiagonalNormal, AutoNormal

    model = _problem(data_dir, n).model
    guide_cls, init = {
        "autonormal_median": (AutoNormal, init_to_median(num_samples=15)),
        "diagonal_mean": (AutoDiagonalNormal, init_to_mean),
    }[guide]
    svi = SVI(model.fn, guide_cls(model.fn, init_loc_fn=init, init_scale=0.1), numpyro.optim.Adam(0.01), Trace_ELBO())
    key = jax.random.PRNGKey(0)
    t = time.perf_counter()
    state = svi.init(key, **model.kwargs) if eager else jax.jit(svi.init)(key, **model.kwargs)
    jax.block_until_ready(state)
    out = {"setup_s": time.perf_counter() - t}
    chunk = jax.jit(lambda s, kw: jax.lax.scan(lambda s, _: svi.stable_update(s, **kw), s, None, length=500))
    t = time.perf_counter()
    compiled = chunk.lower(state, model.kwargs).compile()
    out["chunk_compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    jax.block_until_ready(compiled(state, model.kwargs))
    out["chunk_run_s"] = time.perf_counter() - t
    return out


def _measure(args: dict) -> dict:
    if args["part"] == "gradient":
        return measure_gradients(args["data_dir"], args["n"])
    return measure_setup(args["data_dir"], args["n"], args["guide"], eager=args["part"] == "eager")


def child(**args) -> dict:
    """One measurement in a fresh process (this script with ``--child``)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(args)]
    proc = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--n", type=int, default=None, help="CCES rows (default: all)")
    parser.add_argument("--gradient-only", action="store_true", help="time the gradients only, not the SVI set-up")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(json.loads(args.child))))
        return
    common = {"data_dir": str(args.data_dir), "n": args.n}
    g = child(part="gradient", **common)
    print(f"{g['cells']:,} cells; blocks of {g['blocks']} combinations; the model's default: {g['default']}\n")
    print("| log-density gradient | ms, one chain | ms, a chain on each of 2 cores at once |\n|---|---|---|")
    for key, label in (
        ("term_by_term", "term by term"),
        ("cells", "blocks, over the survey cells"),
        ("grid", "blocks, over the grid of combinations"),
    ):
        print(f"| {label} | {g[key + '_ms_1']:.3f} | {g[key + '_ms_2']:.3f} |")
    print()
    if args.gradient_only:
        return
    print("| guide, initial values | SVI.init | set-up (s) | compile 500 steps (s) | run 500 steps (s) |\n|---|---|---|---|---|")
    for guide, label in GUIDES.items():
        for part in ("eager", "jit"):
            r = child(part=part, guide=guide, **common)
            how = "eager" if part == "eager" else "jax.jit"
            print(
                f"| {label} | {how} | {r['setup_s']:.2f} | {r['chunk_compile_s']:.2f} | {r['chunk_run_s']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
