"""A deterministic, CCES-shaped synthetic survey with known truth (the default data).

The generator builds a population table of 50 states x 4 ethnicities x 2 sexes x 6 age
groups x 5 education levels (12,000 cells) with uneven cell sizes, draws true parameters
of the package's default hierarchical logit, and then draws ``n`` respondents unevenly
across cells: response propensity varies by state, age and education, as in real online
panels, so raw state means are biased and small states get few respondents. Outcomes are
binomial draws from the true cell probabilities, and the true poststratified value of
every state and of the nation is returned with the data.

The population and the true parameters depend on ``seed`` only; the survey depends on
``seed`` and ``n``. Same arguments, same data.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from .adjacency import us_states_adjacency
from .cces import CCES18_SCHEMA
from .levels import AGE, EDUC, ETH, MALE, REGIONS, STATE_REGION, STATES
from .sampling import check_n
from .schema import MRPData, Truth
from .validation import build_mrp_data

__all__ = ["load_synthetic", "SYNTHETIC_SCHEMA", "TRUE_SD"]

# The synthetic data use the same schema as the CCES example, so every formula and
# config that runs on one runs on the other.
SYNTHETIC_SCHEMA = CCES18_SCHEMA

# True standard deviations of the varying intercepts, by formula term.
TRUE_SD = {
    "state": 0.15,
    "eth": 0.30,
    "educ": 0.25,
    "age": 0.25,
    "male:eth": 0.10,
    "educ:age": 0.10,
    "educ:eth": 0.12,
}
TRUE_FIXED = {"Intercept": -1.4, "male": 0.3, "repvote": 2.6}
TRUE_REGION = {"Northeast": 0.0, "North Central": 0.05, "South": 0.12, "West": -0.08}

_POP_TOTAL = 228e6

# True correlation (ar1) and mixing weight (bym2) of structured truths.
TRUE_RHO = {"ar1": 0.8, "bym2": 0.7}
_ORDERED_TERMS = ("age", "educ")


def _scaled_covariance(precision: np.ndarray, components: list[np.ndarray]) -> np.ndarray:
    """The generalised inverse of an intrinsic precision, each component scaled to geometric-mean variance 1; islands 1."""
    cov = np.zeros_like(precision)
    for comp in components:
        if len(comp) == 1:
            cov[comp[0], comp[0]] = 1.0
            continue
        block = np.linalg.pinv(precision[np.ix_(comp, comp)], hermitian=True)
        cov[np.ix_(comp, comp)] = block / np.exp(np.mean(np.log(np.diag(block))))
    return cov


def _structured_covariance(term: str, kind: str) -> np.ndarray:
    """The prior covariance of a term's standardised effects under ``kind`` (mrp_numpyro.design.structure), built anew."""
    if term in _ORDERED_TERMS and kind in ("rw1", "rw2", "ar1"):
        k = len(AGE) if term == "age" else len(EDUC)
        if kind == "ar1":
            lag = np.abs(np.subtract.outer(np.arange(k), np.arange(k)))
            return TRUE_RHO["ar1"] ** lag
        diff = np.diff(np.eye(k), n=int(kind[-1]), axis=0)
        return _scaled_covariance(diff.T @ diff, [np.arange(k)])
    if term == "state" and kind in ("icar", "bym2"):
        graph = us_states_adjacency().for_levels(STATES, "state")
        W = graph.matrix()
        icar = _scaled_covariance(np.diag(W.sum(1)) - W, graph.components())
        if kind == "icar":
            return icar
        rho = TRUE_RHO["bym2"]
        return rho * icar + (1.0 - rho) * np.eye(len(STATES))
    raise ValueError(
        f"structure {{{term!r}: {kind!r}}}: the generator draws rw1, rw2 or ar1 for age or educ, icar or bym2 for state"
    )


def _population(rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray], np.ndarray]:
    """Area table, cell grid with population counts, and per-state response propensity."""
    n_s = len(STATES)
    # Uneven state sizes: a log-normal spread like that of US state populations.
    size = np.exp(rng.normal(0.0, 1.2, n_s))
    size = _POP_TOTAL * size / size.sum()
    repvote = np.clip(rng.normal(0.53, 0.09, n_s), 0.30, 0.78)
    eth_share = rng.dirichlet(20 * np.array([0.69, 0.12, 0.08, 0.11]), size=n_s)
    male_share = np.array([0.515, 0.485])
    age_share = np.array([0.19, 0.16, 0.15, 0.17, 0.16, 0.17])
    educ_share = rng.dirichlet(40 * np.array([0.10, 0.28, 0.31, 0.19, 0.12]), size=len(ETH))

    s, e, m, a, d = np.meshgrid(
        np.arange(n_s), np.arange(len(ETH)), np.arange(2), np.arange(len(AGE)), np.arange(len(EDUC)), indexing="ij"
    )
    s, e, m, a, d = (x.ravel() for x in (s, e, m, a, d))
    expected = size[s] * eth_share[s, e] * male_share[m] * age_share[a] * educ_share[e, d]
    N = np.round(expected * np.exp(rng.normal(0.0, 0.35, expected.shape)))
    cells = pd.DataFrame(
        {
            "state": pd.Categorical.from_codes(s, STATES),
            "eth": pd.Categorical.from_codes(e, ETH),
            "male": np.asarray(MALE)[m],
            "age": pd.Categorical.from_codes(a, AGE),
            "educ": pd.Categorical.from_codes(d, EDUC),
            "n": N,
        }
    )
    area = pd.DataFrame({"state": list(STATES), "repvote": repvote, "region": [STATE_REGION[x] for x in STATES]})
    codes = {"state": s, "eth": e, "male": m, "age": a, "educ": d}
    # Log response propensity: online panels over-represent the educated and the old.
    state_prop = rng.normal(0.0, 0.3, n_s)
    educ_prop = np.array([-0.6, -0.2, 0.0, 0.2, 0.35])
    age_prop = np.array([-0.3, -0.2, 0.0, 0.1, 0.2, 0.1])
    propensity = np.exp(state_prop[s] + educ_prop[d] + age_prop[a])
    return area, cells, codes, propensity


def _true_logits(
    rng: np.random.Generator,
    area: pd.DataFrame,
    cells: pd.DataFrame,
    codes: dict[str, np.ndarray],
    structure: Mapping[str, str],
) -> tuple[np.ndarray, dict[str, float], dict[str, np.ndarray]]:
    """Draw the true effects from the model's structure: cell logits, coefficients, varying intercepts."""
    sizes = {"state": len(STATES), "eth": len(ETH), "educ": len(EDUC), "age": len(AGE)}
    sizes.update({"male:eth": 2 * len(ETH), "educ:age": len(EDUC) * len(AGE), "educ:eth": len(EDUC) * len(ETH)})
    index = {
        "state": codes["state"],
        "eth": codes["eth"],
        "educ": codes["educ"],
        "age": codes["age"],
        "male:eth": codes["male"] * len(ETH) + codes["eth"],
        "educ:age": codes["educ"] * len(AGE) + codes["age"],
        "educ:eth": codes["educ"] * len(ETH) + codes["eth"],
    }
    fixed = dict(TRUE_FIXED)
    region_codes = area["region"].map({r: i for i, r in enumerate(REGIONS)}).to_numpy()
    region_effect = np.array([TRUE_REGION[r] for r in REGIONS])
    eta = (
        TRUE_FIXED["Intercept"]
        + TRUE_FIXED["male"] * cells["male"].to_numpy()
        + TRUE_FIXED["repvote"] * area["repvote"].to_numpy()[codes["state"]]
        + region_effect[region_codes[codes["state"]]]
    )
    for r in REGIONS[1:]:
        fixed[f"region[{r}]"] = TRUE_REGION[r]
    effects = {}
    for term, sd in TRUE_SD.items():
        standard = rng.normal(0.0, 1.0, sizes[term])
        if term in structure:
            # The same draws mapped through a square root of the structured covariance.
            values, vectors = np.linalg.eigh(_structured_covariance(term, structure[term]))
            standard = vectors @ (np.sqrt(np.clip(values, 0.0, None)) * standard)
        effects[term] = sd * standard
        eta = eta + effects[term][index[term]]
    return eta, fixed, effects


def load_synthetic(
    n: int = 10_000,
    seed: int = 0,
    interactions: Mapping[str, float] | None = None,
    structure: Mapping[str, str] | None = None,
) -> MRPData:
    """Generate the synthetic CCES-shaped survey, its population table and the truth.

    Parameters
    ----------
    n : int
        Number of respondents (1,000 to several million).
    seed : int
        Seed of the population, the true parameters and the survey.
    interactions : mapping of str to float, optional
        True coefficients of population-level interactions of the numeric columns, e.g.
        ``{"male:repvote": 1.5}`` (``male`` times ``repvote``), added to the true logits and to
        ``truth.fixed``; none by default.
    structure : mapping of str to str, optional
        True effects of a term drawn from a structured prior instead of independent normals
        (:mod:`mrp_numpyro.design.structure`), with the term's true sd: ``rw1``, ``rw2`` or
        ``ar1`` (rho 0.8) for ``age`` or ``educ``, ``icar`` or ``bym2`` (rho 0.7) for
        ``state``, e.g. ``{"age": "rw1", "state": "bym2"}``.

    Returns
    -------
    MRPData
        With ``truth`` set: true state and national values, true parameters, and every
        cell's true probability and population count (``truth.cells``; ``truth.by(columns)``
        gives the truth of any grouping).
    """
    n = check_n(n)
    pop_rng = np.random.default_rng([seed, 0])
    area, cells, codes, propensity = _population(pop_rng)
    structure = dict(structure or {})
    for term, kind in structure.items():
        _structured_covariance(term, kind)  # an unknown term or prior fails before any work
    eta, fixed, effects = _true_logits(pop_rng, area, cells, codes, structure)
    numeric = {"male": cells["male"].to_numpy(), "repvote": area["repvote"].to_numpy()[codes["state"]]}
    for name, coef in (interactions or {}).items():
        parts = name.split(":")
        unknown = [c for c in parts if c not in numeric]
        if len(parts) < 2 or unknown:
            raise ValueError(f"interaction {name!r}: write products of {sorted(numeric)} joined by ':'")
        eta = eta + coef * np.prod([numeric[c] for c in parts], axis=0)
        fixed[name] = float(coef)
    p = 1.0 / (1.0 + np.exp(-eta))
    N = cells["n"].to_numpy()

    state_index = codes["state"]
    truth_state = np.bincount(state_index, weights=N * p) / np.bincount(state_index, weights=N)
    truth = Truth(
        area=pd.Series(truth_state, index=pd.Index(STATES, name="state"), name="truth"),
        national=float((N * p).sum() / N.sum()),
        fixed=fixed,
        sd=dict(TRUE_SD),
        effects=effects,
        cells=cells.drop(columns="n").assign(p=p, n=N),
    )

    extra = f", interactions={dict(interactions)}" if interactions else ""
    extra += f", structure={structure}" if structure else ""
    source = f"synthetic(n={n}, seed={seed}{extra})"
    survey_rng = np.random.default_rng([seed, 1, n])
    weight = N * propensity
    counts = survey_rng.multinomial(n, weight / weight.sum())
    successes = survey_rng.binomial(counts, p)
    rows = np.repeat(np.arange(len(cells)), counts)
    # Within each cell the first `successes` respondents say yes; a shuffle hides the order.
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    y = (rank < np.repeat(successes, counts)).astype(np.int8)
    order = survey_rng.permutation(len(rows))
    rows, y = rows[order], y[order]
    survey = cells.iloc[rows, :5].reset_index(drop=True)
    survey.insert(0, "abortion", y)
    return build_mrp_data(survey, cells, area, SYNTHETIC_SCHEMA, source=source, truth=truth)
