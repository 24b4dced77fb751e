"""The interpolated table: a reduced grid of a lookup table read back by linear (1-D) or bilinear (2-D) interpolation.

This is the baseline a hardware engineer would build instead of a network, so its arithmetic is defined exactly
(and :mod:`flow.interp_rtl` generates Verilog that is checked equal to it on every address):

* Axis ``k`` of ``side_k`` entries has ``address_bits_k = ceil(log2 side_k)`` address bits; the low ``frac_bits_k``
  of address ``a_k`` are the fraction ``f_k = a_k mod 2^frac_bits_k``, the rest the node index
  ``i_k = a_k >> frac_bits_k``. An axis with 0 fraction bits is not interpolated (every entry is a node); at least
  one axis is.
* Node ``i`` along an interpolated axis ``k`` samples the table at address ``min(i << frac_bits_k, side_k - 1)``
  (the last node is clamped to the last entry); there are ``((side_k - 1) >> frac_bits_k) + 2`` nodes on it.
* 1-D: ``r = (g[i] << k) + (g[i+1] - g[i]) * f``; 2-D, first along axis 1 for rows ``i`` and ``i + 1``:
  ``r_0 = (g[i,j] << k1) + (g[i,j+1] - g[i,j]) * f1``, ``r_1`` likewise, then ``v = (r_0 << k0) + (r_1 - r_0) * f0``.
  An axis that is not interpolated has ``f = 0`` (its term vanishes). All exact integers (no intermediate
  rounding); the output word is ``(v + 2^(K-1)) >> K`` with ``K`` the sum of the
  fraction bits: the exact (bi)linear value rounded half up. It is a convex combination of node values, so it stays
  inside the table's range and needs no clamp.

Errors are ``output - table`` in table LSBs over every address. :func:`select_grid` picks the smallest grid (fewest
stored bits) whose max |error| and RMSE are no worse than a target's (the network's).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from flow.errors import FlowError

ROW_CHUNK = 256  # rows of the full table evaluated at once (a 4096 x 4096 table stays within ~100 MB)


@dataclass(frozen=True)
class Grid:
    """A reduced table: ``frac_bits[k]`` address bits of axis ``k`` are interpolated between nodes."""

    shape: tuple[int, ...]  # the full table's entries per axis
    frac_bits: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.shape) not in (1, 2) or len(self.frac_bits) != len(self.shape):
            raise FlowError(f"interpolated table: shape {self.shape} / fraction bits {self.frac_bits}: 1-D or 2-D only")
        for side, k in zip(self.shape, self.frac_bits):
            if side < 2 or not 0 <= k <= address_bits(side):
                raise FlowError(f"interpolated table: axis of {side} entries cannot have {k} fraction bits")
        if not any(self.frac_bits):
            raise FlowError("interpolated table: no axis is interpolated (that is the full table)")

    @property
    def address_bits(self) -> tuple[int, ...]:
        """Address bits per axis."""
        return tuple(address_bits(s) for s in self.shape)

    @property
    def nodes_shape(self) -> tuple[int, ...]:
        """Stored nodes per axis (one past the last segment)."""
        return tuple(((s - 1) >> k) + 2 if k else s for s, k in zip(self.shape, self.frac_bits))

    @property
    def interpolated_axes(self) -> tuple[int, ...]:
        """The axes with fraction bits."""
        return tuple(k for k, f in enumerate(self.frac_bits) if f)

    @property
    def nodes(self) -> int:
        """Stored nodes in all."""
        return math.prod(self.nodes_shape)

    def node_addresses(self, axis: int) -> np.ndarray:
        """The table address each node of ``axis`` samples."""
        n, side, k = self.nodes_shape[axis], self.shape[axis], self.frac_bits[axis]
        return np.minimum(np.arange(n) << k, side - 1)

    def label(self) -> str:
        """E.g. ``33x33 nodes (step 8x8)``."""
        steps = "x".join(str(1 << k) for k in self.frac_bits)
        return f"{'x'.join(map(str, self.nodes_shape))} nodes (step {steps})"

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "shape": list(self.shape),
            "frac_bits": list(self.frac_bits),
            "nodes_shape": list(self.nodes_shape),
            "nodes": self.nodes,
            "label": self.label(),
        }


def address_bits(side: int) -> int:
    """Bits of an address of ``side`` entries."""
    return max(1, int(side - 1).bit_length())


def node_values(table: np.ndarray, grid: Grid) -> np.ndarray:
    """The stored nodes: the table sampled at each node's address."""
    t = np.asarray(table, dtype=np.int64)
    if t.shape != grid.shape:
        raise FlowError(f"interpolated table: table of shape {t.shape}, grid for {grid.shape}")
    return t[np.ix_(*(grid.node_addresses(k) for k in range(t.ndim)))]


def _split(side: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.arange(side, dtype=np.int64)
    return a >> k, a & ((1 << k) - 1)


def interpolate_rows(nodes: np.ndarray, grid: Grid, rows: slice | np.ndarray | None = None) -> np.ndarray:
    """The interpolator's output words for every address (2-D: the table rows ``rows`` only)."""
    g = np.asarray(nodes, dtype=np.int64)
    if g.ndim == 1:
        (k,) = grid.frac_bits
        i, f = _split(grid.shape[0], k)
        r = (g[i] << k) + (g[i + 1] - g[i]) * f
        return (r + (1 << (k - 1))) >> k
    k0, k1 = grid.frac_bits
    j, f1 = _split(grid.shape[1], k1)
    j1 = np.minimum(j + 1, g.shape[1] - 1)  # a non-interpolated axis has f = 0: its next node does not count
    rn = (g[:, j] << k1) + (g[:, j1] - g[:, j]) * f1  # axis 1 at every node row, shape (nodes_0, side_1)
    i, f0 = _split(grid.shape[0], k0)
    if rows is not None:
        i, f0 = i[rows], f0[rows]
    i1 = np.minimum(i + 1, g.shape[0] - 1)
    v = (rn[i] << k0) + (rn[i1] - rn[i]) * f0[:, None]
    shift = k0 + k1
    return (v + (1 << (shift - 1))) >> shift


def interpolate(table: np.ndarray, grid: Grid) -> np.ndarray:
    """The interpolator's output word at every address of the table (same shape)."""
    nodes = node_values(table, grid)
    if len(grid.shape) == 1:
        return interpolate_rows(nodes, grid)
    return np.concatenate(
        [interpolate_rows(nodes, grid, slice(r, r + ROW_CHUNK)) for r in range(0, grid.shape[0], ROW_CHUNK)]
    )


@dataclass(frozen=True)
class ErrorStats:
    """Interpolator minus table over every address, in table LSBs."""

    max_abs_lsb: int
    rmse_lsb: float
    worst_address: tuple[int, ...]

    def meets(self, target: ErrorStats) -> bool:
        """No worse than ``target`` in both max |error| and RMSE."""
        return self.max_abs_lsb <= target.max_abs_lsb and self.rmse_lsb <= target.rmse_lsb

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {"max_abs_lsb": self.max_abs_lsb, "rmse_lsb": self.rmse_lsb, "worst_address": list(self.worst_address)}


def error_stats(table: np.ndarray, words: np.ndarray) -> ErrorStats:
    """Max |error|, RMSE and the worst address of ``words`` against ``table`` (same shape)."""
    t = np.asarray(table, dtype=np.int64)
    err = np.asarray(words, dtype=np.int64) - t
    if err.shape != t.shape:
        raise FlowError(f"interpolated table: {err.shape} outputs for a table of shape {t.shape}")
    worst = np.unravel_index(int(np.argmax(np.abs(err))), t.shape)
    return ErrorStats(
        int(np.abs(err).max()), float(np.sqrt(np.mean(err.astype(np.float64) ** 2))), tuple(map(int, worst))
    )


def grid_error(table: np.ndarray, grid: Grid) -> ErrorStats:
    """The interpolator's error over the whole table."""
    return error_stats(table, interpolate(table, grid))


def candidates(shape: tuple[int, ...], width: int) -> list[Grid]:
    """Every grid of a table, smallest stored bits first (then the more even steps)."""
    ranges = [range(0 if len(shape) > 1 else 1, address_bits(s) + 1) for s in shape]
    grids = [Grid(tuple(shape), ks) for ks in itertools.product(*ranges) if any(ks)]
    return sorted(grids, key=lambda g: (g.nodes * width, max(g.frac_bits) - min(g.frac_bits), g.frac_bits))


@dataclass(frozen=True)
class Selection:
    """The chosen grid (None: no reduced grid meets the target), its error and the grids rejected before it."""

    grid: Grid | None
    error: ErrorStats | None
    target: ErrorStats
    rejected: int
    coarser: tuple[Grid, ErrorStats] | None  # the largest rejected grid, to show why it was not enough

    def to_dict(self, width: int) -> dict:
        """JSON-ready form."""
        out: dict = {
            "target": self.target.to_dict(),
            "grids_rejected": self.rejected,
            "grid": self.grid.to_dict() if self.grid else None,
            "error": self.error.to_dict() if self.error else None,
        }
        if self.grid:
            out["node_bits"] = self.grid.nodes * width
        if self.coarser:
            out["largest_rejected"] = {"grid": self.coarser[0].to_dict(), "error": self.coarser[1].to_dict()}
        return out


def _quick_reject(table: np.ndarray, grid: Grid, target: ErrorStats) -> bool:
    """True when a strided sample of rows already exceeds the target's max |error| (a lower bound of the max)."""
    if len(grid.shape) == 1 or grid.shape[0] <= 4 * ROW_CHUNK:
        return False
    nodes = node_values(table, grid)
    rows = np.arange(0, grid.shape[0], max(1, grid.shape[0] // ROW_CHUNK))
    words = interpolate_rows(nodes, grid, rows)
    return int(np.abs(words - np.asarray(table, dtype=np.int64)[rows]).max()) > target.max_abs_lsb


def select_grid(table: np.ndarray, target: ErrorStats, width: int) -> Selection:
    """The smallest grid (stored bits) whose max |error| and RMSE over the whole table meet ``target``."""
    t = np.asarray(table, dtype=np.int64)
    rejected: list[Grid] = []
    for grid in candidates(t.shape, width):
        err = None if _quick_reject(t, grid, target) else grid_error(t, grid)
        if err is not None and err.meets(target):
            break
        rejected.append(grid)
    else:
        grid, err = None, None
    last = (rejected[-1], grid_error(t, rejected[-1])) if rejected else None
    return Selection(grid, err, target, len(rejected), last)
