"""Multilevel regression and poststratification with NumPyro.

The layers, from the bottom (ARCHITECTURE.md draws them):

- :mod:`mrp_numpyro.data`: validated survey, poststratification table and area predictors
  (the synthetic generator, the 2018 CCES loader);
- :mod:`mrp_numpyro.design`: formula -> spec, priors, the parameter layout and the cells'
  arrays, respondents aggregated into binomial cells;
- :mod:`mrp_numpyro.model`: the hierarchical logit as plain NumPyro functions;
- :mod:`mrp_numpyro.diagnostics`: PSIS, MCMC convergence and the verdict, on arrays;
- :mod:`mrp_numpyro.inference`: SVI with any guide, NUTS; both return a :class:`Fit`;
- :mod:`mrp_numpyro.poststratification` and :mod:`mrp_numpyro.labelled`: the shared
  poststratifier and the labelled (ArviZ, xarray) views;
- :mod:`mrp_numpyro.app`: configs, the stages of a run (:func:`prepare`, :func:`fit`,
  :func:`estimate`, :func:`write_run`), :func:`run` over all of them, the report.
"""

import warnings

# ArviZ 0.2x announces its 1.0 refactor on import; the notice is not about this package's use.
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)

from .app.config import compose_config
from .app.noncensus import NoncensusFit, fit_noncensus
from .app.pipeline import Checks, Estimates, Problem, check, estimate, fit, prepare, write_run
from .app.repoststratify import repoststratify
from .app.run import RunResult, run
from .calibration import Calibration
from .checking import CellLoo, cell_loo, predictive_by_group
from .data import load_cces18, load_files, load_synthetic
from .data.adjacency import Adjacency, read_adjacency, us_states_adjacency
from .data.schema import DataError, MRPData, SurveySchema
from .design.cells import Design, build_design
from .design.formula import parse_formula
from .design.layout import SITES, ParameterLayout
from .design.priors import Priors
from .design.structure import GroupPrior
from .diagnostics import Verdict
from .inference import Fit, NUTSMethod, SVIMethod, fit_nuts, fit_svi
from .model import Identified, MRPModel, NonCentred, Parameterization, PartiallyCentred, build_model, mrp_categorical, mrp_logit
from .poststratification import poststratify_calibrated, poststratify_draws, summarize

__version__ = "0.1.0"

__all__ = [
    "Adjacency",
    "GroupPrior",
    "read_adjacency",
    "us_states_adjacency",
    "Calibration",
    "CellLoo",
    "Checks",
    "DataError",
    "Design",
    "Estimates",
    "Fit",
    "Identified",
    "MRPData",
    "MRPModel",
    "NUTSMethod",
    "NoncensusFit",
    "NonCentred",
    "ParameterLayout",
    "Parameterization",
    "PartiallyCentred",
    "Priors",
    "Problem",
    "RunResult",
    "SITES",
    "SVIMethod",
    "SurveySchema",
    "Verdict",
    "build_design",
    "build_model",
    "cell_loo",
    "check",
    "compose_config",
    "estimate",
    "fit",
    "fit_noncensus",
    "fit_nuts",
    "fit_svi",
    "load_cces18",
    "load_files",
    "load_synthetic",
    "mrp_categorical",
    "mrp_logit",
    "parse_formula",
    "poststratify_calibrated",
    "poststratify_draws",
    "predictive_by_group",
    "prepare",
    "repoststratify",
    "run",
    "summarize",
    "write_run",
]
