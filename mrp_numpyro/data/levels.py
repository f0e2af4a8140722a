"""Level orders and codes of the 2018 CCES case-study coding.

The loaders and the synthetic generator share them, so that both produce the same kind of table.
"""

from __future__ import annotations

# The 50 states in alphabetical order of postal code (DC is excluded, as in the case study).
STATE_FIPS: dict[str, int] = {
    "AK": 2,
    "AL": 1,
    "AR": 5,
    "AZ": 4,
    "CA": 6,
    "CO": 8,
    "CT": 9,
    "DE": 10,
    "FL": 12,
    "GA": 13,
    "HI": 15,
    "IA": 19,
    "ID": 16,
    "IL": 17,
    "IN": 18,
    "KS": 20,
    "KY": 21,
    "LA": 22,
    "MA": 25,
    "MD": 24,
    "ME": 23,
    "MI": 26,
    "MN": 27,
    "MO": 29,
    "MS": 28,
    "MT": 30,
    "NC": 37,
    "ND": 38,
    "NE": 31,
    "NH": 33,
    "NJ": 34,
    "NM": 35,
    "NV": 32,
    "NY": 36,
    "OH": 39,
    "OK": 40,
    "OR": 41,
    "PA": 42,
    "RI": 44,
    "SC": 45,
    "SD": 46,
    "TN": 47,
    "TX": 48,
    "UT": 49,
    "VA": 51,
    "VT": 50,
    "WA": 53,
    "WI": 55,
    "WV": 54,
    "WY": 56,
}
STATES: tuple[str, ...] = tuple(sorted(STATE_FIPS))
FIPS_TO_STATE: dict[int, str] = {v: k for k, v in STATE_FIPS.items()}

# Census regions; Northeast first, so that it is the baseline of factor(region).
REGIONS: tuple[str, ...] = ("Northeast", "North Central", "South", "West")
STATE_REGION: dict[str, str] = {
    **dict.fromkeys(["CT", "ME", "MA", "NH", "RI", "VT", "NJ", "NY", "PA"], "Northeast"),
    **dict.fromkeys(["IL", "IN", "MI", "OH", "WI", "IA", "KS", "MN", "MO", "NE", "ND", "SD"], "North Central"),
    **dict.fromkeys(["DE", "FL", "GA", "MD", "NC", "SC", "VA", "WV", "AL", "KY", "MS", "TN", "AR", "LA", "OK", "TX"], "South"),
    **dict.fromkeys(["AZ", "CO", "ID", "MT", "NV", "NM", "UT", "WY", "AK", "CA", "HI", "OR", "WA"], "West"),
}

ETH: tuple[str, ...] = ("White", "Black", "Hispanic", "Other")
AGE: tuple[str, ...] = ("18-29", "30-39", "40-49", "50-59", "60-69", "70+")
EDUC: tuple[str, ...] = ("No HS", "HS", "Some college", "4-Year College", "Post-grad")
# male is numeric in the case-study coding: -0.5 is female, +0.5 is male.
MALE: tuple[float, ...] = (-0.5, 0.5)
