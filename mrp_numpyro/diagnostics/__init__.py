"""Diagnostics on arrays: PSIS of importance ratios, MCMC convergence, the verdict on a variational fit."""

from .convergence import convergence_summary
from .pareto import KHAT_BAD, KHAT_GOOD, PSIS, importance_resample, psis
from .verdicts import Verdict, VerdictStatus, verdict

__all__ = [
    "KHAT_BAD",
    "KHAT_GOOD",
    "PSIS",
    "Verdict",
    "VerdictStatus",
    "convergence_summary",
    "importance_resample",
    "psis",
    "verdict",
]
