"""Tables of results as Markdown, for BENCHMARKS.md and the experiments that fill it."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["markdown"]


def markdown(table: pd.DataFrame, formats: Mapping[str, str] | None = None, default: str = ".2f") -> str:
    """A markdown table of ``table``, for BENCHMARKS.md.

    Parameters
    ----------
    table : pandas.DataFrame
    formats : mapping of column to format spec, optional
        Of float columns, e.g. ``{"max_rhat": ".4f", "respondents": ",.0f"}`` (a count
        column turns float where a row lacks it).
    default : str
        Format of the other float columns. Integers get thousands separators, everything
        else is written as text, and missing values stay empty.
    """
    formats = dict(formats or {})

    def cell(column: str, value: object) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return ""
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            return str(value)
        if isinstance(value, (int, np.integer)):
            return f"{value:,}"
        return format(value, formats.get(column, default))

    columns = [str(c) for c in table.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for record in table.to_dict("records"):
        lines.append("| " + " | ".join(cell(c, record[c]) for c in table.columns) + " |")
    return "\n".join(lines)
