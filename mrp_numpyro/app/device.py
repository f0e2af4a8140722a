"""JAX platform settings; applied before the first JAX computation of a run."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import jax
import numpyro

log = logging.getLogger(__name__)

__all__ = ["configure_device", "DeviceError"]

PLATFORMS = ("cpu", "gpu")


class DeviceError(RuntimeError):
    """Raised when the configured device is not available."""


def _usable_cores() -> int:
    """Cores this process may run on: its CPU affinity where the OS reports one.

    A batch scheduler (Slurm, a container's cpuset) confines a job to some of a node's
    cores; ``os.cpu_count()`` would count all of them and start more parallel chains than
    the job has cores.
    """
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def configure_device(
    platform: str = "cpu",
    x64: bool = False,
    host_device_count: int | None = None,
    compilation_cache_dir: str | None = None,
) -> dict[str, Any]:
    """Select the JAX platform, precision and number of CPU devices.

    Parameters
    ----------
    platform : {"cpu", "gpu"}
    x64 : bool
        Use float64 (slower; float32 is accurate enough for this model's likelihood).
    host_device_count : int, optional
        CPU devices to expose for parallel NUTS chains; defaults to the number of cores
        this process may run on (a Slurm task's allocation, not the whole node).
        It only takes effect before JAX first initialises its backend in this process.
    compilation_cache_dir : str, optional
        Directory of JAX's persistent compilation cache; ``None`` disables it. Setting up a
        guide or NUTS compiles a few hundred small operations one by one (about 10 s on two
        CPU cores); with the cache a later run on data of the same shape reuses them.

    Returns
    -------
    dict
        Backend, devices and precision in effect, for the run summary.
    """
    if platform not in PLATFORMS:
        raise DeviceError(f"device.platform must be one of {list(PLATFORMS)}, got {platform!r}")
    if platform == "cpu":
        numpyro.set_host_device_count(int(host_device_count or _usable_cores()))
        # Forces the CPU even where a GPU is present (effective before JAX's first use).
        numpyro.set_platform("cpu")
    numpyro.enable_x64(bool(x64))
    cache = Path(compilation_cache_dir).expanduser() if compilation_cache_dir else None
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(cache))
        # Cache every executable: the per-operation ones are small and quick, but many.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    try:
        devices = jax.devices(platform)
    except RuntimeError as err:
        raise DeviceError(
            f"device={platform} was requested but JAX finds no {platform.upper()} ({err}). "
            "Install a CUDA build of jax (pip install 'jax[cuda12]') on a machine with a GPU, or use device=cpu."
        ) from err
    # Explicit, so that a CPU run after a GPU run in one process (or the reverse) obeys the config.
    jax.config.update("jax_default_device", devices[0])
    info = {
        "platform": platform,
        "devices": [str(d) for d in devices],
        # The card's name (e.g. "NVIDIA H100 80GB HBM3"), for benchmark tables.
        "device_kind": devices[0].device_kind,
        "x64": bool(jax.config.read("jax_enable_x64")),
        "compilation_cache_dir": None if cache is None else str(cache),
    }
    log.info("JAX on %s: %d device(s), x64=%s", platform, len(devices), info["x64"])
    return info
