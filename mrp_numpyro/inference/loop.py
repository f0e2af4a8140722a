"""The SVI optimisation loop: compiled chunks of steps until the ELBO plateaus."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np
from numpyro.infer import SVI
from tqdm.auto import tqdm

__all__ = ["Plateau", "run_to_plateau", "finite_mean"]


class Plateau(NamedTuple):
    """Where :func:`run_to_plateau` stopped.

    Attributes
    ----------
    state : SVIState
    losses : list of arrays
        The loss of every step, one array per chunk.
    steps : int
        Steps run in all (those of a resumed fit included).
    converged : bool
        Whether the ELBO plateaued before the last step.
    rel_change : float
        The last relative change of the chunk-mean ELBO (NaN before two chunks).
    """

    state: Any
    losses: list[np.ndarray]
    steps: int
    converged: bool
    rel_change: float


def finite_mean(x: np.ndarray) -> float:
    """Mean of the finite values of ``x`` (NaN if there are none)."""
    x = x[np.isfinite(x)]
    return float(x.mean()) if len(x) else float("nan")


def run_to_plateau(
    svi: SVI,
    state: Any,
    kwargs: Mapping[str, Any],
    *,
    num_steps: int,
    check_every: int,
    plateau_rtol: float | None,
    losses: list[np.ndarray] | None = None,
    done: int = 0,
    after_chunk: Callable | None = None,
    progress_bar: bool = False,
) -> Plateau:
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
    Plateau
    """
    losses = [] if losses is None else losses

    def run_chunk(state: Any, kwargs: Mapping[str, Any], length: int) -> tuple[Any, jax.Array]:
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
            bar.set_postfix(elbo=f"{-finite_mean(chunk_losses):.1f}")
            if after_chunk is not None:
                after_chunk(state, done, losses)
            if len(losses) >= 2 and plateau_rtol is not None:
                now, before = finite_mean(losses[-1]), finite_mean(losses[-2])
                rel_change = abs(now - before) / abs(now)
                if rel_change < plateau_rtol:
                    converged = True
                    break
    return Plateau(state, losses, done, converged, rel_change)
