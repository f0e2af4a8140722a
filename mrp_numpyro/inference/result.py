"""The one form every inference method returns, and the record its diagnostics come in."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Fit", "FitError", "Record", "flatten_draws"]


class FitError(RuntimeError):
    """Raised when a fit produced no usable posterior (e.g. non-finite parameters)."""


class Record(Mapping):
    """Base of the typed diagnostics records: fields as attributes, :meth:`~Record.to_dict` as JSON.

    A record also reads as the mapping of its JSON form (``diagnostics["khat"]``,
    ``diagnostics.get("divergences")``), which is how ``summary.json`` stores it.
    """

    def to_dict(self) -> dict[str, Any]:
        """The JSON-serialisable form written to ``summary.json``."""
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass(frozen=True)
class Fit:
    """Posterior draws of one inference run and its diagnostics.

    Attributes
    ----------
    method : str
        The inference algorithm: ``"svi"`` or ``"nuts"`` (or a user's own).
    draws : mapping of site name to array (chain, draw, ...)
        Draws of the shared parameters; SVI draws have one chain.
    diagnostics : Record or mapping
        :class:`~mrp_numpyro.inference.svi.SVIDiagnostics` (ELBO, PSIS k-hat, verdict) or
        :class:`~mrp_numpyro.inference.nuts.NUTSDiagnostics` (divergences, R-hat, ESS).
    seconds : float
        Wall time of the fit, compilation included.
    traces : mapping of str to array
        Longer per-step records, e.g. the ELBO trace of SVI.
    label : str, optional
        The configured method's name (``coupled``, ``meanfield``, ``nuts``); ``method`` if not given.
    """

    method: str
    draws: Mapping[str, np.ndarray]
    diagnostics: Mapping[str, Any]
    seconds: float
    traces: Mapping[str, np.ndarray] = field(default_factory=dict)
    label: str | None = None

    @property
    def num_chains(self) -> int:
        """Number of chains of the draws (1 for SVI)."""
        return next(iter(self.draws.values())).shape[0]

    @property
    def name(self) -> str:
        """``label``, or ``method`` without one."""
        return self.label or self.method


def flatten_draws(draws: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Merge the chain and draw axes: (chain, draw, ...) -> (chain * draw, ...)."""
    return {k: np.asarray(v).reshape((-1,) + np.shape(v)[2:]) for k, v in draws.items()}
