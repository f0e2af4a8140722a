"""Shared fixtures. The host device count must be set before JAX initialises its backend,
so it is set here, at import, for parallel NUTS chains in the tests."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import numpyro
import pytest

numpyro.set_host_device_count(2)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("MRP_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _reset_seeds():
    """Tests pass explicit PRNG keys; global generators are reset so nothing depends on order."""
    random.seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The CCES files beside the checkout (../shared/data) or in $MRP_DATA_DIR."""
    if not (SHARED_DATA / "cces_all_clean.csv").is_file():
        pytest.skip(f"CCES data not found in {SHARED_DATA}; set MRP_DATA_DIR to run the CCES tests")
    return SHARED_DATA


@pytest.fixture(scope="session")
def cces_nuts_and_default_guide(data_dir):
    """``fit(formula) -> (nuts, default guide)``: both run on the full CCES, without the report or the checks.

    NUTS runs 4 chains x 500 warm-up + 500 draws, half the default, to keep the suite short:
    at a bulk ESS of 400 or more a state mean's Monte Carlo error is about 0.1 pp, against the
    tests' 0.5 pp bound on the state means' largest difference (0.14-0.18 pp measured with
    full-length chains, BENCHMARKS.md).
    """
    from mrp_numpyro.app.config import compose_config
    from mrp_numpyro.app.run import run

    def fit(formula: str):
        common = ["data=cces18", f"data.dir={data_dir}", f"model.formula='{formula}'", "report=false", "progress=false"]
        common += ["checks.predictive=[]", "checks.loo=false"]
        nuts = run(compose_config([*common, "inference=nuts", "budget.nuts_warmup=500", "budget.nuts_samples=500"]), None)
        svi = run(compose_config(common), None)
        a, b = nuts.estimates["state"].summary(), svi.estimates["state"].summary()
        assert list(a["state"]) == list(b["state"])
        return nuts, svi

    return fit
