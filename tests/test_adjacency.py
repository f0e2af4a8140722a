"""The area adjacency layer: the shipped US states graph, reading files, and matching the model's levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mrp_numpyro.data import Adjacency, DataError, adjacency, load_adjacency, read_adjacency, us_states_adjacency

STATES = (
    "AL AK AZ AR CA CO CT DE FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO "
    "MT NE NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY"
).split()


def _write(tmp_path, text: str, name: str = "adj.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _pairs(adj: Adjacency) -> set[frozenset[str]]:
    return {frozenset((adj.areas[i], adj.areas[j])) for i, j in adj.edges}


def test_the_shipped_graph_is_the_50_states():
    adj = us_states_adjacency()
    assert sorted(adj.areas) == sorted(STATES) and len(adj.areas) == 50
    assert len(adj.edges) == 105
    assert adj.source == "us_states (shipped)"
    # Edges are canonical: i < j, sorted, no duplicates.
    assert all(i < j for i, j in adj.edges) and list(adj.edges) == sorted(set(adj.edges))


def test_the_shipped_graph_has_one_mainland_and_two_islands():
    adj = us_states_adjacency()
    parts = [{adj.areas[k] for k in c} for c in adj.components()]
    assert len(parts) == 3
    assert {"AK"} in parts and {"HI"} in parts
    assert set(STATES) - {"AK", "HI"} in parts
    # In order of their first area.
    assert [int(c[0]) for c in adj.components()] == sorted(int(c[0]) for c in adj.components())


def test_the_shipped_degrees_and_borders():
    adj = us_states_adjacency()
    degree = dict(zip(adj.areas, adj.degrees().tolist()))
    assert degree["MO"] == 8 and degree["TN"] == 8
    assert degree["ME"] == 1 and degree["AK"] == 0 and degree["HI"] == 0
    assert degree["KY"] == 7 and degree["WA"] == 2 and degree["FL"] == 2
    pairs = _pairs(adj)
    assert {frozenset(p) for p in [("CA", "OR"), ("NY", "VT"), ("TX", "OK"), ("ME", "NH"), ("MI", "WI")]} <= pairs
    # Four Corners point contacts; Great Lakes and Block Island Sound water borders.
    for a, b in [("AZ", "CO"), ("NM", "UT"), ("MI", "MN"), ("IL", "MI"), ("NY", "RI")]:
        assert frozenset((a, b)) not in pairs


def test_the_shipped_csv_lists_each_pair_once_smaller_code_first():
    adj = us_states_adjacency()
    # The shipped file sits beside the module; read it raw as a plain CSV.
    df = pd.read_csv(Path(adjacency.__file__).with_name("us_states_adjacency.csv"), dtype=str, keep_default_na=False)
    assert list(df.columns) == ["area", "neighbour"]
    linked = df[df.neighbour != ""]
    assert (linked.area < linked.neighbour).all() and not linked.duplicated().any()
    assert sorted(df[df.neighbour == ""].area) == ["AK", "HI"]
    assert len(linked) == len(adj.edges)


def test_matrix_is_symmetric_0_1():
    adj = us_states_adjacency()
    w = adj.matrix()
    assert w.shape == (50, 50) and w.dtype == float
    np.testing.assert_array_equal(w, w.T)
    assert set(np.unique(w)) == {0.0, 1.0} and not np.diag(w).any()
    np.testing.assert_array_equal(w.sum(axis=1), adj.degrees())


def test_pairs_both_ways_equal_once(tmp_path):
    once = read_adjacency(_write(tmp_path, "area,neighbour\nA,B\nB,C\n", "once.csv"))
    both = read_adjacency(_write(tmp_path, "area,neighbour\nA,B\nB,A\n B , C\nC,B\nC,B\n", "both.csv"))
    assert once.areas == both.areas == ("A", "B", "C")
    assert once.edges == both.edges == ((0, 1), (1, 2))


def test_an_island_row_and_areas_named_only_as_neighbours(tmp_path):
    adj = read_adjacency(_write(tmp_path, "area,neighbour\nX,\nA,B\nNA,A\n"))
    # "NA" stays a code; "B" is a node though it has no row of its own; "X" is an island.
    assert adj.areas == ("A", "B", "NA", "X")
    assert adj.degrees().tolist() == [2, 1, 1, 0]
    assert [c.tolist() for c in adj.components()] == [[0, 1, 2], [3]]
    assert adj.source == str(tmp_path / "adj.csv")


def test_parquet(tmp_path):
    path = tmp_path / "adj.parquet"
    pd.DataFrame({"area": ["A", "C"], "neighbour": ["B", None]}).to_parquet(path)
    adj = read_adjacency(path)
    assert adj.areas == ("A", "B", "C") and adj.edges == ((0, 1),)


def test_a_self_loop_is_named(tmp_path):
    path = _write(tmp_path, "area,neighbour\nA,B\nQQ,QQ\n")
    with pytest.raises(DataError, match="self-loop") as err:
        read_adjacency(path)
    assert str(path) in str(err.value) and "'QQ'" in str(err.value)


def test_a_missing_column_is_named(tmp_path):
    path = _write(tmp_path, "area,neighbor\nA,B\n")
    with pytest.raises(DataError, match=r"no column\(s\) \['neighbour'\]") as err:
        read_adjacency(path)
    assert str(path) in str(err.value) and "neighbor" in str(err.value)


def test_an_empty_area_is_named(tmp_path):
    path = _write(tmp_path, "area,neighbour\nA,B\n,B\n")
    with pytest.raises(DataError, match="column 'area' has 1 empty value") as err:
        read_adjacency(path)
    assert str(path) in str(err.value) and "line(s) 3" in str(err.value)


def test_an_unreadable_file_names_the_path(tmp_path):
    path = tmp_path / "nowhere.csv"
    with pytest.raises(DataError, match="cannot read adjacency file") as err:
        read_adjacency(path)
    assert str(path) in str(err.value)


def test_for_levels_reorders_to_the_levels(tmp_path):
    adj = read_adjacency(_write(tmp_path, "area,neighbour\n1,2\n2,3\n4,\n"))
    # Levels compare as text: integer codes match the text areas.
    out = adj.for_levels([3, 1, 4, 2], "region")
    assert out.areas == ("3", "1", "4", "2") and out.source == adj.source
    assert _pairs(out) == _pairs(adj)
    assert all(i < j for i, j in out.edges) and list(out.edges) == sorted(out.edges)
    moved = [("1", "2", "3", "4").index(a) for a in out.areas]
    np.testing.assert_array_equal(out.matrix(), adj.matrix()[np.ix_(moved, moved)])


def test_for_levels_names_levels_missing_from_the_adjacency(tmp_path):
    path = _write(tmp_path, "area,neighbour\nA,B\n")
    with pytest.raises(DataError, match="column 'state' with no entry in adjacency") as err:
        read_adjacency(path).for_levels(["A", "B", "C", "D"], "state")
    msg = str(err.value)
    assert str(path) in msg and "'C'" in msg and "'D'" in msg and "2 area(s)" in msg and "'AREA,'" in msg


def test_for_levels_names_unknown_areas(tmp_path):
    path = _write(tmp_path, "area,neighbour\nA,B\nB,C\n")
    with pytest.raises(DataError, match="unknown area") as err:
        read_adjacency(path).for_levels(["A", "B"], "state")
    msg = str(err.value)
    assert str(path) in msg and "'C'" in msg and "not levels of column 'state'" in msg


def test_for_levels_shows_a_handful_of_many(tmp_path):
    with pytest.raises(DataError, match=r"56 area\(s\)") as err:
        us_states_adjacency().for_levels(STATES + [f"Z{k}" for k in range(56)], "state")
    assert "(and 51 more)" in str(err.value) and "us_states (shipped)" in str(err.value)


def test_the_shipped_graph_for_the_states_in_another_order():
    out = us_states_adjacency().for_levels(STATES, "state")
    assert out.areas == tuple(STATES) and _pairs(out) == _pairs(us_states_adjacency())


def test_load_adjacency(tmp_path):
    assert load_adjacency(None) == us_states_adjacency() == load_adjacency("us_states")
    path = _write(tmp_path, "area,neighbour\nA,B\n")
    assert load_adjacency(path) == read_adjacency(path) == load_adjacency(str(path))
