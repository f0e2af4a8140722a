"""Checks of a fit against the survey it was fitted to: predictive checks by group and cell-level LOO.

Both run over the occupied survey cells (``design.survey``), whose respondents were
aggregated into binomial counts ``(n_c, s_c)``, for any method's draws of the shared
parameters, in chunks of draws so that memory stays at about ``chunk_size x cells``.

* :func:`predictive_by_group` is a posterior predictive check (Gelman, Meng and Stern 1996,
  "Posterior predictive assessment of model fitness via realized discrepancies"; Gelman et
  al. 2013, *Bayesian Data Analysis*, ch. 6): every draw replicates each cell's successes as
  ``Binomial(n_c, p_c)``, and each group's replicated share is set beside its observed share.
  A group whose observed share lies far out in its replicated distribution is one the model
  does not reproduce.
* :func:`cell_loo` is Pareto-smoothed importance-sampling leave-one-out cross-validation
  (Vehtari, Gelman and Gabry 2017, "Practical Bayesian model evaluation using leave-one-out
  cross-validation and WAIC", Statistics and Computing 27) over the cells, by ArviZ.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit, gammaln, logsumexp

from .data.schema import DataError
from .design.cells import CellArrays, Design
from .inference.result import flatten_draws
from .model.blocks import cell_blocks
from .model.predict import cell_logits_by_cell
from .poststratification import category_shares, group_cells

__all__ = [
    "predictive_by_group",
    "binomial_logpmf",
    "multinomial_logpmf",
    "cell_log_likelihood",
    "CellLoo",
    "cell_loo",
    "K_GOOD",
    "K_BAD",
]

#: Pareto k at or below which PSIS-LOO of a cell is reliable (Vehtari et al. 2024).
K_GOOD = 0.5
#: Pareto k above which PSIS-LOO of a cell is unreliable at any number of draws.
K_BAD = 0.7

# (lower, upper) quantiles of the replicated shares behind the in_50 / in_90 columns.
_INTERVALS = {"in_50": ("q25", "q75"), "in_90": ("q5", "q95")}
_QUANTILES = {"q5": 0.05, "q25": 0.25, "q75": 0.75, "q95": 0.95}


def _survey(design: Design) -> tuple[CellArrays, np.ndarray, np.ndarray]:
    """The survey cells, their respondents and their "1" answers (a categorical outcome: every answer's count, (cells, K))."""
    s = design.survey
    observed = s.counts if design.categorical else s.successes
    assert s.trials is not None and observed is not None  # the survey's cells have counts
    return s, np.asarray(s.trials, np.int64), np.asarray(observed, np.int64)


def _logit_chunks(draws: Mapping[str, np.ndarray], design: Design, chunk_size: int) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, logits (chunk, cells[, K - 1]))`` of the survey cells for consecutive chunks of the flat draws, in float64."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    flat = flatten_draws(draws)
    n = len(next(iter(flat.values())))
    survey = design.survey
    blocks = cell_blocks(design, cells=survey)
    for start in range(0, n, chunk_size):
        batch = {k: v[start : start + chunk_size] for k, v in flat.items()}
        yield start, np.swapaxes(cell_logits_by_cell(batch, design, survey, blocks, dtype=np.float64), 0, 1)


def _groups(design: Design, groupings: Mapping[str, Sequence[str]]) -> list[tuple[str, pd.DataFrame, np.ndarray]]:
    """``(name, labels, group of every cell)`` of every grouping of the survey cells."""
    cells = design.survey.cells
    prepared = []
    for name, cols in groupings.items():
        missing = [c for c in cols if c not in cells.columns]
        if missing:
            raise DataError(
                f"predictive check grouping {name!r} names column(s) {missing} that the survey cells do not have; "
                f"they have the formula's columns {list(cells.columns)}"
            )
        index, labels = group_cells(cells, cols)
        prepared.append((name, labels, index))
    return prepared


def _group_sums(values: np.ndarray, order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sums of ``values`` (draws, cells) over the cells of each group: (draws, groups).

    ``order`` sorts the cells by group and ``starts`` is where each group begins in it; every
    group holds a cell (groups are read off the cells), as ``reduceat`` needs.
    """
    return np.add.reduceat(values[:, order], starts, axis=1)


def predictive_by_group(
    draws: Mapping[str, np.ndarray],
    design: Design,
    groupings: Mapping[str, Sequence[str]],
    *,
    seed: int = 0,
    chunk_size: int = 500,
) -> dict[str, pd.DataFrame]:
    """Posterior predictive check of the survey's share of "1" answers within groups of cells.

    For every posterior draw ``d`` and occupied survey cell ``c``, the successes are replicated
    as ``y_dc ~ Binomial(n_c, p_dc)`` with ``p_dc = expit(eta_dc)``; a group's replicated share
    in draw ``d`` is ``sum_c y_dc / sum_c n_c`` over its cells, and its observed share
    ``sum_c s_c / sum_c n_c``. The replicates are drawn in the order of the flattened draws
    (chain-major), so the tables depend on ``seed`` but not on ``chunk_size``.

    The survey was used to fit the draws, so a group is inside its intervals more often than
    the nominal 50 % and 90 % even for a correct model (the check is conservative); a share
    of groups well below nominal, or groups far outside, point at what the model misses.

    Parameters
    ----------
    draws : mapping of site name to array (chain, draw, ...)
        Draws of the shared parameters (``Fit.draws``).
    design : Design
        The design the draws were fitted to.
    groupings : mapping of name to list of column names
        Columns of ``design.survey.cells`` (the formula's columns), e.g.
        ``{"state": ["state"], "eth": ["eth"], "national": []}``.
    seed : int
        Seed of :func:`numpy.random.default_rng` for the replicates.
    chunk_size : int
        Draws replicated at once; bounds memory at about ``chunk_size x cells`` numbers.

    Returns
    -------
    dict of name to pandas.DataFrame
        One row per group with the grouping columns, ``respondents``, ``observed``,
        ``replicated_mean``, the replicated shares' quantiles ``q5``, ``q25``, ``q75``,
        ``q95``, and ``in_50`` / ``in_90``: whether the observed share lies in the 50 % /
        90 % interval (bounds included, as replicated shares are discrete).

        A categorical outcome's tables are in long form: a row per group and answer (the
        answer in the outcome's column), the answers' counts replicated as
        ``Multinomial(n_c, softmax(eta_dc))``.

    Raises
    ------
    DataError
        If a grouping names a column the survey cells do not have.
    """
    _, trials, successes = _survey(design)
    k = len(design.outcome_levels) if design.categorical else 0
    prepared = _groups(design, groupings)
    n_draws = int(np.prod(next(iter(draws.values())).shape[:2]))
    sorting = []
    for _, labels, index in prepared:
        order = np.argsort(index, kind="stable")
        sorting.append((order, np.searchsorted(index[order], np.arange(len(labels)))))
    rng = np.random.default_rng(seed)
    replicated = [np.empty((n_draws, len(labels) * max(k, 1))) for _, labels, _ in prepared]
    for start, eta in _logit_chunks(draws, design, chunk_size):
        # One generator consumed in draw order (C order of (draws, cells)): chunks of any size
        # take the same stream in the same order, so they give the same replicates.
        if k:
            y = rng.multinomial(trials, category_shares(eta, design.baseline))  # (draws, cells, K)
        else:
            y = rng.binomial(trials, expit(eta))
        for out, (order, starts) in zip(replicated, sorting, strict=True):
            out[start : start + len(y)] = _group_sums(y, order, starts).reshape(len(y), -1)
    tables = {}
    for (name, labels, index), rep in zip(prepared, replicated, strict=True):
        respondents = np.bincount(index, weights=trials, minlength=len(labels))
        if k:  # groups x answers, flattened with the answers fastest
            observed_counts = np.stack([np.bincount(index, weights=successes[:, j], minlength=len(labels)) for j in range(k)], 1)
            respondents = np.repeat(respondents, k)
            labels = labels.loc[labels.index.repeat(k)].reset_index(drop=True)
            labels[design.spec.response] = list(design.outcome_levels) * (len(labels) // k)
        else:
            observed_counts = np.bincount(index, weights=successes, minlength=len(labels))
        with np.errstate(invalid="ignore", divide="ignore"):  # a group of empty cells has no share: NaN
            shares = rep / respondents
            observed = observed_counts.ravel() / respondents
        table = labels.reset_index(drop=True).copy()
        table["respondents"] = respondents.astype(np.int64)
        table["observed"] = observed
        table["replicated_mean"] = shares.mean(axis=0)
        for column, row in zip(_QUANTILES, np.quantile(shares, list(_QUANTILES.values()), axis=0), strict=True):
            table[column] = row
        for column, (lower, upper) in _INTERVALS.items():
            table[column] = (table[lower] <= table["observed"]) & (table["observed"] <= table[upper])
        tables[name] = table
    return tables


def binomial_logpmf(eta: np.ndarray, trials: np.ndarray, successes: np.ndarray) -> np.ndarray:
    """``log Binomial(s | n, expit(eta))`` from the logit, in float64.

    ``log C(n, s) + s log p + (n - s) log(1 - p)`` with ``log p = -softplus(-eta)`` and
    ``log(1 - p) = -softplus(eta)``: no probability is formed, so a logit far from zero loses
    nothing to ``p`` rounding to 0 or 1.

    Parameters
    ----------
    eta : array (..., cells)
    trials, successes : arrays (cells,)

    Returns
    -------
    array (..., cells)
    """
    eta = np.asarray(eta, np.float64)
    n, s = np.asarray(trials, np.float64), np.asarray(successes, np.float64)
    log_choose = gammaln(n + 1.0) - gammaln(s + 1.0) - gammaln(n - s + 1.0)
    return log_choose - s * np.logaddexp(0.0, -eta) - (n - s) * np.logaddexp(0.0, eta)


def multinomial_logpmf(eta: np.ndarray, counts: np.ndarray, baseline: int) -> np.ndarray:
    """``log Multinomial(counts | n, softmax(eta))`` of a categorical outcome's cells, in float64.

    Parameters
    ----------
    eta : array (..., cells, K - 1)
        The non-baseline categories' linear predictors.
    counts : int array (cells, K)
        Every answer's count.
    baseline : int
        The category whose linear predictor is zero.

    Returns
    -------
    array (..., cells)
    """
    logits = np.insert(np.asarray(eta, np.float64), baseline, 0.0, axis=-1)
    log_p = logits - logsumexp(logits, axis=-1, keepdims=True)
    x = np.asarray(counts, np.float64)
    log_coef = gammaln(x.sum(-1) + 1.0) - gammaln(x + 1.0).sum(-1)
    return log_coef + (x * log_p).sum(-1)


def cell_log_likelihood(draws: Mapping[str, np.ndarray], design: Design, *, chunk_size: int = 500) -> np.ndarray:
    """Log likelihood of every occupied survey cell in every draw (:func:`binomial_logpmf`, :func:`multinomial_logpmf`).

    Parameters
    ----------
    draws : mapping of site name to array (chain, draw, ...)
    design : Design
    chunk_size : int
        Draws evaluated at once.

    Returns
    -------
    array (chain, draw, cells), float64
    """
    _, trials, successes = _survey(design)
    chains, n_draws = next(iter(draws.values())).shape[:2]
    out = np.empty((chains * n_draws, len(trials)))
    for start, eta in _logit_chunks(draws, design, chunk_size):
        if design.categorical:
            out[start : start + len(eta)] = multinomial_logpmf(eta, successes, design.baseline)
        else:
            out[start : start + len(eta)] = binomial_logpmf(eta, trials, successes)
    return out.reshape(chains, n_draws, -1)


@dataclass(frozen=True)
class CellLoo:
    """PSIS-LOO over the occupied survey cells.

    This is *cell-level* LOO: each left-out unit is a whole cell, all the respondents who
    share one combination of predictors, not one respondent; the cell's predictive density
    is that of its binomial count given the other cells. ``elpd`` values are comparable only
    between models fitted to the same cells (the same survey, aggregated by the same
    columns): a formula with other columns has other cells and another sum. LOO ranks how
    well models predict the survey's cells; it does not measure the accuracy of the
    poststratified population estimand, which depends on the cells no respondent occupies
    and on the population table too.

    Attributes
    ----------
    elpd : float
        Expected log pointwise predictive density, ``sum_c elpd_i[c]`` (log scale).
    se : float
        Its standard error, ``sqrt(cells * var(elpd_i))``.
    p_loo : float
        Effective number of parameters: ``lppd - elpd``.
    n_cells, n_draws : int
    elpd_i : array (cells,)
        Each cell's leave-one-out log predictive density.
    pareto_k : array (cells,)
        Pareto shape of each cell's importance ratios: reliable at or below :data:`K_GOOD`,
        unreliable above :data:`K_BAD` (ArviZ's own bound, ``min(1 - 1/log10(draws), 0.7)``,
        is lower with fewer than 2,200 draws).
    """

    elpd: float
    se: float
    p_loo: float
    n_cells: int
    n_draws: int
    elpd_i: np.ndarray
    pareto_k: np.ndarray

    @property
    def n_high_k(self) -> int:
        """Cells with ``k > 0.7`` (or no finite k), whose LOO estimate is not to be trusted."""
        return int(np.sum(~(self.pareto_k <= K_BAD)))

    def to_dict(self) -> dict[str, Any]:
        """The scalars and the counts of k, for ``summary.json``.

        Keys ``elpd``, ``se``, ``p_loo``, ``n_cells``, ``n_draws``, ``n_k_good`` (k <= 0.5),
        ``n_k_ok`` (0.5 < k <= 0.7), ``n_high_k`` (k > 0.7) and ``max_k``.
        """
        k = self.pareto_k
        return {
            "elpd": float(self.elpd),
            "se": float(self.se),
            "p_loo": float(self.p_loo),
            "n_cells": int(self.n_cells),
            "n_draws": int(self.n_draws),
            "n_k_good": int(np.sum(k <= K_GOOD)),
            "n_k_ok": int(np.sum((k > K_GOOD) & (k <= K_BAD))),
            "n_high_k": self.n_high_k,
            "max_k": float(np.max(k)) if k.size else float("nan"),
        }


def cell_loo(draws: Mapping[str, np.ndarray], design: Design, *, chunk_size: int = 500) -> CellLoo:
    """PSIS-LOO of a fit over the occupied survey cells, by :func:`arviz.loo`.

    The pointwise log likelihood is :func:`cell_log_likelihood`. ArviZ's relative
    efficiency of the draws comes from their chains (1 for a single chain, as SVI's
    independent draws are); its warning about large k is not repeated here, as
    :attr:`CellLoo.n_high_k` carries it.

    Parameters
    ----------
    draws : mapping of site name to array (chain, draw, ...)
        Draws of the shared parameters (``Fit.draws``).
    design : Design
        The design the draws were fitted to.
    chunk_size : int
        Draws evaluated at once.

    Returns
    -------
    CellLoo
    """
    import arviz as az

    log_lik = cell_log_likelihood(draws, design, chunk_size=chunk_size)
    posterior = {k: np.asarray(v) for k, v in draws.items()}
    idata = az.from_dict(posterior=posterior, log_likelihood={"y": log_lik})
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto distribution")
        result = az.loo(idata, pointwise=True, var_name="y", scale="log")
    return CellLoo(
        elpd=float(result["elpd_loo"]),
        se=float(result["se"]),
        p_loo=float(result["p_loo"]),
        n_cells=log_lik.shape[-1],
        n_draws=int(result["n_samples"]),
        elpd_i=np.asarray(result["loo_i"], np.float64),
        pareto_k=np.asarray(result["pareto_k"], np.float64),
    )
