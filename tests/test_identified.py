"""The identified parameterisation: exact null directions, the same likelihood, the same prior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpyro import handlers
from numpyro.infer.util import log_density
from scipy.special import gammaln, log_expit
from scipy.stats import gamma, multivariate_normal

from mrp_numpyro.data import load_synthetic
from mrp_numpyro.design import build_design
from mrp_numpyro.design.formula import parse_formula
from mrp_numpyro.design.priors import Priors
from mrp_numpyro.model import build_model, cell_logits
from mrp_numpyro.model.blocks import block_predictor
from mrp_numpyro.model.identified import Identified, identified_basis

FORMULA = "abortion ~ (1 | state) + (1 | eth) + (1 | age) + male + (1 | male:eth) + repvote + factor(region)"


@pytest.fixture(scope="module")
def design():
    return build_design(parse_formula(FORMULA), load_synthetic(3000, seed=5))


@pytest.fixture(scope="module")
def basis(design):
    return identified_basis(design, Priors())


def random_theta(design, rng, n):
    """Draws of the shared parameters with sds away from zero."""
    draws = {"Intercept": rng.normal(size=n), "beta": rng.normal(size=(n, len(design.fixed_names)))}
    for name, size in zip(design.group_names, design.group_sizes):
        draws[f"sd_{name}"] = rng.uniform(0.1, 1.0, size=n)
        draws[f"z_{name}"] = rng.normal(size=(n, size))
    return draws


def theta_vector(draws, design):
    parts = [draws["Intercept"][:, None], draws["beta"]]
    parts += [draws[f"z_{g}"] * draws[f"sd_{g}"][:, None] for g in design.group_names]
    return np.concatenate(parts, axis=1)


def test_basis_splits_the_effects_into_seen_and_unseen_directions(design, basis):
    D = design.design_matrix()
    Q = np.hstack([basis.R, basis.N])
    np.testing.assert_allclose(Q.T @ Q, np.eye(Q.shape[0]), atol=1e-10)
    # Every null direction leaves every cell's linear predictor unchanged...
    assert np.abs(D @ basis.N).max() < 1e-9
    # ...and there are as many as the design's rank deficiency: one shift per group, the
    # area-level predictors against the state intercepts, male:eth's margins against
    # the main effects.
    assert basis.N.shape[1] == D.shape[1] - np.linalg.matrix_rank(D) > 0
    n_groups = len(design.group_names)
    assert basis.N.shape[1] >= n_groups + 4  # 4 = repvote + 3 region dummies, all constant within states


def test_identified_model_sees_the_same_linear_predictor(design, basis):
    draws = random_theta(design, np.random.default_rng(0), 5)
    theta = theta_vector(draws, design)
    eta = cell_logits(draws, design, design.survey)
    np.testing.assert_allclose(design.design_matrix() @ theta.T, eta.T, atol=1e-9)
    with jax.enable_x64(True):
        # Over the survey cells, not the grid of combinations, to compare cell by cell.
        model = build_model(design, Priors(), dtype=np.float64, parameterization="identified", max_grid_ratio=0)
    phi = theta @ basis.R
    with jax.enable_x64(True):
        model_eta = jax.vmap(lambda f: block_predictor(f, model.kwargs["rows"], model.kwargs["index"]))(phi)
    np.testing.assert_allclose(np.asarray(model_eta), eta, atol=1e-9)


@pytest.mark.parametrize("route", ["nullspace", "rows"])
def test_phi_prior_is_the_projected_normal(design, basis, route):
    """The model's log density of phi is Normal(R' m0, R' diag(v) R), through either QR factorisation."""
    with jax.enable_x64(True):
        model = build_model(design, Priors(), dtype=np.float64, parameterization=Identified(prior_route=route))
        rng = np.random.default_rng(1)
        sd = {f"sd_{g}": float(rng.uniform(0.05, 1.5)) for g in design.group_names}
        phi = rng.normal(size=basis.rank)
        tr = handlers.trace(handlers.substitute(handlers.seed(model.fn, 0), {**sd, "phi": jnp.asarray(phi)})).get_trace(
            **model.kwargs
        )
        got = float(tr["phi"]["fn"].log_prob(tr["phi"]["value"]))
    var = basis.prior_variances({g: np.array([sd[f"sd_{g}"]]) for g in design.group_names})[0]
    cov = (basis.R.T * var) @ basis.R
    assert got == pytest.approx(multivariate_normal(basis.R.T @ basis.m0, cov).logpdf(phi), rel=1e-9, abs=1e-8)


def test_projected_normal_has_its_density_by_both_routes_and_draws_with_its_covariance():
    """phi = R' theta' with an AR(1) block in theta': both factorisations give scipy's density
    of Normal(loc, R' Cov(theta') R) (x64), batched; 40,000 draws have that covariance to 5
    standard errors of each entry (sqrt((c_ij^2 + c_ii c_jj) / n) for a normal sample)."""
    from mrp_numpyro.model.projected_normal import ProjectedNormal

    rng = np.random.default_rng(4)
    P, r, rho = 12, 8, 0.6
    Q, _ = np.linalg.qr(rng.normal(size=(P, P)))
    R, N = Q[:, :r], Q[:, r:]
    std = rng.uniform(0.2, 2.0, P)
    std[3:8] = 0.7
    cov_theta = np.diag(std**2)
    cov_theta[3:8, 3:8] = 0.49 * rho ** np.abs(np.subtract.outer(np.arange(5), np.arange(5)))
    cov, loc = R.T @ cov_theta @ R, rng.normal(size=r)
    x = rng.normal(size=(2, 3, r))
    with jax.enable_x64(True):
        args = (jnp.asarray(loc), jnp.asarray(R), jnp.asarray(N), jnp.asarray(std), (("a", 3, 8),), {"a": jnp.asarray(rho)})
        for route in ("nullspace", "rows"):
            got = np.asarray(ProjectedNormal(*args, route=route).log_prob(jnp.asarray(x)))
            np.testing.assert_allclose(got, multivariate_normal(loc, cov).logpdf(x), rtol=1e-10)
        n = 40_000
        draws = np.asarray(ProjectedNormal(*args).sample(jax.random.PRNGKey(0), (n,)))
    se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    assert np.all(np.abs(np.cov(draws.T) - cov) < 5 * se)
    assert np.all(np.abs(draws.mean(0) - loc) < 5 * np.sqrt(np.diag(cov) / n))


def test_prior_precision_projection_equals_the_dense_product():
    """N' P N per draw, summed over the distinct diagonal columns and the AR(1) bands, equals
    the product with P written out as a dense matrix."""
    from mrp_numpyro.model.prior_coordinates import PriorPrecision

    rng = np.random.default_rng(5)
    N = rng.normal(size=(30, 7))
    diagonal = rng.uniform(0.5, 2.0, size=(4, 6))[:, rng.integers(0, 6, 30)]
    band = rng.uniform(-0.4, 0.4, 4)
    prec = PriorPrecision(diagonal, ((band, 10, 18),))
    dense = np.stack([np.diag(d) for d in diagonal])
    for k in range(10, 17):
        dense[:, k, k + 1] = dense[:, k + 1, k] = band
    np.testing.assert_allclose(prec.project(N), np.einsum("pk,npq,ql->nkl", N, dense, N), rtol=1e-12)


def test_recovered_effects_follow_the_prior_exactly(design, basis):
    """theta ~ prior, keep only phi = R' theta, recover: the result is distributed as the prior.

    With 20,000 draws each element's mean is checked to 5 standard errors and its variance
    to 5 standard errors of a normal sample variance (sd * sqrt(2 / n) relative).
    """
    model = build_model(design, Priors(), parameterization="identified")
    rng = np.random.default_rng(2)
    n = 20_000
    sd = {g: np.full(n, s) for g, s in zip(design.group_names, np.linspace(0.2, 0.9, len(design.group_names)))}
    var = basis.prior_variances(sd)
    theta = basis.m0 + rng.normal(size=var.shape) * np.sqrt(var)
    draws = {"phi": theta @ basis.R, **{f"sd_{g}": v for g, v in sd.items()}}
    back = model.effects(draws, jax.random.PRNGKey(3))
    rebuilt = theta_vector(back, design)
    se_mean = np.sqrt(var[0] / n)
    assert np.all(np.abs(rebuilt.mean(0) - basis.m0) < 5 * se_mean)
    rel = rebuilt.var(0) / var[0] - 1
    assert np.all(np.abs(rel) < 5 * np.sqrt(2 / n)), rel
    # The identified part is returned as it came.
    np.testing.assert_allclose(rebuilt @ basis.R, draws["phi"], atol=1e-9)
    # And a recovered draw is not the original one: psi is drawn, not copied.
    assert np.abs(rebuilt - theta).max() > 0.1


def test_unknown_parameterization_is_refused(design):
    with pytest.raises(ValueError, match="unknown parameterization .centred.; the registered ones are"):
        build_model(design, Priors(), parameterization="centred")


def test_identified_model_without_groups_fits():
    """Only fixed effects: nothing to integrate out but the intercept-free directions, if any."""
    import numpyro

    from mrp_numpyro.inference import fit_svi

    data = load_synthetic(1000, seed=2)
    design = build_design(parse_formula("abortion ~ male + repvote"), data)
    model = build_model(design, Priors(), parameterization="identified")
    fit = fit_svi(
        model,
        jax.random.PRNGKey(0),
        guide=numpyro.infer.autoguide.AutoNormal,
        optimizer=numpyro.optim.Adam(0.05),
        num_steps=500,
        num_draws=100,
    )
    assert set(fit.draws) == {"Intercept", "beta"} and np.isfinite(fit.draws["beta"]).all()


GROUP_TERMS = [
    "state",
    "eth",
    "educ",
    "age",
    "region",
    "male:eth",
    "educ:age",
    "educ:eth",
    "state:eth",
    "state:educ",
    "state:age",
    "eth:age",
]
FIXED_TERMS = ["male", "repvote", "factor(region)", "male:repvote", "male:factor(region)"]


@pytest.fixture(scope="module")
def small_data():
    return load_synthetic(1500, seed=7)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    groups=st.lists(st.sampled_from(GROUP_TERMS), min_size=1, max_size=5, unique=True),
    fixed=st.lists(st.sampled_from(FIXED_TERMS), max_size=3, unique=True),
    sd=st.sampled_from([1e-4, 1e-2, 1.0, 1e2]),
    route=st.sampled_from(["nullspace", "rows"]),
)
def test_the_identified_density_is_the_projected_normal_for_any_formula_and_extreme_sds(small_data, groups, fixed, sd, route):
    """Every formula over the CCES factors, every group's sd at 1e-4 to 1e2: the log density is
    finite and equals its independent float64 value (gamma priors, the projected normal of
    phi, the binomial cells), so it is a proper density whatever the sds."""
    formula = "abortion ~ " + " + ".join([*fixed, *(f"(1 | {g})" for g in groups)])
    design = build_design(parse_formula(formula), small_data)
    priors = Priors()
    basis = identified_basis(design, priors)
    rng = np.random.default_rng(len(groups) + 10 * len(fixed))
    sds = {g: sd * float(rng.uniform(0.5, 2.0)) for g in design.group_names}
    var = basis.prior_variances({g: np.array([v]) for g, v in sds.items()})[0]
    # phi where the density has its mass: the identified part of effects drawn from the prior.
    phi = basis.R.T @ (basis.m0 + np.sqrt(var) * rng.normal(size=var.shape))
    with jax.enable_x64(True):
        model = build_model(design, priors, dtype=np.float64, parameterization=Identified(prior_route=route), max_grid_ratio=0)
        params = {**{f"sd_{g}": jnp.asarray(v) for g, v in sds.items()}, "phi": jnp.asarray(phi)}
        got, _ = log_density(model.fn, (), dict(model.kwargs), params)
    # The reference: LU (slogdet, solve) of the covariance itself, not the model's QR factor,
    # and the binomial in logits, which stays finite where a probability rounds to 0 or 1.
    cov, resid = (basis.R.T * var) @ basis.R, phi - basis.R.T @ basis.m0
    _, logdet = np.linalg.slogdet(2 * np.pi * cov)
    log_phi = -0.5 * (logdet + resid @ np.linalg.solve(cov, resid))
    s = design.survey
    eta = design.design_matrix() @ (basis.R @ phi)
    k, n = s.successes, s.trials
    log_y = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1) + k * log_expit(eta) + (n - k) * log_expit(-eta)
    log_sd = sum(gamma(priors.sd_shape, scale=priors.sd_scale).logpdf(v) for v in sds.values())
    assert np.isfinite(float(got))
    # cond(cov) reaches (2.5 / 1e-4)^2 ~ 1e9 at the smallest sds: 1e-16 x 1e9 relative on a solve.
    assert float(got) == pytest.approx(log_sd + log_phi + log_y.sum(), rel=1e-7)


def test_the_basis_is_found_where_lapacks_divide_and_conquer_svd_does_not_converge():
    """A formula hypothesis found: gesdd gave 'SVD did not converge' on its design; the basis falls back to gesvd."""
    design = build_design(
        parse_formula("abortion ~ (1 | eth) + (1 | region) + (1 | age) + (1 | state:eth) + (1 | state)"),
        load_synthetic(1500, seed=7),
    )
    basis = identified_basis(design, Priors())
    D = design.design_matrix()
    assert basis.rank == np.linalg.matrix_rank(D)
    np.testing.assert_allclose(D @ basis.N, 0.0, atol=1e-10)
    np.testing.assert_allclose(basis.R.T @ basis.R, np.eye(basis.rank), atol=1e-10)
