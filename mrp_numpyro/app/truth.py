"""The poststratified estimates' tables, with the synthetic data's truth beside them."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from ..data.schema import MRPData
from ..poststratification import Poststratified

__all__ = ["estimate_tables"]


def estimate_tables(data: MRPData, estimates: Mapping[str, Poststratified]) -> dict[str, pd.DataFrame]:
    """Every grouping's summary, with a ``truth`` column where the data know it.

    The summaries are :meth:`~mrp_numpyro.poststratification.Poststratified.summary`. On
    synthetic data the truth is that of the area grouping, the nation, or any other grouping
    of the truth's cells (:meth:`~mrp_numpyro.data.schema.Truth.by`); for a categorical
    outcome, of every group and answer.
    """
    tables = {}
    for name, est in estimates.items():
        table = est.summary()
        truth = data.truth
        if truth is not None and truth.categories and truth.cells is not None:
            # A share per group and answer: the truth's long index, the answers fastest.
            cols = [*est.columns, est.category_name]
            labels = table[cols].astype(object)
            key = pd.MultiIndex.from_frame(labels) if len(cols) > 1 else pd.Index(labels[cols[0]])
            table["truth"] = truth.by(list(est.columns)).reindex(key).to_numpy()
        elif truth is not None and est.columns == (data.schema.area,):
            table["truth"] = truth.area.reindex(table[data.schema.area]).to_numpy()
        elif truth is not None and not est.columns:
            table["truth"] = truth.national
        elif truth is not None and truth.cells is not None and set(est.columns) <= set(truth.cells.columns) - {"p", "n"}:
            # Any other grouping of the synthetic table's cells (state x age, ...).
            cols = list(est.columns)
            labels = table[cols].astype(object)
            key = pd.MultiIndex.from_frame(labels) if len(cols) > 1 else pd.Index(labels[cols[0]])
            table["truth"] = truth.by(cols).reindex(key).to_numpy()
        tables[name] = table
    return tables
