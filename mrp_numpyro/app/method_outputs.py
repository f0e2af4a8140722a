"""What each inference method adds to a run directory, chosen by the type of its diagnostics.

SVI writes its ELBO trace (``elbo.csv``) and draws it (``elbo.png``); NUTS draws trace and
rank plots of the global parameters. A new method registers its own with
``method_files.register`` and ``method_figures.register``; a method with neither writes
only what every run writes.
"""

from __future__ import annotations

from functools import singledispatch
from pathlib import Path
from typing import Any

import arviz as az
import numpy as np
import pandas as pd

from ..design.layout import ParameterLayout
from ..inference.nuts import NUTSDiagnostics
from ..inference.result import Fit
from ..inference.svi import SVIDiagnostics
from ..outputs import write_csv
from . import report

__all__ = ["method_files", "method_figures"]


@singledispatch
def method_files(diagnostics: Any, out: Path, fit: Fit) -> list[Path]:
    """Files a fit of this kind adds to the run directory ``out``; none by default."""
    return []


@method_files.register
def _(diagnostics: SVIDiagnostics, out: Path, fit: Fit) -> list[Path]:
    elbo = fit.traces["elbo"]
    return [write_csv(out / "elbo.csv", pd.DataFrame({"step": np.arange(len(elbo)), "elbo": elbo}))]


@singledispatch
def method_figures(diagnostics: Any, out: Path, fit: Fit, idata: az.InferenceData, layout: ParameterLayout) -> list[Path]:
    """Figures of a fit of this kind for the report; none by default."""
    return []


@method_figures.register
def _(diagnostics: SVIDiagnostics, out: Path, fit: Fit, idata: az.InferenceData, layout: ParameterLayout) -> list[Path]:
    return [report.plot_elbo(fit.traces["elbo"], out / "elbo.png")]


@method_figures.register
def _(diagnostics: NUTSDiagnostics, out: Path, fit: Fit, idata: az.InferenceData, layout: ParameterLayout) -> list[Path]:
    return list(report.plot_nuts(idata, out / "trace.png", out / "rank.png", layout))
