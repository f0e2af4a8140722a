"""Partial centring of the varying intercepts, level by level, from how much the data say.

For level ``j`` of group ``g`` with ``n_j`` respondents, the data's precision about its
intercept ``a_j`` is about ``n_j p (1 - p)`` (``p`` the survey's share of "1" answers) and
the prior's is ``1 / sd_g^2``. Their ratio

    kappa_j = n_j p (1 - p) sd_g^2

says which coordinates suit the level (``sd_g`` a cautious guess, see ``SD_CAUTION``).
When the data dominate (``kappa >> 1``: a state with thousands of respondents, an ethnic
group with tens of thousands) the centred form ``a_j ~ Normal(0, sd_g)`` has no funnel,
while the non-centred ``a_j = sd_g z_j`` bends into one (``z_j = a_j / sd_g`` moves with
``sd_g`` while ``a_j`` is pinned). When the prior dominates (``kappa << 1``: the small
interactions) it is the other way round. In between, the partially centred form

    u_j ~ Normal(0, sd_g^c_j),   a_j = sd_g^(1 - c_j) u_j,

with ``c_j = kappa_j / (1 + kappa_j)`` (0 non-centred, 1 centred) is the weight that makes
the location of a normal-normal model independent of its parent (Papaspiliopoulos, Roberts
and Skold 2007, "A general framework for the parametrization of hierarchical models",
Statistical Science 22(1)); here it is applied with ``sd_g`` from a short pilot fit. It is
the parameterisation NUTS uses by default: on the 2018 CCES the ethnicity, education and
age intercepts come out nearly centred, the state intercepts in between, the interactions
nearly non-centred (BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from .design import Design

__all__ = ["centring_weights", "SD_CAUTION"]

# The weights use the pilot's sd divided by this. A group's sd is uncertain (with a handful
# of levels its posterior spans a factor of ten), and the two errors are not alike: a
# level centred while its sd is small sits in a funnel (divergent transitions), one left
# non-centred while its sd is large only costs some mixing. On the full CCES the factor 3
# gave fewer divergences than the sd itself in exploratory runs (BENCHMARKS.md).
SD_CAUTION = 3.0


def centring_weights(design: Design, sd: Mapping[str, float]) -> tuple[np.ndarray, ...]:
    """Centring weight ``c_j`` in [0, 1) of every level of every group.

    Parameters
    ----------
    design : Design
    sd : mapping of group name to float
        A guess of each group's standard deviation (a pilot fit's posterior median).

    Returns
    -------
    tuple of arrays, one per group, (levels,)
    """
    missing = [g for g in design.group_names if g not in sd]
    if missing:
        raise ValueError(f"centring_weights: no standard deviation given for group(s) {missing}")
    s = design.survey
    p = float(s.successes.sum()) / float(s.trials.sum())
    info = p * (1.0 - p)
    weights = []
    for g, (name, size) in enumerate(zip(design.group_names, design.group_sizes)):
        if not (np.isfinite(sd[name]) and sd[name] > 0):
            raise ValueError(f"centring_weights: the standard deviation of {name!r} must be positive, got {sd[name]!r}")
        n = np.bincount(s.group_index[:, g], weights=s.trials, minlength=size)
        kappa = n * info * (float(sd[name]) / SD_CAUTION) ** 2
        weights.append(kappa / (1.0 + kappa))
    return tuple(weights)
