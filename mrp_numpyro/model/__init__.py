"""The model layer: the hierarchical logit over the design's cells, in several coordinate systems.

Importing the package registers every parameterisation (:data:`~mrp_numpyro.model.base.PARAMETERIZATIONS`).
"""

from .base import PARAMETERIZATIONS, MRPModel, Parameterization, build_model, get_parameterization, register_parameterization
from .categorical import mrp_categorical
from .identified import Identified
from .noncentred import NonCentred, mrp_logit
from .partial import PartiallyCentred
from .predict import cell_logits, cell_logits_by_cell

__all__ = [
    "PARAMETERIZATIONS",
    "Identified",
    "MRPModel",
    "NonCentred",
    "Parameterization",
    "PartiallyCentred",
    "build_model",
    "cell_logits",
    "cell_logits_by_cell",
    "get_parameterization",
    "mrp_categorical",
    "mrp_logit",
    "register_parameterization",
]
