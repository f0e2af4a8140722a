"""lme4/rstanarm-style formulas, parsed with ``formulae`` into a small, frozen model spec.

Supported terms: an intercept (always present; ``0 +`` or ``- 1`` is an error), numeric fixed effects
(``male``), categorical fixed effects (``factor(region)`` or ``C(region)``, treatment-coded
with the schema's first level as baseline), population-level interactions of any of them
(``male:repvote``, ``male:factor(region)``, ``factor(eth):factor(region)``, coded as R's
``model.matrix`` codes them, :func:`~mrp_numpyro.design.cells.build_design`) and varying
intercepts of a factor or of an interaction of factors (``(1 | state)``, ``(1 | male:eth)``),
varying intercepts of one factor under a structured prior, written as a call on the
factor (:mod:`mrp_numpyro.design.structure`): ``(1 | rw1(age))``, ``(1 | rw2(age))`` and
``(1 | ar1(age))`` over an ordered factor, ``(1 | icar(state))`` and ``(1 | bym2(state))``
over areas with an adjacency, and varying slopes of numeric columns as lme4 writes them:
``(1 + male | state)`` with the intercept and slopes correlated, ``(1 + male || state)``
with each independent, ``(0 + male | state)`` a slope alone.

The varying-effect terms are read here, parenthesis by parenthesis, because ``formulae``
splits ``(1 + male | state)`` into one term per coefficient and so loses whether they were
written together (correlated) or apart; each term's inside is then parsed by ``formulae``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import formulae
from formulae.terms.terms import GroupSpecificTerm, Intercept, Term

__all__ = ["FixedTerm", "GroupTerm", "ModelSpec", "parse_formula", "FormulaError", "STRUCTURED_PRIORS", "slope_name"]

_CATEGORICAL_CALLS = ("factor", "C")

#: The structured priors a varying intercept can be given in the formula, ``(1 | rw1(age))``.
STRUCTURED_PRIORS = ("rw1", "rw2", "ar1", "icar", "bym2")


class FormulaError(ValueError):
    """Raised for a formula the package cannot fit, or one naming unknown columns."""


@dataclass(frozen=True)
class FixedTerm:
    """A population-level term: one column, or the interaction (product) of several.

    Attributes
    ----------
    columns : tuple of str
        The term's columns, in formula order (one for a main effect).
    categorical : tuple of bool
        Whether each column was written ``factor(...)``; a column the schema declares
        categorical is dummy-coded either way.
    """

    columns: tuple[str, ...]
    categorical: tuple[bool, ...]

    @property
    def column(self) -> str:
        """The column of a main effect."""
        if len(self.columns) != 1:
            raise ValueError(f"the interaction {self.name} has columns {self.columns}, not one column")
        return self.columns[0]

    @property
    def name(self) -> str:
        """The term's name: its columns joined by ``:``."""
        return ":".join(self.columns)


@dataclass(frozen=True)
class GroupTerm:
    """Varying effects over a factor or an interaction of factors: an intercept, slopes, or both.

    Attributes
    ----------
    columns : tuple of str
        The factor, or the factors of an interaction.
    structure : str
        The prior of its standardised intercepts: ``iid`` (independent normals), or one of
        :data:`STRUCTURED_PRIORS` over a single factor (an intercept-only term).
    slopes : tuple of str
        Numeric columns whose coefficients vary over the factor's levels (``(1 + male | state)``).
    intercept : bool
        Whether the term has a varying intercept (``(0 + male | state)`` has none).
    correlated : bool
        Whether the term's coefficients are correlated (written with ``|``) or independent
        (written with ``||``); a term with one coefficient is independent either way.
    """

    columns: tuple[str, ...]
    structure: str = "iid"
    slopes: tuple[str, ...] = ()
    intercept: bool = True
    correlated: bool = True

    @property
    def name(self) -> str:
        """The term's name: its columns joined by ``:`` (``male:eth``)."""
        return ":".join(self.columns)

    @property
    def coefficients(self) -> tuple[str, ...]:
        """The varying coefficients: ``Intercept`` first when there is one, then the slopes' columns."""
        return (("Intercept",) if self.intercept else ()) + self.slopes

    @property
    def slot_names(self) -> tuple[str, ...]:
        """The name of each coefficient's varying effects: the term's for the intercept, ``<term>__<column>`` for a slope."""
        return tuple(self.name if c == "Intercept" else slope_name(self.name, c) for c in self.coefficients)

    @property
    def covariance(self) -> bool:
        """Whether the term has a correlation matrix: two or more coefficients written with ``|``."""
        return self.correlated and len(self.coefficients) > 1

    @property
    def text(self) -> str:
        """The term as the formula writes it (``(1 | rw1(age))``, ``(1 + male || state)``)."""
        inner = self.name if self.structure == "iid" else f"{self.structure}({self.name})"
        lhs = " + ".join(("1" if self.intercept else "0",) + self.slopes)
        bar = "|" if self.correlated or len(self.coefficients) == 1 else "||"
        return f"({lhs} {bar} {inner})"


def slope_name(term: str, column: str) -> str:
    """The name of the varying slopes of ``column`` over ``term`` (``state__male``), as brms names them."""
    return f"{term}__{column}"


@dataclass(frozen=True)
class ModelSpec:
    """What the formula asks for, independent of any data."""

    formula: str
    response: str
    intercept: bool
    fixed: tuple[FixedTerm, ...]
    groups: tuple[GroupTerm, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        """Predictor columns the formula uses, in first-use order."""
        cols: list[str] = []
        grouped = [c for g in self.groups for c in (*g.columns, *g.slopes)]
        for c in [c for t in self.fixed for c in t.columns] + grouped:
            if c not in cols:
                cols.append(c)
        return tuple(cols)


def _component_column(component: Any, formula: str) -> tuple[str, bool]:
    """Column name of one term component and whether it is forced categorical."""
    call = getattr(component, "call", None)
    if call is None:
        return component.name, False
    if call.callee in _CATEGORICAL_CALLS and len(call.args) == 1 and not call.kwargs:
        return call.args[0].name, True
    if call.callee in STRUCTURED_PRIORS:
        raise FormulaError(
            f"{component.name} in formula {formula!r}: a structured prior is a prior on varying intercepts; "
            f"write it as (1 | {component.name})"
        )
    raise FormulaError(
        f"unsupported function call {component.name!r} in formula {formula!r}; "
        f"only {', '.join(c + '(column)' for c in _CATEGORICAL_CALLS)} are understood. "
        "Compute transformed predictors as columns of the data instead."
    )


def _group_factor(factor: str, formula: str) -> GroupTerm:
    """The factor side of a varying-effect term: its column(s), and a structured prior written as a call on one factor."""
    try:
        (term,) = [t for t in formulae.model_description(f"y ~ (1 | {factor})").terms if isinstance(t, GroupSpecificTerm)]
    except Exception as err:
        raise FormulaError(f"could not parse the grouping factor {factor!r} in formula {formula!r}: {err}") from err
    components = term.factor.components
    calls = [c for c in components if getattr(c, "call", None) is not None and c.call.callee in STRUCTURED_PRIORS]
    if not calls:
        return GroupTerm(tuple(_component_column(c, formula)[0] for c in components))
    call = calls[0].call
    if len(components) > 1:
        raise FormulaError(
            f"the structured prior {calls[0].name} in '(1 | {term.factor})' applies to one factor, not to an "
            f"interaction; write it as its own term (1 | {calls[0].name}) in formula {formula!r}"
        )
    if len(call.args) != 1 or call.kwargs or getattr(call.args[0], "call", None) is not None:
        raise FormulaError(
            f"{calls[0].name} in formula {formula!r}: a structured prior takes one column, as in (1 | {call.callee}(age))"
        )
    return GroupTerm((call.args[0].name,), structure=call.callee)


def _top_level(text: str, separator: str) -> list[str]:
    """``text`` split at every ``separator`` outside parentheses."""
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        depth += (ch == "(") - (ch == ")")
        if depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    parts.append(text[start:])
    return parts


def _bar_term(piece: str) -> tuple[str, str, str] | None:
    """``(lhs, bar, factor)`` of a piece written ``(lhs | factor)`` or ``(lhs || factor)``; None for any other piece."""
    piece = piece.strip()
    if not piece.startswith("("):
        return None
    depth, close = 0, len(piece)
    for i, ch in enumerate(piece):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            close = i
            break
    if close != len(piece) - 1:  # not one parenthesis around the whole piece
        return None
    inner = piece[1:-1]
    for bar in ("||", "|"):
        sides = _top_level(inner, bar)
        if len(sides) == 2:
            return sides[0].strip(), bar, sides[1].strip()
    return None


def _group_term(lhs: str, bar: str, factor: str, formula: str) -> GroupTerm:
    """One varying-effect term ``(lhs | factor)``: its intercept, its numeric slopes and its factor."""
    term = _group_factor(factor, formula)
    text = f"({lhs} {bar} {factor})"
    try:
        desc = formulae.model_description(f"y ~ {lhs}")
    except Exception as err:
        raise FormulaError(f"could not parse the varying coefficients {lhs!r} of {text} in formula {formula!r}: {err}") from err
    intercept, slopes = False, []
    for t in desc.terms:
        if isinstance(t, Intercept):
            intercept = True
            continue
        if not isinstance(t, Term) or len(t.components) != 1:
            raise FormulaError(
                f"{text} in formula {formula!r}: a varying slope is on one numeric column; compute the product "
                f"{t.name} as a column of the data to let it vary"
            )
        column, categorical = _component_column(t.components[0], formula)
        if categorical:
            raise FormulaError(
                f"{text} in formula {formula!r}: varying slopes of a factor ({t.name}) are not supported; a varying "
                "slope is on a numeric column (a 0/1 indicator of one level is one)"
            )
        slopes.append(column)
    if not intercept and not slopes:
        raise FormulaError(f"{text} in formula {formula!r} has no varying coefficients; write (1 | {factor})")
    if slopes and term.structure != "iid":
        raise FormulaError(
            f"{text} in formula {formula!r}: a structured prior is a prior on varying intercepts alone; write "
            f"(1 | {factor}) + (0 + {' + '.join(slopes)} | {term.name})"
        )
    return GroupTerm(term.columns, term.structure, tuple(slopes), intercept, correlated=bar == "|")


def parse_formula(formula: str, columns: Iterable[str] | None = None) -> ModelSpec:
    """Parse an lme4-style formula into a :class:`~mrp_numpyro.design.formula.ModelSpec`.

    Parameters
    ----------
    formula : str
        For example ``"abortion ~ (1 | state) + male + factor(region)"``.
    columns : iterable of str, optional
        Columns available in the data; when given, unknown names are an error that lists them.
    """
    lhs, tilde, rhs = formula.partition("~")
    pieces = [(piece, _bar_term(piece)) for piece in _top_level(rhs, "+")]
    fixed_text = " + ".join(piece.strip() for piece, bar in pieces if bar is None) or "1"
    try:
        desc = formulae.model_description(f"{lhs}{tilde}{fixed_text}" if tilde else formula)
    except Exception as err:  # formulae raises several parser error types
        raise FormulaError(f"could not parse formula {formula!r}: {err}") from err
    if desc.response is None:
        raise FormulaError(f"formula {formula!r} has no response; write it as 'outcome ~ terms'")
    response = desc.response.term.components[0].name
    intercept = False
    fixed: list[FixedTerm] = []
    groups = [_group_term(*bar, formula) for _, bar in pieces if bar is not None]
    for term in desc.terms:
        if isinstance(term, Intercept):
            intercept = True
        elif isinstance(term, GroupSpecificTerm):
            raise FormulaError(
                f"the varying-effect term ({term.expr} | {term.factor}) in formula {formula!r} is inside an expression; "
                "write each (... | group) as a term of its own, joined to the others by +"
            )
        elif isinstance(term, Term):
            parts = [_component_column(c, formula) for c in term.components]
            fixed.append(FixedTerm(tuple(c for c, _ in parts), tuple(k for _, k in parts)))
        else:  # pragma: no cover - formulae may add term kinds
            raise FormulaError(f"unsupported term {term!r} in formula {formula!r}")
    if not intercept:
        raise FormulaError(
            f"formula {formula!r} removes the intercept; the hierarchical logit always has one "
            "(its varying intercepts are deviations from it). Drop the '0 +' or '- 1'."
        )
    names = [n for g in groups for n in g.slot_names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FormulaError(
            f"formula {formula!r} has more than one varying intercept or slope {repeated} (a slope over g is "
            "named g__column); give each one term, e.g. (1 | rw1(age)) instead of (1 | age) + (1 | rw1(age)), "
            "or (1 + male | state) instead of (1 | state) + (1 + male | state)"
        )
    spec = ModelSpec(formula, response, intercept, tuple(fixed), tuple(groups))
    if columns is not None:
        known = set(columns)
        unknown = [c for c in (spec.response, *spec.columns) if c not in known]
        if unknown:
            raise FormulaError(f"formula {formula!r} names unknown column(s) {unknown}; the data have {sorted(known)}")
    return spec
