"""Partial centring: weights from the data, and the same posterior in other coordinates."""

import jax
import numpy as np
import pytest
from numpyro.infer.util import log_density

from mrp_numpyro.centring import centring_weights
from mrp_numpyro.data import load_synthetic
from mrp_numpyro.design import build_design
from mrp_numpyro.formula import parse_formula
from mrp_numpyro.model import build_model, partial_site_name, site_names
from mrp_numpyro.priors import Priors

FORMULA = "abortion ~ (1 | state) + (1 | eth) + (1 | age) + male + (1 | male:eth) + repvote"


@pytest.fixture(scope="module")
def design():
    return build_design(parse_formula(FORMULA), load_synthetic(5000, seed=2))


def test_weights_grow_with_the_data_and_the_sd(design):
    sd = {g: 0.3 for g in design.group_names}
    w = centring_weights(design, sd)
    assert all(((c >= 0) & (c < 1)).all() for c in w)
    s = design.survey
    g = design.group_names.index("state")
    n = np.bincount(s.group_index[:, g], weights=s.trials, minlength=design.group_sizes[g])
    # More respondents in a level, more centred; a larger sd, more centred everywhere.
    order = np.argsort(n)
    assert np.all(np.diff(w[g][order]) >= 0)
    wider = centring_weights(design, {k: 0.6 for k in sd})
    assert all((b >= a).all() and (b > a).any() for a, b in zip(w, wider))


def test_weights_reject_missing_or_bad_sds(design):
    with pytest.raises(ValueError, match="no standard deviation"):
        centring_weights(design, {})
    with pytest.raises(ValueError, match="must be positive"):
        centring_weights(design, {g: 0.0 for g in design.group_names})


def test_partial_model_is_the_noncentred_posterior_in_other_coordinates(design):
    """log p(u, sd | y) = log p(z, sd | y) - sum_j c_j log sd, for z = sd^-c u (the Jacobian)."""
    rng = np.random.default_rng(0)
    sd_guess = {g: float(v) for g, v in zip(design.group_names, rng.uniform(0.1, 0.8, len(design.group_names)))}
    with jax.enable_x64(True):
        nc = build_model(design, Priors(), dtype=np.float64)
        pc = build_model(design, Priors(), dtype=np.float64, parameterization="partial", sd_guess=sd_guess)
        weights = centring_weights(design, sd_guess)
        for _ in range(3):
            params = {"Intercept": rng.normal(), "beta": rng.normal(size=len(design.fixed_names))}
            partial_params = dict(params)
            jacobian = 0.0
            for name, size, c in zip(design.group_names, design.group_sizes, weights):
                sd_name, z_name = site_names(name)
                sd, z = rng.uniform(0.05, 1.0), rng.normal(size=size)
                params[sd_name] = partial_params[sd_name] = sd
                params[z_name] = z
                partial_params[partial_site_name(name)] = sd**c * z
                jacobian += np.sum(c) * np.log(sd)
            lp_nc, _ = log_density(nc.fn, (), dict(nc.kwargs), params)
            lp_pc, _ = log_density(pc.fn, (), dict(pc.kwargs), partial_params)
            assert float(lp_pc) == pytest.approx(float(lp_nc) - jacobian, rel=1e-10)
            # And the effects the outputs use come back as the non-centred z.
            back = pc.effects({k: np.asarray(v)[None] for k, v in partial_params.items()}, jax.random.PRNGKey(0))
            for name in design.group_names:
                np.testing.assert_allclose(back[site_names(name)[1]][0], params[site_names(name)[1]], rtol=1e-12)


def test_partial_needs_the_pilot_sds(design):
    with pytest.raises(ValueError, match="sd_guess"):
        build_model(design, Priors(), parameterization="partial")
