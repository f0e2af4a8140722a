"""Command line: ``python -m mrp_numpyro [overrides]``, a thin Hydra wrapper over :func:`run`."""

from __future__ import annotations

import signal
from pathlib import Path
from types import FrameType
from typing import NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .app.config import HYDRA_VERSION_BASE, config_dir
from .app.run import run


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=str(config_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Run one analysis as configured and return its national estimate (for Hydra sweepers that optimise it)."""
    # SIGTERM (a scheduler's kill) unwinds like Ctrl-C, so the run directory is marked incomplete.
    signal.signal(signal.SIGTERM, _terminate)
    result = run(cfg, Path(HydraConfig.get().runtime.output_dir))
    # Returned so that Hydra sweepers that optimise a value can use it.
    return result.summary["national_mean"]


def _terminate(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(128 + signum)


if __name__ == "__main__":
    main()
