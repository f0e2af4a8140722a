"""The model layer: the hierarchical logit over the design's cells, in several coordinate systems."""

from .base import PARAMETERIZATIONS, MRPModel, build_model, cell_logits, cell_logits_by_cell, mrp_logit

__all__ = ["PARAMETERIZATIONS", "MRPModel", "build_model", "cell_logits", "cell_logits_by_cell", "mrp_logit"]
