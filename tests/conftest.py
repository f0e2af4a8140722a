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
