"""JAX platform settings; applied before the first JAX computation of a run."""

from __future__ import annotations

import logging
import os

import jax
import numpyro

log = logging.getLogger(__name__)

__all__ = ["configure_device", "DeviceError"]

PLATFORMS = ("cpu", "gpu")


class DeviceError(RuntimeError):
    """Raised when the configured device is not available."""


def configure_device(platform: str = "cpu", x64: bool = False, host_device_count: int | None = None) -> dict:
    """Select the JAX platform, precision and number of CPU devices.

    Parameters
    ----------
    platform : {"cpu", "gpu"}
    x64 : bool
        Use float64 (slower; float32 is accurate enough for this model's likelihood).
    host_device_count : int, optional
        CPU devices to expose for parallel NUTS chains; defaults to the number of cores.
        It only takes effect before JAX first initialises its backend in this process.

    Returns
    -------
    dict
        Backend, devices and precision in effect, for the run summary.
    """
    if platform not in PLATFORMS:
        raise DeviceError(f"device.platform must be one of {list(PLATFORMS)}, got {platform!r}")
    if platform == "cpu":
        numpyro.set_host_device_count(int(host_device_count or os.cpu_count() or 1))
        # Forces the CPU even where a GPU is present (effective before JAX's first use).
        numpyro.set_platform("cpu")
    numpyro.enable_x64(bool(x64))
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
        "x64": bool(jax.config.jax_enable_x64),
    }
    log.info("JAX on %s: %d device(s), x64=%s", platform, len(devices), info["x64"])
    return info
