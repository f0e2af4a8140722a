"""The reliability verdict of a variational fit, from its Pareto k-hat (:mod:`mrp_numpyro.diagnostics.pareto`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .pareto import KHAT_BAD, KHAT_GOOD

__all__ = ["Verdict", "VerdictStatus", "verdict"]


class VerdictStatus(StrEnum):
    """How far a variational fit can be trusted: ``pass``, ``warn`` or ``fail``.

    ``pass`` below :data:`~mrp_numpyro.diagnostics.pareto.KHAT_GOOD`, ``fail`` from
    :data:`~mrp_numpyro.diagnostics.pareto.KHAT_BAD` on, ``warn`` between the two.
    """

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Verdict:
    """What PSIS says of a variational fit, in words.

    Attributes
    ----------
    status : VerdictStatus
    khat : float
    message : str
        One plain-language paragraph: what the k-hat means and what to do.
    """

    status: VerdictStatus
    khat: float
    message: str

    @property
    def passed(self) -> bool:
        """Whether the verdict is ``pass``."""
        return self.status is VerdictStatus.PASS


def verdict(khat: float) -> Verdict:
    """Plain-language reliability verdict from the Pareto k-hat of a variational fit."""
    if khat < KHAT_GOOD:
        return Verdict(
            VerdictStatus.PASS,
            khat,
            f"Pareto k-hat {khat:.2f} < {KHAT_GOOD}: the variational posterior is a reliable "
            "importance-sampling proposal for the posterior.",
        )
    if khat < KHAT_BAD:
        return Verdict(
            VerdictStatus.WARN,
            khat,
            f"Pareto k-hat {khat:.2f} is between {KHAT_GOOD} and {KHAT_BAD}: estimates are unreliable, "
            "intervals may be too narrow. Use the coupled guide if another guide was used, more steps, or check "
            "against NUTS (a spot check on a subsample: python -m mrp_numpyro.spotcheck).",
        )
    return Verdict(
        VerdictStatus.FAIL,
        khat,
        f"Pareto k-hat {khat:.2f} >= {KHAT_BAD}: the variational posterior does not fit the posterior's "
        "tails and importance sampling cannot correct it. Do not trust these intervals; use the coupled guide "
        "if another guide was used, more steps, or NUTS.",
    )
