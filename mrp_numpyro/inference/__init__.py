"""Inference methods: SVI with any guide, checked by PSIS, and NUTS.

Each takes an :class:`~mrp_numpyro.model.base.MRPModel` and a PRNG key and returns a
:class:`~mrp_numpyro.inference.result.Fit` holding draws of the shared parameters in one
common form. A method is a frozen settings record
(:class:`~mrp_numpyro.inference.svi.SVIMethod`, :class:`~mrp_numpyro.inference.nuts.NUTSMethod`)
built from the ``inference`` config with
``.fit(model, rng_key, *, progress_bar, checkpoint_dir) -> Fit``;
:func:`~mrp_numpyro.inference.svi.fit_svi` and :func:`~mrp_numpyro.inference.nuts.fit_nuts`
are the same as one call.
"""

from ..diagnostics.convergence import convergence_summary
from .elbo import StickingTheLandingELBO
from .guides import AutoCoupledNormal
from .nuts import NUTSDiagnostics, NUTSMethod, fit_nuts
from .pilot import pilot_sd
from .result import Fit, FitError, Record, flatten_draws
from .svi import SVIDiagnostics, SVIMethod, fit_svi

__all__ = [
    "AutoCoupledNormal",
    "Fit",
    "FitError",
    "NUTSDiagnostics",
    "NUTSMethod",
    "Record",
    "SVIDiagnostics",
    "SVIMethod",
    "StickingTheLandingELBO",
    "convergence_summary",
    "fit_nuts",
    "fit_svi",
    "flatten_draws",
    "pilot_sd",
]
