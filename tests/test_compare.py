import json

import numpy as np
import pandas as pd
import pytest

from mrp_numpyro.app.config import compose_config
from mrp_numpyro.app.run import run
from mrp_numpyro.compare import compare_draws, main, overall
from mrp_numpyro.spotcheck import spot_check


def test_compare_draws_known_answers():
    rng = np.random.default_rng(0)
    b = rng.normal(0.5, 0.02, size=(20_000, 2))
    a = np.column_stack([b[:, 0] + 0.01, 0.5 + 2 * (b[:, 1] - 0.5)])  # shifted by 1 pp; twice as wide
    table = compare_draws(a, b, ["x", "y"])
    assert table.loc[0, "diff_pp"] == pytest.approx(1.0, abs=1e-9)
    assert table.loc[0, "ratio90"] == pytest.approx(1.0, abs=1e-9)
    # W1 of a pure shift is the shift.
    assert table.loc[0, "w1_pp"] == pytest.approx(1.0, abs=1e-9)
    assert table.loc[1, "ratio50"] == pytest.approx(2.0, abs=1e-9)
    assert table.loc[1, "ratio90"] == pytest.approx(2.0, abs=1e-9)
    # W1 between N(0, s) and N(0, 2s) is s * E|Z| = s * sqrt(2 / pi), here in pp.
    assert table.loc[1, "w1_pp"] == pytest.approx(100 * 0.02 * np.sqrt(2 / np.pi), rel=0.03)


def test_compare_draws_rejects_mismatched_groups():
    with pytest.raises(ValueError, match="same 2 groups"):
        compare_draws(np.ones((3, 2)), np.ones((3, 3)), ["a", "b"])


def test_compare_two_runs_and_spot_check(tmp_path, capsys):
    fast = ["experiment=fast", "progress=false"]
    run(compose_config(fast), tmp_path / "a")
    run(compose_config(fast + ["guide=fullrank"]), tmp_path / "b")
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp"), "--labels", "MF", "FR"]) == 0
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert len(table) == 51 and table["group"].iloc[-1] == "national"
    assert {"diff_pp", "ratio50", "ratio90", "w1_pp"} <= set(table.columns)
    for png in ("compare_intervals.png", "compare_draws.png"):
        assert (tmp_path / "cmp" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mean_abs_diff_pp" in capsys.readouterr().out
    # A run compared with itself agrees exactly.
    same = overall(compare_draws(*(2 * [np.random.default_rng(1).uniform(size=(100, 3))]), ["a", "b", "national"]))
    assert same["max_abs_diff_pp"] == 0 and same["ratio90_min"] == 1

    cfg = compose_config(fast, config_name="spotcheck")
    assert cfg.data.n == 2000 and list(cfg.reference) == ["inference=nuts"]
    summary = spot_check(cfg, compose_config(fast + list(cfg.reference)), tmp_path / "spot")
    saved = json.loads((tmp_path / "spot" / "spotcheck.json").read_text())
    assert saved["comparison"]["max_abs_diff_pp"] == pytest.approx(summary["comparison"]["max_abs_diff_pp"])
    assert saved["vi"]["verdict"] in ("pass", "warn", "fail")
    assert (tmp_path / "spot" / "compare" / "comparison.csv").exists()
