"""Partial centring: weights from the data and the sds, and the same posterior in other coordinates."""

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density

from mrp_numpyro.data import load_synthetic
from mrp_numpyro.design import build_design
from mrp_numpyro.design.formula import parse_formula
from mrp_numpyro.design.layout import SITES
from mrp_numpyro.design.priors import Priors
from mrp_numpyro.model import build_model
from mrp_numpyro.model.centring import centring_for, centring_weights

FORMULA = "abortion ~ (1 | state) + (1 | eth) + (1 | age) + male + (1 | male:eth) + repvote"


@pytest.fixture(scope="module")
def design():
    return build_design(parse_formula(FORMULA), load_synthetic(5000, seed=2))


def _sds(design, value):
    return [np.float64(value)] * len(design.group_names)


def test_weights_grow_with_the_data_and_the_sd(design):
    sd = {g: 0.3 for g in design.group_names}
    w = centring_weights(_sds(design, 0.3), centring_for(design, sd))
    assert all(((c >= 0) & (c < 1)).all() for c in w)
    s = design.survey
    g = design.group_names.index("state")
    n = np.bincount(s.group_index[:, g], weights=s.trials, minlength=design.group_sizes[g])
    # More respondents in a level, more centred; a larger pilot sd, more centred everywhere.
    order = np.argsort(n)
    assert np.all(np.diff(w[g][order]) >= 0)
    wider = centring_weights(_sds(design, 0.3), centring_for(design, {k: 0.6 for k in sd}))
    assert all((b >= a).all() and (b > a).any() for a, b in zip(w, wider))


def test_nested_interactions_are_found(design):
    centring = centring_for(design, {g: 0.3 for g in design.group_names})
    names = design.group_names
    assert [(names[g], names[h]) for g, h, _ in centring.nested] == [("eth", "male:eth")]
    _, _, member = centring.nested[0]
    # Each occupied male:eth level lies in exactly one ethnicity, the one its cells have.
    s = design.survey
    e, me = names.index("eth"), names.index("male:eth")
    for level in np.unique(s.group_index[:, me]):
        assert member[level].sum() == 1
        assert set(s.group_index[s.group_index[:, me] == level, e]) == {int(np.argmax(member[level]))}


def test_a_large_interaction_sd_leaves_the_main_effect_non_centred(design):
    """The main effect's weights fall as its nested interaction's current sd grows; nothing else moves."""
    centring = centring_for(design, {g: 0.3 for g in design.group_names})
    e, me = design.group_names.index("eth"), design.group_names.index("male:eth")
    weights = []
    for sd_me in (1e-4, 0.1, 0.3, 1.0, 3.0):
        sds = _sds(design, 0.3)
        sds[me] = np.float64(sd_me)
        weights.append(centring_weights(sds, centring))
    eth = np.array([w[e] for w in weights])
    assert np.all(np.diff(eth, axis=0) < 0)
    # With the interaction's sd at 3, each nested level says at most 1 / (0 + 3^2) about its
    # main effect: I_j <= (number of nested levels) / 9.
    _, _, member = centring.nested[0]
    bound = member.sum(axis=0) / 9.0 * centring.scale[e] ** 2
    assert np.all(eth[-1] <= bound / (1 + bound))
    # A vanishing interaction sd gives the weights of a group with nothing nested in it.
    t = centring.info[e] * centring.scale[e] ** 2
    np.testing.assert_allclose(eth[0], t / (1 + t), rtol=1e-6)
    for g in range(len(design.group_names)):
        if g != e:
            for w in weights[1:]:
                np.testing.assert_array_equal(w[g], weights[0][g])


def test_numpy_and_jax_weights_agree(design):
    centring = centring_for(design, {g: 0.3 for g in design.group_names})
    sds = np.random.default_rng(1).uniform(0.05, 1.0, size=(7, len(design.group_names)))
    by_numpy = centring_weights(list(sds.T), centring)
    with jax.enable_x64(True):
        by_jax = centring_weights([jax.numpy.asarray(col) for col in sds.T], centring)
        for a, b in zip(by_numpy, by_jax):
            np.testing.assert_allclose(np.broadcast_to(a, np.shape(b)), np.asarray(b), rtol=1e-12)


def test_weights_reject_missing_or_bad_sds(design):
    with pytest.raises(ValueError, match="no standard deviation"):
        centring_for(design, {})
    with pytest.raises(ValueError, match="must be positive"):
        centring_for(design, {g: 0.0 for g in design.group_names})


def test_partial_model_is_the_noncentred_posterior_in_other_coordinates(design):
    """log p(u, sd | y) = log p(z, sd | y) - sum_j c_j(sd) log sd_g, for z = sd^-c u (the Jacobian)."""
    rng = np.random.default_rng(0)
    sd_guess = {g: float(v) for g, v in zip(design.group_names, rng.uniform(0.1, 0.8, len(design.group_names)))}
    with jax.enable_x64(True):
        nc = build_model(design, Priors(), dtype=np.float64)
        pc = build_model(design, Priors(), dtype=np.float64, parameterization="partial", sd_guess=sd_guess)
        centring = centring_for(design, sd_guess)
        for _ in range(3):
            params = {"Intercept": rng.normal(), "beta": rng.normal(size=len(design.fixed_names))}
            partial_params = dict(params)
            sds = rng.uniform(0.05, 1.0, size=len(design.group_names))
            # The weights at this point's sds: they move with the interactions' sds.
            weights = centring_weights(list(sds), centring)
            jacobian = 0.0
            for name, size, sd, c in zip(design.group_names, design.group_sizes, sds, weights):
                sd_name, z_name = SITES.sd(name), SITES.z(name)
                z = rng.normal(size=size)
                params[sd_name] = partial_params[sd_name] = sd
                params[z_name] = z
                partial_params[SITES.centred(name)] = sd**c * z
                jacobian += np.sum(c) * np.log(sd)
            lp_nc, _ = log_density(nc.fn, (), dict(nc.kwargs), params)
            lp_pc, _ = log_density(pc.fn, (), dict(pc.kwargs), partial_params)
            assert float(lp_pc) == pytest.approx(float(lp_nc) - jacobian, rel=1e-10)
            # And the effects the outputs use come back as the non-centred z.
            back = pc.effects({k: np.asarray(v)[None] for k, v in partial_params.items()}, jax.random.PRNGKey(0))
            for name in design.group_names:
                np.testing.assert_allclose(back[SITES.z(name)][0], params[SITES.z(name)], rtol=1e-12)


def test_partial_needs_the_pilot_sds(design):
    with pytest.raises(ValueError, match="sd_guess"):
        build_model(design, Priors(), parameterization="partial")
