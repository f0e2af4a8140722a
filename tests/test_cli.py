"""Smoke runs of the whole pipeline with the fast preset, through run(cfg) and the CLI."""

import json
import os
import subprocess
import sys

import arviz as az
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.app.run import run

FAST = ["experiment=fast", "progress=false"]
EXPECTED_FILES = {
    "config.yaml",
    "estimates_state.csv",
    "estimates_national.csv",
    "posterior.nc",
    "poststrat_draws.nc",
    "summary.json",
    "run.log",
    "report.html",
    "state_estimates.png",
    "state_map.png",
    "predictive_checks.csv",
    "predictive_checks.png",
    "schema.json",
    "survey_cells.csv",
    "areas.csv",
}


def check_run_dir(out, method):
    files = {p.name for p in out.iterdir()}
    assert EXPECTED_FILES <= files
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == method
    assert set(summary["timings_s"]) >= {"load", "aggregate", "fit", "poststratify", "checks"}
    # The fit against its survey: cell-level LOO over every occupied cell, a PPC of each factor.
    assert summary["loo"]["n_cells"] == summary["n_occupied_cells"] and np.isfinite(summary["loo"]["elpd"])
    assert set(summary["predictive"]) == {"state", "eth", "age", "educ"}
    ppc = pd.read_csv(out / "predictive_checks.csv")
    assert set(ppc["grouping"]) == {"state", "eth", "age", "educ"} and (ppc["q5"] <= ppc["q95"]).all()
    assert ppc.groupby("grouping")["respondents"].sum().nunique() == 1  # every grouping covers the survey
    cells = pd.read_csv(out / "survey_cells.csv")
    assert cells["respondents"].sum() == summary["n_respondents"]
    assert summary["versions"]["numpyro"] and summary["seed"] == 0
    states = pd.read_csv(out / "estimates_state.csv")
    assert len(states) == 50
    assert list(states.columns[:8]) == ["state", "mean", "sd", "q5", "q25", "q50", "q75", "q95"]
    assert states["mean"].between(0, 1).all() and (states["q5"] <= states["q95"]).all()
    assert np.isfinite(states[["mean", "sd", "q5", "q95"]].to_numpy()).all()
    national = pd.read_csv(out / "estimates_national.csv")
    assert national["mean"].iloc[0] == pytest.approx(summary["national_mean"])
    idata = az.from_netcdf(out / "posterior.nc")
    assert "sd_state" in idata.posterior and idata.posterior["z_state"].shape[-1] == 50
    assert list(idata.posterior["beta"].coords["coef"].values)[:2] == ["male", "repvote"]
    draws = xr.open_dataset(out / "poststrat_draws.nc", engine="h5netcdf")
    assert draws["state"].sizes["state_level"] == 50
    assert draws["state"].coords["state_level"].values[0] == "AK"
    # The CSV summary is the summary of the NetCDF draws.
    assert float(draws["national"].mean()) == pytest.approx(national["mean"].iloc[0], rel=1e-6)
    draws.close()
    return summary


@pytest.mark.parametrize("guide", ["meanfield", "fullrank", "lowrank", "iaf", "coupled"])
def test_every_guide_runs(guide, tmp_path):
    cfg = compose_config(FAST + [f"guide={guide}"])
    result = run(cfg, tmp_path)
    summary = check_run_dir(tmp_path, "svi")
    assert (tmp_path / "elbo.csv").exists() and (tmp_path / "elbo.png").exists()
    assert summary["diagnostics"]["nonfinite_steps"] == 0
    assert 0 < summary["diagnostics"]["khat_spread"] < np.inf and "Monte Carlo sd of k-hat" in summary["verdict_message"]
    page = (tmp_path / "report.html").read_text()
    assert f"Verdict: {summary['verdict']}" in page and page.count("data:image/png;base64,") == 4
    assert "Cell-level PSIS-LOO" in page and "Predictive check by state" in page
    assert len(result.fit.traces["elbo"]) == cfg.inference.num_steps
    # The synthetic truth is reported beside the estimates.
    assert "truth" in pd.read_csv(tmp_path / "estimates_state.csv")


def test_nuts_runs_and_reports_diagnostics(tmp_path):
    cfg = compose_config(FAST + ["inference=nuts"])
    run(cfg, tmp_path)
    summary = check_run_dir(tmp_path, "nuts")
    diag = summary["diagnostics"]
    assert {"divergences", "max_rhat", "min_ess_bulk", "min_ess_tail"} <= set(diag)
    assert diag["num_chains"] == 2 and diag["divergences"] >= 0
    idata = az.from_netcdf(tmp_path / "posterior.nc")
    assert idata.posterior.sizes["chain"] == 2 and "diverging" in idata.sample_stats
    assert (tmp_path / "trace.png").exists() and (tmp_path / "rank.png").exists()
    assert "divergent transitions" in (tmp_path / "report.html").read_text()


def test_extra_grouping_and_original_formula(tmp_path):
    cfg = compose_config(FAST + ["model=rstanarm_original", "+poststrat.groupings.state_eth=[state,eth]"])
    result = run(cfg, tmp_path)
    table = pd.read_csv(tmp_path / "estimates_state_eth.csv")
    assert len(table) == 200 and list(table.columns[:2]) == ["state", "eth"]
    assert "age" not in result.design.group_names
    # Synthetic data: the truth of any grouping, the population-weighted cell probabilities.
    truth = result.data.truth.by(["state", "eth"])
    np.testing.assert_allclose(table["truth"], truth.loc[list(zip(table["state"], table["eth"], strict=True))].to_numpy())
    assert table["truth"].notna().all()


def test_cces_fast_run(tmp_path, data_dir):
    cfg = compose_config(FAST + ["data=cces18", f"data.dir={data_dir}"])
    run(cfg, tmp_path)
    summary = check_run_dir(tmp_path, "svi")
    assert summary["n_respondents"] == 2000
    assert "truth" not in pd.read_csv(tmp_path / "estimates_state.csv")


def test_refuses_to_overwrite_and_is_reproducible(tmp_path):
    cfg = compose_config(FAST + ["budget.svi_steps=100", "budget.svi_draws=100"])
    run(cfg, tmp_path / "a")
    assert not (tmp_path / "a" / "INCOMPLETE").exists()
    with pytest.raises(FileExistsError, match="never overwrite"):
        run(cfg, tmp_path / "a")
    # Same config and seed on the same machine: bit-identical estimates.
    run(cfg, tmp_path / "b")
    for name in ("estimates_state.csv", "estimates_national.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_failed_run_is_marked_incomplete(tmp_path, monkeypatch):
    monkeypatch.delenv("MRP_DATA_DIR", raising=False)
    cfg = compose_config(FAST + ["data=cces18", f"data.dir={tmp_path / 'nowhere'}"])
    with pytest.raises(Exception, match="not found"):
        run(cfg, tmp_path / "run")
    marker = (tmp_path / "run" / "INCOMPLETE").read_text()
    assert "DataError" in marker or "InstantiationException" in marker
    assert not (tmp_path / "run" / "summary.json").exists()
    assert "run stopped" in (tmp_path / "run" / "run.log").read_text()


def test_gpu_request_without_gpu_is_a_clear_error(tmp_path):
    import jax

    from mrp_numpyro.app.device import DeviceError, configure_device

    try:
        jax.devices("gpu")
        pytest.skip("this machine has a GPU")
    except RuntimeError:
        pass
    with pytest.raises(DeviceError, match="device=gpu was requested"):
        configure_device("gpu")
    configure_device("cpu")


def _cli(args, cwd):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "mrp_numpyro", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_command_line_from_another_directory(tmp_path):
    out = tmp_path / "run"
    proc = _cli(FAST + ["budget.svi_steps=50", f"hydra.run.dir={out}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_run_dir(out, "svi")
    assert "national estimate" in (out / "run.log").read_text()


def test_multirun_sweep(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _cli(["-m", *FAST, "budget.svi_steps=50", "guide=meanfield,fullrank", f"hydra.sweep.dir={sweep}"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    guides = {json.loads((sweep / str(i) / "summary.json").read_text())["guide"] for i in range(2)}
    assert guides == {"AutoDiagonalNormal", "AutoMultivariateNormal"}


def test_svi_resumes_from_checkpoint(tmp_path):
    """A fit stopped at 200 steps and resumed to 400 equals one run of 400 steps.

    With a constant step size (meanfield); a decaying one is a function of num_steps, so
    there the first run would have followed another schedule.
    """
    base = FAST + ["guide=meanfield", "inference.check_every=100", "inference.plateau_rtol=null", "budget.svi_draws=100"]
    run(compose_config(base + ["budget.svi_steps=200"]), tmp_path / "first")
    checkpoint = tmp_path / "first" / "svi_checkpoint.pkl"
    assert checkpoint.exists()
    resumed = run(compose_config(base + ["budget.svi_steps=400", f"inference.resume_from={checkpoint}"]), tmp_path / "resumed")
    straight = run(compose_config(base + ["budget.svi_steps=400"]), tmp_path / "straight")
    assert resumed.fit.diagnostics["steps_run"] == 400
    np.testing.assert_allclose(resumed.fit.traces["elbo"], straight.fit.traces["elbo"], rtol=1e-5)
    with pytest.raises(Exception, match="not AutoMultivariateNormal"):
        run(compose_config(base + ["guide=fullrank", f"inference.resume_from={checkpoint}"]))


def test_sigterm_marks_the_run_incomplete(tmp_path):
    import signal
    import time

    out = tmp_path / "run"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    # A long run the signal interrupts. Mean-field, for the default guide keeps the initial step
    # size of a million-step schedule long enough to break its scale factor, and the health
    # check stops it at 1,500 steps (a FitError) unless the signal arrives first. Its plateau
    # detector is off, else it can converge and finish before the signal (a race CI once lost).
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mrp_numpyro",
            "guide=meanfield",
            "progress=false",
            "budget.svi_steps=1000000",
            "inference.plateau_rtol=null",
            f"hydra.run.dir={out}",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while not (out / "svi_checkpoint.pkl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    assert proc.returncode != 0
    assert "SystemExit" in (out / "INCOMPLETE").read_text()
    assert not (out / "summary.json").exists()
    # What it had is kept: the config, the log and a checkpoint to resume from.
    assert (out / "config.yaml").exists() and (out / "svi_checkpoint.pkl").exists()


def test_levels_without_respondents_are_predicted(tmp_path):
    from hydra.utils import instantiate

    from mrp_numpyro.data.validation import build_mrp_data

    cfg = compose_config([*FAST, "guide=meanfield"])
    full = instantiate(cfg.data)
    survey = full.survey[full.survey["state"] != "WY"].drop(columns=["repvote", "region"])
    area = full.survey.drop_duplicates("state")[["state", "repvote", "region"]]
    data = build_mrp_data(survey, full.poststrat.drop(columns=["repvote", "region"]), area, full.schema, "no WY")
    assert any("'WY'" in note for note in data.notes)
    import jax
    import numpyro

    from mrp_numpyro import Priors, build_design, build_model, fit_svi, parse_formula, poststratify_draws

    design = build_design(parse_formula(cfg.model.formula), data)
    model = build_model(design, Priors())
    fit = fit_svi(
        model,
        jax.random.PRNGKey(0),
        guide=instantiate(cfg.inference.guide),
        optimizer=numpyro.optim.Adam(0.01),
        num_steps=10_000,
        num_draws=1000,
    )
    table = poststratify_draws(fit.draws, design, {"state": ["state"]})["state"].summary().set_index("state")
    wy = table.loc["WY"]
    assert np.isfinite(wy[["mean", "q5", "q95"]]).all() and wy["q5"] < wy["mean"] < wy["q95"]
    # Predicted from the hierarchy: no cell has WY, so its standardised effect is apart from
    # the likelihood and its posterior is its prior, normal(0, 1), of which the posterior's
    # mean-field factor is exactly that. Standard errors over 1,000 draws: 0.03 for the mean,
    # 0.02 for the sd; the rest of the tolerance is the optimiser's jitter in the guide's
    # location and scale (means within 0.11 of 0, sds 0.92-1.02 over seeds 0-7).
    z_wy = fit.draws["z_state"][0][:, design.group_levels[design.group_names.index("state")].index("WY")]
    assert abs(z_wy.mean()) < 0.2
    assert 0.85 < z_wy.std() < 1.15


def test_numerical_blow_up_never_writes_nan(tmp_path):
    """An absurd step size either stops with a clear error or leaves finite estimates."""
    from mrp_numpyro.inference import FitError

    cfg = compose_config(FAST + ["inference.optimizer.step_size.init=1e6", "budget.svi_steps=100"])
    try:
        run(cfg, tmp_path)
    except FitError as err:
        assert "step size" in str(err) or "not finite" in str(err)
        assert (tmp_path / "INCOMPLETE").exists() and not (tmp_path / "estimates_state.csv").exists()
    else:
        states = pd.read_csv(tmp_path / "estimates_state.csv")
        assert np.isfinite(states[["mean", "sd", "q5", "q95"]].to_numpy()).all()


def test_report_without_national_grouping(tmp_path):
    cfg = compose_config(FAST + ["budget.svi_steps=50", "budget.svi_draws=50", "~poststrat.groupings.national"])
    result = run(cfg, tmp_path)
    assert result.summary["national_mean"] is None
    assert "National estimate" not in (tmp_path / "report.html").read_text()
    # summary.json is strict JSON: undefined values are null, never NaN.
    json.loads((tmp_path / "summary.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in summary.json"))


@pytest.mark.parametrize(
    "overrides, expected",
    [
        (["guide=coupled"], "identified"),
        (["guide=meanfield"], "noncentred"),
        # NUTS gets partial centring from a pilot fit.
        (["inference=nuts"], "partial"),
        (["guide=coupled", "model/parameterization=noncentred"], "noncentred"),
        (["inference=nuts", "model/parameterization=identified"], "identified"),
        (["method=meanfield"], "noncentred"),
        (["method=nuts"], "partial"),
    ],
)
def test_the_method_chooses_its_coordinates_unless_the_config_does(overrides, expected):
    from hydra.utils import instantiate

    from mrp_numpyro.model import PARAMETERIZATIONS

    chosen = instantiate(compose_config(overrides).model.parameterization)
    assert chosen.name == expected and type(chosen) is PARAMETERIZATIONS[expected]


def test_a_nuts_run_carries_no_guide_settings():
    cfg = compose_config(["inference=nuts"])
    assert "guide" not in cfg.inference and "optimizer" not in cfg.inference and "elbo" not in cfg.inference
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="guide"):
        compose_config(["inference=nuts", "guide=meanfield"])


def test_identified_nuts_run(tmp_path):
    """NUTS in identified coordinates writes the same shared parameters as the non-centred model."""
    cfg = compose_config(FAST + ["inference=nuts", "model/parameterization=identified"])
    result = run(cfg, tmp_path)
    summary = check_run_dir(tmp_path, "nuts")
    assert summary["parameterization"] == "identified"
    assert result.fit.draws["z_state"].shape == (2, 100, 50)
