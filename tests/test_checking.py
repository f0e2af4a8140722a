"""Predictive checks by group and cell-level LOO (mrp_numpyro.checking), their figure and their sweep columns."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import binom

from mrp_numpyro.checking import binomial_logpmf, cell_log_likelihood, cell_loo, predictive_by_group
from mrp_numpyro.data.schema import DataError
from mrp_numpyro.poststratification import group_cells

FORMULA = "abortion ~ (1 | state) + (1 | eth) + (1 | age) + (1 | educ) + male + repvote"
GROUPINGS = {"state": ["state"], "eth": ["eth"], "age": ["age"], "educ": ["educ"]}
TRUE_SD = {"state": 0.3, "eth": 0.4, "age": 0.2, "educ": 0.3}


def _eta(params, design):
    """eta = a + X b + sum_g sd_g z_g[level] of the survey cells, written out plainly; params (draws, ...)."""
    cells = design.survey
    eta = params["Intercept"][:, None] + params["beta"] @ cells.X.T
    for g, name in enumerate(design.group_names):
        eta = eta + params[f"sd_{name}"][:, None] * params[f"z_{name}"][:, cells.group_index[:, g]]
    return eta  # (draws, cells)


@pytest.fixture(scope="module")
def problem():
    """A synthetic survey's cells with outcomes redrawn from known parameters, so the truth is exact."""
    from mrp_numpyro.data import load_synthetic
    from mrp_numpyro.design import build_design
    from mrp_numpyro.design.formula import parse_formula

    design = build_design(parse_formula(FORMULA), load_synthetic(20_000, seed=3))
    rng = np.random.default_rng(11)
    truth = {"Intercept": np.array(-0.4), "beta": np.array([0.3, 1.0])}
    for name, size in zip(design.group_names, design.group_sizes):
        truth[f"sd_{name}"] = np.array(TRUE_SD[name])
        truth[f"z_{name}"] = rng.normal(size=size)
    p = expit(_eta({k: v[None] for k, v in truth.items()}, design)[0])
    s = design.survey
    design = dataclasses.replace(design, survey=dataclasses.replace(s, successes=rng.binomial(s.trials, p)))
    return design, truth, p


def _point_mass(truth, draws=2000, chains=1):
    return {k: np.broadcast_to(v, (chains, draws) + v.shape).copy() for k, v in truth.items()}


def _spread(truth, design, chains, draws, seed):
    """Draws scattered around the truth, (chain, draw, ...): a stand-in for a posterior."""
    rng = np.random.default_rng(seed)
    shape = (chains, draws)
    out = {
        "Intercept": truth["Intercept"] + 0.1 * rng.normal(size=shape),
        "beta": truth["beta"] + 0.1 * rng.normal(size=shape + (2,)),
    }
    for name, size in zip(design.group_names, design.group_sizes):
        out[f"sd_{name}"] = truth[f"sd_{name}"] * rng.lognormal(0.0, 0.1, size=shape)
        out[f"z_{name}"] = truth[f"z_{name}"] + 0.2 * rng.normal(size=shape + (size,))
    return out


def _exact_coverage(table, design, p, columns, lower, upper):
    """P(lower <= replicated share <= upper) of each group under the true p: a convolution of its cells' binomials."""
    index, _ = group_cells(design.survey.cells, columns)
    cover = []
    for g in range(len(table)):
        cells = index == g
        pmf = np.ones(1)
        for n, q in zip(design.survey.trials[cells], p[cells]):
            pmf = np.convolve(pmf, binom.pmf(np.arange(n + 1), n, q))
        # The same float division as the function's, so a share on an interval bound compares equal.
        share = np.arange(len(pmf), dtype=float) / float(table["respondents"][g])
        cover.append(pmf[(table[lower][g] <= share) & (share <= table[upper][g])].sum())
    return np.array(cover)


# -- predictive checks by group ---------------------------------------------------------------


def test_table_columns_and_observed_shares(problem):
    design, truth, _ = problem
    tables = predictive_by_group(_point_mass(truth, 50), design, {**GROUPINGS, "national": []})
    expected = ["respondents", "observed", "replicated_mean", "q5", "q25", "q75", "q95", "in_50", "in_90"]
    assert list(tables["state"].columns) == ["state"] + expected
    assert list(tables["national"].columns) == expected
    s = design.survey
    assert tables["national"]["respondents"].item() == design.n_respondents
    assert tables["national"]["observed"].item() == pytest.approx(s.successes.sum() / s.trials.sum(), rel=1e-14)
    states = s.cells["state"].to_numpy()
    for _, row in tables["state"].iterrows():
        cells = states == row["state"]
        assert row["respondents"] == s.trials[cells].sum()
        assert row["observed"] == pytest.approx(s.successes[cells].sum() / s.trials[cells].sum(), rel=1e-14)
    assert len(tables["state"]) == 50 and tables["state"]["respondents"].sum() == design.n_respondents


def test_true_parameters_cover_the_observed_shares_at_their_nominal_rate(problem):
    """With the truth as a point-mass posterior, each group's observed share is one draw of its replicated share.

    Groups of one grouping have disjoint cells, hence independent outcomes, so the number
    inside its interval is a sum of independent Bernoullis with probabilities c_g: the exact
    probability that a share from the true distribution lands in the group's interval,
    computed by convolving its cells' binomials. Replicated shares are discrete and the
    bounds count as inside, so c_g lies a little above the nominal level for small groups.
    """
    design, truth, p = problem
    tables = predictive_by_group(_point_mass(truth), design, {**GROUPINGS, "state_eth": ["state", "eth"]}, seed=5)
    for name, columns in (("state", ["state"]), ("state_eth", ["state", "eth"])):
        table = tables[name]
        for inside, lower, upper, nominal in (("in_90", "q5", "q95", 0.90), ("in_50", "q25", "q75", 0.50)):
            cover = _exact_coverage(table, design, p, columns, lower, upper)
            count, sd = table[inside].sum(), np.sqrt(np.sum(cover * (1 - cover)))
            assert abs(count - cover.sum()) <= 3 * sd, (name, inside, count, cover.sum(), sd)
            # The intervals are what they claim (less than a group's worth of Monte Carlo
            # error in the quantiles of 2,000 replicates), with the excess discreteness adds.
            assert nominal - 0.01 <= cover.mean() <= nominal + (0.06 if nominal == 0.9 else 0.2), (name, inside, cover.mean())
    # Against the bare nominal rate too: 50 states, binomial sd sqrt(50 * 0.9 * 0.1) = 2.1 groups.
    in_90 = tables["state"]["in_90"]
    assert abs(in_90.sum() - 0.9 * len(in_90)) <= 3 * np.sqrt(len(in_90) * 0.9 * 0.1) + 0.06 * len(in_90)


def test_replicated_mean_is_the_posterior_mean_predicted_share(problem):
    """mean_d sum_c y_dc / n_g equals mean_d sum_c n_c p_dc / n_g to within its Monte Carlo error.

    Given the draws the replicates are independent binomials, so the difference has variance
    sum_d sum_c n_c p_dc (1 - p_dc) / (D n_g)^2.
    """
    design, truth, _ = problem
    draws = _spread(truth, design, chains=2, draws=200, seed=21)
    tables = predictive_by_group(draws, design, GROUPINGS, seed=8, chunk_size=64)
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}
    p = expit(_eta(flat, design))  # (draws, cells), independently of the package's predictor
    n, D = design.survey.trials, p.shape[0]
    for name, columns in GROUPINGS.items():
        index, _ = group_cells(design.survey.cells, columns)
        table = tables[name]
        z = []
        for g in range(len(table)):
            cells = index == g
            n_g = n[cells].sum()
            predicted = np.mean(p[:, cells] @ n[cells]) / n_g
            se = np.sqrt(np.sum(p[:, cells] * (1 - p[:, cells]) @ n[cells])) / (D * n_g)
            z.append((table["replicated_mean"][g] - predicted) / se)
        z = np.array(z)
        # Four sds per group: a false alarm in about 0.4 % of seeds over these 65 groups.
        assert np.all(np.abs(z) <= 4), (name, z)
        if name == "state":
            # ... and the replicates carry sampling noise of the right size: the mean of 50
            # independent chi-squares with one degree of freedom is 1 with sd 0.2.
            assert 0.2 <= np.mean(z**2) <= 1.8, np.mean(z**2)


def test_a_wrong_model_is_caught(problem):
    """The truth shifted by +1 on the logit scale puts most observed shares outside their 90 % intervals."""
    design, truth, _ = problem
    wrong = _point_mass({**truth, "Intercept": truth["Intercept"] + 1.0}, 1000)
    tables = predictive_by_group(wrong, design, GROUPINGS, seed=3)
    assert tables["state"]["in_90"].mean() <= 0.2
    for name in ("eth", "age", "educ"):
        assert not tables[name]["in_90"].any(), tables[name]
        assert np.all(tables[name]["observed"] < tables[name]["q5"])  # shifted up, so observed below
    right = predictive_by_group(_point_mass(truth, 1000), design, GROUPINGS, seed=3)
    assert right["state"]["in_90"].mean() >= 0.75


def test_tables_do_not_depend_on_the_chunk_size(problem):
    design, truth, _ = problem
    draws = _spread(truth, design, chains=2, draws=25, seed=4)  # 50 draws: 7 chunks of 7 and one of 1
    small = predictive_by_group(draws, design, GROUPINGS, seed=12, chunk_size=7)
    whole = predictive_by_group(draws, design, GROUPINGS, seed=12, chunk_size=10_000)
    for name in GROUPINGS:
        pd.testing.assert_frame_equal(small[name], whole[name], check_exact=True)
    other = predictive_by_group(draws, design, GROUPINGS, seed=13, chunk_size=7)
    assert not np.array_equal(other["state"]["replicated_mean"], small["state"]["replicated_mean"])


def test_an_unknown_grouping_column_is_a_data_error(problem):
    design, truth, _ = problem
    with pytest.raises(DataError, match=r"'by_county'.*\['county'\].*'state'.*'educ'"):
        predictive_by_group(_point_mass(truth, 4), design, {"state": ["state"], "by_county": ["state", "county"]})


# -- cell-level LOO ---------------------------------------------------------------------------


def test_pointwise_log_likelihood_is_the_binomial_log_pmf(problem):
    design, truth, _ = problem
    draws = _spread(truth, design, chains=2, draws=5, seed=6)
    ll = cell_log_likelihood(draws, design, chunk_size=3)
    assert ll.shape == (2, 5, design.survey.n_cells) and ll.dtype == np.float64
    flat = {k: v.reshape((-1,) + v.shape[2:]) for k, v in draws.items()}
    p = expit(_eta(flat, design)).reshape(2, 5, -1)
    s = design.survey
    for chain, draw, cell in [(0, 0, 0), (1, 4, s.n_cells - 1), (0, 2, int(np.argmax(s.trials))), (1, 1, 1234)]:
        expected = binom.logpmf(s.successes[cell], s.trials[cell], p[chain, draw, cell])
        assert ll[chain, draw, cell] == pytest.approx(expected, rel=1e-10)
    np.testing.assert_allclose(cell_log_likelihood(draws, design, chunk_size=10_000), ll, rtol=1e-12)


def test_binomial_log_pmf_stays_finite_far_from_zero_logit():
    # p = expit(+-800) rounds to 1 and 0: log p would be -inf, the softplus form is exact.
    eta = np.array([800.0, -800.0, 0.0])
    got = binomial_logpmf(eta, np.array([3, 3, 4]), np.array([2, 2, 2]))
    np.testing.assert_allclose(got, [np.log(3) - 800.0, np.log(3) - 1600.0, np.log(6) - 4 * np.log(2)], rtol=1e-14)


def test_cell_loo_agrees_with_its_pointwise_values_and_the_lppd(problem):
    design, truth, _ = problem
    draws = _spread(truth, design, chains=2, draws=300, seed=9)
    loo = cell_loo(draws, design, chunk_size=128)
    n_cells = design.survey.n_cells
    assert loo.n_cells == n_cells and loo.n_draws == 600
    assert loo.pareto_k.shape == (n_cells,) and loo.elpd_i.shape == (n_cells,)
    assert loo.elpd == pytest.approx(loo.elpd_i.sum(), rel=1e-12)
    assert loo.se == pytest.approx(np.sqrt(n_cells * np.var(loo.elpd_i)), rel=1e-9)
    # Two routes to p_loo: ArviZ's, and the log pointwise predictive density minus elpd.
    ll = cell_log_likelihood(draws, design).reshape(600, n_cells)
    lppd = np.sum(logsumexp(ll, axis=0) - np.log(600))
    assert loo.p_loo == pytest.approx(lppd - loo.elpd, rel=1e-9)
    assert loo.elpd < lppd  # leaving a cell out can only predict it worse on average
    summary = loo.to_dict()
    assert set(summary) == {"elpd", "se", "p_loo", "n_cells", "n_draws", "n_k_good", "n_k_ok", "n_high_k", "max_k"}
    assert summary["n_k_good"] + summary["n_k_ok"] + summary["n_high_k"] == n_cells
    assert summary["n_high_k"] == loo.n_high_k == int(np.sum(loo.pareto_k > 0.7))
    assert json.loads(json.dumps(summary)) == summary


def test_cell_loo_of_a_point_mass_is_the_log_likelihood(problem):
    """With identical draws every importance weight is equal: elpd is the log likelihood, p_loo is 0."""
    design, truth, _ = problem
    loo = cell_loo(_point_mass(truth, 100), design)
    s = design.survey
    eta = _eta({k: v[None] for k, v in truth.items()}, design)[0]
    log_lik = binom.logpmf(s.successes, s.trials, expit(eta))
    assert loo.elpd == pytest.approx(log_lik.sum(), rel=1e-10)
    np.testing.assert_allclose(loo.elpd_i, log_lik, rtol=1e-10)
    assert loo.p_loo == pytest.approx(0.0, abs=1e-8)


def test_a_wrong_model_has_a_lower_elpd(problem):
    design, truth, _ = problem
    right = cell_loo(_spread(truth, design, chains=1, draws=200, seed=2), design)
    shifted = {**truth, "Intercept": truth["Intercept"] + 1.0}
    wrong = cell_loo(_spread(shifted, design, chains=1, draws=200, seed=2), design)
    assert wrong.elpd < right.elpd - 5 * np.hypot(right.se, wrong.se)


# -- the figure and the sweep's columns -------------------------------------------------------


def test_predictive_check_figure_is_written(problem, tmp_path):
    from mrp_numpyro.app.report import plot_predictive_checks

    design, truth, _ = problem
    tables = predictive_by_group(_point_mass(truth, 200), design, {**GROUPINGS, "national": []})
    path = plot_predictive_checks(tables, tmp_path / "ppc.png")
    assert path == tmp_path / "ppc.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000


def test_collected_rows_carry_the_loo_of_runs_that_have_one(tmp_path):
    from mrp_numpyro.collect import collect, run_row

    loo = {"elpd": -1234.5, "se": 20.25, "p_loo": 40.0, "n_cells": 900, "n_draws": 1000, "n_k_good": 890}
    loo |= {"n_k_ok": 8, "n_high_k": 2, "max_k": 0.81}
    for name, summary in (("0", {"method": "svi", "loo": loo}), ("1", {"method": "nuts"})):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps(summary))
    row = run_row(tmp_path / "0")
    assert (row["loo_elpd"], row["loo_se"], row["loo_n_high_k"]) == (-1234.5, 20.25, 2)
    row = run_row(tmp_path / "1")
    assert row["loo_elpd"] is None and row["loo_se"] is None and row["loo_n_high_k"] is None
    table = collect(tmp_path)
    assert table["loo_elpd"].tolist()[0] == -1234.5 and np.isnan(table["loo_elpd"].tolist()[1])
