"""NUTS, the exact reference: several chains, in parallel when the host has the devices."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import jax
import numpy as np
from numpyro.infer import MCMC, NUTS

from ..diagnostics.convergence import convergence_summary
from ..model.base import MRPModel
from .chains import ChainPlan, chains_per_device, plan_chains
from .result import Fit, Record

log = logging.getLogger(__name__)

__all__ = ["NUTSMethod", "NUTSDiagnostics", "fit_nuts", "chains_per_device"]


@dataclass(frozen=True)
class NUTSDiagnostics(Record):
    """What a NUTS fit reports: the chains, divergent transitions, worst R-hat and smallest ESS."""

    num_chains: int
    num_warmup: int
    num_samples: int
    chain_method: str
    target_accept_prob: float
    divergences: int
    mean_leapfrog_steps: float
    max_rhat: float
    min_ess_bulk: float
    min_ess_tail: float

    def to_dict(self) -> dict[str, Any]:
        """The fields as ``summary.json`` holds them."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _sample(
    model: MRPModel, kernel: NUTS, rng_key: jax.Array, plan: ChainPlan, num_warmup: int, num_samples: int, progress_bar: bool
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Draws (chain, draw, ...) of the model's latent sites and the sampler's extra fields, run by run."""
    keys = jax.random.split(rng_key, len(plan.runs)) if len(plan.runs) > 1 else [rng_key]
    samples, extras = [], []
    for key, n in zip(keys, plan.runs, strict=True):
        mcmc = MCMC(
            kernel,
            num_warmup=num_warmup,
            num_samples=num_samples,
            num_chains=n,
            chain_method=plan.method,
            progress_bar=progress_bar,
        )
        mcmc.run(key, extra_fields=("diverging", "num_steps"), **model.kwargs)
        samples.append(jax.device_get(mcmc.get_samples(group_by_chain=True)))
        extras.append(jax.device_get(mcmc.get_extra_fields(group_by_chain=True)))
    draws = {k: np.concatenate([np.asarray(s[k]) for s in samples]) for k in model.latent_sites}
    extra = {k: np.concatenate([np.asarray(e[k]) for e in extras]) for k in extras[0]}
    return draws, extra


@dataclass(frozen=True)
class NUTSMethod:
    """NUTS, as the ``inference=nuts`` config sets it.

    Parameters
    ----------
    num_warmup, num_samples, num_chains : int
    target_accept_prob : float
        Step-size adaptation target; raise it (e.g. 0.95) when divergences appear.
    max_tree_depth : int
    dense_mass : bool
    chain_method : str
        ``"auto"`` lays the chains over the JAX devices (:func:`~mrp_numpyro.inference.chains.plan_chains`);
        or numpyro's ``parallel``, ``sequential``, ``vectorized``.
    label : str
        The method's name in summaries and sweeps.
    """

    num_warmup: int = 1_000
    num_samples: int = 1_000
    num_chains: int = 4
    target_accept_prob: float = 0.8
    max_tree_depth: int = 10
    dense_mass: bool = False
    chain_method: str = "auto"
    label: str = "nuts"

    #: The algorithm, in ``Fit.method`` and ``summary.json``.
    name: ClassVar[str] = "nuts"

    def fit(
        self, model: MRPModel, rng_key: jax.Array, *, progress_bar: bool = False, checkpoint_dir: str | os.PathLike | None = None
    ) -> Fit:
        """Sample the model's posterior (NUTS keeps no checkpoint: ``checkpoint_dir`` is not written).

        Returns
        -------
        Fit
            ``num_chains`` chains of ``num_samples`` draws of the shared parameters, with
            :class:`NUTSDiagnostics`; ``traces`` hold each draw's divergence flag and leapfrog steps.
        """
        plan = plan_chains(self.num_chains, self.chain_method, jax.local_device_count(), jax.default_backend(), progress_bar)
        if plan.note:
            log.info(plan.note)
        kernel = NUTS(
            model.fn, target_accept_prob=self.target_accept_prob, max_tree_depth=self.max_tree_depth, dense_mass=self.dense_mass
        )
        start = time.perf_counter()
        rng_key, key_effects = jax.random.split(rng_key)
        draws, extra = _sample(model, kernel, rng_key, plan, self.num_warmup, self.num_samples, progress_bar)
        flat = model.effects({k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}, key_effects)
        draws = {k: v.reshape((self.num_chains, self.num_samples) + v.shape[1:]) for k, v in flat.items()}
        seconds = time.perf_counter() - start
        diagnostics = NUTSDiagnostics(
            num_chains=int(self.num_chains),
            num_warmup=int(self.num_warmup),
            num_samples=int(self.num_samples),
            chain_method=plan.name,
            target_accept_prob=float(self.target_accept_prob),
            divergences=int(np.sum(extra["diverging"])),
            mean_leapfrog_steps=float(np.mean(extra["num_steps"])),
            **convergence_summary(draws),
        )
        self._warn(diagnostics)
        traces = {"diverging": np.asarray(extra["diverging"]), "num_steps": np.asarray(extra["num_steps"])}
        return Fit(self.name, draws, diagnostics, seconds, traces, label=self.label)

    def _warn(self, d: NUTSDiagnostics) -> None:
        if d.divergences:
            log.warning(
                "NUTS: %d divergent transitions after warm-up; raise target_accept_prob (now %.2f)",
                d.divergences,
                self.target_accept_prob,
            )
        if self.num_chains > 1 and d.max_rhat > 1.01:
            log.warning("NUTS: max R-hat %.3f > 1.01; run longer chains before trusting the estimates", d.max_rhat)


def fit_nuts(model: MRPModel, rng_key: jax.Array, *, progress_bar: bool = False, **settings: Any) -> Fit:
    """Sample ``model``'s posterior with NUTS.

    Parameters
    ----------
    model : MRPModel
    rng_key : jax.Array
    progress_bar : bool
        With more chains than devices, progress bars run the chains in batches of
        parallel chains instead, compiled once per batch.
    **settings
        The fields of :class:`NUTSMethod`: ``num_warmup``, ``num_samples``, ``num_chains``,
        ``target_accept_prob``, ``max_tree_depth``, ``dense_mass``, ``chain_method``, ``label``.

    Returns
    -------
    Fit
        ``num_chains`` chains of ``num_samples`` draws, with divergences, max R-hat and min
        bulk/tail ESS in its :class:`NUTSDiagnostics`.
    """
    return NUTSMethod(**settings).fit(model, rng_key, progress_bar=progress_bar)
