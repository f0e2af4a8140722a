"""PSIS on cases with a known answer, and on fitted guides."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
import pytest
from numpyro.infer import SVI, Trace_ELBO
from numpyro.infer.autoguide import AutoDiagonalNormal, AutoLowRankMultivariateNormal, AutoMultivariateNormal, AutoNormal
from scipy import stats

from mrp_numpyro.diagnostics import VerdictStatus, importance_resample, psis, verdict
from mrp_numpyro.inference.guides import AutoCoupledNormal
from mrp_numpyro.inference.importance import guide_draws_and_log_ratios


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
    assert verdict(0.3).status is VerdictStatus.PASS and verdict(0.3).passed
    assert verdict(0.8).status is VerdictStatus.WARN and not verdict(0.8).passed
    judged = verdict(1.8)
    assert judged.status is VerdictStatus.FAIL and judged.status == "fail" and "NUTS" in judged.message
    assert judged.khat == 1.8


@pytest.mark.parametrize("guide_cls", [AutoNormal, AutoDiagonalNormal])
def test_log_ratios_of_a_fitted_guide_on_a_conjugate_model(guide_cls):
    """Normal mean with known variance: the posterior is normal, so a fitted normal guide is
    (nearly) exact, and the log ratios are nearly constant: k-hat is small. AutoNormal runs
    seeded once per draw, AutoDiagonalNormal is drawn in one call per chunk."""
    y = np.random.default_rng(3).normal(1.0, 1.0, size=50)

    def model(y=None):
        mu = numpyro.sample("mu", dist.Normal(0.0, 10.0))
        with numpyro.plate("n", 50):
            numpyro.sample("y", dist.Normal(mu, 1.0), obs=y)

    guide = guide_cls(model)
    svi = SVI(model, guide, numpyro.optim.Adam(0.05), Trace_ELBO())
    result = svi.run(jax.random.PRNGKey(0), 3000, y=y, progress_bar=False)
    draws, log_ratios = guide_draws_and_log_ratios(
        model, guide, result.params, {"y": y}, jax.random.PRNGKey(1), 2000, ["mu"], chunk_size=512
    )
    assert draws["mu"].shape == (2000,)
    post_sd = 1 / np.sqrt(1 / 100 + 50)
    assert draws["mu"].std() == pytest.approx(post_sd, rel=0.15)
    assert psis(log_ratios).khat < 0.5


def _scale_model(y=None):
    mu = numpyro.sample("mu", dist.Normal(0.0, 2.0))
    sd = numpyro.sample("sd", dist.Gamma(2.0, 2.0))
    with numpyro.plate("n", 30):
        numpyro.sample("y", dist.Normal(mu, sd), obs=y)


@pytest.mark.parametrize(
    "guide_cls",
    [AutoDiagonalNormal, AutoMultivariateNormal, AutoLowRankMultivariateNormal, AutoCoupledNormal, AutoNormal],
)
def test_log_ratios_are_log_p_minus_log_q_of_each_draw(guide_cls):
    """Closed-form guides are drawn in one call and evaluated at the draws; any other guide
    (AutoNormal here) is run seeded once per draw. Either way each ratio must be the model's
    log density minus the guide's density of the constrained draw, Jacobian included."""
    y = np.random.default_rng(4).normal(0.5, 1.5, size=30)
    guide = guide_cls(_scale_model)
    svi = SVI(_scale_model, guide, numpyro.optim.Adam(0.02), Trace_ELBO())
    # A short fit: parameters away from their initial values, guide not exact.
    params = svi.run(jax.random.PRNGKey(0), 300, y=y, progress_bar=False).params
    draws, log_ratios = guide_draws_and_log_ratios(
        _scale_model, guide, params, {"y": y}, jax.random.PRNGKey(1), 700, ["mu", "sd"], chunk_size=256
    )
    mu, sd = np.asarray(draws["mu"], np.float64), np.asarray(draws["sd"], np.float64)
    assert mu.shape == sd.shape == (700,) and np.all(sd > 0) and len(np.unique(mu)) == 700
    log_p = (
        stats.norm.logpdf(mu, 0.0, 2.0)
        + stats.gamma.logpdf(sd, 2.0, scale=0.5)
        + stats.norm.logpdf(y[None, :], mu[:, None], sd[:, None]).sum(axis=1)
    )
    if isinstance(guide, AutoNormal):
        log_q_u = stats.norm.logpdf(mu, params["mu_auto_loc"], params["mu_auto_scale"]) + stats.norm.logpdf(
            np.log(sd), params["sd_auto_loc"], params["sd_auto_scale"]
        )
    else:
        # The guide's own density of the unconstrained vector (mu, log sd), in its site order.
        u = jnp.asarray(np.stack([mu, np.log(sd)], axis=1), jnp.float32)
        log_q_u = np.asarray(guide.get_posterior(params).log_prob(u), np.float64)
        # AutoDiagonalNormal's posterior is a batch of normals, not one vector-valued event.
        log_q_u = log_q_u.sum(axis=-1) if log_q_u.ndim == 2 else log_q_u
    # q of sd = q of log sd times |d log sd / d sd| = 1 / sd.
    expected = log_p - (log_q_u - np.log(sd))
    np.testing.assert_allclose(log_ratios, expected, rtol=1e-4, atol=1e-3)


class TestKhatSpread:
    """The bootstrap sd of k-hat against the spread of k-hat over independent replicates."""

    @staticmethod
    def _ratios(rng, k, n):
        # Importance ratios U ** -k have an exact generalised Pareto tail of shape k.
        return -k * np.log(rng.uniform(size=n))

    @pytest.mark.parametrize("k", [0.4, 0.7])
    def test_matches_the_spread_over_replicates(self, k):
        from mrp_numpyro.diagnostics.pareto import khat_spread

        rng = np.random.default_rng(11)
        n = 4000
        replicates = np.array([psis(self._ratios(rng, k, n)).khat for _ in range(300)])
        boot = np.array([khat_spread(self._ratios(rng, k, n), rng, n_boot=200) for _ in range(12)])
        # The replicate sd is known to about 1/sqrt(2 * 300) = 4 %, the mean of 12 bootstrap
        # sds (each within about 15 % of its mean) to about 5 %: 25 % is over 3 combined errors.
        assert boot.mean() == pytest.approx(replicates.std(ddof=1), rel=0.25)

    def test_verdict_reports_it_and_flags_a_borderline_check(self):
        from mrp_numpyro.diagnostics.verdicts import verdict

        near = verdict(0.68, 0.05)
        assert near.status is VerdictStatus.PASS and near.borderline and "within two sd of the 0.7 threshold" in near.message
        assert verdict(1.05, 0.05).status is VerdictStatus.FAIL and "of the 1.0 threshold" in verdict(1.05, 0.05).message
        far = verdict(0.2, 0.05)
        assert far.status is VerdictStatus.PASS and not far.borderline and "sd of k-hat is 0.05" in far.message
        assert verdict(0.68).message == verdict(0.68, float("nan")).message and not verdict(0.68).borderline
