"""Inference methods. Each takes an :class:`~mrp_numpyro.model.MRPModel` and a PRNG key and
returns a :class:`Fit` holding draws in one common form."""

from ..diagnostics.convergence import convergence_summary
from .elbo import StickingTheLandingELBO
from .guides import AutoCoupledNormal
from .nuts import fit_nuts
from .pilot import pilot_sd
from .result import Fit, FitError, flatten_draws
from .svi import fit_svi

__all__ = ["AutoCoupledNormal", "StickingTheLandingELBO", "Fit", "FitError", "fit_nuts", "fit_svi", "flatten_draws", "convergence_summary", "pilot_sd"]
