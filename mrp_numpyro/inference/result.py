"""The one form every inference method returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

__all__ = ["Fit", "FitError", "flatten_draws"]


class FitError(RuntimeError):
    """Raised when a fit produced no usable posterior (e.g. non-finite parameters)."""


@dataclass(frozen=True)
class Fit:
    """Posterior draws of one inference run and its diagnostics.

    Attributes
    ----------
    method : str
        ``"svi"`` or ``"nuts"`` (or a user's own label).
    draws : mapping of site name to array (chain, draw, ...)
        Draws of the latent sites; SVI draws have one chain.
    diagnostics : mapping
        JSON-serialisable diagnostics (ELBO summary for SVI; divergences, R-hat and ESS for NUTS).
    seconds : float
        Wall time of the fit, compilation included.
    traces : mapping of str to array
        Longer per-step records, e.g. the ELBO trace of SVI.
    """

    method: str
    draws: Mapping[str, np.ndarray]
    diagnostics: Mapping[str, Any]
    seconds: float
    traces: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def num_chains(self) -> int:
        return next(iter(self.draws.values())).shape[0]


def flatten_draws(draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Merge the chain and draw axes: (chain, draw, ...) -> (chain * draw, ...)."""
    return {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in draws.items()}
