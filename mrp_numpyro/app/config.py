"""Where the Hydra configs live, and composing them without the command line."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from .schemas import register_schemas

__all__ = ["config_dir", "compose_config", "HYDRA_VERSION_BASE"]

HYDRA_VERSION_BASE = "1.3"

# The structured schemas the YAML files extend, stored before any config is composed
# (the command line's @hydra.main and compose_config alike import this module first).
register_schemas()


def config_dir() -> Path:
    """Directory of the packaged configs.

    An installed package carries them as ``mrp_numpyro/conf``; a source checkout keeps
    them in the top-level ``conf/`` beside the package.
    """
    packaged = Path(str(resources.files("mrp_numpyro"))) / "conf"
    if (packaged / "config.yaml").is_file():
        return packaged
    checkout = Path(__file__).resolve().parents[2] / "conf"
    if (checkout / "config.yaml").is_file():
        return checkout
    raise FileNotFoundError(f"mrp_numpyro configs not found in {packaged} or {checkout}; reinstall the package")


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose the package config as the command line would, e.g. ``["guide=iaf", "data.n=5000"]``."""
    with initialize_config_dir(config_dir=str(config_dir()), version_base=HYDRA_VERSION_BASE):
        return compose(config_name=config_name, overrides=list(overrides))
