"""Prior settings, defaulting to rstanarm's ``stan_glmer`` priors as the case study sets them.

That is rstanarm's default ``prior_intercept = normal(0, 2.5)`` on the intercept after the
predictors are centred, with the case study's ``prior = normal(0, 1, autoscale = TRUE)`` on
the coefficients and ``prior_covariance = decov(regularization = 1, concentration = 1,
shape = 1, scale = 0.5)`` on each grouping factor (rstanarm's own defaults are
``normal(0, 2.5)`` and ``scale = 1``). For a single varying intercept the
covariance matrix is 1 x 1: its trace is the variance, so decov reduces to a gamma prior
with the given shape and scale on the group's standard deviation.

A term with ``J`` correlated coefficients, ``(1 + male | state)``, has the covariance
``Sigma = diag(sd) Omega diag(sd)``. Under ``decov`` (rstanarm's) its trace is ``J tau^2``
with ``tau ~ Gamma(shape, scale)``, the variances are the trace times shares ``pi ~
Dirichlet(concentration)``, so ``sd_j = tau sqrt(J pi_j)``, and ``Omega ~ LKJ(regularization)``;
:func:`decov_sd_log_density` is the density this implies for the sds themselves. Under
``lkj`` (as brms sets it) each sd has the gamma prior on its own and ``Omega`` the same LKJ.
Uncorrelated coefficients, ``(1 + male || state)``, each have the gamma prior on its sd.

With ``autoscale`` the coefficient scale is divided by each predictor's scale, as rstanarm
does: the range (max - min) for a predictor with two distinct values, the standard deviation
for one with more, and 1 for a constant.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

__all__ = ["Priors", "autoscale_denominators", "decov_sd_log_density", "COVARIANCE_PRIORS"]

#: The priors of a correlated term's covariance (``model.priors.covariance.kind``).
COVARIANCE_PRIORS = ("decov", "lkj")


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
    covariance : str
        ``decov`` or ``lkj``: the prior of a correlated term's covariance (:data:`COVARIANCE_PRIORS`).
    regularization : float
        The LKJ shape of a correlated term's correlation matrix (1: uniform over correlations).
    concentration : float
        ``decov``'s Dirichlet concentration of the variances' shares of the trace.
    """

    intercept_loc: float = 0.0
    intercept_scale: float = 2.5
    coef_loc: float = 0.0
    coef_scale: float = 1.0
    autoscale: bool = True
    sd_shape: float = 1.0
    sd_scale: float = 0.5
    covariance: str = "decov"
    regularization: float = 1.0
    concentration: float = 1.0

    def __post_init__(self) -> None:
        for name in ("intercept_scale", "coef_scale", "sd_shape", "sd_scale", "regularization", "concentration"):
            if not getattr(self, name) > 0:
                raise ValueError(f"prior {name} must be positive, got {getattr(self, name)!r}")
        if self.covariance not in COVARIANCE_PRIORS:
            raise ValueError(f"prior covariance kind must be one of {list(COVARIANCE_PRIORS)}, got {self.covariance!r}")

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> Priors:
        """Build from the nested config ``{intercept: {loc, scale}, coef: {...}, sd: {...}}``."""
        cfg = dict(cfg or {})
        unknown = set(cfg) - {"intercept", "coef", "sd", "covariance"}
        if unknown:
            raise ValueError(f"unknown prior group(s) {sorted(unknown)}; valid: ['coef', 'covariance', 'intercept', 'sd']")
        kw: dict[str, Any] = {}
        for group, keys in {
            "intercept": ("loc", "scale"),
            "coef": ("loc", "scale", "autoscale"),
            "sd": ("shape", "scale"),
            "covariance": ("kind", "regularization", "concentration"),
        }.items():
            sub = dict(cfg.get(group) or {})
            bad = set(sub) - set(keys)
            if bad:
                raise ValueError(f"unknown key(s) {sorted(bad)} in model.priors.{group}; valid: {list(keys)}")
            for key, value in sub.items():
                if group == "covariance":
                    kw["covariance" if key == "kind" else key] = value
                else:
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


def decov_sd_log_density(sd: Any, shape: float, scale: float, concentration: float) -> Any:
    """Log density of a correlated term's ``J`` sds (last axis) under rstanarm's ``decov``, NumPy or JAX.

    ``tau ~ Gamma(shape, scale)`` and shares ``pi ~ Dirichlet(concentration)`` give
    ``sd_j = tau sqrt(J pi_j)``; in the sds, ``T = sum_j sd_j^2 = J tau^2`` and ``pi_j = sd_j^2 / T``,
    and the change of variables ``(tau, pi_1..pi_(J-1)) -> sd`` has the Jacobian
    ``2 sqrt(J T) T^(J - 1) / prod_j 2 sd_j`` (``sd^2 = T pi``, ``T = J tau^2``). With ``J = 1`` it
    is the gamma density of the one sd.
    """
    sd = jnp.asarray(sd)
    J = sd.shape[-1]
    T = jnp.sum(sd**2, axis=-1)
    tau = jnp.sqrt(T / J)
    log_tau = shape * jnp.log(1.0 / scale) - gammaln(shape) + (shape - 1.0) * jnp.log(tau) - tau / scale
    log_pi = gammaln(J * concentration) - J * gammaln(concentration)
    log_pi = log_pi + (concentration - 1.0) * jnp.sum(jnp.log(sd**2), axis=-1) - (concentration - 1.0) * J * jnp.log(T)
    log_jacobian = J * jnp.log(2.0) + jnp.sum(jnp.log(sd), axis=-1) - jnp.log(2.0 * jnp.sqrt(J * T)) - (J - 1) * jnp.log(T)
    return log_tau + log_pi + log_jacobian
