"""Saving an SVI fit's optimiser state after every chunk of steps, and resuming from it."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import jax
import numpy as np

from ..outputs import atomic_write
from .result import FitError

__all__ = ["CHECKPOINT", "save_checkpoint", "load_checkpoint"]

# The file name in a run directory (an SVI method's checkpoint_dir).
CHECKPOINT = "svi_checkpoint.pkl"


def save_checkpoint(path: str | os.PathLike[str], state: Any, steps: int, losses: list[np.ndarray], guide_name: str) -> None:
    """Write the state, the step count and the losses so far, atomically."""
    payload = {"guide": guide_name, "steps": steps, "losses": np.concatenate(losses), "state": jax.device_get(state)}
    atomic_write(path, lambda p: p.write_bytes(pickle.dumps(payload)))


def load_checkpoint(path: str | os.PathLike[str], fresh_state: Any, guide_name: str) -> tuple[Any, int, np.ndarray]:
    """Saved SVI state, step count and losses, checked against a freshly initialised state.

    Raises
    ------
    FileNotFoundError
        No checkpoint at ``path``.
    FitError
        The checkpoint is of another guide, or of a model with other parameters or shapes.
    """
    try:
        payload = pickle.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise FileNotFoundError(f"resume_from: no checkpoint at {path}") from None
    if payload.get("guide") != guide_name:
        raise FitError(f"checkpoint {path} is for guide {payload.get('guide')}, not {guide_name}")
    saved, fresh = payload["state"], fresh_state
    # jax's PyTreeDef comes from a compiled module that mypy cannot see into.
    same = jax.tree_util.tree_structure(saved) == jax.tree_util.tree_structure(fresh) and all(  # type: ignore[operator]
        np.shape(a) == np.shape(b)
        for a, b in zip(jax.tree_util.tree_leaves(saved), jax.tree_util.tree_leaves(fresh), strict=True)
    )
    if not same:
        raise FitError(f"checkpoint {path} does not match this model and guide (different parameters or shapes)")
    state = jax.tree_util.tree_map(lambda a, b: jax.numpy.asarray(a, dtype=np.asarray(b).dtype), saved, fresh)
    return state, int(payload["steps"]), np.asarray(payload["losses"])
