"""The design layer: formula -> spec, priors, the parameter layout and the cells' arrays."""

from .cells import CellArrays, Design, aggregate_cells, build_design
from .formula import FixedTerm, FormulaError, GroupTerm, ModelSpec, parse_formula
from .layout import SITES, ParameterLayout
from .priors import Priors

__all__ = [
    "CellArrays",
    "Design",
    "FixedTerm",
    "FormulaError",
    "GroupTerm",
    "ModelSpec",
    "ParameterLayout",
    "Priors",
    "SITES",
    "aggregate_cells",
    "build_design",
    "parse_formula",
]
