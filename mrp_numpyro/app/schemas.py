"""Structured config schemas: the types and defaults of the config groups that take no ``_target_``.

The YAML files extend these (``defaults: [/schema/device@_here_, _self_]`` and the like),
so a misspelt key or a value of the wrong type is refused when the config is composed,
before any data are read: ``device.x64=maybe`` or ``budget.svi_draws=many`` fail with the
key's name. :func:`register_schemas` stores them in Hydra's ConfigStore under the group
``schema``; :mod:`mrp_numpyro.app.config` calls it before composing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hydra.core.config_store import ConfigStore

__all__ = [
    "DeviceConfig",
    "NormalPriorConfig",
    "CoefPriorConfig",
    "SdPriorConfig",
    "PriorsConfig",
    "PoststratConfig",
    "BudgetConfig",
    "ChecksConfig",
    "register_schemas",
]


@dataclass
class DeviceConfig:
    """``device``: the JAX platform (:func:`mrp_numpyro.app.device.configure_device`)."""

    platform: str = "cpu"
    x64: bool = False
    host_device_count: int | None = None
    compilation_cache_dir: str | None = None


@dataclass
class NormalPriorConfig:
    """``model.priors.intercept``: normal prior on the intercept of the centred predictors."""

    loc: float = 0.0
    scale: float = 2.5


@dataclass
class CoefPriorConfig:
    """``model.priors.coef``: normal prior on each coefficient, divided by the predictor's scale with ``autoscale``."""

    loc: float = 0.0
    scale: float = 1.0
    autoscale: bool = True


@dataclass
class SdPriorConfig:
    """``model.priors.sd``: gamma(shape, scale) prior on each varying intercept's sd."""

    shape: float = 1.0
    scale: float = 0.5


@dataclass
class CovariancePriorConfig:
    """``model.priors.covariance``: the prior of a correlated term's covariance, ``(1 + x | g)``.

    ``decov`` is rstanarm's (``sd`` gives its gamma's shape and scale); ``lkj`` gives each sd
    the ``sd`` prior and the correlation matrix an LKJ prior, as brms does.
    """

    kind: str = "decov"
    regularization: float = 1.0
    concentration: float = 1.0


@dataclass
class PriorsConfig:
    """``model.priors`` (:meth:`mrp_numpyro.design.priors.Priors.from_config`)."""

    intercept: NormalPriorConfig = field(default_factory=NormalPriorConfig)
    coef: CoefPriorConfig = field(default_factory=CoefPriorConfig)
    sd: SdPriorConfig = field(default_factory=SdPriorConfig)
    covariance: CovariancePriorConfig = field(default_factory=CovariancePriorConfig)


@dataclass
class PoststratConfig:
    """``poststrat``: the groupings estimated and how many draws are predicted at once."""

    groupings: dict[str, list[str]] = field(default_factory=lambda: {"state": ["state"], "national": []})
    chunk_size: int = 500


@dataclass
class ChecksConfig:
    """``checks``: the fit against its survey (:func:`mrp_numpyro.app.pipeline.check`).

    ``predictive`` lists survey columns to check one by one (null: every factor the formula
    uses; [] none) from at most ``predictive_draws`` draws; ``loo`` computes cell-level PSIS-LOO.
    """

    predictive: list[str] | None = None
    predictive_draws: int = 1000
    loo: bool = True


@dataclass
class BudgetConfig:
    """``budget``: how much work the inference methods do, shared by the presets."""

    svi_steps: int = 10_000
    svi_draws: int = 4_000
    svi_psis_draws: int = 16_000
    nuts_warmup: int = 1_000
    nuts_samples: int = 1_000
    nuts_chains: int = 4


SCHEMAS = {
    "device": DeviceConfig,
    "priors": PriorsConfig,
    "poststrat": PoststratConfig,
    "budget": BudgetConfig,
    "checks": ChecksConfig,
}


def register_schemas() -> None:
    """Store every schema in Hydra's ConfigStore as ``schema/<name>`` (idempotent)."""
    store = ConfigStore.instance()
    for name, node in SCHEMAS.items():
        store.store(group="schema", name=name, node=node)
