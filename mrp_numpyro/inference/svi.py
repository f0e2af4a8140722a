"""Stochastic variational inference with any NumPyro guide, checked by PSIS.

The optimisation runs as compiled ``lax.scan`` chunks of ``check_every`` steps: one
compilation of the chunk, plus one more when a last, shorter chunk is needed. After each chunk the mean ELBO of the chunk is compared with that of
the previous one, and the fit stops when the relative change falls below ``plateau_rtol``.
The fitted guide's draws are then weighed against the exact posterior with Pareto-smoothed
importance sampling (:mod:`mrp_numpyro.diagnostics.psis`): k-hat, the importance ESS, a
verdict, and - where k-hat allows - importance resampling of the draws.
"""

from __future__ import annotations

import logging
import os
import pickle
import time
from pathlib import Path
from typing import Callable

import jax
import numpy as np
from numpyro.infer import SVI, Trace_ELBO
from tqdm.auto import tqdm

from ..diagnostics.psis import KHAT_GOOD, importance_resample, psis
from ..diagnostics.verdict import verdict
from ..model.base import MRPModel
from ..outputs import atomic_write
from .importance import guide_draws_and_log_ratios
from .result import Fit, FitError

log = logging.getLogger(__name__)

__all__ = ["fit_svi", "run_to_plateau"]


def _save_checkpoint(path, state, steps: int, losses: list[np.ndarray], guide_name: str) -> None:
    payload = {"guide": guide_name, "steps": steps, "losses": np.concatenate(losses), "state": jax.device_get(state)}
    atomic_write(path, lambda p: p.write_bytes(pickle.dumps(payload)))


def _load_checkpoint(path, fresh_state, guide_name: str):
    """Saved SVI state, step count and losses, checked against a freshly initialised state."""
    try:
        payload = pickle.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"inference.resume_from: no checkpoint at {path}") from None
    if payload.get("guide") != guide_name:
        raise FitError(f"checkpoint {path} is for guide {payload.get('guide')}, not {guide_name}")
    saved, fresh = payload["state"], fresh_state
    same = jax.tree_util.tree_structure(saved) == jax.tree_util.tree_structure(fresh) and all(
        np.shape(a) == np.shape(b) for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(fresh))
    )
    if not same:
        raise FitError(f"checkpoint {path} does not match this model and guide (different parameters or shapes)")
    state = jax.tree_util.tree_map(lambda a, b: jax.numpy.asarray(a, dtype=np.asarray(b).dtype), saved, fresh)
    return state, int(payload["steps"]), np.asarray(payload["losses"])


def _finite_mean(x: np.ndarray) -> float:
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def run_to_plateau(
    svi: SVI,
    state,
    kwargs,
    *,
    num_steps: int,
    check_every: int,
    plateau_rtol: float | None,
    losses: list[np.ndarray] | None = None,
    done: int = 0,
    after_chunk: Callable | None = None,
    progress_bar: bool = False,
):
    """Run SVI steps in compiled chunks until the ELBO plateaus or ``num_steps`` are done.

    After each chunk of ``check_every`` steps (one compilation, plus one for a last shorter
    chunk) the mean loss of the chunk is compared with the previous chunk's; the run stops
    when the relative change is below ``plateau_rtol`` (``None``: never).

    Parameters
    ----------
    svi : numpyro.infer.SVI
    state : SVIState
    kwargs : mapping
        The model's arguments.
    num_steps, check_every, plateau_rtol
    losses : list of arrays, optional
        Losses of earlier chunks (a resumed fit); extended in place.
    done : int
        Steps already run.
    after_chunk : callable, optional
        ``after_chunk(state, done, losses)`` after every chunk (e.g. a checkpoint).
    progress_bar : bool

    Returns
    -------
    state, losses, done, converged, rel_change
    """
    losses = [] if losses is None else losses

    def run_chunk(state, kwargs, length):
        # stable_update keeps the previous state when a step's loss or gradient is not
        # finite, so a rare overflow skips one step instead of poisoning every parameter.
        return jax.lax.scan(lambda s, _: svi.stable_update(s, **kwargs), state, None, length=length)

    run_chunk = jax.jit(run_chunk, static_argnums=2)
    chunk = min(check_every, num_steps)
    converged, rel_change = False, float("nan")
    with tqdm(total=num_steps, initial=done, disable=not progress_bar, desc="SVI", unit="step") as bar:
        while done < num_steps:
            length = min(chunk, num_steps - done)
            state, chunk_losses = run_chunk(state, kwargs, length)
            chunk_losses = np.asarray(chunk_losses, dtype=np.float64)
            losses.append(chunk_losses)
            done += length
            bar.update(length)
            bar.set_postfix(elbo=f"{-_finite_mean(chunk_losses):.1f}")
            if after_chunk is not None:
                after_chunk(state, done, losses)
            if len(losses) >= 2 and plateau_rtol is not None:
                now, before = _finite_mean(losses[-1]), _finite_mean(losses[-2])
                rel_change = abs(now - before) / abs(now)
                if rel_change < plateau_rtol:
                    converged = True
                    break
    return state, losses, done, converged, rel_change


def fit_svi(
    model: MRPModel,
    rng_key: jax.Array,
    *,
    guide: Callable,
    optimizer,
    elbo: Callable = Trace_ELBO,
    num_steps: int = 10_000,
    num_particles: int = 1,
    num_draws: int = 4_000,
    psis_draws: int | None = None,
    check_every: int = 500,
    plateau_rtol: float | None = 1e-4,
    importance_resampling: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    progress_bar: bool = False,
) -> Fit:
    """Fit ``model`` by SVI, draw from the fitted guide and check the draws with PSIS.

    Parameters
    ----------
    model : MRPModel
    rng_key : jax.Array
    guide : callable
        Guide factory: ``guide(model_fn)`` returns a NumPyro guide (e.g.
        ``functools.partial(AutoNormal, init_scale=0.1)``; configs build it with ``_partial_``).
    optimizer : numpyro.optim optimizer
    elbo : callable
        ELBO estimator class, called with ``num_particles``: :class:`numpyro.infer.Trace_ELBO`
        or :class:`~mrp_numpyro.inference.elbo.StickingTheLandingELBO`.
    num_steps : int
        Largest number of optimisation steps.
    num_particles : int
        Monte Carlo particles of the ELBO gradient.
    num_draws : int
        Posterior draws returned.
    psis_draws : int, optional
        Draws taken from the fitted guide for PSIS (at least ``num_draws``; default
        ``num_draws``). More draws estimate k-hat more steadily and, when the draws are
        resampled, give more distinct draws to resample ``num_draws`` from.
    check_every : int
        Steps per compiled chunk; the plateau check runs after each.
    plateau_rtol : float or None
        Stop when the mean ELBO of a chunk differs from the previous chunk's by less than this
        fraction; ``None`` always runs ``num_steps``.
    importance_resampling : bool
        Resample the guide's draws by their Pareto-smoothed importance weights when k-hat < 0.7.
    checkpoint_path : path-like, optional
        After every chunk, the optimiser state, step count and ELBO trace are saved here
        (atomically), so an interrupted fit can be resumed.
    resume_from : path-like, optional
        A checkpoint of the same model and guide to continue from, up to ``num_steps`` in all.
    progress_bar : bool

    Returns
    -------
    Fit
        One chain of ``num_draws`` draws. ``diagnostics`` hold the steps run, whether the ELBO
        plateaued, the final ELBO with its Monte Carlo standard error, the PSIS k-hat and ESS,
        whether the draws were resampled, and the verdict.

    Raises
    ------
    FitError
        When the optimisation ends with non-finite parameters or ELBO.
    """
    psis_draws = num_draws if psis_draws is None else psis_draws
    if psis_draws < num_draws:
        raise ValueError(f"psis_draws ({psis_draws}) must be at least num_draws ({num_draws})")
    if min(num_steps, num_draws, num_particles, check_every) < 1:
        raise ValueError(
            f"num_steps, num_draws, num_particles and check_every must be positive, got "
            f"{num_steps}, {num_draws}, {num_particles}, {check_every}"
        )
    g = guide(model.fn)
    svi = SVI(model.fn, g, optimizer, elbo(num_particles=num_particles))
    key_init, key_draw, key_resample, key_effects = jax.random.split(rng_key, 4)
    start = time.perf_counter()
    # Compiled as one program: run eagerly, the guide's set-up (initial values, the
    # model's transforms) compiles a few hundred small operations one at a time, ~10 s.
    state = jax.jit(svi.init)(key_init, **model.kwargs)
    losses: list[np.ndarray] = []
    done = 0
    if resume_from is not None:
        state, done, previous = _load_checkpoint(resume_from, state, type(g).__name__)
        # Kept in chunks, so the plateau check compares like with like after resuming.
        losses.extend(previous[i : i + check_every] for i in range(0, len(previous), check_every))
        log.info("SVI resumes from %s at step %d", resume_from, done)

    def save(state, done, losses):
        _save_checkpoint(checkpoint_path, state, done, losses, type(g).__name__)

    state, losses, done, converged, rel_change = run_to_plateau(
        svi, state, model.kwargs, num_steps=num_steps, check_every=check_every, plateau_rtol=plateau_rtol,
        losses=losses, done=done, after_chunk=save if checkpoint_path is not None else None, progress_bar=progress_bar,
    )
    all_losses = np.concatenate(losses)
    params = jax.device_get(svi.get_params(state))
    optimised = time.perf_counter()
    # Flow guides hold nested parameter pytrees, hence the leaf-wise check.
    bad_params = [k for k, v in params.items() if not all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(v))]
    last = losses[-1][np.isfinite(losses[-1])]
    if bad_params or len(last) == 0:
        raise FitError(
            f"SVI ended with non-finite parameters {bad_params} or ELBO; lower optim.step_size, "
            "raise inference.num_particles, or use inference=nuts"
        )
    nonfinite = int((~np.isfinite(all_losses)).sum())
    if nonfinite:
        log.warning("SVI skipped %d of %d steps with a non-finite loss", nonfinite, done)
    if plateau_rtol is not None and not converged:
        log.warning(
            "SVI: the ELBO was still changing (relative change %.2g per %d steps > %.2g) after %d steps; "
            "raise inference.num_steps",
            rel_change,
            min(check_every, num_steps),
            plateau_rtol,
            done,
        )

    try:
        draws, log_ratios = guide_draws_and_log_ratios(
            model.fn, g, params, model.kwargs, key_draw, psis_draws, model.latent_sites
        )
    except ValueError as err:  # e.g. a scale that collapsed to zero fails distribution validation
        raise FitError(f"the fitted guide cannot be sampled ({err}); lower optim.step_size or use inference=nuts") from err
    for name, v in draws.items():
        if not np.all(np.isfinite(v)):
            raise FitError(f"guide draws of {name!r} are not finite; the fitted guide is unusable. Lower optim.step_size")
    weights = psis(log_ratios)
    # Resampling corrects a guide only where the smoothed weights are reliable (k-hat < 0.7);
    # above that a few draws dominate and resampling would shrink the intervals further.
    resampled = bool(importance_resampling and weights.khat < KHAT_GOOD)
    distinct = num_draws
    if resampled:
        draws, idx = importance_resample(
            draws, weights.log_weights, np.random.default_rng(np.asarray(key_resample)), size=num_draws
        )
        distinct = int(len(np.unique(idx)))
    else:
        draws = {k: v[:num_draws] for k, v in draws.items()}
    draws = model.effects(draws, key_effects)
    seconds = time.perf_counter() - start
    judged = verdict(weights.khat)
    (log.info if judged["status"] == "pass" else log.warning)("SVI verdict: %s", judged["message"])
    diagnostics = {
        "guide": type(g).__name__,
        "num_steps": int(num_steps),
        "steps_run": int(done),
        "converged": bool(converged),
        "plateau_rtol": plateau_rtol,
        "plateau_rel_change": float(rel_change),
        "num_particles": int(num_particles),
        "num_draws": int(num_draws),
        "psis_draws": int(psis_draws),
        # ELBO = -loss, averaged over the last chunk of steps. Its error is the naive
        # standard error of that mean (autocorrelation between steps is ignored).
        "final_elbo": float(-last.mean()),
        "final_elbo_se": float(last.std(ddof=1) / np.sqrt(len(last))) if len(last) > 1 else float("nan"),
        "elbo_window": int(len(losses[-1])),
        "nonfinite_steps": nonfinite,
        "khat": weights.khat,
        "psis_ess": weights.ess,
        "importance_resampled": resampled,
        "distinct_draws": distinct,
        "verdict": judged["status"],
        "verdict_message": judged["message"],
        # Set-up, compilation and steps; then the PSIS check, draws and effects.
        "optimise_s": optimised - start,
        "check_s": seconds - (optimised - start),
    }
    return Fit("svi", {k: v[None] for k, v in draws.items()}, diagnostics, seconds, {"elbo": -all_losses, "log_ratios": log_ratios})
