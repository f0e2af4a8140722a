"""lme4/rstanarm-style formulas, parsed with ``formulae`` into a small, frozen model spec.

Supported terms: an intercept (always present; ``0 +`` or ``- 1`` is an error), numeric fixed effects
(``male``), categorical fixed effects (``factor(region)`` or ``C(region)``, treatment-coded
with the schema's first level as baseline), population-level interactions of any of them
(``male:repvote``, ``male:factor(region)``, ``factor(eth):factor(region)``, coded as R's
``model.matrix`` codes them, :func:`~mrp_numpyro.design.cells.build_design`) and varying
intercepts of a factor or of an interaction of factors (``(1 | state)``, ``(1 | male:eth)``),
and varying intercepts of one factor under a structured prior, written as a call on the
factor (:mod:`mrp_numpyro.design.structure`): ``(1 | rw1(age))``, ``(1 | rw2(age))`` and
``(1 | ar1(age))`` over an ordered factor, ``(1 | icar(state))`` and ``(1 | bym2(state))``
over areas with an adjacency. Varying slopes are rejected with an error that says so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import formulae
from formulae.terms.terms import GroupSpecificTerm, Intercept, Term

__all__ = ["FixedTerm", "GroupTerm", "ModelSpec", "parse_formula", "FormulaError", "STRUCTURED_PRIORS"]

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
    """A varying intercept over a factor or an interaction of factors.

    Attributes
    ----------
    columns : tuple of str
        The factor, or the factors of an interaction.
    structure : str
        The prior of its standardised intercepts: ``iid`` (independent normals), or one of
        :data:`STRUCTURED_PRIORS` over a single factor.
    """

    columns: tuple[str, ...]
    structure: str = "iid"

    @property
    def name(self) -> str:
        """The term's name: its columns joined by ``:`` (``male:eth``)."""
        return ":".join(self.columns)

    @property
    def text(self) -> str:
        """The term as the formula writes it (``(1 | rw1(age))``)."""
        inner = self.name if self.structure == "iid" else f"{self.structure}({self.name})"
        return f"(1 | {inner})"


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
        for c in [c for t in self.fixed for c in t.columns] + [c for g in self.groups for c in g.columns]:
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


def _group_term(term: GroupSpecificTerm, formula: str) -> GroupTerm:
    """A varying intercept: its factor(s), and a structured prior written as a call on one factor."""
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


def parse_formula(formula: str, columns: Iterable[str] | None = None) -> ModelSpec:
    """Parse an lme4-style formula into a :class:`~mrp_numpyro.design.formula.ModelSpec`.

    Parameters
    ----------
    formula : str
        For example ``"abortion ~ (1 | state) + male + factor(region)"``.
    columns : iterable of str, optional
        Columns available in the data; when given, unknown names are an error that lists them.
    """
    try:
        desc = formulae.model_description(formula)
    except Exception as err:  # formulae raises several parser error types
        raise FormulaError(f"could not parse formula {formula!r}: {err}") from err
    if desc.response is None:
        raise FormulaError(f"formula {formula!r} has no response; write it as 'outcome ~ terms'")
    response = desc.response.term.components[0].name
    intercept = False
    fixed: list[FixedTerm] = []
    groups: list[GroupTerm] = []
    for term in desc.terms:
        if isinstance(term, Intercept):
            intercept = True
        elif isinstance(term, GroupSpecificTerm):
            if not isinstance(term.expr, Intercept):
                raise FormulaError(f"varying slopes ({term.expr} | ...) are not supported; use varying intercepts (1 | group)")
            groups.append(_group_term(term, formula))
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
    names = [g.name for g in groups]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise FormulaError(
            f"formula {formula!r} has more than one varying intercept over {repeated}; "
            "give each factor one prior, e.g. (1 | rw1(age)) instead of (1 | age) + (1 | rw1(age))"
        )
    spec = ModelSpec(formula, response, intercept, tuple(fixed), tuple(groups))
    if columns is not None:
        known = set(columns)
        unknown = [c for c in (spec.response, *spec.columns) if c not in known]
        if unknown:
            raise FormulaError(f"formula {formula!r} names unknown column(s) {unknown}; the data have {sorted(known)}")
    return spec
