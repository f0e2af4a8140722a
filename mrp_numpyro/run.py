"""``run(cfg)``: load data, build the model, fit, poststratify and write the run directory.

The command line (``python -m mrp_numpyro``) is a thin Hydra wrapper around this function;
notebooks and tests call it directly with a composed config (see :func:`compose_config`).
"""

from __future__ import annotations

import inspect
import logging
import platform
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Mapping

import arviz as az
import jax
import numpy as np
import pandas as pd
import xarray as xr
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from . import report
from .config import compose_config
from .design import Design, build_design
from .device import configure_device
from .formula import parse_formula
from .inference.pilot import pilot_sd
from .inference.result import Fit
from .layout import SITES
from .model import MRPModel, build_model
from .outputs import level_dim, write_csv, write_json, write_netcdf, write_text
from .poststratify import Poststratified, poststratify_draws
from .priors import Priors
from .schema import MRPData

log = logging.getLogger("mrp_numpyro")

INCOMPLETE = "INCOMPLETE"
RUN_FILES = frozenset({"summary.json", "config.yaml", "run.log", "posterior.nc", "poststrat_draws.nc", INCOMPLETE})

__all__ = ["run", "RunResult", "compose_config", "to_inference_data", "poststrat_dataset"]


@dataclass(frozen=True)
class RunResult:
    """Everything one run produced."""

    output_dir: Path | None
    data: MRPData
    model: MRPModel
    fit: Fit
    estimates: Mapping[str, Poststratified]
    summary: Mapping[str, Any]

    @property
    def design(self) -> Design:
        return self.model.design


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("mrp_numpyro", "jax", "jaxlib", "numpyro", "arviz", "hydra-core", "numpy", "pandas", "formulae"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def _progress(setting) -> bool:
    if isinstance(setting, bool):
        return setting
    if setting in (None, "auto"):
        return sys.stderr.isatty()
    raise ValueError(f"progress must be true, false or auto, got {setting!r}")


@contextmanager
def _log_to(path: Path | None):
    if path is None:
        yield
        return
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


def to_inference_data(fit: Fit, design: Design) -> az.InferenceData:
    """ArviZ InferenceData of a fit's latent draws, labelled with coefficient and level names.

    Adds ``r_<group>`` = ``sd_<group> * z_<group>``, the varying intercepts on the logit
    scale (rstanarm's ``b[...]``).
    """
    posterior = dict(fit.draws)
    coords: dict[str, Any] = {}
    dims: dict[str, list[str]] = {}
    if SITES.coefficients in posterior:
        coords["coef"] = list(design.fixed_names)
        dims[SITES.coefficients] = ["coef"]
    for slot in design.layout.groups:
        sd, z, effect = SITES.sd(slot.name), SITES.z(slot.name), SITES.effect(slot.name)
        dim = level_dim(slot.name)
        coords[dim] = list(slot.levels)
        dims[z] = [dim]
        dims[effect] = [dim]
        posterior[effect] = posterior[sd][..., None] * posterior[z]
    sample_stats = {"diverging": fit.traces["diverging"]} if "diverging" in fit.traces else None
    return az.from_dict(posterior=posterior, sample_stats=sample_stats, coords=coords, dims=dims)


def poststrat_dataset(estimates: Mapping[str, Poststratified]) -> xr.Dataset:
    """Poststratified draws as one xarray Dataset: one variable per grouping.

    A grouping ``name`` has dimensions ``(chain, draw, name_level)``; the level labels join
    multi-column groups with ":" and each column's values are kept as extra coordinates.
    """
    variables = {}
    for name, est in estimates.items():
        if not est.columns:
            variables[name] = xr.DataArray(est.draws[..., 0], dims=("chain", "draw"))
            continue
        dim = level_dim(name)
        labels = est.labels.astype(str).agg(":".join, axis=1).tolist()
        coords = {dim: labels}
        if len(est.columns) > 1:
            coords.update({f"{name}_{c}": (dim, est.labels[c].astype(str).tolist()) for c in est.columns})
        variables[name] = xr.DataArray(est.draws, dims=("chain", "draw", dim), coords=coords)
    return xr.Dataset(variables)


def _estimate_tables(data: MRPData, estimates: Mapping[str, Poststratified]):
    tables = {}
    for name, est in estimates.items():
        table = est.summary()
        truth = data.truth
        if truth is not None and est.columns == (data.schema.area,):
            table["truth"] = truth.area.reindex(table[data.schema.area]).to_numpy()
        elif truth is not None and not est.columns:
            table["truth"] = truth.national
        tables[name] = table
    return tables


def _write_report(out: Path, config_yaml: str, data: MRPData, design: Design, fit: Fit, idata: az.InferenceData, tables, summary) -> None:
    """Figures of the run and the HTML page that shows them."""
    area = data.schema.area
    figures = []
    if area in tables:
        table = tables[area]
        figures.append(report.plot_state_estimates(table, out / f"{area}_estimates.png", area, f"{area} estimates, {fit.method}"))
        if set(table[area].astype(str)) <= set(report.STATE_TILES):
            figures.append(report.plot_state_map(table, out / f"{area}_map.png", area))
    if "elbo" in fit.traces:
        figures.append(report.plot_elbo(fit.traces["elbo"], out / "elbo.png"))
    if fit.num_chains > 1:
        figures.extend(report.plot_nuts(idata, out / "trace.png", out / "rank.png", design.layout))
    report.write_report(out, summary, config_yaml, tables, figures)


def run(cfg: DictConfig, output_dir: str | Path | None = None) -> RunResult:
    """Run one MRP analysis as configured.

    Parameters
    ----------
    cfg : DictConfig
        The composed config (``conf/config.yaml`` and its groups).
    output_dir : path-like, optional
        Run directory to write. ``None`` writes nothing and only returns the result.

    Returns
    -------
    RunResult
    """
    out = Path(output_dir) if output_dir is not None else None
    if out is None:
        return _run(cfg, None)
    out.mkdir(parents=True, exist_ok=True)
    existing = sorted(p.name for p in out.iterdir() if p.name in RUN_FILES)
    if existing:
        raise FileExistsError(f"{out} already holds run output {existing}; runs never overwrite, choose another directory")
    # The marker stays if the run is interrupted or fails, so a partial directory is never
    # mistaken for a finished one; it is removed only after summary.json is written.
    marker = out / INCOMPLETE
    write_text(marker, f"run started {time.strftime('%Y-%m-%d %H:%M:%S')}; not finished\n")
    with _log_to(out / "run.log"):
        try:
            result = _run(cfg, out)
        except BaseException as err:
            write_text(marker, f"run stopped by {type(err).__name__}: {err}\n")
            log.error("run stopped by %s: %s; %s marks the directory incomplete", type(err).__name__, err, INCOMPLETE)
            raise
    marker.unlink()
    return result


def _parameterization(cfg: DictConfig) -> str:
    """``model.parameterization``, with ``auto`` resolved: the guide's choice for SVI, else partial.

    NUTS gets each level centred as far as its data allow (on the full CCES, 1 divergence
    in 16,000 draws over four seeds, against 10 in 4,000 non-centred; BENCHMARKS.md); the
    coupled guide fits best in identified coordinates.
    """
    chosen = cfg.model.get("parameterization", "auto")
    if chosen != "auto":
        return chosen
    if str(cfg.inference.get("_target_", "")).endswith("fit_svi"):
        return cfg.get("optim", {}).get("parameterization", "noncentred")
    return "partial"


def _build(design: Design, priors: Priors, dtype, parameterization: str, key: jax.Array) -> MRPModel:
    """The model in the chosen coordinates; ``partial`` first runs a pilot mean-field fit for the group sds."""
    sd_guess = None
    if parameterization == "partial" and design.group_names:
        sd_guess = pilot_sd(build_model(design, priors, dtype=dtype), key)
    elif parameterization == "partial":  # no groups: nothing to centre
        parameterization = "noncentred"
    return build_model(design, priors, dtype=dtype, parameterization=parameterization, sd_guess=sd_guess)


def _run(cfg: DictConfig, out: Path | None) -> RunResult:
    timings: dict[str, float] = {}
    progress = _progress(cfg.get("progress", "auto"))
    device = configure_device(**OmegaConf.to_container(cfg.device, resolve=True))
    if out is not None:
        config_yaml = OmegaConf.to_yaml(cfg, resolve=True)
        write_text(out / "config.yaml", config_yaml)

    t = time.perf_counter()
    data: MRPData = instantiate(cfg.data)
    timings["load"] = time.perf_counter() - t
    log.info("data: %s, %d respondents", data.source, len(data.survey))
    for note in data.notes:
        log.info("note: %s", note)

    t = time.perf_counter()
    spec = parse_formula(cfg.model.formula, columns=data.survey.columns)
    design = build_design(spec, data)
    priors = Priors.from_config(OmegaConf.to_container(cfg.model.priors, resolve=True))
    timings["aggregate"] = time.perf_counter() - t
    t = time.perf_counter()
    key = jax.random.PRNGKey(int(cfg.seed))
    dtype = np.float64 if device["x64"] else np.float32
    model = _build(design, priors, dtype, _parameterization(cfg), jax.random.fold_in(key, 1))
    timings["model"] = time.perf_counter() - t
    log.info(
        "model: %s; %d occupied cells from %d respondents; %d poststratification cells",
        spec.formula,
        design.survey.n_cells,
        design.n_respondents,
        design.poststrat.n_cells,
    )

    fitter = instantiate(cfg.inference)
    log.info("fitting with %s", cfg.inference._target_.rsplit(".", 1)[-1])
    extra = {}
    if out is not None and "checkpoint_path" in inspect.signature(fitter).parameters:
        extra["checkpoint_path"] = out / "svi_checkpoint.pkl"
    fit: Fit = fitter(model, key, progress_bar=progress, **extra)
    timings["fit"] = fit.seconds
    log.info("fit done in %.1f s: %s", fit.seconds, fit.diagnostics)

    t = time.perf_counter()
    groupings = OmegaConf.to_container(cfg.poststrat.groupings, resolve=True)
    # The fit's precision (float32 unless device.x64), whatever the draws were converted to.
    estimates = poststratify_draws(fit.draws, design, groupings, chunk_size=int(cfg.poststrat.chunk_size), dtype=dtype)
    tables = _estimate_tables(data, estimates)
    timings["poststratify"] = time.perf_counter() - t

    national = tables.get("national")
    summary = {
        "method": fit.method,
        "guide": fit.diagnostics.get("guide"),
        "data": data.source,
        "n_respondents": design.n_respondents,
        "n_occupied_cells": design.survey.n_cells,
        "n_poststrat_cells": design.poststrat.n_cells,
        "formula": spec.formula,
        "parameterization": model.parameterization,
        "seed": int(cfg.seed),
        "national_mean": None if national is None else float(national["mean"].iloc[0]),
        # Reliability verdict of a variational fit (PSIS k-hat); None for exact methods.
        "verdict": fit.diagnostics.get("verdict"),
        "verdict_message": fit.diagnostics.get("verdict_message"),
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "diagnostics": dict(fit.diagnostics),
        "device": device,
        "versions": _versions(),
        "notes": list(data.notes),
    }
    if data.truth is not None:
        summary["truth_national"] = data.truth.national
    if national is not None:
        log.info("national estimate: %.4f (90%% interval %.4f-%.4f)", *national[["mean", "q5", "q95"]].iloc[0])

    if out is not None:
        t = time.perf_counter()
        for name, table in tables.items():
            write_csv(out / f"estimates_{name}.csv", table)
        idata = to_inference_data(fit, design)
        write_netcdf(out / "posterior.nc", idata)
        write_netcdf(out / "poststrat_draws.nc", poststrat_dataset(estimates))
        if "elbo" in fit.traces:
            write_csv(out / "elbo.csv", pd.DataFrame({"step": np.arange(len(fit.traces["elbo"])), "elbo": fit.traces["elbo"]}))
        summary["timings_s"]["write"] = round(time.perf_counter() - t, 4)
        if cfg.get("report", True):
            t = time.perf_counter()
            _write_report(out, config_yaml, data, design, fit, idata, tables, summary)
            summary["timings_s"]["report"] = round(time.perf_counter() - t, 4)
        # Written last: its presence marks a finished run.
        write_json(out / "summary.json", summary)
        log.info("wrote %s", out)
    return RunResult(out, data, model, fit, estimates, summary)
