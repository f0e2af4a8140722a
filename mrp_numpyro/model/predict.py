"""The linear predictor of any cells (survey or poststratification table) for draws of the shared parameters."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import DTypeLike

from ..design.cells import CellArrays, Design
from .blocks import CellBlocks, cell_blocks

__all__ = ["cell_logits", "cell_logits_by_cell"]


def cell_logits(draws: Mapping[str, np.ndarray], design: Design, cells: CellArrays) -> np.ndarray:
    """Linear predictor of every cell for a flat batch of posterior draws.

    Parameters
    ----------
    draws : mapping of site name to array (draws, ...)
        Must hold ``Intercept``, ``beta`` (if there are fixed effects), and ``sd_*``/``z_*``
        of every varying intercept.
    design : Design
    cells : CellArrays
        Survey or poststratification cells.

    Returns
    -------
    array (draws, cells)
    """
    return cell_logits_by_cell(draws, design, cells).T


def cell_logits_by_cell(
    draws: Mapping[str, np.ndarray],
    design: Design,
    cells: CellArrays,
    blocks: CellBlocks | None = None,
    dtype: DTypeLike = np.float64,
) -> np.ndarray:
    """:func:`cell_logits` laid out (cells, draws), C-contiguous.

    Evaluated block by block (:mod:`mrp_numpyro.model.blocks`): for the 12,000 cells of the CCES
    table, a state block and a demographic block, so two row gathers per batch of draws
    instead of one per term. Pass ``blocks`` (``cell_blocks(design, cells=cells)``) to
    reuse them over batches, and ``dtype`` to compute in float32.

    A categorical outcome's draws give (cells, draws, K - 1): every non-baseline category's
    linear predictor (:mod:`mrp_numpyro.model.categorical`).
    """
    blocks = cell_blocks(design, cells=cells) if blocks is None else blocks
    theta = design.layout.pack_draws(draws, dtype)  # (draws, P), or (draws, K - 1, P)
    eta = np.zeros((cells.n_cells,) + theta.shape[:-1], dtype=dtype)
    for b, rows in enumerate(blocks.rows):
        # Only the block's own columns are non-zero: multiply by those alone.
        cols = blocks.columns[b]
        values = np.ascontiguousarray(np.tensordot(rows[:, cols].astype(dtype), theta[..., cols], axes=([1], [-1])))
        eta += values[blocks.index[:, b]]  # (combinations, draws[, K - 1]) gathered to the cells
    return eta
