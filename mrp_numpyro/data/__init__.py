"""The data layer: schema and validation, any survey from files, the synthetic generator, the 2018 CCES, area adjacency."""

from .adjacency import Adjacency, load_adjacency, read_adjacency, us_states_adjacency
from .cces import CCES18_SCHEMA, clean_cces_raw, load_cces18
from .files import load_files, register_survey_format
from .sampling import subsample
from .schema import DataError, MRPData, SurveySchema, Truth
from .synthetic import load_synthetic
from .validation import build_mrp_data

__all__ = [
    "Adjacency",
    "CCES18_SCHEMA",
    "DataError",
    "MRPData",
    "SurveySchema",
    "Truth",
    "build_mrp_data",
    "clean_cces_raw",
    "load_adjacency",
    "load_cces18",
    "load_files",
    "load_synthetic",
    "read_adjacency",
    "register_survey_format",
    "subsample",
    "us_states_adjacency",
]
