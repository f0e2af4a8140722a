"""The checks that stop an SVI fit whose numbers have stopped meaning anything."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import Trace_ELBO
from numpyro.infer.autoguide import AutoDiagonalNormal, AutoMultivariateNormal

from mrp_numpyro import compose_config, prepare, run
from mrp_numpyro.app.rundir import INCOMPLETE
from mrp_numpyro.inference import AutoCoupledNormal, FitError, StickingTheLandingELBO
from mrp_numpyro.inference.health import INVERSION_TOL, check_chunk, inversion_error
from mrp_numpyro.inference.schedules import step_size
from mrp_numpyro.inference.svi import optimise

# The case study's formula and four interactions of state and age: about 900 effects.
DEEP = compose_config().model.formula + " + (1 | state:eth) + (1 | state:educ) + (1 | state:age) + (1 | eth:age)"


def _normal_model(d=200):
    def model():
        numpyro.sample("x", dist.Normal(jnp.zeros(d), 1.0).to_event(1))

    return model


def _set_up(guide_cls, d=200):
    guide = guide_cls(_normal_model(d))
    params = numpyro.handlers.trace(numpyro.handlers.seed(guide, 0)).get_trace()
    return guide, {k: v["value"] for k, v in params.items() if v["type"] == "param"}


@pytest.mark.parametrize("guide_cls", [AutoMultivariateNormal, AutoCoupledNormal])
def test_a_sound_factor_inverts_its_draws_and_an_ill_conditioned_one_does_not(guide_cls):
    guide, params = _set_up(guide_cls)
    assert inversion_error(guide, params, jax.random.PRNGKey(0)) < 1e-5
    # A bidiagonal factor with -1.5 below the diagonal: its inverse's entries grow like
    # 1.5^k, to 1e35 at d = 200, far past what float32 resolves.
    d = guide.latent_dim
    bad = 0.1 * (jnp.eye(d) - 1.5 * jnp.eye(d, k=-1))
    error = inversion_error(guide, {**params, "auto_scale_tril": bad}, jax.random.PRNGKey(0))
    assert not error <= INVERSION_TOL  # large, or not even finite
    with pytest.raises(FitError, match="misses its own draws"):
        check_chunk(guide, {**params, "auto_scale_tril": bad}, np.full(10, 3000.0), 500, jax.random.PRNGKey(0))


def test_a_guide_evaluated_without_an_inverse_is_not_checked_for_one():
    guide, params = _set_up(AutoDiagonalNormal)
    assert inversion_error(guide, params, jax.random.PRNGKey(0)) is None
    check_chunk(guide, params, np.full(10, 50.0), 500, jax.random.PRNGKey(0))


def test_an_elbo_above_the_evidence_bound_stops_the_fit():
    guide, params = _set_up(AutoDiagonalNormal)
    # Losses are negative ELBOs: a median ELBO of +1e20, as a broken-down fit reports.
    with pytest.raises(FitError, match=r"after 300 steps: the median ELBO of the last chunk is 1e\+20, above 0"):
        check_chunk(guide, params, np.array([-1e20, -1e20, 5.0]), 300, jax.random.PRNGKey(0))


def test_a_fit_that_breaks_down_stops_at_that_chunk_with_nothing_written(tmp_path):
    """The default guide with sticking-the-landing gradients on about 900 effects: the factor's
    condition number runs past 1e11 by step 200."""
    cfg = compose_config(
        [
            "data.n=10000",
            f"model.formula='{DEEP}'",
            "budget.svi_steps=1500",
            "inference.check_every=100",
            "inference.elbo._target_=mrp_numpyro.inference.StickingTheLandingELBO",
            "progress=false",
        ]
    )
    with pytest.raises(FitError, match=r"SVI stopped after [12]00 steps: the guide's transform, inverted, misses its own draws"):
        run(cfg, tmp_path / "run")
    assert "FitError" in (tmp_path / "run" / INCOMPLETE).read_text()
    assert not (tmp_path / "run" / "estimates_state.csv").exists() and not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.parametrize(
    "elbo, init", [(StickingTheLandingELBO, 0.002), (Trace_ELBO, 0.01)], ids=["STL at a fifth of the step", "default"]
)
def test_the_same_fit_with_a_fifth_of_the_step_size_or_the_standard_elbo_stays_sound(elbo, init):
    """What broke it is STL's noise at full-size steps: at 0.002, or with the standard estimator
    (the default guide's) at 0.01, the same 300 steps keep the guide invertible at every check."""
    problem = prepare(compose_config(["data.n=10000", f"model.formula='{DEEP}'", "progress=false"]))
    optimised = optimise(
        problem.model,
        jax.random.PRNGKey(0),
        guide=lambda fn: AutoCoupledNormal(fn, init_loc_fn=numpyro.infer.init_to_mean, init_scale=0.1),
        optimizer=numpyro.optim.Adam(step_size(init, 2e-4, 1500)),
        elbo=elbo,
        num_steps=300,
        check_every=100,
        plateau_rtol=None,
    )
    assert optimised.plateau.steps == 300
    assert inversion_error(optimised.guide, optimised.params, jax.random.PRNGKey(1)) < 1e-3
