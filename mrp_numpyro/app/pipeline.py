"""The stages of one MRP run, each a function a caller can stop after.

    problem = prepare(cfg)                      # device, data, design, priors, the model
    fitted = fit(problem, cfg)                  # the configured inference method
    estimates = estimate(problem, fitted, cfg)  # poststratified draws and their tables
    checks = check(problem, fitted, cfg)        # the fit against its survey: PPC by group, LOO
    summary = summarize_run(cfg, problem, fitted, estimates, checks=checks)
    write_run(out, cfg, problem, fitted, estimates, summary, checks=checks)

:func:`mrp_numpyro.app.run.run` chains them and guards the run directory; experiments,
notebooks and the spot check call the stages they need.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import jax
import numpy as np
import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..checking import CellLoo, cell_loo, predictive_by_group
from ..data.saved import save_fit_data
from ..data.schema import DataError, MRPData
from ..design.cells import Design, build_design
from ..design.formula import parse_formula
from ..design.priors import Priors
from ..inference.result import Fit
from ..labelled import poststrat_dataset, to_inference_data
from ..model import MRPModel, Parameterization
from ..outputs import write_csv, write_json, write_netcdf
from ..poststratification import Poststratified, poststratify_draws
from . import report
from .device import configure_device
from .method_outputs import method_figures, method_files
from .truth import estimate_tables

if TYPE_CHECKING:
    import arviz as az

log = logging.getLogger("mrp_numpyro")

__all__ = ["Problem", "Estimates", "Checks", "prepare", "fit", "estimate", "check", "summarize_run", "write_run"]


@dataclass(frozen=True)
class Problem:
    """Everything a fit needs, built from the config by :func:`~mrp_numpyro.app.pipeline.prepare`.

    Attributes
    ----------
    data : MRPData
    model : MRPModel
        The model in the coordinates the inference method works in, with the design and the
        priors it was built from (:attr:`design`, :attr:`priors`).
    rng_key : jax.Array
        The run's PRNG key (``seed``); the fit uses it, the model's pilot fit a key folded from it.
    dtype : numpy float type
        The fit's precision (float32 unless ``device.x64``).
    device : mapping
        The JAX platform in effect (:func:`mrp_numpyro.app.device.configure_device`).
    timings : mapping of str to float
        Seconds to load the data, aggregate it into cells and build the model.
    """

    data: MRPData
    model: MRPModel
    rng_key: jax.Array
    dtype: type
    device: Mapping[str, Any]
    timings: Mapping[str, float]

    @property
    def design(self) -> Design:
        """The formula, the parameter layout and the cells the model was built from."""
        return self.model.design

    @property
    def priors(self) -> Priors:
        """The priors the model was built with."""
        return self.model.priors


@dataclass(frozen=True)
class Estimates:
    """The poststratified draws of every grouping and their summary tables.

    Attributes
    ----------
    groupings : mapping of str to Poststratified
    tables : mapping of str to pandas.DataFrame
        :meth:`~mrp_numpyro.poststratification.Poststratified.summary` of each grouping, with a
        ``truth`` column on synthetic data (any grouping of the table's cells).
    seconds : float
    """

    groupings: Mapping[str, Poststratified]
    tables: Mapping[str, pd.DataFrame]
    seconds: float


@dataclass(frozen=True)
class Checks:
    """The fit checked against the survey it was fitted to (:mod:`mrp_numpyro.checking`).

    Attributes
    ----------
    predictive : mapping of str to pandas.DataFrame
        Posterior predictive check of every grouping: observed share against the replicated
        shares' 50 % and 90 % intervals.
    loo : CellLoo or None
        PSIS-LOO over the occupied survey cells (``checks.loo``).
    seconds : float
    """

    predictive: Mapping[str, pd.DataFrame]
    loo: CellLoo | None
    seconds: float

    def predictive_table(self) -> pd.DataFrame:
        """Every grouping's check in one long table: ``grouping``, ``group`` (labels joined by ":"), the columns."""
        rows = []
        for name, table in self.predictive.items():
            labels = [c for c in table.columns if c not in _PPC_COLUMNS]
            group = table[labels].astype(str).agg(":".join, axis=1) if labels else pd.Series("all", index=table.index)
            rows.append(table[list(_PPC_COLUMNS)].assign(grouping=name, group=group))
        if not rows:
            return pd.DataFrame(columns=["grouping", "group", *_PPC_COLUMNS])
        out = pd.concat(rows, ignore_index=True)
        return out[["grouping", "group", *_PPC_COLUMNS]]


_PPC_COLUMNS = ("respondents", "observed", "replicated_mean", "q5", "q25", "q75", "q95", "in_50", "in_90")


def prepare(cfg: DictConfig) -> Problem:
    """Configure the device, load and validate the data, build the design, the priors and the model.

    Parameters
    ----------
    cfg : DictConfig
        The composed config (:func:`mrp_numpyro.app.config.compose_config`).
    """
    timings: dict[str, float] = {}
    device = configure_device(**cast(dict[str, Any], OmegaConf.to_container(cfg.device, resolve=True)))
    t = time.perf_counter()
    # Built as a partial and then called, so that a DataError reaches the user as itself
    # (file, column, values) rather than wrapped in Hydra's InstantiationException.
    data: MRPData = instantiate(cfg.data, _partial_=True)()
    timings["load"] = time.perf_counter() - t
    log.info("data: %s, %d respondents", data.source, data.n_respondents)
    for note in data.notes:
        log.info("note: %s", note)

    t = time.perf_counter()
    spec = parse_formula(cfg.model.formula, columns=data.survey.columns)
    design = build_design(spec, data, adjacency=cfg.model.get("adjacency"))
    priors = Priors.from_config(cast(dict[str, Any], OmegaConf.to_container(cfg.model.priors, resolve=True)))
    timings["aggregate"] = time.perf_counter() - t
    _predictive_columns(cfg, design, data)  # a misspelt checks.predictive fails before the fit

    t = time.perf_counter()
    key = jax.random.PRNGKey(int(cfg.seed))
    dtype = np.float64 if device["x64"] else np.float32
    # The coordinates (conf/model/parameterization/), as the inference method prefers them
    # unless the config says otherwise; the partial one first runs its pilot fit.
    parameterization: Parameterization = instantiate(cfg.model.parameterization)
    model = parameterization.build(design, priors, dtype=dtype, rng_key=jax.random.fold_in(key, 1))
    timings["model"] = time.perf_counter() - t
    log.info(
        "model: %s; %d occupied cells from %d respondents; %d poststratification cells",
        spec.formula,
        design.survey.n_cells,
        design.n_respondents,
        design.poststrat.n_cells,
    )
    return Problem(data, model, key, dtype, device, timings)


def fit(problem: Problem, cfg: DictConfig, *, progress_bar: bool = False, checkpoint_dir: str | Path | None = None) -> Fit:
    """Fit the problem's model with the configured inference method (``cfg.inference``).

    Parameters
    ----------
    problem : Problem
    cfg : DictConfig
    progress_bar : bool
    checkpoint_dir : path-like, optional
        Where a method that can resume saves its state (SVI: ``svi_checkpoint.pkl``).
    """
    method = instantiate(cfg.inference)
    log.info("fitting with %s (%s)", method.label, method.name)
    fitted: Fit = method.fit(problem.model, problem.rng_key, progress_bar=progress_bar, checkpoint_dir=checkpoint_dir)
    log.info("fit done in %.1f s: %s", fitted.seconds, dict(fitted.diagnostics))
    return fitted


def estimate(problem: Problem, fitted: Fit, cfg: DictConfig, *, cell_shares: np.ndarray | None = None) -> Estimates:
    """Poststratify the fit's draws to every grouping of ``cfg.poststrat.groupings``.

    ``cell_shares``: a non-census factor's shares in every census cell and draw
    (:mod:`mrp_numpyro.app.noncensus`), which a formula with one needs.
    """
    t = time.perf_counter()
    groupings = cast(dict[str, list[str]], OmegaConf.to_container(cfg.poststrat.groupings, resolve=True))
    # The fit's precision (float32 unless device.x64), whatever the draws were converted to.
    draws = poststratify_draws(
        fitted.draws,
        problem.design,
        groupings,
        chunk_size=int(cfg.poststrat.chunk_size),
        dtype=problem.dtype,
        cell_shares=cell_shares,
    )
    tables = estimate_tables(problem.data, draws)
    return Estimates(draws, tables, time.perf_counter() - t)


def _predictive_columns(cfg: DictConfig, design: Design, data: MRPData) -> list[str]:
    """The survey columns of the predictive checks: ``checks.predictive``, or every factor the formula uses."""
    columns = (cfg.get("checks") or {}).get("predictive")
    used = list(design.survey.cells.columns)
    if columns is None:
        return [c for c in data.schema.factors if c in used]
    unknown = [str(c) for c in columns if str(c) not in used]
    if unknown:
        raise DataError(f"checks.predictive names column(s) {unknown} that the formula does not use; it uses {used}")
    return [str(c) for c in columns]


def check(problem: Problem, fitted: Fit, cfg: DictConfig) -> Checks:
    """Posterior predictive checks by group and cell-level PSIS-LOO (``cfg.checks``).

    ``checks.predictive`` lists the survey columns to check one by one; ``null`` checks every
    factor of the schema that the formula uses. The replicates use every k-th draw, at most
    ``checks.predictive_draws`` of them; LOO uses every draw.
    """
    t = time.perf_counter()
    settings = cfg.get("checks") or {}
    groupings = {c: [c] for c in _predictive_columns(cfg, problem.design, problem.data)}
    chunk = int(cfg.poststrat.chunk_size)
    # Intervals of replicated shares need far fewer draws than the estimates: every k-th draw.
    draws = fitted.draws
    total = fitted.num_chains * next(iter(draws.values())).shape[1]
    step = max(1, -(-total // int(settings.get("predictive_draws", 1000))))
    if step > 1:
        draws = {k: np.asarray(v)[:, ::step] for k, v in draws.items()}
    predictive = predictive_by_group(draws, problem.design, groupings, seed=int(cfg.seed), chunk_size=chunk)
    loo = cell_loo(fitted.draws, problem.design, chunk_size=chunk) if settings.get("loo", True) else None
    if loo is not None:
        log.info(
            "cell-level PSIS-LOO: elpd %.1f (se %.1f), %d of %d cells with k > 0.7", loo.elpd, loo.se, loo.n_high_k, loo.n_cells
        )
    return Checks(predictive, loo, time.perf_counter() - t)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("mrp_numpyro", "jax", "jaxlib", "numpyro", "arviz", "hydra-core", "numpy", "pandas", "formulae"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def summarize_run(
    cfg: DictConfig, problem: Problem, fitted: Fit, estimates: Estimates, *, checks: Checks | None = None
) -> dict[str, Any]:
    """The run's ``summary.json``: what was fitted, how long each stage took, the verdict and the diagnostics."""
    design, data = problem.design, problem.data
    national = estimates.tables.get("national")
    timings = {**problem.timings, "fit": fitted.seconds, "poststratify": estimates.seconds}
    if checks is not None:
        timings["checks"] = checks.seconds
    diagnostics = dict(fitted.diagnostics)
    summary = {
        "method": fitted.method,
        "label": fitted.name,
        "guide": diagnostics.get("guide"),
        "data": data.source,
        "n_respondents": design.n_respondents,
        "n_occupied_cells": design.survey.n_cells,
        "n_poststrat_cells": design.poststrat.n_cells,
        "formula": design.spec.formula,
        "parameterization": problem.model.parameterization,
        "seed": int(cfg.seed),
        "national_mean": None if national is None or design.categorical else float(national["mean"].iloc[0]),
        # Reliability verdict of a variational fit (PSIS k-hat); None for exact methods.
        "verdict": diagnostics.get("verdict"),
        "verdict_message": diagnostics.get("verdict_message"),
        "timings_s": {k: round(v, 4) for k, v in timings.items()},
        "diagnostics": diagnostics,
        "device": dict(problem.device),
        "versions": _versions(),
        "notes": list(data.notes),
    }
    if checks is not None:
        # Cell-level LOO: elpd over survey cells, comparable between formulas fitted to the same cells.
        summary["loo"] = None if checks.loo is None else checks.loo.to_dict()
        summary["predictive"] = {
            name: {"groups": len(t), "in_50": float(t["in_50"].mean()), "in_90": float(t["in_90"].mean())}
            for name, t in checks.predictive.items()
        }
    if design.categorical:
        summary["outcome_levels"] = list(design.outcome_levels)
        summary["baseline"] = design.outcome_levels[design.baseline]
        if national is not None:
            summary["national_shares"] = dict(zip(national[design.spec.response], national["mean"].astype(float), strict=True))
    if data.truth is not None:
        summary["truth_national"] = dict(data.truth.national_shares) if data.truth.categories else data.truth.national
    return summary


def _figures(
    out: Path, problem: Problem, fitted: Fit, idata: az.InferenceData, tables: Mapping[str, pd.DataFrame], checks: Checks | None
) -> list[Path]:
    area = problem.data.schema.area
    figures = []
    if checks is not None and checks.predictive:
        figures.append(report.plot_predictive_checks(checks.predictive, out / "predictive_checks.png"))
    if area in tables:
        design = problem.design
        table = tables[area]
        # A categorical outcome: a figure and a map of every answer's share.
        parts = [("", table)]
        if design.categorical:
            response = design.spec.response
            parts = [(f"_{c}", table[table[response] == c].drop(columns=response)) for c in design.outcome_levels]
        for suffix, part in parts:
            what = f"share {suffix[1:]}, " if suffix else ""
            figures.append(
                report.plot_state_estimates(
                    part, out / f"{area}_estimates{suffix}.png", area, f"{area} estimates, {what}{fitted.name}"
                )
            )
            if set(part[area].astype(str)) <= set(report.STATE_TILES):
                title = f"{suffix[1:]} share (%), posterior mean" if suffix else ""
                figures.append(report.plot_state_map(part, out / f"{area}_map{suffix}.png", area, title))
    return figures + method_figures(fitted.diagnostics, out, fitted, idata, problem.design.layout)


def write_run(
    out: str | Path,
    cfg: DictConfig,
    problem: Problem,
    fitted: Fit,
    estimates: Estimates,
    summary: Mapping[str, Any],
    *,
    checks: Checks | None = None,
) -> dict[str, Any]:
    """Write the estimates, the draws, the figures, ``report.html`` and, last, ``summary.json``.

    ``config.yaml`` is written by :func:`mrp_numpyro.app.run.run` when the run starts. Returns the
    summary with the time of writing and of the report added.
    """
    out = Path(out)
    summary = {**summary, "timings_s": dict(summary["timings_s"])}
    t = time.perf_counter()
    for name, table in estimates.tables.items():
        write_csv(out / f"estimates_{name}.csv", table)
    idata = to_inference_data(fitted, problem.design)
    write_netcdf(out / "posterior.nc", idata)
    # The survey's cells, areas and schema: with posterior.nc, all that re-poststratifying
    # the fit to another table needs (python -m mrp_numpyro.poststratify).
    save_fit_data(out, problem.data)
    if checks is not None:
        write_csv(out / "predictive_checks.csv", checks.predictive_table())
        if checks.loo is not None:
            # The Pareto k and elpd of every cell: which cells LOO cannot vouch for.
            survey = problem.design.survey
            design = problem.design
            if design.categorical:
                assert survey.counts is not None  # a categorical outcome's cells count every answer
                answers = {f"{design.spec.response}[{c}]": survey.counts[:, k] for k, c in enumerate(design.outcome_levels)}
                cells = survey.cells.assign(trials=survey.trials, **answers)
            else:
                cells = survey.cells.assign(trials=survey.trials, successes=survey.successes)
            write_csv(out / "loo_cells.csv", cells.assign(elpd=checks.loo.elpd_i, pareto_k=checks.loo.pareto_k))
    write_netcdf(out / "poststrat_draws.nc", poststrat_dataset(estimates.groupings))
    method_files(fitted.diagnostics, out, fitted)
    summary["timings_s"]["write"] = round(time.perf_counter() - t, 4)
    if cfg.get("report", True):
        t = time.perf_counter()
        figures = _figures(out, problem, fitted, idata, estimates.tables, checks)
        report.write_report(out, summary, OmegaConf.to_yaml(cfg, resolve=True), estimates.tables, figures)
        summary["timings_s"]["report"] = round(time.perf_counter() - t, 4)
    # Written last: its presence marks a finished run.
    write_json(out / "summary.json", summary)
    log.info("wrote %s", out)
    return summary
