"""NUTS, the exact reference: several chains, in parallel when the host has the devices."""

from __future__ import annotations

import logging
import time

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

from ..diagnostics.convergence import convergence_summary
from ..model.base import MRPModel
from .result import Fit

log = logging.getLogger(__name__)

__all__ = ["fit_nuts", "chains_per_device"]

CHAIN_METHODS = ("auto", "parallel", "sequential", "vectorized")


def chains_per_device(devices: int):
    """A ``chain_method`` for numpyro's ``MCMC``: chains split over ``devices``, each device's in turn.

    ``pmap`` over the devices of ``lax.map`` over each device's chains: one compiled
    program runs every chain. The number of chains must be a multiple of ``devices``.
    """

    def transform(fn):
        def run(args):
            n = jax.tree.leaves(args)[0].shape[0]
            if n % devices:
                raise ValueError(f"{n} chains do not split evenly over {devices} devices")
            split = jax.tree.map(lambda x: x.reshape((devices, n // devices) + x.shape[1:]), args)
            out = jax.pmap(lambda a: jax.lax.map(fn, a))(split)
            return jax.tree.map(lambda x: x.reshape((n,) + x.shape[2:]), out)

        return run

    transform.__name__ = f"{devices} devices, chains in turn on each"
    return transform


def fit_nuts(
    model: MRPModel,
    rng_key: jax.Array,
    *,
    num_warmup: int = 1_000,
    num_samples: int = 1_000,
    num_chains: int = 4,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 10,
    dense_mass: bool = False,
    chain_method: str = "auto",
    progress_bar: bool = False,
) -> Fit:
    """Sample ``model``'s posterior with NUTS.

    Parameters
    ----------
    model : MRPModel
    rng_key : jax.Array
    num_warmup, num_samples, num_chains : int
    target_accept_prob : float
        Step-size adaptation target; raise it (e.g. 0.95) when divergences appear.
    max_tree_depth : int
    dense_mass : bool
    chain_method : str
        ``"auto"`` runs chains in parallel over the JAX devices
        (``device.host_device_count``), as one compiled program when there are more chains
        than devices (:func:`chains_per_device`); on one GPU, vectorized (all chains in
        one batch); otherwise as numpyro's ``MCMC``.
    progress_bar : bool
        With more chains than devices, progress bars run the chains in batches of
        parallel chains instead, compiled once per batch.

    Returns
    -------
    Fit
        ``num_chains`` chains of ``num_samples`` draws, with divergences, max R-hat and min
        bulk/tail ESS in ``diagnostics``.
    """
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {list(CHAIN_METHODS)}, got {chain_method!r}")
    kernel = NUTS(model.fn, target_accept_prob=target_accept_prob, max_tree_depth=max_tree_depth, dense_mass=dense_mass)
    method, runs = chain_method, [num_chains]
    if chain_method == "auto":
        devices = jax.local_device_count()
        # As many devices as split the chains evenly (4 chains on 3 devices use 2).
        used = max(d for d in range(1, min(devices, num_chains) + 1) if num_chains % d == 0)
        if used == 1:
            # One accelerator runs the chains as one batch (a leapfrog step costs about the
            # same for 4 chains as for 1 there); one CPU core would do 4 chains' work.
            method = "vectorized" if jax.default_backend() == "gpu" else "sequential"
        elif used == num_chains:
            method = "parallel"
        elif progress_bar:
            # numpyro draws progress bars only for its own chain methods: batches of
            # parallel chains, each batch compiled anew.
            method, runs = "parallel", [used] * (num_chains // used)
        else:
            # More chains than devices: each device runs its share of the chains one after
            # the other, all in one compiled program.
            method = chains_per_device(used)
        if used < num_chains:
            how = method.__name__ if callable(method) else f"batches of {used}" if len(runs) > 1 else method
            log.info("%d JAX device(s) for %d chains: %s", devices, num_chains, how)
    start = time.perf_counter()
    rng_key, key_effects = jax.random.split(rng_key)
    keys = jax.random.split(rng_key, len(runs)) if len(runs) > 1 else [rng_key]
    samples, extras = [], []
    for key, n in zip(keys, runs):
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=n, chain_method=method,
                    progress_bar=progress_bar)
        mcmc.run(key, extra_fields=("diverging", "num_steps"), **model.kwargs)
        samples.append(jax.device_get(mcmc.get_samples(group_by_chain=True)))
        extras.append(jax.device_get(mcmc.get_extra_fields(group_by_chain=True)))
    draws = {k: np.concatenate([np.asarray(s[k]) for s in samples]) for k in model.latent_sites}
    extra = {k: np.concatenate([np.asarray(e[k]) for e in extras]) for k in extras[0]}
    flat = model.effects({k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}, key_effects)
    draws = {k: v.reshape((num_chains, num_samples) + v.shape[1:]) for k, v in flat.items()}
    seconds = time.perf_counter() - start
    divergences = int(np.sum(extra["diverging"]))
    diagnostics = {
        "num_chains": int(num_chains),
        "num_warmup": int(num_warmup),
        "num_samples": int(num_samples),
        "chain_method": getattr(method, "__name__", method),
        "target_accept_prob": float(target_accept_prob),
        "divergences": divergences,
        "mean_leapfrog_steps": float(np.mean(extra["num_steps"])),
        **convergence_summary(draws),
    }
    if divergences:
        log.warning(
            "NUTS: %d divergent transitions after warm-up; raise inference.target_accept_prob (now %.2f)",
            divergences,
            target_accept_prob,
        )
    if num_chains > 1 and diagnostics["max_rhat"] > 1.01:
        log.warning("NUTS: max R-hat %.3f > 1.01; run longer chains before trusting the estimates", diagnostics["max_rhat"])
    traces = {"diverging": np.asarray(extra["diverging"]), "num_steps": np.asarray(extra["num_steps"])}
    return Fit("nuts", draws, diagnostics, seconds, traces)
