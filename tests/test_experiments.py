"""The experiment scripts run (with tiny settings); their numbers live in BENCHMARKS.md."""

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

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


def test_reliability_coverage_and_table():
    module = load("reliability")
    cov = module.coverage_rows(["meanfield"], replications=1, n=1000, extra=["experiment=fast"])
    assert 0 <= cov.loc[0, "cov90"] <= 1 and cov.loc[0, "cov90_se"] >= 0
    row = {"method": "meanfield", "wall_s": 1.0, "khat": 2.0, "psis_ess": 1.0, "national_pct": 44.0}
    text = module.markdown(pd.DataFrame([row | cov.iloc[0].to_dict()]))
    assert "| meanfield | 1.0 | 2.00 |" in text and np.isfinite(cov.loc[0, "cov50"])
