"""The parameter layout: one order of (Intercept, beta, group effects) for every consumer."""

import jax.numpy as jnp
import numpy as np
import pytest

from mrp_numpyro.data import load_synthetic
from mrp_numpyro.design import build_design
from mrp_numpyro.design.formula import parse_formula
from mrp_numpyro.design.layout import SITES, ParameterLayout, pack

FORMULA = "abortion ~ (1 | state) + (1 | eth) + male + (1 | male:eth) + repvote + factor(region)"


@pytest.fixture(scope="module")
def design():
    return build_design(parse_formula(FORMULA), load_synthetic(2000, seed=1))


def test_slices_follow_the_formula(design):
    layout = design.layout
    assert layout.fixed_names == ("male", "repvote", "region[North Central]", "region[South]", "region[West]")
    assert layout.group_names == ("state", "eth", "male:eth")
    assert layout.group_slices == ((6, 56), (56, 60), (60, 68))
    assert layout.size == 68 == design.design_matrix().shape[1]
    np.testing.assert_array_equal(layout.theta_group(), [-1] * 6 + [0] * 50 + [1] * 4 + [2] * 8)
    assert layout.group("eth").levels == ("White", "Black", "Hispanic", "Other")
    with pytest.raises(KeyError, match="no varying intercept 'age'"):
        layout.group("age")


def test_site_names_come_from_one_place(design):
    layout = design.layout
    assert layout.global_sites == ("Intercept", "beta", "sd_state", "sd_eth", "sd_male:eth")
    assert layout.shared_sites[2:4] == (SITES.sd("state"), SITES.z("state"))
    assert SITES.centred("eth") == "u_eth" and SITES.effect("eth") == "r_eth"


def test_pack_and_unpack_are_inverse_and_match_the_design_matrix(design):
    """theta from named draws reproduces eta = D theta term by term, and unpacks to the same draws."""
    rng = np.random.default_rng(0)
    layout, n = design.layout, 7
    draws = {"Intercept": rng.normal(size=n), "beta": rng.normal(size=(n, layout.n_coefficients))}
    for g in layout.groups:
        draws[SITES.sd(g.name)] = rng.uniform(0.1, 1.0, n)
        draws[SITES.z(g.name)] = rng.normal(size=(n, g.size))
    theta = layout.pack_draws(draws)
    s = design.survey
    eta = draws["Intercept"][:, None] + draws["beta"] @ s.X.T
    for k, g in enumerate(layout.groups):
        eta = eta + (draws[SITES.z(g.name)] * draws[SITES.sd(g.name)][:, None])[:, s.group_index[:, k]]
    np.testing.assert_allclose(theta @ design.design_matrix().T, eta, rtol=1e-12, atol=1e-12)
    back = layout.unpack(theta, {g: draws[SITES.sd(g)] for g in layout.group_names})
    assert list(back) == list(layout.shared_sites)
    for name, value in draws.items():
        np.testing.assert_allclose(back[name], value, rtol=1e-12)


def test_pack_works_on_jax_scalars_as_in_a_model():
    theta = pack(jnp.asarray(0.5), jnp.asarray([1.0, 2.0]), [jnp.asarray([3.0, 4.0, 5.0])])
    assert isinstance(theta, jnp.ndarray)
    np.testing.assert_array_equal(theta, [0.5, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert pack(np.asarray(1.0), None, []).tolist() == [1.0]


def test_term_columns_partition_the_design_matrix():
    layout = ParameterLayout.build(["x"], [("a", ["1", "2"]), ("b", ["u", "v", "w"])])
    assert layout.term_columns() == [[0], [1], [2, 3], [4, 5, 6]]
    D = layout.design_matrix(np.array([[0.5], [-0.5]]), np.array([[1, 2], [0, 0]]))
    np.testing.assert_array_equal(D, [[1, 0.5, 0, 1, 0, 0, 1], [1, -0.5, 1, 0, 1, 0, 0]])
