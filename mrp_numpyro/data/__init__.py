"""Data sources: the embedded synthetic generator and the 2018 CCES example."""

from .cces import CCES18_SCHEMA, clean_cces_raw, load_cces18
from .sampling import subsample
from .synthetic import load_synthetic

__all__ = ["CCES18_SCHEMA", "clean_cces_raw", "load_cces18", "load_synthetic", "subsample"]
