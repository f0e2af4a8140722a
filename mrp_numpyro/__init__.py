"""Multilevel regression and poststratification with NumPyro.

The layers, from the bottom:

- :mod:`mrp_numpyro.schema` and :mod:`mrp_numpyro.data`: validated survey, poststratification
  table and area predictors (synthetic generator, 2018 CCES loader);
- :mod:`mrp_numpyro.formula` and :mod:`mrp_numpyro.design`: formula -> frozen arrays with
  respondents aggregated into binomial cells;
- :mod:`mrp_numpyro.model`: the hierarchical logit as a plain NumPyro function;
- :mod:`mrp_numpyro.inference`: SVI with any guide, NUTS; both return a :class:`Fit`;
- :mod:`mrp_numpyro.poststratify`: the shared poststratifier;
- :mod:`mrp_numpyro.pipeline`: the stages of a run from a Hydra config (:func:`prepare`,
  :func:`fit`, :func:`estimate`, :func:`write_run`) and :func:`mrp_numpyro.run.run`, all of them.
"""

import warnings

# ArviZ 0.2x announces its 1.0 refactor on import; the notice is not about this package's use.
warnings.filterwarnings("ignore", message=r"\s*ArviZ is undergoing a major refactor", category=FutureWarning)

from .config import compose_config
from .data import load_cces18, load_synthetic
from .design import Design, build_design
from .formula import parse_formula
from .inference import Fit, fit_nuts, fit_svi
from .model import MRPModel, build_model, mrp_logit
from .pipeline import Estimates, Problem, estimate, fit, prepare, write_run
from .poststratify import poststratify, poststratify_draws, summarize
from .priors import Priors
from .run import RunResult, run
from .schema import DataError, MRPData, SurveySchema

__version__ = "0.1.0"

__all__ = [
    "DataError",
    "Design",
    "Estimates",
    "Fit",
    "MRPData",
    "MRPModel",
    "Priors",
    "Problem",
    "RunResult",
    "SurveySchema",
    "build_design",
    "build_model",
    "compose_config",
    "estimate",
    "fit",
    "fit_nuts",
    "fit_svi",
    "load_cces18",
    "load_synthetic",
    "mrp_logit",
    "parse_formula",
    "poststratify",
    "poststratify_draws",
    "prepare",
    "run",
    "summarize",
    "write_run",
]
