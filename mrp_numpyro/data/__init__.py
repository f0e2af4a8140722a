"""The data layer: schema and validation, any survey from files, the synthetic generator, the 2018 CCES."""

from .cces import CCES18_SCHEMA, clean_cces_raw, load_cces18
from .files import load_files, register_survey_format
from .sampling import subsample
from .schema import DataError, MRPData, SurveySchema, Truth
from .synthetic import load_synthetic
from .validation import build_mrp_data

__all__ = [
    "CCES18_SCHEMA",
    "DataError",
    "MRPData",
    "SurveySchema",
    "Truth",
    "build_mrp_data",
    "clean_cces_raw",
    "load_cces18",
    "load_files",
    "load_synthetic",
    "register_survey_format",
    "subsample",
]
