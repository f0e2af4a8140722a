"""The experiment scripts run (with tiny settings); their numbers live in BENCHMARKS.md."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_vsbc_smoke():
    table = load("vsbc").run_vsbc("meanfield", simulations=2, steps=20, draws=20, n=1000, seed=0)
    assert "sd_state" in set(table["parameter"]) and "beta[repvote]" in set(table["parameter"])
    assert table["mean_p"].between(0, 1).all()
    # coupled is fitted in identified coordinates: the script says so instead of checking another fit.
    with pytest.raises(SystemExit, match="identified coordinates"):
        load("vsbc").run_vsbc("coupled", simulations=2, steps=20, draws=20, n=1000, seed=0)


def test_reliability_coverage_and_table():
    module = load("reliability")
    cov = module.coverage_rows(["meanfield"], replications=1, n=1000, extra=["experiment=fast"])
    assert 0 <= cov.loc[0, "cov90"] <= 1 and cov.loc[0, "cov90_se"] >= 0
    row = {"method": "meanfield", "wall_s": 1.0, "khat": 2.0, "psis_ess": 1.0, "national_pct": 44.0}
    text = module.markdown(pd.DataFrame([row | cov.iloc[0].to_dict()]))
    assert "| meanfield | 1.0 | 2.00 |" in text and np.isfinite(cov.loc[0, "cov50"])


def test_mrp_demo_error_table_arithmetic():
    """Errors of a hand-made table: raw off by 10 pp in the small state, MRP by 1 pp everywhere."""
    module = load("mrp_demo")
    states = pd.DataFrame(
        {
            "state": ["A", "B", "C"],
            "n_resp": [10, 100, 0],
            "raw": [0.6, 0.5, np.nan],
            "raw_q5": [0.4, 0.45, np.nan],
            "raw_q95": [0.8, 0.55, np.nan],
            "mrp": [0.51, 0.49, 0.31],
            "mrp_q5": [0.45, 0.485, 0.2],
            "mrp_q95": [0.55, 0.495, 0.4],
            "reference": [0.5, 0.5, 0.3],
        }
    )
    errors = module.error_table(states, few=50).set_index(["subset", "estimator"])
    raw = errors.loc[("states with respondents", "raw")]
    assert raw["states"] == 2 and raw["respondents"] == 110
    assert raw["mae_pp"] == pytest.approx(5.0) and raw["max_pp"] == pytest.approx(10.0)
    assert raw["rmse_pp"] == pytest.approx(np.sqrt(50.0)) and raw["cov90"] == 1.0
    small = errors.loc[("states with < 50 respondents", "MRP")]
    assert small["states"] == 1 and small["mae_pp"] == pytest.approx(1.0) and small["cov90"] == 1.0
    # MRP estimates the state without respondents too; raw means cannot.
    every = errors.loc[("all states", "MRP")]
    assert every["states"] == 3 and every["cov90"] == pytest.approx(2 / 3)
    assert ("all states", "raw") not in errors.index


def test_mrp_demo_on_synthetic_data(tmp_path):
    module = load("mrp_demo")
    states, errors = module.demo(tmp_path, n=3000, method="meanfield", overrides=["experiment=fast", "budget.svi_steps=300"])
    for name in ("mrp_demo.png", "mrp_demo_states.csv", "mrp_demo_errors.csv", "mrp_demo_errors.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert (tmp_path / "fits" / "meanfield_n3000" / "summary.json").exists()
    # Without CCES files the reference is the synthetic truth.
    from mrp_numpyro.data import load_synthetic

    truth = load_synthetic(n=3000, seed=0).truth.area
    assert len(states) == 50 and states["n_resp"].sum() == 3000
    np.testing.assert_allclose(states.set_index("state")["reference"], truth.reindex(states["state"]).to_numpy())
    # The reason for MRP: in small states its error is far below the raw means' (here
    # 3.3 pp against 10.2 pp; the raw means are also biased by uneven response rates).
    small = errors[errors["subset"] == "states with < 50 respondents"].set_index("estimator")
    assert small.loc["MRP", "mae_pp"] < 0.75 * small.loc["raw", "mae_pp"]


def test_profile_fit_gradient_timing(data_dir):
    out = load("profile_fit").child(part="gradient", data_dir=str(data_dir), n=2000)
    for layout in ("term_by_term", "cells", "grid"):
        assert out[f"{layout}_ms_1"] > 0 and out[f"{layout}_ms_2"] > 0
    # Every cell is covered by the blocks; there are fewer blocks than terms.
    assert 1 <= len(out["blocks"]) < 8 and max(out["blocks"]) <= out["cells"]
    # 2,000 respondents fill too little of the grid for the model to run over it.
    assert np.prod(out["blocks"]) > 2 * out["cells"] and out["default"] == "cells"


def test_nuts_seeds_run_and_divergent_tails(tmp_path, data_dir):
    module = load("nuts_seeds")
    data_args = ["data=cces18", f"data.dir={data_dir}", "data.n=1000", "data.seed=0"]
    row = module.run_one(data_args, "partial", 0, tmp_path, ("experiment=fast",))
    assert row["parameterization"] == "partial" and row["respondents"] == 1000
    assert row["divergences"] >= 0 and row["max_rhat"] > 0.9 and row["leapfrog_steps"] >= 1
    assert "| 1,000 | partial | 0 |" in module.markdown(pd.DataFrame([row]))


def test_divergent_tails_names_the_groups_in_their_outer_tenths(tmp_path):
    """Divergent draws at sd_a's three smallest values; sd_b's at its middle."""
    import xarray as xr

    module = load("nuts_seeds")
    a = np.arange(100.0)
    b = np.roll(np.arange(100.0), 50)  # b = 50, 51, 52 where a = 0, 1, 2
    diverging = a < 3
    xr.Dataset({"sd_a": (("chain", "draw"), a[None]), "sd_b": (("chain", "draw"), b[None])}).to_netcdf(
        tmp_path / "posterior.nc", group="posterior"
    )
    xr.Dataset({"diverging": (("chain", "draw"), diverging[None])}).to_netcdf(
        tmp_path / "posterior.nc", group="sample_stats", mode="a"
    )
    assert module.divergent_tails(tmp_path) == "a 1"
    xr.Dataset({"diverging": (("chain", "draw"), np.zeros((1, 100), bool))}).to_netcdf(
        tmp_path / "posterior.nc", group="sample_stats", mode="a"
    )
    assert module.divergent_tails(tmp_path) == ""


def test_runtime_row_and_a_row_stopped_at_its_time_limit(tmp_path):
    module = load("runtime")
    args = ["data.n=2000"], "meanfield", tmp_path, ("experiment=fast",)
    row = module.run_row("synthetic n=2,000", *args)
    assert row["respondents"] == 2000 and row["device"] == "cpu" and row["fit_s"] > 0 and row["note"] == ""
    stopped = module.run_row("synthetic n=2,000", *args, timeout=1)
    assert stopped["note"] == "stopped at 1 s" and stopped["wall_s"] >= 1
    failed = module.run_row("synthetic n=2,000", ["data.n=-5"], "meanfield", tmp_path)
    assert failed["note"].startswith("failed (exit ")
    text = module.markdown(pd.DataFrame([row, stopped]))
    assert "| synthetic n=2,000 | meanfield | cpu | 2,000 |" in text and text.endswith("| stopped at 1 s |")


def test_reproduce_finds_identical_runs_identical_and_a_changed_estimate_changed(tmp_path):
    module = load("reproduce")
    for out in ("before", "after"):
        module.run_all(tmp_path / out, Path("unused"), ["fast_original"], [])
    assert module.compare(tmp_path / "before", tmp_path / "after") == 0
    table = tmp_path / "after" / "fast_original" / "estimates_state.csv"
    table.write_text(table.read_text().replace("0.", "0.9", 1))
    assert module.compare(tmp_path / "before", tmp_path / "after") == 1


def test_guide_health_traces_the_condition_and_the_inversion_of_the_default_guide():
    rows = load("guide_health").trace_health(["data.n=2000", "budget.svi_steps=1000"], steps=100, chunk=50)
    assert [r["steps"] for r in rows] == [50, 100]
    assert all(r["elbo_median"] < 0 and 1 <= r["condition"] < 1e4 and r["inversion_error"] < 1e-3 for r in rows)


def test_verdict_stability_smoke():
    module = load("verdict_stability")
    table, ratios = module.repeated_checks(["experiment=fast"], repeats=4, draws=300)
    assert len(table) == 4 and all(len(r) == 300 for r in ratios) and (table["khat_spread"] > 0).all()
    summary = module.summary(table, ratios, pool=2)
    assert list(summary["draws per check"]) == [300, 600] and list(summary["checks"]) == [4, 2]
    assert 0.5 <= summary["verdict agreement"].iloc[0] <= 1


def test_structured_priors_smoke():
    module = load("structured_priors")
    rows = module.replicate(reps=1, n=1000, steps=300, extra=["experiment=fast"])
    assert list(rows["model"]) == ["iid", "rw1"] and (rows["rep"] == 0).all()
    assert rows[list(module.METRICS)].notna().all().all() and rows["state_age_cov90"].between(0, 1).all()
    assert (rows["state_age_mae_pp"] <= rows["state_age_rmse_pp"]).all()
    text = module.report(rows)
    assert "| state x age MAE (pp) |" in text and text.endswith(f"in {module.wins(rows)} of 1 replications")
