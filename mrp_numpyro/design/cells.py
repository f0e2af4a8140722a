"""From data and formula to arrays: the frozen design every inference method consumes.

Respondents are aggregated exactly into their distinct predictor cells with binomial
counts (trials, successes): the likelihood depends on a respondent only through the cell,
so the fit's cost follows the number of occupied cells, not the number of respondents.
The same columns are built for every poststratification cell, including cells and levels
no respondent occupies, so one posterior predicts them all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.adjacency import Adjacency, load_adjacency
from ..data.schema import DataError, MRPData
from .aggregation import aggregate_cells, extend_table
from .formula import GroupTerm, ModelSpec
from .layout import CorrelatedTerm, ParameterLayout
from .priors import autoscale_denominators
from .structure import AREA_PRIORS, IID, ORDERED_PRIORS, GroupPrior, ar1_prior, icar_prior, random_walk_prior

__all__ = ["CellArrays", "Design", "build_design", "aggregate_cells", "extend_table"]


@dataclass(frozen=True)
class CellArrays:
    """Model arrays for a set of cells.

    Attributes
    ----------
    X : array (cells, p)
        Population-level predictors, centred at the survey's respondent means.
    group_index : array (cells, G), int32
        Level of every group (a varying intercept or slope over a factor) in each cell.
    cells : pandas.DataFrame
        The cells' predictor values (one row per cell), for labelling.
    trials, successes : array (cells,) or None
        Respondents and "1" answers per cell (survey cells only; ``successes`` is None for
        a categorical outcome).
    weights : array (cells,) or None
        Population count per cell (poststratification cells only).
    counts : int array (cells, K) or None
        Respondents per cell and answer of a categorical outcome, in the order of
        ``Design.outcome_levels`` (survey cells only); ``trials`` is their sum.
    group_value : array (cells, G) or None
        What multiplies each group's effect in each cell: 1 for a varying intercept, the
        cell's value of the column for a varying slope (uncentred, as lme4's ``Z``). None
        when every group is an intercept.
    """

    X: np.ndarray
    group_index: np.ndarray
    cells: pd.DataFrame
    trials: np.ndarray | None = None
    successes: np.ndarray | None = None
    weights: np.ndarray | None = None
    counts: np.ndarray | None = None
    group_value: np.ndarray | None = None

    @property
    def n_cells(self) -> int:
        """Number of cells."""
        return self.X.shape[0]


@dataclass(frozen=True)
class Design:
    """Formula, the parameter layout and the survey and poststratification arrays.

    Attributes
    ----------
    spec : ModelSpec
    layout : ParameterLayout
        Names and places of the intercept, the coefficients and every group's levels.
    x_center, x_scale : arrays (p,)
        The predictors' respondent means (subtracted from ``X``) and rstanarm's autoscale
        denominators.
    survey, poststrat : CellArrays
    n_respondents : int
    outcome_levels : tuple of str
        The answers of a categorical outcome in their declared order (``survey.counts``'
        columns); empty for a 0/1 outcome.
    baseline : int
        The position in ``outcome_levels`` of the category whose linear predictor is zero.
    noncensus : str or None
        The formula's non-census factor (``schema.noncensus``): ``poststrat`` is then the
        census table extended to every cell and level of it (:func:`~mrp_numpyro.design.aggregation.extend_table`), whose
        counts are ``N * P(level | cell)`` only once a model of the factor gives those shares.
    census_cells : int array (extended cells,) or None
        With ``noncensus``: the row of the census table of every extended cell.
    """

    spec: ModelSpec
    layout: ParameterLayout
    x_center: np.ndarray
    x_scale: np.ndarray
    survey: CellArrays
    poststrat: CellArrays
    n_respondents: int
    outcome_levels: tuple[str, ...] = ()
    baseline: int = 0
    noncensus: str | None = None
    census_cells: np.ndarray | None = None

    @property
    def categorical(self) -> bool:
        """Whether the outcome is categorical (a baseline-category logit), not 0/1."""
        return bool(self.outcome_levels)

    @property
    def categories(self) -> tuple[str, ...]:
        """The non-baseline categories, each with its own linear predictor, in declared order."""
        return tuple(c for k, c in enumerate(self.outcome_levels) if k != self.baseline)

    @property
    def fixed_names(self) -> tuple[str, ...]:
        """Names of the population-level coefficients (``ParameterLayout.fixed_names``)."""
        return self.layout.fixed_names

    @property
    def group_names(self) -> tuple[str, ...]:
        """Names of the varying intercepts, in formula order."""
        return self.layout.group_names

    @property
    def group_levels(self) -> tuple[tuple[str, ...], ...]:
        """Level labels of every varying intercept."""
        return self.layout.group_levels

    @property
    def group_sizes(self) -> tuple[int, ...]:
        """Number of levels of every varying intercept."""
        return self.layout.group_sizes

    def design_matrix(self, cells: CellArrays | None = None) -> np.ndarray:
        """``D`` of some cells, the survey's by default (:meth:`~mrp_numpyro.design.layout.ParameterLayout.design_matrix`)."""
        cells = self.survey if cells is None else cells
        return self.layout.design_matrix(cells.X, cells.group_index, cells.group_value)


def _levels(data: MRPData, column: str) -> tuple:
    declared = data.schema.levels(column)
    if declared is not None:
        return declared
    values = np.concatenate([data.survey[column].to_numpy(float), data.poststrat[column].to_numpy(float)])
    return tuple(np.unique(values).tolist())


def _codes(df: pd.DataFrame, column: str, levels: tuple) -> np.ndarray:
    col = df[column]
    if isinstance(col.dtype, pd.CategoricalDtype):
        if tuple(col.cat.categories) != tuple(levels):
            col = col.cat.set_categories(list(levels))
        codes = col.cat.codes.to_numpy()
    else:
        lv = np.asarray(levels, dtype=float)
        x = col.to_numpy(float)
        codes = np.clip(np.searchsorted(lv, x), 0, len(lv) - 1)
        codes = np.where(lv[codes] == x, codes, -1)
    if (codes < 0).any():
        bad = df.loc[codes < 0, column]
        raise DataError(f"column {column!r} has value(s) outside its levels {list(levels)}: {bad.unique()[:5].tolist()}")
    return codes.astype(np.int64)


def _fixed_block(
    spec: ModelSpec, codes: dict[str, np.ndarray], levels: dict[str, tuple], categorical: set[str]
) -> tuple[tuple[str, ...], np.ndarray]:
    """Population-level columns: each term's product of its columns' codings.

    A numeric column is itself; a categorical one is dummy-coded against its first level
    when the term without it (its margin; the intercept for a main effect) is also in the
    formula, and by one indicator per level when it is not, as R's ``model.matrix`` does:
    ``x + x:factor(f)`` has ``x:f[b], x:f[c]``, ``x:factor(f)`` alone ``x:f[a], x:f[b], x:f[c]``.
    """
    present: set[frozenset[str]] = {frozenset(t.columns) for t in spec.fixed} | {frozenset()}
    names: list[str] = []
    columns: list[np.ndarray] = []
    n = len(next(iter(codes.values()))) if codes else 0
    for term in spec.fixed:
        parts: list[list[tuple[str, np.ndarray]]] = []
        full: list[str] = []
        for col, forced in zip(term.columns, term.categorical, strict=True):
            lv = levels[col]
            if forced or col in categorical:
                margin = frozenset(term.columns) - {col}
                first = 1 if margin in present else 0
                if first == 0:
                    full.append(col)
                parts.append([(f"{col}[{level}]", (codes[col] == j).astype(float)) for j, level in enumerate(lv) if j >= first])
            else:
                parts.append([(col, np.asarray(lv, dtype=float)[codes[col]])])
        if len(full) > 1:
            raise DataError(
                f"the interaction {term.name} has no main effects for {full}; add all but one of "
                f"{[f'factor({c})' for c in full]} to the formula, as R would need to code it"
            )
        for combo in _product(parts):
            names.append(":".join(name for name, _ in combo))
            values = combo[0][1]
            for _, v in combo[1:]:
                values = values * v
            columns.append(values)
    X = np.stack(columns, axis=1) if columns else np.zeros((n, 0))
    return tuple(names), X


def _product(parts: list[list[tuple[str, np.ndarray]]]) -> list[list[tuple[str, np.ndarray]]]:
    """Every combination of one coding column per component, the first component slowest."""
    combos: list[list[tuple[str, np.ndarray]]] = [[]]
    for options in parts:
        combos = [combo + [option] for combo in combos for option in options]
    return combos


def _group_block(
    spec: ModelSpec, codes: dict[str, np.ndarray], levels: dict[str, tuple]
) -> tuple[np.ndarray, np.ndarray | None, tuple[tuple[str, ...], ...]]:
    """Every group's level in each cell, what multiplies its effect there, and its level labels.

    A term gives one group per varying coefficient (:attr:`~mrp_numpyro.design.formula.GroupTerm.slot_names`):
    they share the factor's levels; a slope's value is its column's, 1 is an intercept's.
    """
    index, value, labels = [], [], []
    for g in spec.groups:
        sizes = [len(levels[c]) for c in g.columns]
        idx = np.zeros_like(codes[g.columns[0]])
        for c, size in zip(g.columns, sizes, strict=True):
            idx = idx * size + codes[c]
        grid = pd.MultiIndex.from_product([[str(v) for v in levels[c]] for c in g.columns])
        for coefficient in g.coefficients:
            index.append(idx)
            labels.append(tuple(":".join(t) for t in grid))
            if coefficient == "Intercept":
                value.append(np.ones(len(idx)))
            else:
                value.append(np.asarray(levels[coefficient], dtype=float)[codes[coefficient]])
    n = len(next(iter(codes.values())))
    G = np.stack(index, axis=1).astype(np.int32) if index else np.zeros((n, 0), np.int32)
    slopes = any(g.slopes for g in spec.groups)
    return G, (np.stack(value, axis=1) if slopes else None), tuple(labels)


def _check_slope_columns(spec: ModelSpec, data: MRPData) -> None:
    """Each varying slope's column is numeric, not a factor of the schema."""
    for term in spec.groups:
        for column in term.slopes:
            if data.schema.levels(column) is not None:
                raise DataError(
                    f"{term.text}: {column!r} is a factor (levels {list(data.schema.levels(column) or ())}); "
                    "a varying slope is on a numeric column, such as a 0/1 indicator of one level"
                )


def _check_slopes_vary(spec: ModelSpec, codes: dict[str, np.ndarray], G: np.ndarray) -> None:
    """Each varying slope's column varies within at least one level of its factor in the survey's cells ``G``."""
    g = 0
    for term in spec.groups:
        for coefficient in term.coefficients:
            if coefficient != "Intercept":
                pairs = np.unique(np.stack([G[:, g], codes[coefficient]], axis=1), axis=0)
                if len(pairs) == len(np.unique(pairs[:, 0])):
                    raise DataError(
                        f"{term.text}: {coefficient!r} takes one value within every level of {term.name} in the survey, "
                        f"so its slope over {term.name} cannot be told from the intercepts; use a column that varies "
                        f"within {term.name} (a respondent-level one) or drop the slope"
                    )
            g += 1


def _categorical_frame(cell_codes: dict[str, np.ndarray], levels: dict[str, tuple]) -> pd.DataFrame:
    return pd.DataFrame({c: np.asarray(levels[c], dtype=object)[k] for c, k in cell_codes.items()})


def _group_prior(term: GroupTerm, levels: tuple, data: MRPData, adjacency: Adjacency | str | Path | None) -> GroupPrior:
    """The prior of one group's standardised intercepts, checked against its factor."""
    if term.structure == "iid":
        return IID
    column = term.columns[0]
    if term.structure in ORDERED_PRIORS:
        if not data.schema.is_ordered(column):
            raise DataError(
                f"{term.text}: a {term.structure} prior needs an ordered factor, and {column!r} is not declared ordered; "
                f"list it in the schema's ordered factors (data.schema.ordered: [{column}]) if its levels "
                f"{list(levels)} are in order, or use (1 | {column})"
            )
        try:
            if term.structure == "ar1":
                return ar1_prior(len(levels))
            return random_walk_prior(len(levels), int(term.structure[-1]))
        except ValueError as err:
            raise DataError(f"{term.text}: {err}") from None
    assert term.structure in AREA_PRIORS
    graph = adjacency if isinstance(adjacency, Adjacency) else load_adjacency(adjacency)
    graph = graph.for_levels([str(v) for v in levels], column)
    if not graph.edges:
        raise DataError(f"{term.text}: the adjacency {graph.source} has no neighbours at all; use (1 | {column})")
    return icar_prior(graph.matrix(), graph.components(), kind=term.structure)


def _layout(
    spec: ModelSpec, fixed_names: tuple[str, ...], group_levels: tuple[tuple[str, ...], ...], priors: list[GroupPrior]
) -> ParameterLayout:
    """The layout of the coefficients and of every term's groups (one per varying coefficient)."""
    groups: list[tuple] = []
    correlated: list[CorrelatedTerm] = []
    for term, prior in zip(spec.groups, priors, strict=True):
        first = len(groups)
        for name, coefficient in zip(term.slot_names, term.coefficients, strict=True):
            slope = None if coefficient == "Intercept" else coefficient
            groups.append((name, group_levels[len(groups)], prior if slope is None else IID, slope, term.name))
        if term.covariance:
            correlated.append(CorrelatedTerm(term.name, tuple(range(first, len(groups))), term.coefficients))
    return ParameterLayout.build(fixed_names, groups, correlated)


def build_design(spec: ModelSpec, data: MRPData, adjacency: Adjacency | str | Path | None = None) -> Design:
    """Aggregate the survey into cells and build the model arrays for survey and table.

    Parameters
    ----------
    spec : ModelSpec
        Parsed formula; its response must be the schema's outcome.
    data : MRPData
        Validated survey and poststratification table.
    adjacency : Adjacency, path or None
        The areas' adjacency for ``icar`` and ``bym2`` terms: a graph, a file
        (:func:`~mrp_numpyro.data.adjacency.read_adjacency`), or None for the 50 US states'.
    """
    schema = data.schema
    if spec.response != schema.outcome:
        raise DataError(f"formula response {spec.response!r} is not the data's outcome column {schema.outcome!r}")
    # A non-census factor is in the survey only: the table is extended to its levels below.
    in_table = set(data.poststrat.columns) | set(schema.noncensus)
    missing = [c for c in spec.columns if c not in data.survey.columns or c not in in_table]
    if missing:
        raise DataError(f"formula column(s) {missing} are not in both the survey and the poststratification table")
    noncensus = [c for c in spec.columns if c in schema.noncensus]
    if len(noncensus) > 1:
        raise DataError(
            f"the formula uses the non-census factors {noncensus}; one at a time is offered (each would need the other's shares)"
        )
    table, census_cells = data.poststrat, None
    if noncensus:
        table, census_cells = extend_table(data.poststrat, noncensus[0], schema.noncensus[noncensus[0]])
    cols = spec.columns
    levels = {c: _levels(data, c) for c in cols}
    survey_codes = np.stack([_codes(data.survey, c, levels[c]) for c in cols], axis=1)
    n = None if schema.trials is None else data.survey[schema.trials].to_numpy()
    sizes = tuple(len(levels[c]) for c in cols)
    if schema.categorical:
        # Every answer's count in every cell: the multinomial likelihood's sufficient statistics.
        answers = _codes(data.survey, schema.outcome, tuple(schema.outcome_levels))
        cell_codes, trials, counts = aggregate_cells(survey_codes, sizes, answers, n_categories=len(schema.outcome_levels))
        successes = None
    else:
        y = data.survey[schema.outcome].to_numpy()
        cell_codes, trials, successes = aggregate_cells(survey_codes, sizes, y, n)
        counts = None
    s_codes = {c: cell_codes[:, i] for i, c in enumerate(cols)}
    p_codes = {c: _codes(table, c, levels[c]) for c in cols}

    # A column the schema declares categorical is dummy-coded with or without factor().
    categorical = {c for c in cols if schema.levels(c) is not None}
    fixed_names, X_s = _fixed_block(spec, s_codes, levels, categorical)
    _, X_p = _fixed_block(spec, p_codes, levels, categorical)
    center = (X_s * trials[:, None]).sum(0) / trials.sum()
    scale = autoscale_denominators(X_s, trials)
    _check_slope_columns(spec, data)
    G_s, V_s, group_levels = _group_block(spec, s_codes, levels)
    G_p, V_p, _ = _group_block(spec, p_codes, levels)
    _check_slopes_vary(spec, s_codes, G_s)
    group_priors = [_group_prior(g, levels[g.columns[0]], data, adjacency) for g in spec.groups]
    structured = [g.text for g, prior in zip(spec.groups, group_priors, strict=True) if prior.structured]
    if schema.categorical and structured:
        raise DataError(
            f"{', '.join(structured)}: structured priors are not yet offered with a categorical outcome "
            f"({schema.outcome!r} with levels {list(schema.outcome_levels)}); write the term as an iid varying intercept"
        )
    correlated = [g.text for g in spec.groups if g.covariance]
    if schema.categorical and correlated:
        raise DataError(
            f"{', '.join(correlated)}: correlated varying slopes are not yet offered with a categorical outcome "
            f"({schema.outcome!r}); write the term with || for independent intercepts and slopes"
        )

    survey = CellArrays(
        X=X_s - center,
        group_index=G_s,
        cells=_categorical_frame(s_codes, levels),
        trials=trials,
        successes=successes,
        counts=counts,
        group_value=V_s,
    )
    post = CellArrays(
        X=X_p - center,
        group_index=G_p,
        cells=table.drop(columns=[schema.count]).reset_index(drop=True),
        weights=table[schema.count].to_numpy(float),
        group_value=V_p,
    )
    return Design(
        spec=spec,
        layout=_layout(spec, fixed_names, group_levels, group_priors),
        x_center=center,
        x_scale=scale,
        survey=survey,
        poststrat=post,
        n_respondents=int(trials.sum()),
        outcome_levels=tuple(str(v) for v in schema.outcome_levels),
        baseline=schema.baseline_index,
        noncensus=noncensus[0] if noncensus else None,
        census_cells=census_cells,
    )
