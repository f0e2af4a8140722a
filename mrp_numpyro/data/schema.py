"""The survey/poststratification schema and the validated data record.

A :class:`SurveySchema` says which column is the binary outcome, which columns
are categorical (with a fixed level order), which are numeric, which column is
the area key, and which area-level predictors are joined on that key. Survey
and poststratification table share one coding of every factor; the checks in
:mod:`mrp_numpyro.data.validation` enforce it and name the column and the
offending values when they do not hold.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["SurveySchema", "MRPData", "Truth", "DataError"]


class DataError(ValueError):
    """Raised when a survey, poststratification or area table is malformed."""


def _examples(values: Iterable[Any], k: int = 5) -> str:
    vals = list(pd.unique(pd.Series(list(values), dtype=object)))
    shown = ", ".join(repr(v) for v in vals[:k])
    more = f" (and {len(vals) - k} more)" if len(vals) > k else ""
    return shown + more


@dataclass(frozen=True)
class SurveySchema:
    """Column roles and level orders shared by a survey and its poststratification table.

    Parameters
    ----------
    outcome : str
        Outcome column of the survey: 0/1, or one of ``outcome_levels``.
    area : str
        Column naming the small area (e.g. ``"state"``); it must be one of ``factors``
        and is the key for ``area_factors`` / ``area_numeric``.
    factors : mapping of str to tuple
        Individual-level categorical columns and their level order.
    numeric : tuple of str
        Individual-level numeric columns (e.g. ``male`` coded -0.5/+0.5).
    area_factors : mapping of str to tuple
        Area-level categorical predictors and their level order; the first level is
        the baseline of a ``factor(...)`` term.
    area_numeric : tuple of str
        Area-level numeric predictors.
    count : str
        Population-count column of the poststratification table.
    trials : str, optional
        For a pre-aggregated survey (one row per group of respondents, as from a cross-tab):
        the column of respondents per row; ``outcome`` then counts the "1" answers among them.
        ``None`` (the default): one row per respondent with a 0/1 outcome.
    ordered : tuple of str
        Factors whose declared level order is an order (age groups, education), which a
        random walk or AR(1) prior needs (``(1 | rw1(age))``); numeric columns are ordered by value.
    outcome_levels : tuple, optional
        The answers of a categorical outcome (party ID: ``("Democrat", "Republican",
        "Independent")``), two or more; the model is then a baseline-category logit
        (:mod:`mrp_numpyro.model.categorical`). Empty (the default): a 0/1 outcome.
    baseline : str, optional
        The category whose linear predictor is zero; the first of ``outcome_levels`` by default.
    noncensus : mapping of str to tuple
        Survey factors the poststratification table does not count (party ID), with their
        levels. A formula term on one needs a model of it from the census factors
        (``model.noncensus``); the table is then extended to every cell and level of it,
        with counts ``N * P(level | cell)`` per posterior draw (:mod:`mrp_numpyro.app.noncensus`).
    """

    outcome: str
    area: str
    factors: Mapping[str, tuple]
    numeric: tuple[str, ...] = ()
    area_factors: Mapping[str, tuple] = field(default_factory=dict)
    area_numeric: tuple[str, ...] = ()
    count: str = "N"
    trials: str | None = None
    ordered: tuple[str, ...] = ()
    outcome_levels: tuple[str, ...] = ()
    baseline: str | None = None
    noncensus: Mapping[str, tuple] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.area not in self.factors:
            raise ValueError(f"area column {self.area!r} must be one of the factors {list(self.factors)}")
        roles = (self.outcome, *self.columns, *self.noncensus, *((self.trials,) if self.trials else ()))
        repeated = sorted({c for c in roles if roles.count(c) > 1})
        if repeated:
            raise ValueError(f"column(s) {repeated} have more than one role in the schema")
        not_factors = [c for c in self.ordered if c not in self.factors and c not in self.area_factors]
        if not_factors:
            raise ValueError(f"ordered column(s) {not_factors} are not factors of the schema {list(self.factors)}")
        levels = tuple(self.outcome_levels)
        if levels:
            if len(levels) < 2 or len(set(levels)) != len(levels):
                raise ValueError(f"outcome_levels of {self.outcome!r} must be two or more distinct answers, got {list(levels)}")
            if self.trials is not None:
                raise ValueError(
                    f"a categorical outcome ({self.outcome!r} with levels {list(levels)}) needs one row per respondent; "
                    f"the survey is declared pre-aggregated (trials={self.trials!r})"
                )
        for column, values in self.noncensus.items():
            if len(values) < 2 or len(set(values)) != len(values):
                raise ValueError(f"non-census factor {column!r} needs two or more distinct levels, got {list(values)}")
        if self.baseline is not None and self.baseline not in levels:
            raise ValueError(f"baseline {self.baseline!r} is not one of the outcome_levels {list(levels)}")

    @property
    def categorical(self) -> bool:
        """Whether the outcome is categorical (``outcome_levels`` declared), not 0/1."""
        return bool(self.outcome_levels)

    @property
    def baseline_index(self) -> int:
        """Position of the baseline category in ``outcome_levels`` (0 unless ``baseline`` says otherwise)."""
        return 0 if self.baseline is None else tuple(self.outcome_levels).index(self.baseline)

    def to_dict(self) -> dict[str, Any]:
        """The schema as plain lists and dicts (JSON- and YAML-ready); ``SurveySchema(**d)`` restores it."""
        return {
            "outcome": self.outcome,
            "area": self.area,
            "factors": {k: list(v) for k, v in self.factors.items()},
            "numeric": list(self.numeric),
            "area_factors": {k: list(v) for k, v in self.area_factors.items()},
            "area_numeric": list(self.area_numeric),
            "count": self.count,
            "trials": self.trials,
            "ordered": list(self.ordered),
            "outcome_levels": list(self.outcome_levels),
            "baseline": self.baseline,
            "noncensus": {k: list(v) for k, v in self.noncensus.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SurveySchema:
        """Inverse of :meth:`to_dict`."""
        return cls(
            outcome=d["outcome"],
            area=d["area"],
            factors={k: tuple(v) for k, v in d["factors"].items()},
            numeric=tuple(d.get("numeric", ())),
            area_factors={k: tuple(v) for k, v in d.get("area_factors", {}).items()},
            area_numeric=tuple(d.get("area_numeric", ())),
            count=d.get("count", "N"),
            trials=d.get("trials"),
            ordered=tuple(d.get("ordered", ())),
            outcome_levels=tuple(d.get("outcome_levels", ())),
            baseline=d.get("baseline"),
            noncensus={k: tuple(v) for k, v in d.get("noncensus", {}).items()},
        )

    @property
    def cell_columns(self) -> tuple[str, ...]:
        """Columns that identify one poststratification cell."""
        return tuple(self.factors) + tuple(self.numeric)

    @property
    def area_columns(self) -> tuple[str, ...]:
        """Area-level predictor columns, joined onto survey and table by the area key."""
        return tuple(self.area_factors) + tuple(self.area_numeric)

    def is_ordered(self, column: str) -> bool:
        """Whether ``column``'s levels are ordered: a factor listed in ``ordered``, or a numeric column."""
        return column in self.ordered or self.levels(column) is None

    def levels(self, column: str) -> tuple | None:
        """Declared level order of a categorical column, or None for numeric ones."""
        if column in self.factors:
            return tuple(self.factors[column])
        if column in self.noncensus:
            return tuple(self.noncensus[column])
        if column in self.area_factors:
            return tuple(self.area_factors[column])
        return None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column the schema names: cell columns, then area-level ones."""
        return self.cell_columns + self.area_columns


@dataclass(frozen=True)
class Truth:
    """Known truth of a simulated data set.

    Attributes
    ----------
    area : pandas.Series
        True poststratified value of every area, indexed by area label.
    national : float
        True poststratified national value.
    fixed : dict of str to float
        True intercept (``Intercept``) and coefficients, by coefficient name (``male``,
        ``region[South]``).
    sd : dict of str to float
        True standard deviation of every varying intercept, by formula term (``male:eth``).
    effects : dict of str to array
        True varying intercepts of every term, in the order of the term's levels.
    cells : pandas.DataFrame, optional
        One row per poststratification cell: its cell columns (``state``, ``eth``, ``male``,
        ``age``, ``educ``), its true probability ``p`` and its population count ``n``, from
        which :meth:`by` gives the truth of any grouping; ``None`` where the truth is known
        only by area. With a categorical outcome, a column ``p[<category>]`` per category
        in place of ``p``.
    categories : tuple of str
        A categorical outcome's answers; empty for a 0/1 outcome. ``area`` is then indexed
        by area and ``category``, ``national`` is NaN and ``national_shares`` holds the
        nation's true share of every category; ``fixed``, ``sd`` and ``effects`` are keyed
        ``<category>:<name>`` for every non-baseline category.
    correlation : dict of str to array
        True correlation matrix of every term with correlated coefficients (``state``: the
        intercepts' and the ``male`` slopes'), in the order of the term's coefficients.
    """

    area: pd.Series
    national: float
    fixed: Mapping[str, float] = field(default_factory=dict)
    sd: Mapping[str, float] = field(default_factory=dict)
    effects: Mapping[str, np.ndarray] = field(default_factory=dict)
    cells: pd.DataFrame | None = None
    categories: tuple[str, ...] = ()
    correlation: Mapping[str, np.ndarray] = field(default_factory=dict)

    @property
    def probability_columns(self) -> tuple[str, ...]:
        """The columns of ``cells`` holding true probabilities: ``p``, or ``p[<category>]`` of every category."""
        return tuple(f"p[{c}]" for c in self.categories) if self.categories else ("p",)

    @property
    def national_shares(self) -> pd.Series:
        """The nation's true share of every category (a categorical outcome's truth)."""
        return self.by([])

    def shares(self, column: str, levels: Sequence[str], area: str) -> Truth | None:
        """The true shares of ``column``'s levels in every cell without it, where the cells are extended by it.

        The truth of a non-census factor's own model (party ID in the synthetic non-census
        survey): each census cell's share of every level, ``p[<level>]``, and its count.
        None when the truth's cells do not have ``column``.
        """
        if self.cells is None or column not in self.cells.columns:
            return None
        keys = [c for c in self.cells.columns if c not in (column, "n", *self.probability_columns)]
        counts = self.cells.groupby([*keys, column], observed=True, sort=False)["n"].sum().unstack(column)
        counts = counts.reindex(columns=list(levels)).fillna(0.0)
        total = counts.sum(axis=1)
        cells = counts.index.to_frame(index=False)
        for level in levels:
            # An empty cell (N = 0) weighs nothing; its shares are set even so.
            cells[f"p[{level}]"] = np.where(total > 0, counts[level] / total.where(total > 0, 1.0), 1.0 / len(levels))
        cells["n"] = total.to_numpy()
        shares = Truth(area=pd.Series(dtype=float), national=float("nan"), cells=cells, categories=tuple(levels))
        return dataclasses.replace(shares, area=shares.by([area]))

    def by(self, columns: Sequence[str]) -> pd.Series:
        """The population-weighted true value of every group of ``columns`` (``[]``: the nation).

        Parameters
        ----------
        columns : sequence of str
            Cell columns of the grouping, as in ``poststrat.groupings``.

        Returns
        -------
        pandas.Series
            Named ``truth``, ``sum(n * p) / sum(n)`` over each group's cells, indexed by the
            groups' labels in the poststratifier's order (an index named after the column,
            or a MultiIndex of several), so that ``summary.set_index(columns).join(truth.by(columns))``
            pairs each estimate with its truth; ``by([])`` is one value with index ``[0]``,
            as the national summary's one row. With a categorical outcome, one value per
            group and category: a last index level ``category`` (``by([])``: the category alone).

        Raises
        ------
        ValueError
            When the truth holds no cells, or ``columns`` names a column they lack.
        """
        if self.cells is None:
            raise ValueError("this truth holds no cells (Truth.cells is None): only truth.area and truth.national are known")
        columns = list(columns)
        reserved = {"n", *self.probability_columns}
        missing = [c for c in columns if c not in self.cells.columns or c in reserved]
        if missing:
            cell_columns = [c for c in self.cells.columns if c not in reserved]
            raise ValueError(f"truth.by: column(s) {missing} are not cell columns of the truth {cell_columns}")
        probs = list(self.probability_columns)
        weighted = self.cells[columns].assign(**{p: self.cells["n"] * self.cells[p] for p in probs}, n=self.cells["n"])
        if not columns:
            sums = weighted[[*probs, "n"]].sum().to_frame().T
            labels = pd.DataFrame(index=pd.RangeIndex(1))
        else:
            sums = weighted.groupby(columns, sort=True, observed=True)[[*probs, "n"]].sum()
            # Labels as the poststratifier writes them: category levels as plain objects.
            labels = sums.index.to_frame(index=False)
            for c in columns:
                if isinstance(labels[c].dtype, pd.CategoricalDtype):
                    labels[c] = labels[c].astype(object)
        shares = sums[probs].to_numpy() / sums["n"].to_numpy()[:, None]
        if not self.categories:
            if not columns:
                return pd.Series(shares[:, 0], index=pd.RangeIndex(1), name="truth")
            index = pd.Index(labels[columns[0]]) if len(columns) == 1 else pd.MultiIndex.from_frame(labels)
            return pd.Series(shares[:, 0], index=index, name="truth")
        # Long form, the categories fastest: as the poststratifier's summary of a categorical outcome.
        long = labels.loc[labels.index.repeat(len(self.categories))].reset_index(drop=True)
        long["category"] = list(self.categories) * len(labels)
        index = pd.Index(long["category"]) if not columns else pd.MultiIndex.from_frame(long)
        return pd.Series(shares.ravel(), index=index, name="truth")


@dataclass(frozen=True)
class MRPData:
    """A validated survey, its poststratification table and area predictors.

    ``survey`` and ``poststrat`` already carry the area-level predictor columns,
    joined on ``schema.area``; ``areas`` is the validated area table they came from (one row
    per area), kept so that a saved fit can be poststratified to another table later.
    """

    schema: SurveySchema
    survey: pd.DataFrame
    poststrat: pd.DataFrame
    source: str
    truth: Truth | None = None
    notes: tuple[str, ...] = ()
    areas: pd.DataFrame | None = None

    @property
    def n_respondents(self) -> int:
        """Respondents in the survey: its rows, or the sum of ``schema.trials`` when pre-aggregated."""
        if self.schema.trials is None:
            return len(self.survey)
        return int(self.survey[self.schema.trials].sum())
