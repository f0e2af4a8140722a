"""Prior settings, defaulting to rstanarm's ``stan_glmer`` priors as the case study sets them.

That is rstanarm's default ``prior_intercept = normal(0, 2.5)`` on the intercept after the
predictors are centred, with the case study's ``prior = normal(0, 1, autoscale = TRUE)`` on
the coefficients and ``prior_covariance = decov(regularization = 1, concentration = 1,
shape = 1, scale = 0.5)`` on each grouping factor (rstanarm's own defaults are
``normal(0, 2.5)`` and ``scale = 1``). For a single varying intercept the
covariance matrix is 1 x 1: its trace is the variance, so decov reduces to a gamma prior
with the given shape and scale on the group's standard deviation.

With ``autoscale`` the coefficient scale is divided by each predictor's scale, as rstanarm
does: the range (max - min) for a predictor with two distinct values, the standard deviation
for one with more, and 1 for a constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Priors", "autoscale_denominators"]


@dataclass(frozen=True)
class Priors:
    """Hyperparameters of the hierarchical logit's priors.

    Attributes
    ----------
    intercept_loc, intercept_scale : float
        Normal prior on the intercept of the centred predictors.
    coef_loc, coef_scale : float
        Normal prior on each population-level coefficient, before autoscaling.
    autoscale : bool
        Divide ``coef_scale`` by each predictor's scale (rstanarm's ``autoscale = TRUE``).
    sd_shape, sd_scale : float
        Gamma(shape, scale) prior on each varying intercept's standard deviation.
    """

    intercept_loc: float = 0.0
    intercept_scale: float = 2.5
    coef_loc: float = 0.0
    coef_scale: float = 1.0
    autoscale: bool = True
    sd_shape: float = 1.0
    sd_scale: float = 0.5

    def __post_init__(self) -> None:
        for name in ("intercept_scale", "coef_scale", "sd_shape", "sd_scale"):
            if not getattr(self, name) > 0:
                raise ValueError(f"prior {name} must be positive, got {getattr(self, name)!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Priors:
        """Build from the nested config ``{intercept: {loc, scale}, coef: {...}, sd: {...}}``."""
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"intercept", "coef", "sd"}
        if unknown:
            raise ValueError(f"unknown prior group(s) {sorted(unknown)}; valid: ['coef', 'intercept', 'sd']")
        kw: dict[str, Any] = {}
        for group, keys in {
            "intercept": ("loc", "scale"),
            "coef": ("loc", "scale", "autoscale"),
            "sd": ("shape", "scale"),
        }.items():
            sub = dict(cfg.get(group) or {})
            bad = set(sub) - set(keys)
            if bad:
                raise ValueError(f"unknown key(s) {sorted(bad)} in model.priors.{group}; valid: {list(keys)}")
            for key, value in sub.items():
                kw[key if key == "autoscale" else f"{group}_{key}"] = value
        return cls(**kw)

    def coef_scales(self, x_scale: np.ndarray) -> np.ndarray:
        """Prior standard deviation of each coefficient given the predictors' scales."""
        x_scale = np.asarray(x_scale, dtype=float)
        return self.coef_scale / x_scale if self.autoscale else np.full_like(x_scale, self.coef_scale)


def autoscale_denominators(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Rstanarm's per-predictor scale of respondent-level columns given as weighted cells.

    Parameters
    ----------
    X : array (cells, p)
        Distinct predictor rows.
    weights : array (cells,)
        Respondents per row.
    """
    X = np.asarray(X, dtype=float)
    w = np.asarray(weights, dtype=float)
    out = np.ones(X.shape[1])
    total = w.sum()
    for k in range(X.shape[1]):
        x = X[w > 0, k]
        distinct = np.unique(x)
        if len(distinct) == 2:
            out[k] = distinct[-1] - distinct[0]
        elif len(distinct) > 2:
            mean = np.sum(w * X[:, k]) / total
            # R's sd() of the respondent-level column: n - 1 in the denominator.
            out[k] = np.sqrt(np.sum(w * (X[:, k] - mean) ** 2) / (total - 1))
    return out
