"""How NUTS's chains are laid over the JAX devices: a pure plan, and the chain method it may need."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import jax

__all__ = ["CHAIN_METHODS", "ChainPlan", "plan_chains", "chains_per_device"]

CHAIN_METHODS = ("auto", "parallel", "sequential", "vectorized")


def chains_per_device(devices: int) -> Callable[[Callable[..., Any]], Callable[[Any], Any]]:
    """A ``chain_method`` for numpyro's ``MCMC``: chains split over ``devices``, each device's in turn.

    ``pmap`` over the devices of ``lax.map`` over each device's chains: one compiled
    program runs every chain. The number of chains must be a multiple of ``devices``.
    """

    def transform(fn: Callable[..., Any]) -> Callable[[Any], Any]:
        def run(args: Any) -> Any:
            n = jax.tree.leaves(args)[0].shape[0]
            if n % devices:
                raise ValueError(f"{n} chains do not split evenly over {devices} devices")
            split = jax.tree.map(lambda x: x.reshape((devices, n // devices) + x.shape[1:]), args)
            out = jax.pmap(lambda a: jax.lax.map(fn, a))(split)
            return jax.tree.map(lambda x: x.reshape((n,) + x.shape[2:]), out)

        return run

    transform.__name__ = f"{devices} devices, chains in turn on each"
    return transform


@dataclass(frozen=True)
class ChainPlan:
    """The MCMC runs that together make the chains.

    Attributes
    ----------
    method : str or callable
        numpyro's ``chain_method`` (or :func:`chains_per_device`'s transform).
    runs : tuple of int
        Chains per ``MCMC`` run, one after the other.
    note : str or None
        What the log says of the plan, where it differs from one chain per device.
    """

    method: str | Callable
    runs: tuple[int, ...]
    note: str | None = None

    @property
    def name(self) -> str:
        """The chain method's name, as the diagnostics and the log give it."""
        # A transform of chains_per_device is named; numpyro's methods are strings.
        return cast(str, getattr(self.method, "__name__", self.method))


def plan_chains(num_chains: int, chain_method: str, devices: int, backend: str, progress_bar: bool = False) -> ChainPlan:
    """Lay ``num_chains`` chains over ``devices`` JAX devices of ``backend`` (``cpu``, ``gpu``).

    ``chain_method="auto"`` runs chains in parallel over the devices, as one compiled program
    when there are more chains than devices (:func:`chains_per_device`); on one GPU,
    vectorized (all chains in one batch); on one CPU device, one after the other. Progress
    bars (numpyro draws them for its own chain methods only) run batches of parallel chains
    instead, compiled once per batch. Any other ``chain_method`` is numpyro's, as given.
    """
    if chain_method not in CHAIN_METHODS:
        raise ValueError(f"chain_method must be one of {list(CHAIN_METHODS)}, got {chain_method!r}")
    if chain_method != "auto":
        return ChainPlan(chain_method, (num_chains,))
    # As many devices as split the chains evenly (4 chains on 3 devices use 2).
    used = max(d for d in range(1, min(devices, num_chains) + 1) if num_chains % d == 0)
    if used == num_chains and used > 1:
        return ChainPlan("parallel", (num_chains,))
    if used == 1:
        # One accelerator runs the chains as one batch (a leapfrog step costs about the
        # same for 4 chains as for 1 there); one CPU core would do 4 chains' work.
        plan = ChainPlan("vectorized" if backend == "gpu" else "sequential", (num_chains,))
        how = plan.name
    elif progress_bar:
        plan = ChainPlan("parallel", (used,) * (num_chains // used))
        how = f"batches of {used}"
    else:
        # More chains than devices: each device runs its share of the chains one after
        # the other, all in one compiled program.
        plan = ChainPlan(chains_per_device(used), (num_chains,))
        how = plan.name
    if num_chains == 1:
        return plan
    return ChainPlan(plan.method, plan.runs, f"{devices} JAX device(s) for {num_chains} chains: {how}")
