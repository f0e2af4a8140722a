"""Writers for a run directory.

Every file is written to a temporary name in the same directory and then renamed, so a
reader never sees a half-written file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import arviz as az
    import xarray as xr

__all__ = ["atomic_write", "write_csv", "write_json", "write_text", "write_netcdf"]


def atomic_write(path: str | os.PathLike[str], writer: Callable[[Path], object]) -> Path:
    """Call ``writer(tmp_path)`` and move the result to ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        writer(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda p: p.write_text(text))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write strict JSON: NaN and infinities (e.g. an undefined diagnostic) become null."""
    return write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, default=_jsonable, allow_nan=False) + "\n")


def _finite(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy scalars and arrays
        return _finite(obj.tolist())
    return obj


def write_csv(path: str | os.PathLike[str], table: pd.DataFrame) -> Path:
    """Write ``table`` to ``path`` as CSV without its index, atomically."""
    return atomic_write(path, lambda p: table.to_csv(p, index=False))


def write_netcdf(path: str | os.PathLike[str], obj: xr.Dataset | az.InferenceData) -> Path:
    """Write an xarray Dataset or an ArviZ InferenceData to NetCDF (h5netcdf engine)."""
    return atomic_write(path, lambda p: obj.to_netcdf(str(p), engine="h5netcdf"))


def _jsonable(obj: object) -> str:
    # numpy values are converted by _finite before encoding.
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
