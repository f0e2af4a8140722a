"""Figures and a one-page HTML report for a run directory.

Every run writes PNG figures - state estimates with 50 % and 90 % intervals sorted by
estimate, a tile-grid map of the states, the ELBO trace (SVI) or trace and rank plots of the
global parameters (NUTS) - and ``report.html``, which embeds them with the config, the
diagnostics and the reliability verdict, and opens in a browser with no server.
"""

from __future__ import annotations

import base64
import html
import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..design.layout import SITES, ParameterLayout
from ..outputs import atomic_write, write_text

if TYPE_CHECKING:
    import arviz as az
    from matplotlib.figure import Figure

__all__ = [
    "pyplot",
    "save_png",
    "STATE_TILES",
    "plot_state_estimates",
    "plot_state_map",
    "plot_elbo",
    "plot_nuts",
    "write_report",
    "plot_predictive_checks",
]

# (row, column) of each state in a tile-grid map of the United States.
STATE_TILES: dict[str, tuple[int, int]] = {
    "AK": (0, 0),
    "ME": (0, 10),
    "VT": (1, 9),
    "NH": (1, 10),
    "WA": (2, 0),
    "ID": (2, 1),
    "MT": (2, 2),
    "ND": (2, 3),
    "MN": (2, 4),
    "IL": (2, 5),
    "WI": (2, 6),
    "MI": (2, 7),
    "NY": (2, 8),
    "RI": (2, 9),
    "MA": (2, 10),
    "OR": (3, 0),
    "NV": (3, 1),
    "WY": (3, 2),
    "SD": (3, 3),
    "IA": (3, 4),
    "IN": (3, 5),
    "OH": (3, 6),
    "PA": (3, 7),
    "NJ": (3, 8),
    "CT": (3, 9),
    "CA": (4, 0),
    "UT": (4, 1),
    "CO": (4, 2),
    "NE": (4, 3),
    "MO": (4, 4),
    "KY": (4, 5),
    "WV": (4, 6),
    "VA": (4, 7),
    "MD": (4, 8),
    "DE": (4, 9),
    "AZ": (5, 1),
    "NM": (5, 2),
    "KS": (5, 3),
    "AR": (5, 4),
    "TN": (5, 5),
    "NC": (5, 6),
    "SC": (5, 7),
    "OK": (6, 3),
    "LA": (6, 4),
    "MS": (6, 5),
    "AL": (6, 6),
    "GA": (6, 7),
    "HI": (7, 0),
    "TX": (7, 3),
    "FL": (7, 8),
}


def pyplot() -> ModuleType:
    """matplotlib.pyplot, imported on first use.

    The backend is left alone (a notebook keeps its own); without a display matplotlib
    falls back to Agg by itself.
    """
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Figure, path: Path, dpi: int = 110) -> Path:
    """Write a figure atomically as PNG and close it."""
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=dpi, bbox_inches="tight"))
    pyplot().close(fig)
    return path


def plot_state_estimates(table: pd.DataFrame, path: Path, area: str = "state", title: str = "") -> Path:
    """Median, 50 % and 90 % intervals per area, sorted by estimate; true values where known."""
    plt = pyplot()
    t = table.sort_values("q50").reset_index(drop=True)
    y = np.arange(len(t))
    fig, ax = plt.subplots(figsize=(6.5, 0.2 * len(t) + 1.4))
    ax.hlines(y, 100 * t["q5"], 100 * t["q95"], color="tab:blue", lw=1, label="90 % interval")
    ax.hlines(y, 100 * t["q25"], 100 * t["q75"], color="tab:blue", lw=4, alpha=0.7, label="50 % interval")
    ax.plot(100 * t["q50"], y, "o", color="white", mec="tab:blue", ms=4, label="median")
    if "truth" in t:
        ax.plot(100 * t["truth"], y, "x", color="tab:red", ms=5, label="true value")
    ax.set_yticks(y, t[area].astype(str), fontsize=7)
    ax.set_xlabel("estimate (%)")
    ax.set_title(title or f"{area} estimates")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_png(fig, path)


def plot_state_map(table: pd.DataFrame, path: Path, area: str = "state", title: str = "") -> Path:
    """Tile-grid map of the posterior means (one square per state, no shape files)."""
    plt = pyplot()
    from matplotlib import colormaps
    from matplotlib.colors import Normalize

    values = dict(zip(table[area].astype(str), 100 * table["mean"], strict=True))
    norm = Normalize(min(values.values()), max(values.values()))
    cmap = colormaps["RdBu_r"]
    fig, ax = plt.subplots(figsize=(8, 5.6))
    for state, (row, col) in STATE_TILES.items():
        if state not in values:
            continue
        color = cmap(norm(values[state]))
        ax.add_patch(plt.Rectangle((col, -row), 0.94, 0.94, color=color))
        dark = np.mean(color[:3]) < 0.5
        ax.text(
            col + 0.47,
            -row + 0.58,
            state,
            ha="center",
            va="center",
            fontsize=9,
            weight="bold",
            color="white" if dark else "black",
        )
        ax.text(
            col + 0.47,
            -row + 0.28,
            f"{values[state]:.0f}",
            ha="center",
            va="center",
            fontsize=7,
            color="white" if dark else "black",
        )
    ax.set_xlim(-0.2, 11.2)
    ax.set_ylim(-7.2, 1.1)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.6, label="posterior mean (%)")
    ax.set_title(title or "posterior mean by state")
    return save_png(fig, path)


def plot_elbo(elbo: np.ndarray, path: Path) -> Path:
    """ELBO per step with a running mean over 100 steps."""
    plt = pyplot()
    elbo = np.asarray(elbo, float)
    fig, ax = plt.subplots(figsize=(7, 3.2))
    steps = np.arange(1, len(elbo) + 1)
    ax.plot(steps, elbo, lw=0.5, alpha=0.4, color="tab:blue", label="ELBO")
    window = min(100, len(elbo))
    smooth = pd.Series(elbo).rolling(window, min_periods=1).mean()
    ax.plot(steps, smooth, color="tab:blue", lw=1.5, label=f"mean of {window} steps")
    finite = elbo[np.isfinite(elbo)]
    if len(finite) > 10:  # start the axis where the trace has settled, so the plateau is visible
        ax.set_ylim(np.quantile(finite, 0.05), finite.max() + 0.05 * (finite.max() - np.quantile(finite, 0.05)))
    ax.set_xlabel("step")
    ax.set_ylabel("ELBO")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_png(fig, path)


def plot_nuts(idata: az.InferenceData, path_trace: Path, path_rank: Path, layout: ParameterLayout) -> tuple[Path, Path]:
    """Trace and rank plots of the global parameters (intercept, coefficients, group sds)."""
    with warnings.catch_warnings():
        # arviz 0.2x calls a matplotlib helper that matplotlib 3.11 deprecates; not ours to fix.
        warnings.filterwarnings("ignore", message="Passing a dict or None as alias_mapping")
        return _plot_nuts(idata, path_trace, path_rank, layout)


def _plot_nuts(idata: az.InferenceData, path_trace: Path, path_rank: Path, layout: ParameterLayout) -> tuple[Path, Path]:
    import arviz as az

    plt = pyplot()
    names = list(layout.global_sites)
    figure = {"constrained_layout": True}  # keeps panel titles clear of the tick labels above
    axes = az.plot_trace(idata, var_names=names, compact=True, figsize=(9, 1.8 * len(names)), backend_kwargs=figure)
    save_png(np.ravel(axes)[0].figure, path_trace)
    axes = az.plot_rank(idata, var_names=[SITES.intercept, *layout.sd_sites], kind="vlines", backend_kwargs=figure)
    save_png(np.ravel(axes)[0].figure, path_rank)
    plt.close("all")
    return path_trace, path_rank


def _img(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    name = html.escape(path.name)
    return f'<figure><img alt="{name}" src="data:image/png;base64,{data}"><figcaption>{name}</figcaption></figure>'


def _banner(summary: Mapping) -> str:
    """The verdict of a variational fit, or NUTS's divergences, R-hat and ESS."""
    verdict = summary.get("verdict")
    if verdict:
        colour = {"pass": "#1a7f37", "warn": "#9a6700", "fail": "#cf222e"}.get(verdict, "#57606a")
        message = html.escape(summary.get("verdict_message") or "")
        return f'<p class="verdict" style="border-color:{colour}"><b>Verdict: {html.escape(verdict)}.</b> {message}</p>'
    d = summary.get("diagnostics", {})
    method = html.escape(str(summary.get("method")).upper())
    return (
        f'<p class="verdict"><b>{method}</b>: {d.get("divergences")} divergent transitions, '
        f"max R-hat {d.get('max_rhat', float('nan')):.3f}, min bulk ESS {d.get('min_ess_bulk', float('nan')):.0f}.</p>"
    )


def _checks(summary: Mapping) -> str:
    """Cell-level LOO and the share of groups inside their replicated intervals."""
    parts = []
    loo = summary.get("loo")
    if loo:
        parts.append(
            f"Cell-level PSIS-LOO: elpd {loo['elpd']:.1f} (SE {loo['se']:.1f}), p_loo {loo['p_loo']:.1f}; "
            f"{loo['n_high_k']} of {loo['n_cells']} cells with Pareto k &gt; 0.7. LOO ranks formulas fitted to the same "
            "cells by their fit to the survey, not by the accuracy of the population estimates."
        )
    for name, p in (summary.get("predictive") or {}).items():
        parts.append(
            f"Predictive check by {html.escape(name)}: {100 * p['in_50']:.0f} % of {p['groups']} groups inside the 50 % "
            f"interval of replicated shares, {100 * p['in_90']:.0f} % inside the 90 %."
        )
    return "<h2>Checks against the survey</h2>" + "".join(f"<p>{x}</p>" for x in parts) if parts else ""


def _tables(tables: Mapping[str, pd.DataFrame]) -> str:
    """Every estimate table, in percent."""
    sections = []
    for name, table in tables.items():
        shown = table.copy()
        for c in ("mean", "sd", "q5", "q25", "q50", "q75", "q95", "truth"):
            if c in shown:
                shown[c] = (100 * shown[c]).round(2)
        sections.append(f"<h2>Estimates: {html.escape(name)} (%)</h2>" + shown.to_html(index=False, border=0, classes="t"))
    return "".join(sections)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #1f2328; }
.verdict { border-left: 6px solid #57606a; padding: .6em 1em; background: #f6f8fa; }
table.t { border-collapse: collapse; font-size: 13px; } table.t td, table.t th { padding: 2px 8px; text-align: right; }
table.t tr:nth-child(even) { background: #f6f8fa; }
figure { margin: 1em 0; } img { max-width: 100%; }
pre { background: #f6f8fa; padding: 1em; overflow-x: auto; font-size: 12px; }
"""


def write_report(out: Path, summary: Mapping, config_yaml: str, tables: Mapping[str, pd.DataFrame], figures: list[Path]) -> Path:
    """One self-contained HTML page: verdict, diagnostics, estimates, figures and config."""
    nat = summary.get("national_mean")
    national = "" if nat is None else f" National estimate: {100 * nat:.2f} %."
    data = html.escape(str(summary.get("data")))
    method = f"{html.escape(str(summary.get('method')))} {html.escape(str(summary.get('guide') or ''))}"
    details = {k: summary.get(k) for k in ("diagnostics", "timings_s", "notes", "versions")}
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mrp_numpyro run: {data}</title>
<style>{_STYLE}</style></head><body>
<h1>MRP run</h1>
<p>{data}: {summary.get("n_respondents"):,} respondents in {summary.get("n_occupied_cells"):,} cells,
poststratified over {summary.get("n_poststrat_cells"):,} cells. Method: {method}.{national}</p>
{_banner(summary)}
{"".join(_img(p) for p in figures)}
{_checks(summary)}
{_tables(tables)}
<h2>Diagnostics and timings</h2><pre>{html.escape(json.dumps(details, indent=2, default=str))}</pre>
<h2>Configuration</h2><pre>{html.escape(config_yaml)}</pre>
</body></html>
"""
    return write_text(out / "report.html", page)


# Groupings with more levels than this are drawn with the groups down the y axis.
_MAX_LEVELS_ACROSS = 12


def _group_labels(table: pd.DataFrame) -> list[str]:
    """One label per group: its grouping columns' values joined by ":" ("all" with no columns)."""
    columns = list(table.columns[: list(table.columns).index("respondents")])
    if not columns:
        return ["all"] * len(table)
    return [":".join(str(v) for v in row) for row in table[columns].itertuples(index=False)]


def plot_predictive_checks(tables: Mapping[str, pd.DataFrame], path: Path) -> Path:
    """Posterior predictive check by group: replicated 50 % and 90 % intervals and the observed share.

    One panel per grouping (tables of :func:`mrp_numpyro.checking.predictive_by_group`).
    Groupings with few levels put the groups along the x axis, three panels to a row;
    those with many (states) put them down the y axis, sorted by observed share, one
    panel to a row, as :func:`plot_state_estimates` does. Observed shares outside their
    90 % interval are drawn in red.
    """
    plt = pyplot()
    if not tables:
        raise ValueError("no predictive check tables to plot")
    tall = [name for name, t in tables.items() if len(t) > _MAX_LEVELS_ACROSS]
    short = [name for name in tables if name not in tall]
    across = 3
    rows: list[list[str]] = [[name] for name in tall] + [short[i : i + across] for i in range(0, len(short), across)]
    heights = [0.2 * len(tables[r[0]]) + 1.2 if r[0] in tall else 2.8 for r in rows]
    fig = plt.figure(figsize=(9, sum(heights) + 0.3 * len(rows)), constrained_layout=True)
    grid = fig.add_gridspec(len(rows), across, height_ratios=heights)
    for i, names in enumerate(rows):
        for j, name in enumerate(names):
            wide = name in tall
            ax = fig.add_subplot(grid[i, :] if wide else grid[i, j])
            t = tables[name].sort_values("observed").reset_index(drop=True) if wide else tables[name]
            pos = np.arange(len(t))
            lines = ax.hlines if wide else ax.vlines
            lines(pos, 100 * t["q5"], 100 * t["q95"], color="tab:blue", lw=1, label="90 % replicated")
            lines(pos, 100 * t["q25"], 100 * t["q75"], color="tab:blue", lw=4, alpha=0.7, label="50 % replicated")
            colour = np.where(t["in_90"].to_numpy(bool), "black", "tab:red")
            observed = 100 * t["observed"].to_numpy(float)
            x, y = (observed, pos) if wide else (pos, observed)
            ax.scatter(x, y, s=12, c=colour, zorder=3, label="observed (red: outside 90 %)")
            labels = _group_labels(t)
            if wide:
                ax.set_yticks(pos, labels, fontsize=7)
                ax.set_xlabel("share (%)")
                ax.grid(axis="x", alpha=0.3)
            else:
                ax.set_xticks(pos, labels, fontsize=7, rotation=30 if len(t) > 4 else 0, ha="right" if len(t) > 4 else "center")
                ax.set_ylabel("share (%)")
                ax.grid(axis="y", alpha=0.3)
            inside = 100 * float(t["in_90"].mean())
            ax.set_title(f"{name}: {inside:.0f} % of {len(t)} in their 90 % interval", fontsize=9)
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="lower right" if wide else "best")
    return save_png(fig, path)
