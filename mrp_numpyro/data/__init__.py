"""The data layer: the schema and validation of survey and table, the synthetic generator, the 2018 CCES."""

from .cces import CCES18_SCHEMA, clean_cces_raw, load_cces18
from .sampling import subsample
from .schema import DataError, MRPData, SurveySchema, Truth, build_mrp_data
from .synthetic import load_synthetic

__all__ = [
    "CCES18_SCHEMA",
    "DataError",
    "MRPData",
    "SurveySchema",
    "Truth",
    "build_mrp_data",
    "clean_cces_raw",
    "load_cces18",
    "load_synthetic",
    "subsample",
]
