"""Sweeps through real Hydra launchers (joblib, Ray, Slurm via submitit), the experiment
presets that configure them, and the collector that turns a sweep into one table."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.types import RunMode

from mrp_numpyro.app.config import HYDRA_VERSION_BASE, compose_config, config_dir
from mrp_numpyro.app.run import run
from mrp_numpyro.collect import add_reference, collect, find_runs
from mrp_numpyro.collect import main as collect_main
from mrp_numpyro.compare import compare_runs, overall

# Small and quick: the fast preset, few steps, no figures.
QUICK = ["progress=false", "report=false", "budget.svi_steps=100"]


def _cli(args, cwd, env=None, timeout=600):
    env = {**os.environ, "PYTHONWARNINGS": "ignore", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mrp_numpyro", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def _log_span(run_dir: Path) -> tuple[datetime, datetime]:
    """First and last timestamp of a run's run.log."""
    stamps = [line[:23] for line in (run_dir / "run.log").read_text().splitlines() if line[:4].isdigit()]
    return datetime.strptime(stamps[0], "%Y-%m-%d %H:%M:%S,%f"), datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S,%f")


@pytest.fixture(scope="module")
def reliability_sweep(tmp_path_factory):
    """The reliability preset with the fast one, meanfield and NUTS only, on two joblib workers."""
    root = tmp_path_factory.mktemp("joblib")
    sweep = root / "sweep"
    args = [
        "experiment=[reliability,fast]",
        "method=meanfield,nuts",
        "hydra/launcher=joblib_local",
        "hydra.launcher.n_jobs=2",
        *QUICK,
        f"hydra.sweep.dir={sweep}",
    ]
    # No -m: the preset sets hydra.mode=MULTIRUN, so the one command runs the sweep.
    proc = _cli(args, cwd=root)
    return sweep, proc


def test_joblib_sweep_runs_in_parallel_and_collects_itself(reliability_sweep):
    sweep, proc = reliability_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout  # Hydra logs to stdout
    assert [p.name for p in find_runs(sweep)] == ["0", "1"]
    # Two workers at once: the two runs' lifetimes overlap.
    (a0, a1), (b0, b1) = _log_span(sweep / "0"), _log_span(sweep / "1")
    assert a0 < b1 and b0 < a1, f"runs did not overlap: {a0}-{a1} and {b0}-{b1}"
    # The collect callback wrote the table, each guide compared with the NUTS run.
    table = pd.read_csv(sweep / "sweep.csv", dtype={"run": str, "reference": str})
    assert list(table["method"]) == ["meanfield", "nuts"] and (table["status"] == "ok").all()
    mf, nuts = table.iloc[0], table.iloc[1]
    assert mf["reference"] == "1" and pd.isna(nuts["reference"])
    assert mf["ref_mean_abs_diff_pp"] > 0 and mf["ref_max_abs_diff_pp"] >= mf["ref_mean_abs_diff_pp"]
    assert mf["verdict"] in {"pass", "warn", "fail"} and np.isfinite(mf["khat"]) and pd.isna(mf["divergences"])
    assert nuts["divergences"] >= 0 and nuts["max_rhat"] > 1 and pd.isna(nuts["khat"])
    assert (table["n_respondents"] == 2000).all() and (table["data"] == "synthetic").all()
    assert (table["national_q5_pct"] < table["national_pct"]).all() and (table["national_pct"] < table["national_q95_pct"]).all()


def test_collector_command_line(reliability_sweep, tmp_path, capsys):
    src, proc = reliability_sweep
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = tmp_path / "sweep"
    shutil.copytree(src, sweep)
    (sweep / "sweep.csv").unlink()
    # A run that fails is a row with its error, not a gap in the table.
    with pytest.raises(Exception, match="not found"):
        run(compose_config(["experiment=fast", "data=cces18", f"data.dir={tmp_path / 'nowhere'}"]), sweep / "2")

    assert collect_main([str(sweep), "--reference", str(sweep / "1"), "--out", str(tmp_path / "t.csv")]) == 0
    printed = capsys.readouterr().out
    assert "3 runs (1 failed)" in printed and "meanfield" in printed
    table = pd.read_csv(tmp_path / "t.csv", dtype={"run": str, "reference": str})
    assert list(table["run"]) == ["0", "1", "2"]
    failed = table.iloc[2]
    assert failed["status"] == "failed" and "not found" in failed["error"] and failed["data"] == "cces18"
    assert pd.isna(failed["national_pct"]) and pd.isna(failed["ref_mean_abs_diff_pp"])

    # Two routes to the same number: the collector's columns are compare_runs' summary.
    expected = overall(compare_runs(sweep / "0", sweep / "1")[0])
    mf = table.iloc[0]
    assert mf["ref_mean_abs_diff_pp"] == pytest.approx(expected["mean_abs_diff_pp"])
    assert mf["ref_ratio90_max"] == pytest.approx(expected["ratio90_max"])
    assert mf["ref_national_diff_pp"] == pytest.approx(expected["national_diff_pp"])
    by_method = collect(sweep, reference_method="nuts")
    assert by_method.loc[0, "ref_max_abs_diff_pp"] == pytest.approx(mf["ref_max_abs_diff_pp"])

    # The error against the synthetic truth, from the run's own estimates.
    states = pd.read_csv(sweep / "0" / "estimates_state.csv")
    assert mf["truth_state_mae_pp"] == pytest.approx(100 * (states["mean"] - states["truth"]).abs().mean())
    # National mean and interval in percent, from estimates_national.csv.
    national = pd.read_csv(sweep / "0" / "estimates_national.csv").iloc[0]
    assert mf["national_q95_pct"] == pytest.approx(100 * national["q95"])


def test_collector_errors_name_the_problem(tmp_path):
    with pytest.raises(NotADirectoryError, match="nowhere"):
        collect(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="no run directories"):
        collect(tmp_path)
    table = pd.DataFrame({"run": [str(tmp_path)], "status": ["ok"], "method": ["meanfield"]})
    with pytest.raises(FileNotFoundError, match="not a finished run directory"):
        add_reference(table, reference=tmp_path)
    with pytest.raises(ValueError, match="not both"):
        add_reference(table, reference=tmp_path, reference_method="nuts")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """A Ray head node on this machine, started for the test and stopped after it."""
    missing = [m for m in ("ray", "hydra_plugins.hydra_ray_launcher") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{missing} not importable; pip install 'mrp_numpyro[cluster]'")
    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if ray is None:
        pytest.skip("the ray command is not installed beside this Python")
    env = {
        **os.environ,
        # Everything on the loopback interface: Ray otherwise replaces 127.0.0.1 by the
        # machine's network address (this switch is what it uses on laptops).
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        # No token file written to ~/.ray for a throwaway loopback-only cluster.
        "RAY_AUTH_MODE": "disabled",
        "PYTHONWARNINGS": "ignore",
    }
    # Ray gives its raylet a fixed 30 s to register; on two busy cores that once ran out,
    # so a head that dies while starting gets one more try.
    for attempt in (1, 2):
        head, temp, port = _start_ray_head(ray, env)
        try:
            if _wait_for_head(head, temp):
                yield f"127.0.0.1:{port}", env
                return
            if attempt == 2:
                pytest.fail(f"Ray head did not start:\n{(temp / 'head.log').read_text()[-3000:]}")
        finally:
            _stop_ray_head(head, temp)


def _start_ray_head(ray: str, env: dict) -> tuple[subprocess.Popen, Path, int]:
    # Ray's own temp dir: short, because it holds Unix sockets (path length limit ~107).
    temp = Path(tempfile.mkdtemp(prefix="ray"))
    port = _free_port()
    with open(temp / "head.log", "w") as log:
        head = subprocess.Popen(
            [
                ray,
                "start",
                "--head",
                "--block",
                f"--port={port}",
                "--node-ip-address=127.0.0.1",
                "--num-cpus=2",
                "--include-dashboard=false",
                "--disable-usage-stats",
                f"--temp-dir={temp}",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return head, temp, port


def _wait_for_head(head: subprocess.Popen, temp: Path, timeout: float = 120) -> bool:
    """True once the head has written its address file; False if it exits or times out."""
    deadline = time.time() + timeout
    while not (temp / "ray_current_cluster").exists():
        if head.poll() is not None or time.time() > deadline:
            return False
        time.sleep(0.5)
    return True


def _stop_ray_head(head: subprocess.Popen, temp: Path) -> None:
    # --block makes the head stop its Ray processes when it is terminated.
    head.terminate()
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(head.pid, signal.SIGKILL)  # its own session, started above
        head.wait(timeout=30)
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_launcher_sweep_on_a_local_cluster(ray_head, tmp_path):
    address, env = ray_head
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "hydra/launcher=ray_cluster",
        f"hydra.launcher.ray.init.address={address}",
        "experiment=fast",
        *QUICK,
        "guide=meanfield,fullrank",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = _cli(args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Ray Launcher is launching 2 jobs" in proc.stdout
    # Ray forwards its workers' output with the task's name.
    assert "(_run_job pid=" in proc.stdout + proc.stderr
    table = pd.read_csv(sweep / "sweep.csv", dtype={"run": str, "reference": str})
    assert list(table["method"]) == ["meanfield", "fullrank"] and (table["status"] == "ok").all()
    assert list(table["guide"]) == ["AutoDiagonalNormal", "AutoMultivariateNormal"]


def test_slurm_launcher_submits_an_array_job(tmp_path):
    """hydra/launcher=slurm reaches sbatch with the configured resources.

    No cluster here: a stand-in ``sbatch`` keeps the submission script and refuses the job,
    so the sweep stops right after submitit has written it (submitit also looks for
    ``srun`` before it submits; that stand-in is never called).
    """
    if importlib.util.find_spec("hydra_plugins.hydra_submitit_launcher") is None:
        pytest.skip("hydra-submitit-launcher not installed; pip install 'mrp_numpyro[cluster]'")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stand_ins = {
        "sbatch": f'#!/bin/sh\ncp "$1" {tmp_path}/submitted.sh\necho "sbatch: error: no cluster in a test" >&2\nexit 1\n',
        "srun": "#!/bin/sh\nexit 1\n",
    }
    for name, text in stand_ins.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    sweep = tmp_path / "sweep"
    args = [
        "-m",
        "hydra/launcher=slurm",
        "hydra.launcher.partition=debug",
        "experiment=fast",
        *QUICK,
        "method=meanfield,nuts",
        f"hydra.sweep.dir={sweep}",
    ]
    proc = _cli(args, cwd=tmp_path, env={"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, timeout=120)
    assert proc.returncode != 0 and "no cluster in a test" in proc.stdout + proc.stderr
    script = (tmp_path / "submitted.sh").read_text()
    for line in (
        "#SBATCH --partition=debug",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=8GB",
        "#SBATCH --time=30",
        "#SBATCH --array=0-1%2",
        "#SBATCH --job-name=mrp_numpyro",
    ):
        assert line in script, f"{line!r} missing from:\n{script}"
    assert "submitit.core._submit" in script and str(sweep / ".submitit") in script


def _compose_with_hydra(overrides):
    with initialize_config_dir(config_dir=str(config_dir()), version_base=HYDRA_VERSION_BASE):
        return compose(config_name="config", overrides=overrides, return_hydra_config=True)


@pytest.mark.parametrize("method, target", [("nuts", "NUTSMethod"), ("fullrank", "SVIMethod"), ("iaf", "SVIMethod")])
def test_method_group_sets_guide_and_inference(method, target):
    cfg = compose_config([f"method={method}"])
    assert cfg.inference._target_.endswith(target) and cfg.inference.label == method
    if method != "nuts":
        assert cfg.inference.guide._target_ == compose_config([f"guide={method}"]).inference.guide._target_
    # An explicit guide= still wins over the method's.
    assert compose_config(["method=fullrank", "guide=lowrank"]).inference.guide._target_.endswith("AutoLowRankMultivariateNormal")


def test_presets_compose_with_the_fast_one():
    demo = compose_config(["experiment=[demo,fast]"])
    assert demo.inference._target_.endswith("NUTSMethod") and demo.budget.nuts_samples == 100
    for preset, params in (
        ("reliability", {"method": "coupled,meanfield,fullrank,lowrank,iaf,nuts"}),
        ("runtime", {"method": "nuts,coupled,meanfield,fullrank,lowrank,iaf", "data.n": "5000,10000,null"}),
    ):
        cfg = _compose_with_hydra([f"experiment=[{preset},fast]"])
        assert cfg.hydra.mode == RunMode.MULTIRUN and dict(cfg.hydra.sweeper.params) == params
        assert f"multirun/{preset}/" in cfg.hydra.sweep.dir
    assert _compose_with_hydra(["experiment=reliability"]).hydra.callbacks.collect.reference_method == "nuts"
    runtime = compose_config(["experiment=runtime", "method=nuts", "data.n=null"])
    assert runtime.data.name == "cces18" and runtime.data.n is None


def test_runtime_preset_runs_as_one_command(tmp_path):
    sweep = tmp_path / "sweep"
    # One method and one size of the preset's grid: a sweep of one run, with no -m.
    proc = _cli(
        ["experiment=[runtime,fast]", "data=synthetic", "method=meanfield", "data.n=1000", *QUICK, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pd.read_csv(sweep / "sweep.csv", dtype={"run": str, "reference": str})
    assert list(table["run"]) == ["0"] and list(table["n_respondents"]) == [1000]
    assert (table[["t_load_s", "t_aggregate_s", "t_fit_s", "t_poststratify_s"]] > 0).all().all()
    assert table["t_total_s"].iloc[0] == pytest.approx(table.filter(regex=r"^t_.*_s$").drop(columns="t_total_s").iloc[0].sum())
