"""The sticking-the-landing ELBO, the scale-coupled guide and the step-size schedule."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from mrp_numpyro.inference import AutoCoupledNormal, StickingTheLandingELBO
from mrp_numpyro.inference.guides import ScaleCoupling, square_scaled_unit_lower_cholesky
from mrp_numpyro.inference.schedules import step_size

Y = jnp.array([0.3, -1.2, 0.8, 2.0, 0.1])


def normal_mean(y=Y):
    mu = numpyro.sample("mu", dist.Normal(0.0, 1.0))
    with numpyro.plate("obs", y.shape[0]):
        numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)


def exact_posterior_params():
    """AutoNormal parameters equal to the conjugate posterior N(sum y / (n + 1), 1 / (n + 1))."""
    guide = AutoNormal(normal_mean)
    svi = SVI(normal_mean, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
    params = svi.get_params(svi.init(jax.random.PRNGKey(0)))
    n = Y.shape[0]
    params["mu_auto_loc"] = jnp.asarray(float(Y.sum()) / (n + 1))
    params["mu_auto_scale"] = jnp.asarray(1.0 / np.sqrt(n + 1))
    return guide, params


def test_stl_has_the_elbo_value_and_no_gradient_at_the_exact_posterior():
    guide, params = exact_posterior_params()
    stl, plain = StickingTheLandingELBO(), Trace_ELBO()
    for seed in range(5):
        key = jax.random.PRNGKey(seed)
        assert float(stl.loss(key, params, normal_mean, guide)) == pytest.approx(
            float(plain.loss(key, params, normal_mean, guide)), rel=1e-5
        )
        g_stl = jax.grad(lambda p, key=key: stl.loss(key, p, normal_mean, guide))(params)
        g_plain = jax.grad(lambda p, key=key: plain.loss(key, p, normal_mean, guide))(params)
        # q equals the posterior, so log p - log q is constant in the draw: STL's gradient
        # vanishes; the standard estimator's score term leaves noise.
        assert max(abs(float(v)) for v in g_stl.values()) < 1e-4
        assert max(abs(float(v)) for v in g_plain.values()) > 1e-2


def test_scale_coupling_inverts_and_has_the_right_jacobian():
    rng = np.random.default_rng(0)
    d = 5
    loc = jnp.asarray(rng.normal(size=d))
    idx_u, idx_c = np.array([0, 3]), np.array([1, 2, 4])
    gamma = jnp.asarray(rng.normal(size=(3, 2)))
    t = ScaleCoupling(loc, gamma, idx_c, idx_u)
    x = jnp.asarray(rng.normal(size=d))
    y = t(x)
    np.testing.assert_allclose(t.inv(y), x, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[idx_u], x[idx_u])
    _, logdet = jnp.linalg.slogdet(jax.jacfwd(t)(x))
    assert float(t.log_abs_det_jacobian(x, y)) == pytest.approx(float(logdet), rel=1e-5)


def hierarchical(y=Y):
    sd = numpyro.sample("sd", dist.Gamma(2.0, 2.0))
    with numpyro.plate("groups", y.shape[0]):
        a = numpyro.sample("a", dist.Normal(0.0, sd))
        numpyro.sample("y", dist.Normal(a, 0.5), obs=y)


def test_square_lower_cholesky_is_numpyros_map_on_a_square():
    """The coupled guide's scale factor: numpyro's scaled unit lower Cholesky map, its inputs
    laid out in a square instead of a vector; the upper triangle is ignored and gets no gradient."""
    from numpyro.distributions import constraints
    from numpyro.distributions.transforms import biject_to

    rng = np.random.default_rng(0)
    d = 6
    L = biject_to(constraints.scaled_unit_lower_cholesky)(jnp.asarray(rng.normal(size=d * (d + 1) // 2)))
    square = biject_to(square_scaled_unit_lower_cholesky)
    x = square.inv(L)
    np.testing.assert_allclose(square(x), L, rtol=1e-5, atol=1e-6)
    assert square_scaled_unit_lower_cholesky(L).all()
    upper = jnp.triu(jnp.asarray(rng.normal(size=(d, d)), x.dtype), 1)
    np.testing.assert_allclose(square(x + upper), L, rtol=1e-5, atol=1e-6)
    grad = jax.grad(lambda v: jnp.sum(square(v) ** 2))(x)
    assert np.all(np.triu(np.asarray(grad), 1) == 0) and np.all(np.asarray(grad)[np.tril_indices(d)] != 0)


def test_coupled_guide_starts_as_a_full_rank_normal_and_learns_the_coupling():
    guide = AutoCoupledNormal(hierarchical, init_scale=0.1)
    svi = SVI(hierarchical, guide, numpyro.optim.Adam(step_size(0.02, 1e-3, 3000)), StickingTheLandingELBO())
    state = svi.init(jax.random.PRNGKey(0))
    params = svi.get_params(state)
    # The positive site (sd) is the scale coordinate, the effects are coupled to it.
    assert list(guide._idx_u) == [0] and list(guide._idx_c) == [1, 2, 3, 4, 5]
    post = guide.get_posterior(params)
    x = post.sample(jax.random.PRNGKey(1), (7,))
    mvn = dist.MultivariateNormal(params["auto_loc"], scale_tril=params["auto_scale_tril"])
    np.testing.assert_allclose(post.log_prob(x), mvn.log_prob(x), rtol=1e-5)
    fitted = svi.run(jax.random.PRNGKey(2), 3000, progress_bar=False, init_state=state)
    gamma = np.asarray(fitted.params["auto_gamma"])
    # The group effects spread with the group sd: the learned log-scale slopes are positive.
    assert np.all(np.isfinite(gamma)) and gamma.mean() > 0.1


def test_step_size_schedule():
    assert step_size(0.01) == 0.01
    f = step_size(0.01, 1e-4, 100)
    assert float(f(0)) == pytest.approx(0.01)
    assert float(f(50)) == pytest.approx(1e-3)
    assert float(f(100)) == pytest.approx(1e-4) and float(f(1000)) == pytest.approx(1e-4)
    with pytest.raises(ValueError, match="positive"):
        step_size(0.0)
    with pytest.raises(ValueError, match="final > 0 and num_steps"):
        step_size(0.01, 1e-4, None)
