"""The reliability verdict of a variational fit, from its Pareto k-hat (:mod:`mrp_numpyro.diagnostics.pareto`)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

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
    khat_spread: float = float("nan")

    @property
    def borderline(self) -> bool:
        """Whether k-hat lies within two Monte Carlo sd of a threshold, where a repeated check may differ."""
        return bool(np.isfinite(self.khat_spread)) and any(
            abs(self.khat - t) < 2 * self.khat_spread for t in (KHAT_GOOD, KHAT_BAD)
        )

    @property
    def passed(self) -> bool:
        """Whether the verdict is ``pass``."""
        return self.status is VerdictStatus.PASS


def verdict(khat: float, spread: float | None = None) -> Verdict:
    """Plain-language reliability verdict from the Pareto k-hat of a variational fit.

    With ``spread``, k-hat's Monte Carlo sd (:func:`~mrp_numpyro.diagnostics.pareto.khat_spread`),
    the message gives it, and says so when k-hat is within two sd of a threshold: the status
    is still decided by k-hat itself, but a check with fresh draws may give the neighbouring one.
    """
    base = _verdict(khat)
    if spread is None or not np.isfinite(spread):
        return base
    out = Verdict(base.status, khat, base.message, float(spread))
    note = f" The Monte Carlo sd of k-hat is {spread:.2f} (bootstrap)."
    if out.borderline:
        near = min((KHAT_GOOD, KHAT_BAD), key=lambda t: abs(khat - t))
        note += f" K-hat is within two sd of the {near} threshold: a check with fresh draws may give the neighbouring verdict."
    return Verdict(base.status, khat, base.message + note, float(spread))


def _verdict(khat: float) -> Verdict:
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
