"""Spot check: VI and NUTS on the same random subsample, compared.

The validation workflow for data too large to run MCMC on every time: draw a subsample
(``data.n``, e.g. 5,000), fit the configured VI method and the reference (the same config
with the overrides of ``reference``, ``[inference=nuts]``) to it, and compare their state
and national estimates with :mod:`mrp_numpyro.compare`. The run directory holds ``vi/``,
``reference/`` and ``compare/`` (table and figures), and ``spotcheck.json`` with the summary.

Command line::

    python -m mrp_numpyro.spotcheck data=cces18 data.dir=PATH data.n=5000 guide=fullrank
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .app.config import HYDRA_VERSION_BASE, config_dir
from .app.run import run
from .compare import overall, write_comparison
from .outputs import write_json

log = logging.getLogger("mrp_numpyro")

__all__ = ["spot_check", "main"]


def spot_check(cfg: DictConfig, reference: DictConfig, out: str | Path) -> dict:
    """Run ``cfg``'s VI method and the ``reference`` config on the same data and compare them.

    Parameters
    ----------
    cfg : DictConfig
        The VI run.
    reference : DictConfig
        The run it is judged against, e.g. ``compose_config([..., "inference=nuts"])``.
    out : path-like
        Directory for ``vi/``, ``reference/``, ``compare/`` and ``spotcheck.json``.

    Returns
    -------
    dict
        Summary of both runs (method, verdict, k-hat, times) and of the comparison.
    """
    out = Path(out)
    vi = run(cfg, out / "vi")
    ref = run(reference, out / "reference")
    names = (vi.fit.diagnostics.get("guide") or vi.fit.method, ref.fit.method.upper())
    table = write_comparison(out / "vi", out / "reference", out / "compare", names=names)
    summary = {
        "data": vi.summary["data"],
        "n_respondents": vi.summary["n_respondents"],
        "vi": {k: vi.summary[k] for k in ("guide", "verdict", "national_mean", "timings_s")}
        | {"khat": vi.fit.diagnostics.get("khat")},
        "reference": {k: ref.summary[k] for k in ("method", "national_mean", "timings_s")}
        | {k: ref.fit.diagnostics.get(k) for k in ("divergences", "max_rhat", "min_ess_bulk")},
        "comparison": overall(table),
    }
    write_json(out / "spotcheck.json", summary)
    c = summary["comparison"]
    log.info(
        "spot check: |state mean difference| %.2f pp on average, %.2f pp at most; 90%% width ratio %.2f-%.2f",
        c["mean_abs_diff_pp"],
        c["max_abs_diff_pp"],
        c["ratio90_min"],
        c["ratio90_max"],
    )
    return summary


@hydra.main(version_base=HYDRA_VERSION_BASE, config_path=str(config_dir()), config_name="spotcheck")
def main(cfg: DictConfig) -> None:
    """Command line: the configured VI run and its reference on one subsample, compared."""
    # The reference is the command line's own overrides with those of `reference` after them.
    overrides = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("reference")]
    reference = compose(config_name="config", overrides=[*overrides, *cfg.reference])
    spot_check(cfg, reference, Path(HydraConfig.get().runtime.output_dir))


if __name__ == "__main__":
    main()
