"""Varying slopes: ``(1 + x | g)`` correlated under decov or LKJ, ``(1 + x || g)`` independent."""

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy import integrate
from scipy.special import expit, logit
from scipy.stats import beta as beta_dist
from scipy.stats import binom, gamma, norm

from mrp_numpyro.data import DataError, load_synthetic
from mrp_numpyro.data.synthetic import TRUE_SLOPE_COR, TRUE_SLOPE_SD
from mrp_numpyro.design import build_design
from mrp_numpyro.design.formula import FormulaError, GroupTerm, parse_formula
from mrp_numpyro.design.priors import Priors, decov_sd_log_density
from mrp_numpyro.design.sites import SITES
from mrp_numpyro.model import build_model, cell_logits
from mrp_numpyro.model.blocks import cell_blocks
from mrp_numpyro.model.centring import centring_for, centring_weights
from mrp_numpyro.model.predict import cell_logits_by_cell

CORRELATED = "abortion ~ male + repvote + (1 + male | state) + (1 | eth)"
INDEPENDENT = "abortion ~ male + repvote + (1 + male || state) + (1 | eth)"


@pytest.fixture(scope="module")
def data():
    return load_synthetic(2000, seed=3, slopes=True)


@pytest.mark.parametrize(
    ("formula", "slots", "text", "covariance"),
    [
        ("y ~ (1 + x | g)", ("g", "g__x"), "(1 + x | g)", True),
        ("y ~ (x | g)", ("g", "g__x"), "(1 + x | g)", True),
        ("y ~ (1 + x || g)", ("g", "g__x"), "(1 + x || g)", False),
        ("y ~ (0 + x | g)", ("g__x",), "(0 + x | g)", False),
        ("y ~ (1 + x + w | g:h)", ("g:h", "g:h__x", "g:h__w"), "(1 + x + w | g:h)", True),
    ],
)
def test_formulas_with_slopes_are_read_term_by_term(formula, slots, text, covariance):
    (term,) = parse_formula(formula).groups
    assert term.slot_names == slots and term.text == text and term.covariance == covariance
    assert parse_formula(f"y ~ {term.text}").groups == (term,)


def test_slopes_keep_the_other_terms():
    spec = parse_formula("y ~ male + (1 | state) + (1 + male || eth) + factor(region)")
    assert [t.name for t in spec.fixed] == ["male", "region"]
    assert spec.groups == (GroupTerm(("state",)), GroupTerm(("eth",), slopes=("male",), correlated=False))


@pytest.mark.parametrize(
    ("formula", "message"),
    [
        ("y ~ (1 + factor(f) | g)", "varying slopes of a factor"),
        ("y ~ (1 + x:w | g)", "one numeric column"),
        ("y ~ (0 | g)", "no varying coefficients"),
        ("y ~ (1 + x | rw1(age))", r"structured prior is a prior on varying intercepts alone.*\(0 \+ x \| age\)"),
        ("y ~ (1 | g) + (1 + x | g)", r"more than one varying intercept or slope \['g'\]"),
    ],
)
def test_bad_slope_formulas_say_what_is_supported(formula, message):
    with pytest.raises(FormulaError, match=message):
        parse_formula(formula)


def test_slopes_on_factors_or_on_columns_constant_within_the_group_are_refused(data):
    with pytest.raises(DataError, match=r"'repvote' takes one value within every level of state"):
        build_design(parse_formula("abortion ~ repvote + (1 + repvote | state)"), data)
    with pytest.raises(DataError, match=r"'eth' is a factor"):
        build_design(parse_formula("abortion ~ (1 + eth | state)"), data)
    party = load_synthetic(2000, seed=3, outcome="party")
    with pytest.raises(DataError, match=r"correlated varying slopes are not yet offered with a categorical outcome"):
        build_design(parse_formula("party ~ male + (1 + male | state)"), party)


def test_a_slope_column_holds_the_cells_value_at_its_level(data):
    design = build_design(parse_formula(CORRELATED), data)
    layout = design.layout
    assert layout.group_names == ("state", "state__male", "eth")
    assert [g.slope for g in layout.groups] == [None, "male", None]
    for cells in (design.survey, design.poststrat):
        D = design.design_matrix(cells)
        state = cells.cells["state"].astype(str).map({s: i for i, s in enumerate(layout.group("state").levels)})
        male = cells.cells["male"].to_numpy(float)
        slot = layout.group("state__male")
        expected = np.zeros((cells.n_cells, slot.size))
        expected[np.arange(cells.n_cells), state.to_numpy()] = male
        np.testing.assert_array_equal(D[:, slot.start : slot.stop], expected)
        # The blocks the likelihood and the poststratifier use rebuild the same matrix.
        np.testing.assert_allclose(cell_blocks(design, cells=cells).matrix(), D, rtol=0, atol=1e-12)


def _decov_by_change_of_variables(sd, shape, scale, concentration):
    """rstanarm's construction, (tau, pi_1) -> sd for J = 2, with a finite-difference Jacobian."""

    def inverse(s):
        total = np.sum(s**2)
        return np.array([np.sqrt(total / 2), s[0] ** 2 / total])

    tau, pi1 = inverse(sd)
    h = 1e-6
    jac = np.column_stack([(inverse(sd + h * e) - inverse(sd - h * e)) / (2 * h) for e in np.eye(2)])
    log_tau = gamma(shape, scale=scale).logpdf(tau)
    return log_tau + beta_dist(concentration, concentration).logpdf(pi1) + np.log(abs(np.linalg.det(jac)))


@pytest.mark.parametrize(("shape", "scale", "concentration"), [(1.0, 0.5, 1.0), (2.0, 1.0, 3.0)])
def test_decov_is_rstanarms_prior_written_in_the_sds(shape, scale, concentration):
    with jax.enable_x64(True):
        for sd in ([0.3, 0.7], [1.5, 0.05]):
            got = float(decov_sd_log_density(jnp.asarray(sd), shape, scale, concentration))
            assert got == pytest.approx(_decov_by_change_of_variables(np.asarray(sd), shape, scale, concentration), rel=1e-7)
        # With one coefficient it is the gamma prior of a varying intercept's sd.
        assert float(decov_sd_log_density(jnp.asarray([0.4]), shape, scale, concentration)) == pytest.approx(
            gamma(shape, scale=scale).logpdf(0.4), rel=1e-12
        )


def _lkj2_log_density(r, eta):
    """LKJ(eta) for J = 2: the correlation r has density proportional to (1 - r^2)^(eta - 1) on (-1, 1)."""
    norm_const, _ = integrate.quad(lambda x: (1 - x**2) ** (eta - 1), -1, 1)
    return (eta - 1) * np.log(1 - r**2) - np.log(norm_const)


def _reference_log_density(design, priors, params):
    """The correlated model's log density, term by term in NumPy: independent of the model's code."""
    s, layout = design.survey, design.layout
    lp = norm(priors.intercept_loc, priors.intercept_scale).logpdf(params["Intercept"])
    lp += norm(priors.coef_loc, priors.coef_scales(design.x_scale)).logpdf(params["beta"]).sum()
    sd = np.array([params["sd_state"], params["sd_state__male"]])
    if priors.covariance == "decov":
        lp += _decov_by_change_of_variables(sd, priors.sd_shape, priors.sd_scale, priors.concentration)
    else:
        lp += gamma(priors.sd_shape, scale=priors.sd_scale).logpdf(sd).sum()
    lp += gamma(priors.sd_shape, scale=priors.sd_scale).logpdf(params["sd_eth"])
    r = params["L_state"][1, 0]
    lp += _lkj2_log_density(r, priors.regularization)
    lp += norm.logpdf(params["e_state"]).sum() + norm.logpdf(params["z_eth"]).sum()
    # Each state's (intercept, slope) = diag(sd) L e, the slope times the respondent's male.
    effects = (params["e_state"] @ params["L_state"].T) * sd
    state = s.cells["state"].astype(str).map({v: i for i, v in enumerate(layout.group("state").levels)}).to_numpy()
    eth = s.cells["eth"].astype(str).map({v: i for i, v in enumerate(layout.group("eth").levels)}).to_numpy()
    male = s.cells["male"].to_numpy(float)
    eta = params["Intercept"] + s.X @ params["beta"] + effects[state, 0] + effects[state, 1] * male
    eta = eta + params["sd_eth"] * params["z_eth"][eth]
    return lp + binom.logpmf(s.successes, s.trials, expit(eta)).sum()


@pytest.mark.parametrize("covariance", ["decov", "lkj"])
@pytest.mark.parametrize("max_grid_ratio", [0.0, 2.0])
def test_the_correlated_log_density_is_the_independent_one(data, covariance, max_grid_ratio):
    design = build_design(parse_formula(CORRELATED), data)
    priors = Priors(covariance=covariance, regularization=2.0 if covariance == "lkj" else 1.0)
    rng = np.random.default_rng(4)
    with jax.enable_x64(True):
        model = build_model(design, priors, dtype=np.float64, max_grid_ratio=max_grid_ratio)
        for _ in range(3):
            r = rng.uniform(-0.9, 0.9)
            params = {
                "Intercept": rng.normal(),
                "beta": rng.normal(size=2),
                "sd_state": rng.uniform(0.1, 1.0),
                "sd_state__male": rng.uniform(0.1, 1.0),
                "sd_eth": rng.uniform(0.1, 1.0),
                "z_eth": rng.normal(size=4),
                "L_state": np.array([[1.0, 0.0], [r, np.sqrt(1 - r**2)]]),
                "e_state": rng.normal(size=(50, 2)),
            }
            got, _ = log_density(model.fn, (), dict(model.kwargs), {k: jnp.asarray(v) for k, v in params.items()})
            assert float(got) == pytest.approx(_reference_log_density(design, priors, params), rel=1e-9)
        # The shared parameters: each coefficient's z correlated by L, and the correlation matrix.
        shared = model.effects({k: np.asarray(v)[None] for k, v in params.items()}, jax.random.PRNGKey(0))
    z = params["e_state"] @ params["L_state"].T
    np.testing.assert_allclose(shared["z_state"][0], z[:, 0], rtol=1e-12)
    np.testing.assert_allclose(shared["z_state__male"][0], z[:, 1], rtol=1e-12)
    np.testing.assert_allclose(shared["cor_state"][0], [[1.0, r], [r, 1.0]], atol=1e-12)
    assert set(model.latent_sites) == {"Intercept", "beta", "sd_state", "sd_state__male", "sd_eth", "z_eth", "L_state", "e_state"}


def test_the_prior_of_correlated_effects_has_decovs_covariance():
    """NUTS on a correlated term's sites alone: its sds follow rstanarm's decov construction and its correlation LKJ(1)."""
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC, NUTS

    from mrp_numpyro.design.layout import CorrelatedTerm
    from mrp_numpyro.model.correlated import correlated_effects

    term, priors = CorrelatedTerm("g", (0, 1), ("Intercept", "x")), Priors()

    def prior():
        sds = [numpyro.sample(f"sd_{name}", dist.Gamma(priors.sd_shape, 1.0 / priors.sd_scale)) for name in ("g", "g__x")]
        correlated_effects(term, 1, sds, priors)

    mcmc = MCMC(NUTS(prior), num_warmup=500, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(1))
    samples = {k: np.asarray(v) for k, v in mcmc.get_samples().items()}
    chol = samples["L_g"]
    draws = {"sd_g": samples["sd_g"], "sd_g__x": samples["sd_g__x"], "cor_g": chol @ np.swapaxes(chol, -1, -2)}

    def within_mcse(x, expected):
        # Four Monte Carlo standard errors of the mean, from the draws' own ESS.
        mcse = np.std(x) / np.sqrt(float(az.ess(x[None, :])))
        assert abs(np.mean(x) - expected) < 4 * mcse, (np.mean(x), expected, mcse)

    # decov(shape 1, scale 0.5), J = 2: sd_j = tau sqrt(2 pi_j), tau ~ Exponential(mean 0.5) and
    # pi_j ~ Beta(1, 1), so E[sd_j] = 0.5 sqrt(2) E[sqrt(pi)] = 0.5 sqrt(2) 2 / 3.
    for name in ("g", "g__x"):
        within_mcse(draws[f"sd_{name}"], 0.5 * np.sqrt(2) * 2 / 3)
    # Not the independent gammas': E[sd_a sd_b] is E[tau^2] 2 E[sqrt(pi (1 - pi))] = 0.5 pi / 4
    # under decov, 0.25 for two independent gamma(1, scale 0.5) sds.
    within_mcse(draws["sd_g"] * draws["sd_g__x"], 0.5 * np.pi / 4)
    # LKJ(1) for J = 2: the correlation is uniform on (-1, 1), E[r] = 0 and E[r^2] = 1/3.
    r = draws["cor_g"][:, 0, 1]
    within_mcse(r, 0.0)
    within_mcse(r**2, 1 / 3)


def test_independent_slopes_work_in_every_coordinates(data):
    design = build_design(parse_formula(INDEPENDENT), data)
    assert design.layout.correlated == ()
    rng = np.random.default_rng(0)
    draws = {"Intercept": rng.normal(size=3), "beta": rng.normal(size=(3, 2))}
    for g in design.layout.groups:
        draws[SITES.sd(g.name)] = rng.uniform(0.1, 1.0, 3)
        draws[SITES.z(g.name)] = rng.normal(size=(3, g.size))
    eta = cell_logits(draws, design, design.poststrat)
    D = design.design_matrix(design.poststrat)
    np.testing.assert_allclose(eta, (D @ design.layout.pack_draws(draws).T).T, rtol=1e-10)
    for name in ("noncentred", "identified"):
        model = build_model(design, Priors(), parameterization=name)
        assert SITES.sd("state__male") in model.latent_sites


def test_the_identified_coordinates_fall_back_for_a_correlated_term(data, caplog):
    design = build_design(parse_formula(CORRELATED), data)
    with caplog.at_level("WARNING"):
        model = build_model(design, Priors(), parameterization="identified")
    assert model.parameterization == "noncentred"
    assert "correlated term(s) state (Intercept + male)" in caplog.text


def test_the_synthetic_slopes_have_their_truth():
    data = load_synthetic(2000, seed=3, slopes=True)
    truth = data.truth
    slopes = truth.effects["state__male"]
    assert truth.sd["state__male"] == TRUE_SLOPE_SD["state__male"] and slopes.shape == (50,)
    np.testing.assert_array_equal(truth.correlation["state"], [[1, TRUE_SLOPE_COR["state"]], [TRUE_SLOPE_COR["state"], 1]])
    # The same population and intercepts as without slopes; each cell's logit moves by its
    # state's slope times its male (coded -0.5 and 0.5).
    plain = load_synthetic(2000, seed=3).truth
    np.testing.assert_array_equal(plain.effects["state"], truth.effects["state"])
    state = truth.cells["state"].cat.codes.to_numpy()
    shift = logit(truth.cells["p"].to_numpy()) - logit(plain.cells["p"].to_numpy())
    np.testing.assert_allclose(shift, slopes[state] * truth.cells["male"].to_numpy(), atol=1e-9)


def test_partial_centring_of_a_correlated_term_is_a_change_of_variables(data):
    """u = m^c e with m = sd diag(L): log p(u) = log p(e) - sum c log m, and z = e L' comes back."""
    design = build_design(parse_formula(CORRELATED), data)
    rng = np.random.default_rng(5)
    sd_guess = {g: float(v) for g, v in zip(design.group_names, rng.uniform(0.1, 0.8, len(design.group_names)))}
    with jax.enable_x64(True):
        nc = build_model(design, Priors(), dtype=np.float64)
        pc = build_model(design, Priors(), dtype=np.float64, parameterization="partial", sd_guess=sd_guess)
        assert SITES.centred("state") in pc.latent_sites and SITES.standard("state") not in pc.latent_sites
        weights = centring_weights([np.float64(0.0)] * 3, centring_for(design, sd_guess))  # nothing nested here
        r = 0.3
        chol = np.array([[1.0, 0.0], [r, np.sqrt(1 - r**2)]])
        params = {
            "Intercept": 0.2,
            "beta": rng.normal(size=2),
            "sd_state": 0.4,
            "sd_state__male": 0.3,
            "sd_eth": 0.5,
            "z_eth": rng.normal(size=4),
            "L_state": chol,
        }
        e = rng.normal(size=(50, 2))
        z = e @ chol.T
        sd = np.array([0.4, 0.3])
        m = sd * np.diag(chol)  # the scale of each coefficient's part its predecessors do not predict
        c = np.stack([weights[0], weights[1]], axis=1)  # (levels, J)
        assert c.min() < 0.05 and 0.5 < c.max() < 1.0  # nearly non-centred levels and nearly centred ones
        shared = {k: v for k, v in params.items() if k != "z_eth"}
        partial_params = {**shared, "u_state": m**c * e, "u_eth": 0.5 ** weights[2] * params["z_eth"]}
        nc_params = {**params, "e_state": e}
        lp_nc, _ = log_density(nc.fn, (), dict(nc.kwargs), {k: jnp.asarray(v) for k, v in nc_params.items()})
        lp_pc, _ = log_density(pc.fn, (), dict(pc.kwargs), {k: jnp.asarray(v) for k, v in partial_params.items()})
    jacobian = np.sum(c * np.log(m)) + np.sum(weights[2]) * np.log(0.5)
    assert float(lp_pc) == pytest.approx(float(lp_nc) - jacobian, rel=1e-10)
    back = pc.effects({k: np.asarray(v)[None] for k, v in partial_params.items()}, jax.random.PRNGKey(0))
    np.testing.assert_allclose(back["z_state"][0], z[:, 0], rtol=1e-10)
    np.testing.assert_allclose(back["z_state__male"][0], z[:, 1], rtol=1e-10)
    np.testing.assert_allclose(back["cor_state"][0], chol @ chol.T, rtol=1e-12)


def test_true_slopes_and_their_correlation_are_recovered():
    """Synthetic data with state slopes of male (sd 0.25, correlation -0.5 with the intercepts): NUTS covers them."""
    from mrp_numpyro.app.config import compose_config
    from mrp_numpyro.app.run import run

    formula = "abortion ~ (1 + male | state) + (1 | eth) + (1 | educ) + (1 | age) + male + repvote + factor(region)"
    cfg = compose_config(
        [
            "data.n=20000",
            "data.slopes=true",
            "seed=2",
            f"model.formula='{formula}'",
            "inference=nuts",
            "budget.nuts_warmup=300",
            "budget.nuts_samples=300",
            "report=false",
            "progress=false",
            "checks.loo=false",
            "checks.predictive=[]",
        ]
    )
    result = run(cfg, None)
    truth, draws = result.data.truth, result.fit.draws
    # The states, poststratified: as in tests/test_recovery.py, mean square z below 2.5 and
    # at least 38 of 50 inside their 90 % intervals.
    s = result.estimates["state"].summary().set_index("state").join(truth.area)
    z = (s["mean"] - s["truth"]) / s["sd"]
    assert np.mean(z**2) < 2.5 and ((s["q5"] <= s["truth"]) & (s["truth"] <= s["q95"])).sum() >= 38, z.describe()
    # Each state's slope on the logit scale, against its truth in posterior sds.
    slopes = (draws["sd_state__male"][..., None] * draws["z_state__male"]).reshape(-1, 50)
    zs = (slopes.mean(0) - truth.effects["state__male"]) / slopes.std(0)
    assert np.mean(zs**2) < 2.5, zs
    # The slopes' sd and their correlation with the intercepts, within 3 posterior sds.
    sd, cor = draws["sd_state__male"].ravel(), draws["cor_state"][..., 0, 1].ravel()
    for value, true in ((sd, TRUE_SLOPE_SD["state__male"]), (cor, TRUE_SLOPE_COR["state"])):
        assert abs(value.mean() - true) < 3 * value.std(), (value.mean(), value.std(), true)
    assert draws["cor_state"].shape[-2:] == (2, 2)


def test_independent_slopes_with_a_categorical_outcome():
    """(1 + male || state) for party ID: every category gets its own intercepts and slopes, through the same blocks."""
    party = load_synthetic(2000, seed=3, outcome="party")
    design = build_design(parse_formula("party ~ male + (1 + male || state) + (1 | eth)"), party)
    assert design.group_names == ("state", "state__male", "eth")
    rng = np.random.default_rng(1)
    k = len(design.categories)
    draws = {"Intercept": rng.normal(size=(2, k)), "beta": rng.normal(size=(2, k, 1))}
    for g in design.layout.groups:
        draws[SITES.sd(g.name)] = rng.uniform(0.1, 1.0, (2, k))
        draws[SITES.z(g.name)] = rng.normal(size=(2, k, g.size))
    eta = cell_logits_by_cell(draws, design, design.survey)  # (cells, draws, K - 1)
    theta = design.layout.pack_draws(draws)  # (draws, K - 1, P)
    np.testing.assert_allclose(eta, np.einsum("cp,dkp->cdk", design.design_matrix(), theta), rtol=1e-10)
    model = build_model(design, Priors(), parameterization="partial", sd_guess={g: np.full(k, 0.3) for g in design.group_names})
    params = {k_: jnp.asarray(v[0]) for k_, v in draws.items() if not k_.startswith("z_")}
    params |= {SITES.centred(g): jnp.asarray(draws[SITES.z(g)][0]) for g in design.group_names}
    lp, _ = log_density(model.fn, (), dict(model.kwargs), params)
    assert np.isfinite(float(lp))
