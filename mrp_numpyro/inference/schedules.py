"""Step-size schedules for the SVI optimisers."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp

__all__ = ["step_size"]


def step_size(init: float, final: float | None = None, num_steps: int | None = None) -> float | Callable:
    """A constant step size, or an exponential decay from ``init`` to ``final`` over ``num_steps``.

    Large steps find the optimum's neighbourhood fast; small ones at the end stop the
    parameters jittering around it, which is what a PSIS check of the guide's tails sees.

    Parameters
    ----------
    init : float
    final : float, optional
        ``None`` keeps ``init`` throughout.
    num_steps : int, optional
        Steps over which the step size decays (required with ``final``); it stays at
        ``final`` afterwards.
    """
    if not init > 0:
        raise ValueError(f"step size must be positive, got {init!r}")
    if final is None:
        return float(init)
    if not final > 0 or not num_steps or num_steps < 1:
        raise ValueError(f"a decaying step size needs final > 0 and num_steps >= 1, got {final!r}, {num_steps!r}")
    ratio = float(final) / float(init)
    return lambda i: init * ratio ** jnp.minimum(i / num_steps, 1.0)
