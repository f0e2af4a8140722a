"""A saved fit poststratified to other tables, new levels, calibration, and the command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from omegaconf import OmegaConf, open_dict
from scipy.optimize import brentq
from scipy.special import expit

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.app.repoststratify import repoststratify
from mrp_numpyro.app.run import run
from mrp_numpyro.calibration import Calibration, logit_shifts, read_targets
from mrp_numpyro.data import DataError, load_synthetic
from mrp_numpyro.poststratify import main

SEED = 2


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """The synthetic survey as files, its table, and a likely-voter table of the same cells."""
    path = tmp_path_factory.mktemp("files")
    data = load_synthetic(2000, seed=SEED)
    data.survey.drop(columns=["repvote", "region"]).to_csv(path / "survey.csv", index=False)
    table = data.poststrat.drop(columns=["repvote", "region"])
    table.to_csv(path / "table.csv", index=False)
    # Turnout rises with age and education: another table over the same cells.
    turnout = 0.3 + 0.1 * table["age"].cat.codes + 0.05 * table["educ"].cat.codes
    table.assign(n=np.round(table["n"] * turnout)).to_csv(path / "voters.csv", index=False)
    data.areas.to_csv(path / "areas.csv", index=False)
    return path


def _config(files, table):
    cfg = compose_config(["data=cces18", "experiment=fast", f"seed={SEED}"])
    with open_dict(cfg):
        cfg.data = OmegaConf.merge(
            cfg.data,
            {"dir": str(files), "survey_file": "survey.csv", "poststrat_file": table, "predictors_file": "areas.csv", "n": None},
        )
    return cfg


@pytest.fixture(scope="module")
def fitted(files, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "table"
    run(_config(files, "table.csv"), out)
    return out


def test_same_table_gives_the_run_estimates(fitted, files):
    result = repoststratify(fitted, files / "table.csv")
    for name in ("state", "national"):
        pd.testing.assert_frame_equal(
            result.tables[name], pd.read_csv(fitted / f"estimates_{name}.csv"), check_dtype=False, check_column_type=False
        )
    assert not result.new_levels


def test_another_table_matches_a_fresh_fit_on_it(fitted, files, tmp_path):
    run(_config(files, "voters.csv"), tmp_path / "voters")
    result = repoststratify(fitted, files / "voters.csv")
    for name in ("state", "national"):
        fresh = pd.read_csv(tmp_path / "voters" / f"estimates_{name}.csv")
        for column in ("mean", "sd", "q5", "q95"):
            np.testing.assert_allclose(result.tables[name][column], fresh[column], rtol=0, atol=1e-12)
    # The voters' table weights the old and educated more: a different national value.
    old = pd.read_csv(fitted / "estimates_national.csv")["mean"].iloc[0]
    assert abs(result.tables["national"]["mean"].iloc[0] - old) > 1e-4


def test_new_area_is_drawn_from_the_group_distribution(fitted, files):
    """One cell of AK and the same cell of a new area 'PR' with AK's predictors: their logit gap is sd * (z_new - z_AK)."""
    table = pd.read_csv(files / "table.csv")
    cell = table[(table["state"] == "AK")].iloc[[0]]
    areas = pd.read_csv(files / "areas.csv").set_index("state")
    two = pd.concat([cell, cell.assign(state="PR")], ignore_index=True)
    two["repvote"] = areas.loc["AK", "repvote"]
    two["region"] = areas.loc["AK", "region"]
    result = repoststratify(fitted, two, groupings={"state": ["state"]}, seed=5)
    assert result.new_levels["state"] == ["PR"]
    assert any("PR" in note for note in result.notes)
    p = result.groupings["state"].draws.reshape(-1, 2)
    labels = list(result.groupings["state"].labels["state"])
    gap = np.log(p / (1 - p)) @ np.array([-1.0, 1.0] if labels == ["AK", "PR"] else [1.0, -1.0])
    post = xr.open_dataset(fitted / "posterior.nc", group="posterior")
    sd = post["sd_state"].to_numpy().ravel()
    z_ak = post["z_state"].sel(state_level="AK").to_numpy().ravel()
    z_new = gap / sd + z_ak
    n = len(z_new)
    # z_new ~ N(0, 1) independently per draw: mean within 4 standard errors, sd within 4 of its se.
    assert abs(z_new.mean()) < 4 / np.sqrt(n)
    assert abs(z_new.std() - 1) < 4 / np.sqrt(2 * n)
    # Float32 predictions: the gap is exact to about 1e-5 on the logit scale.
    again = repoststratify(fitted, two, groupings={"state": ["state"]}, seed=5)
    np.testing.assert_array_equal(again.groupings["state"].draws, result.groupings["state"].draws)


def test_logit_shift_solves_each_area():
    rng = np.random.default_rng(0)
    logits = rng.normal(-1, 2, (30, 7))
    weights = rng.integers(1, 1000, 30).astype(float)
    area = np.repeat([0, 1, 2], 10)
    targets = np.array([0.02, 0.5, np.nan])
    delta = logit_shifts(logits, weights, area, targets)
    for a, t in enumerate(targets[:2]):
        w = weights[area == a] / weights[area == a].sum()
        for d in range(7):
            root = brentq(lambda x, a=a, d=d, w=w, t=t: w @ expit(logits[area == a, d] + x) - t, -60, 60, xtol=1e-14)
            assert delta[a, d] == pytest.approx(root, abs=1e-9)
    assert (delta[2] == 0).all()


def test_calibration_hits_its_targets(fitted, files):
    targets = {"CA": 0.31, "TX": 0.62, "VT": 0.05}
    plain = repoststratify(fitted, files / "table.csv")
    result = repoststratify(fitted, files / "table.csv", calibration=Calibration("state", targets))
    state = result.groupings["state"]
    labels = list(state.labels["state"])
    draws = state.draws.reshape(-1, len(labels))
    for area, target in targets.items():
        assert np.max(np.abs(draws[:, labels.index(area)] - target)) < 1e-6
    others = [i for i, s in enumerate(labels) if s not in targets]
    np.testing.assert_allclose(draws[:, others], plain.groupings["state"].draws.reshape(-1, len(labels))[:, others], atol=2e-6)
    # The national value comes from the same shifted cells: the population-weighted mean of the states.
    table = pd.read_csv(files / "table.csv")
    pop = table.groupby("state")["n"].sum().reindex(labels).to_numpy()
    np.testing.assert_allclose(result.groupings["national"].draws.reshape(-1), draws @ pop / pop.sum(), rtol=1e-10)
    shifts = result.shifts.draws.reshape(-1, len(labels))
    assert (shifts[:, others] == 0).all() and (shifts[:, labels.index("VT")] < 0).all()


class TestBadInput:
    def test_table_missing_a_factor(self, fitted, files):
        table = pd.read_csv(files / "table.csv").drop(columns=["educ"])
        with pytest.raises(DataError, match=r"missing column\(s\) \['educ'\] that the fit uses"):
            repoststratify(fitted, table)

    def test_calibration_target_for_an_unknown_area(self, fitted, files):
        with pytest.raises(DataError, match=r"names state value\(s\) \['ZZ'\] that poststratification table 'table.csv' lacks"):
            repoststratify(fitted, files / "table.csv", calibration=Calibration("state", {"ZZ": 0.4}))

    @pytest.mark.parametrize("target", [0.0, 1.2, float("nan")])
    def test_calibration_target_outside_0_1(self, target, tmp_path):
        with pytest.raises(DataError, match="strictly between 0 and 1"):
            Calibration("state", {"CA": target})
        (tmp_path / "t.csv").write_text(f"state,target\nCA,{target}\n")
        message = "must be numeric" if np.isnan(target) else "strictly between 0 and 1"
        with pytest.raises(DataError, match=rf"calibration file '.*t.csv' column 'target'.*{message}"):
            read_targets(str(tmp_path / "t.csv"), "state")

    def test_new_area_without_its_predictors(self, fitted, files):
        table = pd.read_csv(files / "table.csv")
        table = pd.concat([table, table[table["state"] == "AK"].assign(state="PR")])
        with pytest.raises(DataError, match=r"\['PR'\] that the fit's area table lacks; give the table the columns"):
            repoststratify(fitted, table)

    def test_new_level_of_a_coefficient_factor(self, fitted, files):
        table = pd.read_csv(files / "table.csv").assign(region="Pacific", repvote=0.5)
        with pytest.raises(DataError, match="'Pacific'"):
            repoststratify(fitted, table)


def test_command_line(fitted, files, tmp_path, capsys):
    (tmp_path / "targets.csv").write_text("state,target\nCA,0.3\nNY,0.25\n")
    out = tmp_path / "out"
    argv = [str(fitted), "--table", str(files / "voters.csv"), "--by", "state", "--by", "state,eth", "--out", str(out)]
    assert main([*argv, "--calibrate", str(tmp_path / "targets.csv")]) == 0
    assert {"estimates_state.csv", "estimates_state_eth.csv", "estimates_national.csv", "calibration_shifts.csv"} <= {
        p.name for p in out.iterdir()
    }
    summary = json.loads((out / "poststratify.json").read_text())
    assert summary["calibration"]["max_abs_error"] < 1e-6 and not (out / "INCOMPLETE").exists()
    state_eth = pd.read_csv(out / "estimates_state_eth.csv")
    assert set(state_eth.columns) >= {"state", "eth", "mean", "q5", "q95"}
    # Never overwrites; bad input exits with 2 and a message, and leaves no directory behind.
    assert main(argv) == 2 and "never overwrites" in capsys.readouterr().err
    assert main([str(fitted), "--table", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "x")]) == 2
    assert "was not found" in capsys.readouterr().err and not (tmp_path / "x").exists()
    bad = [
        str(fitted),
        "--table",
        str(files / "table.csv"),
        "--calibrate",
        str(tmp_path / "nope.csv"),
        "--out",
        str(tmp_path / "y"),
    ]
    assert main(bad) == 2 and "calibration file" in capsys.readouterr().err and not (tmp_path / "y").exists()


def test_count_column_and_an_empty_table(fitted, files, tmp_path):
    table = pd.read_csv(files / "table.csv")
    voters = pd.read_csv(files / "voters.csv")
    # A table with its own count column beside the fit's: --count chooses it.
    both = table.assign(likely=voters["n"])
    a = repoststratify(fitted, both, count="likely")
    b = repoststratify(fitted, files / "voters.csv")
    pd.testing.assert_frame_equal(a.tables["state"], b.tables["state"], check_exact=True)
    with pytest.raises(DataError, match="no count column 'turnout'"):
        repoststratify(fitted, both, count="turnout")
    with pytest.raises(DataError, match="has no rows"):
        repoststratify(fitted, table.iloc[:0])


def test_a_structured_fit_repoststratifies_and_refuses_new_levels_of_its_structured_groups(files, tmp_path):
    """A bym2/rw1 fit: the same table gives its estimates again (the adjacency rebuilt from the
    saved config), and a table with a new state is refused, for the prior has no place for it."""
    cfg = _config(files, "table.csv")
    with open_dict(cfg):
        cfg.model.formula = "abortion ~ (1 | bym2(state)) + (1 | eth) + (1 | rw1(age)) + male + repvote"
    out = tmp_path / "structured"
    run(cfg, out)
    result = repoststratify(out, files / "table.csv")
    pd.testing.assert_frame_equal(
        result.tables["state"], pd.read_csv(out / "estimates_state.csv"), check_dtype=False, check_column_type=False
    )
    table = pd.read_csv(files / "table.csv")
    extra = table[table["state"] == "AK"].assign(state="PR")
    areas = pd.read_csv(files / "areas.csv").set_index("state")
    both = pd.concat([table, extra], ignore_index=True)
    both["repvote"] = both["state"].map(areas["repvote"]).fillna(areas.loc["AK", "repvote"])
    both["region"] = both["state"].map(areas["region"]).fillna(areas.loc["AK", "region"])
    with pytest.raises(DataError, match=r"level\(s\) \['PR'\] that the fit never saw; state enters the model .*structured prior"):
        repoststratify(out, both)


def test_a_correlated_slopes_fit_draws_a_new_areas_intercept_and_slope_together(files, tmp_path):
    """(1 + male | state): a new state's intercept and male slope come from each draw's correlation matrix."""
    cfg = _config(files, "table.csv")
    with open_dict(cfg):
        cfg.model.formula = "abortion ~ (1 + male | state) + (1 | eth) + male + repvote"
    out = tmp_path / "slopes"
    run(cfg, out)
    result = repoststratify(out, files / "table.csv")
    pd.testing.assert_frame_equal(
        result.tables["state"], pd.read_csv(out / "estimates_state.csv"), check_dtype=False, check_column_type=False
    )
    # A woman's and a man's cell of AK (male -0.5 and 0.5), and the same two of a new area PR with AK's predictors.
    table = pd.read_csv(files / "table.csv")
    ak = table[table["state"] == "AK"]
    cells = pd.concat([ak[ak["male"] < 0].iloc[[0]], ak[ak["male"] > 0].iloc[[0]]], ignore_index=True)
    cells = cells.assign(eth=cells["eth"].iloc[0], age=cells["age"].iloc[0], educ=cells["educ"].iloc[0])
    four = pd.concat([cells, cells.assign(state="PR")], ignore_index=True)
    areas = pd.read_csv(files / "areas.csv").set_index("state")
    four["repvote"], four["region"] = areas.loc["AK", "repvote"], areas.loc["AK", "region"]
    new = repoststratify(out, four, groupings={"cell": ["state", "male"]}, seed=3)
    assert new.new_levels["state"] == ["PR"]
    est = new.groupings["cell"]
    labels = list(zip(est.labels["state"], est.labels["male"].astype(float) > 0))
    logit = np.log(est.draws / (1 - est.draws)).reshape(-1, 4)
    at = {label: logit[:, i] for i, label in enumerate(labels)}
    # PR's logit minus AK's: sd (z_PR - z_AK) of the intercepts, plus the slopes' times male.
    gap_f, gap_m = at[("PR", False)] - at[("AK", False)], at[("PR", True)] - at[("AK", True)]
    post = xr.open_dataset(out / "posterior.nc", group="posterior")
    draw = {k: post[k].to_numpy().reshape(-1, *post[k].shape[2:]) for k in ("sd_state", "sd_state__male", "cor_state")}
    ak_z = {k: post[k].sel(state_level="AK").to_numpy().ravel() for k in ("z_state", "z_state__male")}
    z_int = (gap_m + gap_f) / 2 / draw["sd_state"] + ak_z["z_state"]
    z_slope = (gap_m - gap_f) / draw["sd_state__male"] + ak_z["z_state__male"]
    # Standard normals, correlated as each draw's matrix: within 4 standard errors.
    n, r = len(z_int), draw["cor_state"][:, 0, 1]
    assert abs(z_int.mean()) < 4 / np.sqrt(n) and abs(z_slope.mean()) < 4 / np.sqrt(n)
    assert abs(np.mean(z_int * z_slope - r)) < 4 * np.std(z_int * z_slope - r) / np.sqrt(n)
    assert abs(np.mean(z_slope**2) - 1) < 4 * np.std(z_slope**2) / np.sqrt(n)
