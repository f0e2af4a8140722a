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
from dataclasses import replace

import numpy as np
import pandas as pd

from .adjacency import us_states_adjacency
from .cces import CCES18_SCHEMA
from .levels import AGE, EDUC, ETH, MALE, REGIONS, STATE_REGION, STATES
from .sampling import check_n
from .schema import MRPData, Truth
from .validation import build_mrp_data

__all__ = [
    "load_synthetic",
    "SYNTHETIC_SCHEMA",
    "TRUE_SD",
    "PARTY_LEVELS",
    "TRUE_PARTY",
    "PARTY_SCHEMA",
    "TRUE_PARTY_EFFECT",
    "NONCENSUS_SCHEMA",
    "TRUE_SLOPE_SD",
    "TRUE_SLOPE_COR",
]

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

#: The synthetic categorical outcome (``load_synthetic(outcome="party")``): its answers, the
#: first the baseline, and the true effects of each other answer's linear predictor.
PARTY_LEVELS = ("Democrat", "Republican", "Independent")
TRUE_PARTY = {
    "Republican": ({"Intercept": -2.2, "male": 0.35, "repvote": 4.0}, {t: 1.4 * v for t, v in TRUE_SD.items()}),
    "Independent": ({"Intercept": -0.2, "male": 0.25, "repvote": 0.8}, dict(TRUE_SD)),
}
PARTY_SCHEMA = replace(CCES18_SCHEMA, outcome="party", outcome_levels=PARTY_LEVELS)
#: With ``load_synthetic(party=True)``: the 0/1 outcome's true shift by party ID, which the
#: survey records and the table does not count (a non-census variable).
TRUE_PARTY_EFFECT = {"Democrat": -0.6, "Republican": 0.8, "Independent": 0.0}
NONCENSUS_SCHEMA = replace(CCES18_SCHEMA, noncensus={"party": PARTY_LEVELS})

# True correlation (ar1) and mixing weight (bym2) of structured truths.
#: The synthetic varying slope (``load_synthetic(slopes=True)``): the sex gap varies by state
#: with this sd, correlated with the state intercepts as ``(1 + male | state)`` models it.
TRUE_SLOPE_SD = {"state__male": 0.25}
TRUE_SLOPE_COR = {"state": -0.5}

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
    true_fixed: Mapping[str, float] = TRUE_FIXED,
    true_sd: Mapping[str, float] = TRUE_SD,
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
    fixed = dict(true_fixed)
    region_codes = area["region"].map({r: i for i, r in enumerate(REGIONS)}).to_numpy()
    region_effect = np.array([TRUE_REGION[r] for r in REGIONS])
    eta = (
        true_fixed["Intercept"]
        + true_fixed["male"] * cells["male"].to_numpy()
        + true_fixed["repvote"] * area["repvote"].to_numpy()[codes["state"]]
        + region_effect[region_codes[codes["state"]]]
    )
    for r in REGIONS[1:]:
        fixed[f"region[{r}]"] = TRUE_REGION[r]
    effects = {}
    for term, sd in true_sd.items():
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
    outcome: str = "abortion",
    party: bool = False,
    slopes: bool = False,
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

    outcome : str
        ``abortion``, the 0/1 outcome; or ``party``, a three-level party ID
        (:data:`PARTY_LEVELS`, baseline ``Democrat``) from a baseline-category logit with the
        same terms and its own true effects per category (``TRUE_PARTY``).
    party : bool
        With the 0/1 outcome: every respondent also gives a party ID, drawn from the
        synthetic party model's true shares in its cell, which shifts the outcome's logit by
        ``TRUE_PARTY_EFFECT``; the table does not count party (a non-census variable,
        ``schema.noncensus``), and the truth is over the cells extended by party.
    slopes : bool
        With the 0/1 outcome: the coefficient of ``male`` varies by state, with sd
        ``TRUE_SLOPE_SD`` and correlation ``TRUE_SLOPE_COR`` with the state intercepts (the
        model ``(1 + male | state)``); ``truth.effects["state__male"]`` holds the slopes and
        ``truth.correlation["state"]`` the correlation matrix.

    Returns
    -------
    MRPData
        With ``truth`` set: true state and national values, true parameters, and every
        cell's true probability and population count (``truth.cells``; ``truth.by(columns)``
        gives the truth of any grouping).
    """
    n = check_n(n)
    if outcome not in ("abortion", "party"):
        raise ValueError(f"outcome must be 'abortion' (0/1) or 'party' (categorical), got {outcome!r}")
    pop_rng = np.random.default_rng([seed, 0])
    area, cells, codes, propensity = _population(pop_rng)
    structure = dict(structure or {})
    for term, kind in structure.items():
        _structured_covariance(term, kind)  # an unknown term or prior fails before any work
    if outcome == "party" or party:
        if outcome == "party" and party:
            raise ValueError("party=True adds party ID beside the 0/1 outcome; with outcome='party' it is the outcome")
        if structure or interactions or slopes:
            raise ValueError(
                "the synthetic party ID has iid effects, no interactions and no slopes; leave structure, interactions "
                "and slopes unset"
            )
        if party:
            return _noncensus(n, seed, area, cells, codes, propensity, pop_rng)
        return _party(n, seed, area, cells, codes, propensity, pop_rng)
    eta, fixed, effects = _true_logits(pop_rng, area, cells, codes, structure)
    true_sd, correlation = dict(TRUE_SD), {}
    if slopes:
        # Each state's slope given its intercept: together a bivariate normal with the correlation.
        sd, cor = TRUE_SLOPE_SD["state__male"], TRUE_SLOPE_COR["state"]
        standard = effects["state"] / TRUE_SD["state"]
        slope = sd * (cor * standard + np.sqrt(1.0 - cor**2) * pop_rng.normal(0.0, 1.0, len(STATES)))
        eta = eta + slope[codes["state"]] * cells["male"].to_numpy()
        effects["state__male"] = slope
        true_sd["state__male"] = sd
        correlation["state"] = np.array([[1.0, cor], [cor, 1.0]])
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
        sd=true_sd,
        effects=effects,
        cells=cells.drop(columns="n").assign(p=p, n=N),
        correlation=correlation,
    )

    extra = f", interactions={dict(interactions)}" if interactions else ""
    extra += f", structure={structure}" if structure else ""
    extra += ", slopes=True" if slopes else ""
    source = f"synthetic(n={n}, seed={seed}{extra})"
    survey_rng = np.random.default_rng([seed, 1, n])
    counts, rows = _respondent_cells(survey_rng, n, N * propensity)
    successes = survey_rng.binomial(counts, p)
    # Within each cell the first `successes` respondents say yes; a shuffle hides the order.
    rank = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    y = (rank < np.repeat(successes, counts)).astype(np.int8)
    order = survey_rng.permutation(len(rows))
    rows, y = rows[order], y[order]
    survey = cells.iloc[rows, :5].reset_index(drop=True)
    survey.insert(0, "abortion", y)
    return build_mrp_data(survey, cells, area, SYNTHETIC_SCHEMA, source=source, truth=truth)


def _party_shares(
    area: pd.DataFrame, cells: pd.DataFrame, codes: dict[str, np.ndarray], pop_rng: np.random.Generator
) -> tuple[np.ndarray, dict, dict, dict]:
    """Every cell's true party shares (cells, K) and the true effects, keyed ``<category>:<name>``."""
    eta = [np.zeros(len(cells))]
    fixed, sd, effects = {}, {}, {}
    for category, (true_fixed, true_sd) in TRUE_PARTY.items():
        logits, f, e = _true_logits(pop_rng, area, cells, codes, {}, true_fixed, true_sd)
        eta.append(logits)
        fixed.update({f"{category}:{k}": v for k, v in f.items()})
        sd.update({f"{category}:{k}": v for k, v in true_sd.items()})
        effects.update({f"{category}:{k}": v for k, v in e.items()})
    logits = np.stack(eta, axis=1)
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)  # (cells, K), in PARTY_LEVELS' order
    return p, fixed, sd, effects


def _respondent_cells(rng: np.random.Generator, n: int, weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` respondents drawn over the cells in proportion to ``weight``: respondents per cell, and each one's cell."""
    counts = rng.multinomial(n, weight / weight.sum())
    return counts, np.repeat(np.arange(len(weight)), counts)


def _answers(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One category per row of probabilities ``p`` (rows, K): the inverse CDF of one uniform each."""
    cdf = np.cumsum(p, axis=1)
    return (rng.random(len(p))[:, None] > cdf[:, :-1]).sum(axis=1)


def _party(
    n: int,
    seed: int,
    area: pd.DataFrame,
    cells: pd.DataFrame,
    codes: dict[str, np.ndarray],
    propensity: np.ndarray,
    pop_rng: np.random.Generator,
) -> MRPData:
    """The synthetic party ID: a baseline-category logit's true shares, and a survey of them."""
    p, fixed, sd, effects = _party_shares(area, cells, codes, pop_rng)
    N = cells["n"].to_numpy()
    truth_cells = cells.drop(columns="n").assign(**{f"p[{c}]": p[:, k] for k, c in enumerate(PARTY_LEVELS)}, n=N)
    truth = Truth(
        area=pd.Series(dtype=float),
        national=float("nan"),
        fixed=fixed,
        sd=sd,
        effects=effects,
        cells=truth_cells,
        categories=PARTY_LEVELS,
    )
    truth = replace(truth, area=truth.by(["state"]))
    survey_rng = np.random.default_rng([seed, 1, n, 3])
    _, rows = _respondent_cells(survey_rng, n, N * propensity)
    answer = _answers(survey_rng, p[rows])
    order = survey_rng.permutation(len(rows))
    rows, answer = rows[order], answer[order]
    survey = cells.iloc[rows, :5].reset_index(drop=True)
    survey.insert(0, "party", np.asarray(PARTY_LEVELS, dtype=object)[answer])
    source = f"synthetic(n={n}, seed={seed}, outcome=party)"
    return build_mrp_data(survey, cells, area, PARTY_SCHEMA, source=source, truth=truth)


def _noncensus(
    n: int,
    seed: int,
    area: pd.DataFrame,
    cells: pd.DataFrame,
    codes: dict[str, np.ndarray],
    propensity: np.ndarray,
    pop_rng: np.random.Generator,
) -> MRPData:
    """The 0/1 outcome shifted by a party ID the survey records and the table does not count."""
    eta, fixed, effects = _true_logits(pop_rng, area, cells, codes, {})
    shares, *_ = _party_shares(area, cells, codes, pop_rng)
    shift = np.array([TRUE_PARTY_EFFECT[c] for c in PARTY_LEVELS])
    k = len(PARTY_LEVELS)
    N = cells["n"].to_numpy()
    # The truth over the cells extended by party: n = N * P(party | cell), p = P(1 | cell, party).
    extended = cells.drop(columns="n").iloc[np.repeat(np.arange(len(cells)), k)].reset_index(drop=True)
    extended["party"] = pd.Categorical.from_codes(np.tile(np.arange(k), len(cells)), categories=list(PARTY_LEVELS))
    p = 1.0 / (1.0 + np.exp(-(eta[:, None] + shift[None, :])))  # (cells, K)
    truth_cells = extended.assign(p=p.ravel(), n=(N[:, None] * shares).ravel())
    fixed.update({f"party[{c}]": v for c, v in TRUE_PARTY_EFFECT.items()})
    truth = Truth(
        area=pd.Series(dtype=float), national=float("nan"), fixed=fixed, sd=dict(TRUE_SD), effects=effects, cells=truth_cells
    )
    truth = replace(truth, area=truth.by(["state"]), national=float(truth.by([]).iloc[0]))
    survey_rng = np.random.default_rng([seed, 1, n, 4])
    rows = survey_rng.permutation(_respondent_cells(survey_rng, n, N * propensity)[1])
    party = _answers(survey_rng, shares[rows])
    y = (survey_rng.random(len(rows)) < p[rows, party]).astype(np.int8)
    survey = cells.iloc[rows, :5].reset_index(drop=True)
    survey.insert(0, "abortion", y)
    survey["party"] = np.asarray(PARTY_LEVELS, dtype=object)[party]
    source = f"synthetic(n={n}, seed={seed}, party=True)"
    return build_mrp_data(survey, cells, area, NONCENSUS_SCHEMA, source=source, truth=truth)
