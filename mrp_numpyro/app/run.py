"""``run(cfg)``: every stage of :mod:`mrp_numpyro.app.pipeline`, into a run directory.

The command line (``python -m mrp_numpyro``) is a thin Hydra wrapper around this function;
notebooks and tests call it directly with a composed config (see :func:`~mrp_numpyro.app.config.compose_config`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from ..data.schema import MRPData
from ..design.cells import Design
from ..inference.result import Fit
from ..model.base import MRPModel
from ..outputs import write_text
from ..poststratification import Poststratified
from .noncensus import NoncensusFit, fit_noncensus, noncensus_summary, write_noncensus
from .pipeline import Checks, Problem, check, estimate, fit, prepare, summarize_run, write_run
from .rundir import run_directory

log = logging.getLogger("mrp_numpyro")

__all__ = ["run", "RunResult"]


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced."""

    output_dir: Path | None
    problem: Problem
    fit: Fit
    estimates: Mapping[str, Poststratified]
    summary: Mapping[str, Any]
    checks: Checks | None = None
    #: The fitted model of the formula's non-census factor (:mod:`mrp_numpyro.app.noncensus`), if any.
    noncensus: NoncensusFit | None = None

    @property
    def data(self) -> MRPData:
        """The validated survey and table the run fitted."""
        return self.problem.data

    @property
    def model(self) -> MRPModel:
        """The model in the coordinates the run fitted it in."""
        return self.problem.model

    @property
    def design(self) -> Design:
        """The run's design: formula, parameter layout and cells."""
        return self.problem.design


def _progress(setting: bool | str | None) -> bool:
    if isinstance(setting, bool):
        return setting
    if setting in (None, "auto"):
        return sys.stderr.isatty()
    raise ValueError(f"progress must be true, false or auto, got {setting!r}")


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> RunResult:
    """Run one MRP analysis as configured.

    Parameters
    ----------
    cfg : DictConfig
        The composed config (``conf/config.yaml`` and its groups).
    output_dir : path-like, optional
        Run directory to write (:func:`mrp_numpyro.app.rundir.run_directory`: never one that
        holds a run, marked ``INCOMPLETE`` until finished). ``None`` writes nothing and
        only returns the result.

    Returns
    -------
    RunResult
    """
    if output_dir is None:
        return _stages(cfg, None)
    with run_directory(output_dir) as out:
        return _stages(cfg, out)


def _stages(cfg: DictConfig, out: Path | None) -> RunResult:
    progress = _progress(cfg.get("progress", "auto"))
    if out is not None:
        # First, so that a run that fails still says what it was.
        write_text(out / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    problem = prepare(cfg)
    # The model of a non-census factor the formula uses (None without one), fitted first.
    first = fit_noncensus(problem, cfg, progress_bar=progress)
    fitted = fit(problem, cfg, progress_bar=progress, checkpoint_dir=out)
    estimates = estimate(problem, fitted, cfg, cell_shares=None if first is None else first.cell_shares)
    checks = check(problem, fitted, cfg)
    summary = summarize_run(cfg, problem, fitted, estimates, checks=checks)
    if first is not None:
        summary["noncensus"] = noncensus_summary(first)
    national = estimates.tables.get("national")
    if national is not None:
        log.info("national estimate: %.4f (90%% interval %.4f-%.4f)", *national[["mean", "q5", "q95"]].iloc[0])
    if out is not None:
        if first is not None:
            write_noncensus(out, first)
        summary = write_run(out, cfg, problem, fitted, estimates, summary, checks=checks)
    return RunResult(out, problem, fitted, estimates.groupings, summary, checks, first)
