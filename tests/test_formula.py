import pytest

from mrp_numpyro.design.formula import FixedTerm, FormulaError, GroupTerm, parse_formula

DEFAULT = (
    "abortion ~ (1 | state) + (1 | eth) + (1 | educ) + (1 | age) + male + (1 | male:eth)"
    " + (1 | educ:age) + (1 | educ:eth) + repvote + factor(region)"
)


def test_default_formula():
    spec = parse_formula(DEFAULT)
    assert spec.response == "abortion"
    assert spec.intercept
    assert spec.fixed == (FixedTerm(("male",), (False,)), FixedTerm(("repvote",), (False,)), FixedTerm(("region",), (True,)))
    assert [g.name for g in spec.groups] == ["state", "eth", "educ", "age", "male:eth", "educ:age", "educ:eth"]
    assert spec.groups[4] == GroupTerm(("male", "eth"))
    assert set(spec.columns) == {"state", "eth", "educ", "age", "male", "repvote", "region"}


def test_original_rstanarm_formula_without_age():
    spec = parse_formula(DEFAULT.replace("(1 | age) + ", ""))
    assert "age" not in [g.name for g in spec.groups]
    assert "educ:age" in [g.name for g in spec.groups]


def test_c_is_categorical():
    spec = parse_formula("y ~ C(region) + (1 | state)")
    assert spec.fixed == (FixedTerm(("region",), (True,)),)


@pytest.mark.parametrize("formula", ["y ~ 0 + male + (1 | state)", "y ~ male - 1 + (1 | state)"])
def test_removing_the_intercept_is_an_error(formula):
    with pytest.raises(FormulaError, match="removes the intercept"):
        parse_formula(formula)


@pytest.mark.parametrize(
    "formula, message",
    [
        ("y ~ (factor(region) | state)", "varying slopes of a factor"),
        ("y ~ log(x)", "unsupported function call"),
        ("y ~ (1 | ", "could not parse"),
    ],
)
def test_unsupported_formulas_are_rejected(formula, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(formula)


def test_unknown_column_is_named():
    with pytest.raises(FormulaError, match=r"unknown column\(s\) \['ethnicity'\]"):
        parse_formula("abortion ~ (1 | ethnicity)", columns=["abortion", "eth", "state"])
