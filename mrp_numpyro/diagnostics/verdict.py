"""The reliability verdict of a variational fit, from its Pareto k-hat (:mod:`mrp_numpyro.diagnostics.psis`)."""

from __future__ import annotations

from .psis import KHAT_BAD, KHAT_GOOD

__all__ = ["verdict"]


def verdict(khat: float) -> dict[str, str]:
    """Plain-language reliability verdict from the Pareto k-hat of a variational fit."""
    if khat < KHAT_GOOD:
        return {
            "status": "pass",
            "message": f"Pareto k-hat {khat:.2f} < {KHAT_GOOD}: the variational posterior is a reliable "
            "importance-sampling proposal for the posterior.",
        }
    if khat < KHAT_BAD:
        return {
            "status": "warn",
            "message": f"Pareto k-hat {khat:.2f} is between {KHAT_GOOD} and {KHAT_BAD}: estimates are unreliable, "
            "intervals may be too narrow. Use guide=coupled if another guide was used, more steps, or check "
            "against inference=nuts (python -m mrp_numpyro.spotcheck on a subsample).",
        }
    return {
        "status": "fail",
        "message": f"Pareto k-hat {khat:.2f} >= {KHAT_BAD}: the variational posterior does not fit the posterior's "
        "tails and importance sampling cannot correct it. Do not trust these intervals; use guide=coupled if "
        "another guide was used, more steps, or inference=nuts.",
    }
