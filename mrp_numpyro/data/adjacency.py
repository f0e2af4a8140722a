"""Area adjacency graphs for the ICAR/BYM2 structured priors.

An adjacency file is a CSV (Parquet by suffix ``.parquet``) with columns ``area`` and ``neighbour``,
one row per pair of neighbouring areas, given once or both ways; an island is a row with an empty
``neighbour``. The shipped graph, :func:`us_states_adjacency`, is the adjacency by shared land border
of the 50 US states by postal code (no DC): the rook contiguity of the 48 contiguous states, the point
contacts at the Four Corners (AZ-CO, NM-UT) excluded, and Alaska and Hawaii as islands. It was written
for this package from the US state boundaries (U.S. Census Bureau cartographic boundary files). The
BYM2 prior treats islands as Freni-Sterrantino, Ventrucci and Rue (2018) propose (an island's spatial
component is an independent standard normal); that logic lives in the design layer, not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .schema import DataError, _examples

__all__ = ["Adjacency", "read_adjacency", "us_states_adjacency", "load_adjacency"]

SHIPPED = "us_states (shipped)"


@dataclass(frozen=True)
class Adjacency:
    """An undirected graph over named areas.

    Parameters
    ----------
    areas : tuple of str
        The area names; node ``i`` is ``areas[i]``.
    edges : tuple of (int, int)
        The edges as index pairs ``(i, j)`` with ``i < j``, sorted, without duplicates.
    source : str
        Where the graph came from (a file path, or ``"us_states (shipped)"``), for messages.
    """

    areas: tuple[str, ...]
    edges: tuple[tuple[int, int], ...]
    source: str

    def _ends(self) -> np.ndarray:
        return np.array(self.edges, dtype=int).reshape(-1, 2).T  # (2, n_edges), also with no edges

    def matrix(self) -> np.ndarray:
        """The ``(n, n)`` symmetric 0/1 adjacency matrix (float)."""
        out, (i, j) = np.zeros((len(self.areas), len(self.areas))), self._ends()
        out[i, j] = out[j, i] = 1.0
        return out

    def degrees(self) -> np.ndarray:
        """The number of neighbours of each area (int)."""
        return np.bincount(self._ends().ravel(), minlength=len(self.areas))

    def components(self) -> list[np.ndarray]:
        """Index arrays of the connected components, in order of their first area."""
        (i, j), n = self._ends(), len(self.areas)
        _, labels = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
        groups = [np.flatnonzero(labels == k) for k in np.unique(labels)]
        return sorted(groups, key=lambda g: int(g[0]))

    def for_levels(self, levels: Sequence[str], column: str) -> Adjacency:
        """The graph over exactly the model's levels of ``column``, in their order; levels compare as text.

        Raises
        ------
        DataError
            If a level has no entry in the adjacency, or the adjacency has areas that are not levels.
        """
        labels = [str(level) for level in levels]
        if len(set(labels)) < len(labels):  # e.g. 1 and "1": one area cannot be two levels
            raise DataError(f"levels of column {column!r} repeat as text: {labels}")
        known, wanted = set(self.areas), set(labels)
        if missing := [a for a in labels if a not in known]:
            raise DataError(
                f"{len(missing)} area(s) of column {column!r} with no entry in adjacency {self.source}: [{_examples(missing)}];"
                " list an island as a row 'AREA,' with no neighbour"
            )
        if unknown := [a for a in self.areas if a not in wanted]:
            raise DataError(
                f"{len(unknown)} unknown area(s) in adjacency {self.source}: [{_examples(unknown)}], not levels of column "
                f"{column!r}"
            )
        at = {a: k for k, a in enumerate(labels)}
        return Adjacency(tuple(labels), _canonical((at[self.areas[i]], at[self.areas[j]]) for i, j in self.edges), self.source)


def _canonical(pairs: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    # One (i, j) with i < j per edge, so a pair given both ways counts once.
    return tuple(sorted({(min(i, j), max(i, j)) for i, j in pairs}))


def _text(values: pd.Series) -> pd.Series:
    # Parquet keeps its own types; a missing value is an empty cell, as in the CSV.
    return values.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())


def read_adjacency(path: str | Path) -> Adjacency:
    """Read an adjacency table with columns ``area`` and ``neighbour``.

    Values are read as text, so a code like ``NA`` stays an area; an empty ``neighbour`` makes its
    ``area`` an island. Every area named in either column is a node; nodes are sorted by name.

    Raises
    ------
    DataError
        If the file cannot be read, lacks a column, has an empty ``area`` or a self-loop.
    """
    path = Path(path)
    try:  # keep_default_na=False: an empty cell is "" (an island), and "NA" is a code, not a missing value
        parquet = path.suffix.lower() == ".parquet"
        df = pd.read_parquet(path) if parquet else pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as err:
        raise DataError(f"cannot read adjacency file {path}: {err}") from err
    if absent := [c for c in ("area", "neighbour") if c not in df.columns]:
        raise DataError(f"adjacency file {path} has no column(s) {absent}; it has {list(df.columns)}")
    area, neighbour = _text(df["area"]), _text(df["neighbour"])
    if (area == "").any():  # an island is written 'AREA,', never ',NEIGHBOUR'; lines count the header as 1
        lines = (np.flatnonzero(area == "") + 2).tolist()
        raise DataError(f"adjacency file {path} column 'area' has {len(lines)} empty value(s), at line(s) {_examples(lines)}")
    if len(loops := area[area == neighbour]):
        raise DataError(f"adjacency file {path} has {len(loops)} self-loop(s), 'neighbour' equal to 'area': [{_examples(loops)}]")
    areas = tuple(sorted(set(area) | (set(neighbour) - {""})))
    index = {a: k for k, a in enumerate(areas)}
    edges = _canonical((index[a], index[b]) for a, b in zip(area, neighbour, strict=True) if b)
    return Adjacency(areas, edges, str(path))


@cache
def us_states_adjacency() -> Adjacency:
    """The shipped adjacency of the 50 US states by postal code (see the module notes)."""
    path = Path(str(resources.files("mrp_numpyro.data"))) / "us_states_adjacency.csv"
    return replace(read_adjacency(path), source=SHIPPED)


def load_adjacency(spec: str | Path | None) -> Adjacency:
    """The shipped US states graph for ``None`` or ``"us_states"``; otherwise the file at ``spec``."""
    if spec is None or spec == "us_states":
        return us_states_adjacency()
    return read_adjacency(spec)
