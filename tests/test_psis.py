"""PSIS on cases with a known answer, and on fitted guides."""

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoNormal

from mrp_numpyro.inference.psis import guide_draws_and_log_ratios, importance_resample, psis, verdict


@pytest.mark.parametrize("s", [1.2, 1.5, 2.0])
def test_khat_of_normal_proposal_for_wider_normal(s):
    """Proposal N(0, 1), target N(0, s^2): the ratios have a Pareto tail with k = 1 - 1/s^2.

    With the sign of the log ratios flipped the estimate would be negative, so this also
    checks the sign convention. The tolerance covers the estimator's spread at 20,000 draws
    (a few hundredths) plus its known small bias at moderate k.
    """
    x = np.random.default_rng(2).normal(size=20_000)
    log_ratios = -0.5 * (x / s) ** 2 - np.log(s) + 0.5 * x**2
    result = psis(log_ratios)
    assert result.khat == pytest.approx(1 - 1 / s**2, abs=0.1)


def test_exact_proposal_has_low_khat_and_full_ess():
    res = psis(np.zeros(1000) + np.random.default_rng(0).normal(scale=1e-6, size=1000))
    assert res.khat < 0.5
    assert res.ess == pytest.approx(1000, rel=1e-3)
    assert np.logaddexp.reduce(res.log_weights) == pytest.approx(0.0, abs=1e-12)


def test_resampling_moves_a_narrow_proposal_toward_the_target():
    # Proposal N(0, 1), target N(0.5, 1): the weighted mean of x is 0.5.
    rng = np.random.default_rng(1)
    x = rng.normal(size=40_000)
    log_ratios = -0.5 * (x - 0.5) ** 2 + 0.5 * x**2
    res = psis(log_ratios)
    assert res.khat < 0.7
    out, _ = importance_resample({"x": x}, res.log_weights, rng)
    # Standard error of the resampled mean is about 1/sqrt(ESS) ~ 0.006.
    assert out["x"].mean() == pytest.approx(0.5, abs=0.05)


def test_verdicts():
    assert verdict(0.3)["status"] == "pass"
    assert verdict(0.8)["status"] == "warn"
    assert verdict(1.8)["status"] == "fail" and "nuts" in verdict(1.8)["message"]


def test_log_ratios_of_a_fitted_guide_on_a_conjugate_model():
    """Normal mean with known variance: the posterior is normal, so a fitted AutoNormal is
    (nearly) exact, and the log ratios are nearly constant: k-hat is small."""
    y = np.random.default_rng(3).normal(1.0, 1.0, size=50)

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("n", 50):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    guide = AutoNormal(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    result = svi.run(jax.random.PRNGKey(0), 3000, y=y, progress_bar=False)
    draws, log_ratios = guide_draws_and_log_ratios(model, guide, result.params, {"y": y}, jax.random.PRNGKey(1), 2000, ["mu"], chunk_size=512)
    assert draws["mu"].shape == (2000,)
    post_sd = 1 / np.sqrt(1 / 100 + 50)
    assert draws["mu"].std() == pytest.approx(post_sd, rel=0.15)
    assert psis(log_ratios).khat < 0.5
