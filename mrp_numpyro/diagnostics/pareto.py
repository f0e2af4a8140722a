"""Pareto-smoothed importance sampling (PSIS) for variational fits.

For draws theta_i from the guide q, the importance log ratios are
``log p(theta_i, y) - log q(theta_i)``. The Pareto shape k-hat fitted to their upper tail
says whether q can be trusted as an approximation to the posterior (Yao, Vehtari, Simpson
and Gelman 2018, "Yes, but did it work?: Evaluating variational inference"; Vehtari,
Simpson, Gelman, Yao and Gabry 2024, "Pareto smoothed importance sampling", JMLR 25(72)):
below 0.7 the smoothed importance weights give reliable estimates and the guide's draws
can be corrected by importance resampling; from 0.7 to 1 the estimates are unreliable;
at 1 and above importance sampling does not work and the guide should not be used.

Arrays in, arrays out: the log ratios of any proposal's draws (a fitted guide's, from
:mod:`mrp_numpyro.inference.importance`) give the smoothed weights, k-hat and the ESS.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import arviz as az
import numpy as np

__all__ = ["KHAT_GOOD", "KHAT_BAD", "PSIS", "psis", "khat_spread", "importance_resample"]

#: Below this k-hat the smoothed weights are reliable and a guide passes.
KHAT_GOOD = 0.7
#: At and above this k-hat importance sampling does not work and a guide fails.
KHAT_BAD = 1.0


@dataclass(frozen=True)
class PSIS:
    """Pareto-smoothed importance weights.

    Attributes
    ----------
    khat : float
        Estimated Pareto shape of the upper tail of the importance ratios.
    log_weights : array (draws,)
        Smoothed and normalised log weights (they log-sum-exp to 0).
    ess : float
        Importance-sampling effective sample size, ``1 / sum(w^2)`` of the smoothed weights.
    """

    khat: float
    log_weights: np.ndarray
    ess: float


def psis(log_ratios: np.ndarray) -> PSIS:
    """Pareto-smooth the importance log ratios ``log p - log q`` of draws from q.

    Non-finite ratios (a draw where the model's density underflows) get weight zero; with
    fewer than 10 finite ratios the result has ``khat = inf``.
    """
    log_ratios = np.asarray(log_ratios, dtype=np.float64)
    finite = np.isfinite(log_ratios)
    if finite.sum() < 10:
        return PSIS(float("inf"), np.full(log_ratios.shape, -np.inf), 0.0)
    smoothed = np.full(log_ratios.shape, -np.inf)
    # arviz's psislw takes log ratios as they are (its loo passes -log_lik); the
    # sign is checked against a normal example with known k in the tests.
    lw, khat = az.psislw(log_ratios[finite] - log_ratios[finite].max())
    smoothed[finite] = lw
    smoothed -= np.logaddexp.reduce(smoothed[finite])
    w = np.exp(smoothed)
    return PSIS(float(khat), smoothed, float(1.0 / np.sum(w**2)))


def khat_spread(log_ratios: np.ndarray, rng: np.random.Generator, n_boot: int = 200) -> float:
    """Monte Carlo standard deviation of the k-hat of ``log_ratios``, by the bootstrap.

    The draws are resampled with replacement ``n_boot`` times and k-hat refitted to each
    resample; the standard deviation of those k-hats estimates how much k-hat would move
    in a repeated check with fresh draws (on ratios with a Pareto tail of known shape it
    matches the spread over independent replicates to about 10 %, ``tests/test_psis.py``).
    It shrinks only as ``draws ** -0.25``, as k-hat is fitted to the largest ``3 sqrt(draws)``
    ratios.
    """
    log_ratios = np.asarray(log_ratios, dtype=np.float64)
    finite = log_ratios[np.isfinite(log_ratios)]
    if finite.size < 10:
        return float("nan")
    shifted = finite - finite.max()
    khats = np.empty(n_boot)
    # A resample repeats draws; ArviZ's Pareto fit then overflows on the way to weights of 0,
    # which it handles, and a fit that fails outright gives NaN and is left out.
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        for b in range(n_boot):
            khats[b] = float(az.psislw(shifted[rng.integers(0, finite.size, finite.size)])[1])
    khats = khats[np.isfinite(khats)]
    return float(np.std(khats, ddof=1)) if khats.size > 1 else float("nan")


def importance_resample(
    draws: Mapping[str, np.ndarray], log_weights: np.ndarray, rng: np.random.Generator, size: int | None = None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Resample draws with replacement in proportion to their importance weights."""
    w = np.exp(np.asarray(log_weights) - np.max(log_weights))
    w /= w.sum()
    n = len(w) if size is None else size
    idx = rng.choice(len(w), size=n, replace=True, p=w)
    return {k: np.asarray(v)[idx] for k, v in draws.items()}, idx
