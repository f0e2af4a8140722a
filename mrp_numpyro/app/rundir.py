"""A run directory: never overwritten, marked ``INCOMPLETE`` until its ``summary.json`` is written."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..outputs import write_text

log = logging.getLogger("mrp_numpyro")

__all__ = ["INCOMPLETE", "RUN_FILES", "run_directory"]

# Present from the start of a run until it has finished; holds why a run stopped.
INCOMPLETE = "INCOMPLETE"
# Files whose presence means a directory already holds a run.
RUN_FILES = frozenset({"summary.json", "config.yaml", "run.log", "posterior.nc", "poststrat_draws.nc", INCOMPLETE})


@contextmanager
def _log_to(path: Path) -> Iterator[None]:
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    level = log.level
    if log.getEffectiveLevel() > logging.INFO:
        log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
        handler.close()


@contextmanager
def run_directory(out: str | Path) -> Iterator[Path]:
    """Claim ``out`` for one run: refuse a directory that holds a run, log to ``run.log``, mark it until done.

    The ``INCOMPLETE`` marker stays if the body fails or is interrupted (Ctrl-C, SIGTERM),
    with the reason written into it, so a partial directory is never mistaken for a
    finished one; it is removed when the body returns.

    Raises
    ------
    FileExistsError
        When ``out`` already holds run output.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(p.name for p in out.iterdir() if p.name in RUN_FILES)
    if existing:
        raise FileExistsError(f"{out} already holds run output {existing}; runs never overwrite, choose another directory")
    marker = out / INCOMPLETE
    write_text(marker, f"run started {time.strftime('%Y-%m-%d %H:%M:%S')}; not finished\n")
    with _log_to(out / "run.log"):
        try:
            yield out
        except BaseException as err:
            write_text(marker, f"run stopped by {type(err).__name__}: {err}\n")
            log.error("run stopped by %s: %s; %s marks the directory incomplete", type(err).__name__, err, INCOMPLETE)
            raise
    marker.unlink()
