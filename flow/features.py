"""Bin-ratio features in fixed point: log1p of unsigned channel counts and the per-diagonal difference.

These are the exact integer kernels the feature nodes of the IR evaluate (design.md §1): ``L = log1p(h)`` to a
declared fixed-point type, then ``L[i+k+1] - L[i]`` for diagonal ``k``, zero-padded to ``n_channels - 1``.
"""

from __future__ import annotations

import decimal
import functools
from dataclasses import dataclass

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding, cast

# Extra decimal digits beyond the integer part for the exact fallback: a float64 log1p that lands this close to a
# rounding boundary is settled by decimal arithmetic instead.
_GUARD_DIGITS = 30
_TABLE_MAX_WIDTH = 20  # a full table has 2**count_width entries


def log1p_type(count_width: int, frac_bits: int) -> FixedType:
    """The narrowest unsigned RND_CONV/SAT type with ``frac_bits`` that holds log1p of every count unsaturated."""
    _check_count_width(count_width)
    top = _floor_scaled(np.array([(1 << count_width) - 1], dtype=object), frac_bits + 2)[0]
    max_raw = (int(top) + 2) >> 2  # round to nearest; the largest count's value is never a tie
    width = max(max_raw.bit_length(), 1)
    return FixedType(width, width - frac_bits, signed=False, rounding=Rounding.RND_CONV, overflow=Overflow.SAT)


def log1p_fixed(counts: np.ndarray, count_width: int, out: FixedType) -> np.ndarray:
    """Raw mantissas of ``out``: log1p of each count rounded from its exact value by ``out``'s modes (int64).

    Each distinct count is evaluated once, so a batch of spectra costs about as much as its distinct counts.
    """
    _check_count_width(count_width)
    if not out.fits_int64:
        raise FlowError(f"log1p output type {out} is wider than 64 bits")
    c = np.asarray(counts)
    if c.dtype.kind not in "iu":
        raise FlowError(f"log1p input counts must be integers, got dtype {c.dtype}")
    if c.size and (c.min() < 0 or int(c.max()) >= 1 << count_width):
        raise FlowError(f"log1p input counts must lie in 0..{(1 << count_width) - 1} (uint{count_width})")
    values, inverse = np.unique(c, return_inverse=True)
    return _log1p_raw(values.astype(object), out)[inverse].reshape(c.shape)


@functools.lru_cache(maxsize=8)
def log1p_table(count_width: int, out: FixedType) -> np.ndarray:
    """The full table: entry ``c`` is the raw ``out`` mantissa of log1p(c), for every ``count_width``-bit count."""
    _check_count_width(count_width)
    if count_width > _TABLE_MAX_WIDTH:
        raise FlowError(f"a full log1p table needs count_width <= {_TABLE_MAX_WIDTH}, got {count_width}")
    table = _log1p_raw(np.arange(1 << count_width, dtype=np.int64).astype(object), out)
    table.setflags(write=False)
    return table


def difference_type(in_type: FixedType) -> FixedType:
    """The exact type of ``a - b`` for a, b of ``in_type``: signed, one more integer bit, same fraction bits."""
    return FixedType(in_type.width + 1, in_type.int_bits + 1, signed=True)


def diagonal_difference(logs: np.ndarray, k: int) -> np.ndarray:
    """Raw ``L[i+k+1] - L[i]`` for i = 0..n-k-2, zero-padded to (…, n-1): exact in :func:`difference_type`."""
    L = np.asarray(logs)
    if L.dtype.kind not in "iu":
        raise FlowError(f"diagonal difference needs raw integer mantissas, got dtype {L.dtype}")
    n = L.shape[-1]
    if not 0 <= k <= n - 2:
        raise FlowError(f"diagonal {k} outside 0..{n - 2} for {n} channels")
    L = L.astype(np.int64)
    out = np.zeros((*L.shape[:-1], n - 1), dtype=np.int64)
    width = n - (k + 1)
    out[..., :width] = L[..., k + 1 :] - L[..., :width]
    return out


def _check_count_width(count_width: int) -> None:
    if isinstance(count_width, bool) or not isinstance(count_width, int) or not 1 <= count_width <= 63:
        raise FlowError(f"count width must be an integer in 1..63, got {count_width!r}")


def round_exact(floor_scaled: np.ndarray, inexact: np.ndarray, guard_frac_bits: int, out: FixedType) -> np.ndarray:
    """Raw ``out`` mantissas of values known as ``floor(v * 2**guard_frac_bits)`` and whether ``v`` lies above it.

    With ``guard_frac_bits >= out.frac_bits + 2`` (a guard bit and a sticky bit) every rounding mode of ``out``
    gives the correctly rounded value of ``v``: the tables of the feature and vote nodes are built this way.
    """
    sticky = np.asarray(inexact).astype(np.int64).astype(object)
    return cast((np.asarray(floor_scaled, dtype=object) << 1) | sticky, guard_frac_bits + 1, out).astype(np.int64)


def _log1p_raw(counts: np.ndarray, out: FixedType) -> np.ndarray:
    """Exact rounding of log1p(counts) (object array of ints) to ``out`` via a guard bit and a sticky bit."""
    guard = out.frac_bits + 2
    # log(c + 1) is irrational for every count c >= 1 (Lindemann), so only c = 0 has nothing below the guard bits.
    return round_exact(_floor_scaled(counts, guard), counts != 0, guard, out)


def _floor_scaled(counts: np.ndarray, frac_bits: int) -> np.ndarray:
    """floor(log1p(c) * 2**frac_bits) exactly (object array of ints): float64 where it is safe, else decimal."""
    c = counts.astype(np.float64)
    y = np.log1p(c) * np.float64(2.0) ** frac_bits
    floor = np.floor(y)
    # float64 log1p is within 1 ulp; 8 ulps of margin to the nearest integer keeps the floor exact.
    unsafe = (np.abs(y - np.rint(y)) <= 8 * np.spacing(y)) | (y >= 2.0**52)
    out = np.array([int(v) for v in floor], dtype=object)
    for i in np.flatnonzero(unsafe):
        out[i] = _floor_scaled_decimal(int(counts[i]), frac_bits)
    return out


def _floor_scaled_decimal(count: int, frac_bits: int) -> int:
    """floor(log1p(count) * 2**frac_bits) with decimal arithmetic at ample precision."""
    if count == 0:
        return 0
    digits = len(str(count)) + abs(frac_bits) // 3 + _GUARD_DIGITS
    with decimal.localcontext() as ctx:
        ctx.prec = digits
        scaled = decimal.Decimal(count + 1).ln() * (decimal.Decimal(2) ** frac_bits)
        return int(scaled.to_integral_value(rounding=decimal.ROUND_FLOOR))


@dataclass(frozen=True)
class FeatureStage:
    """The hardware's feature stage: ``count_width``-bit saturating channel counts, log1p to ``log1p_t``."""

    count_width: int = 16
    log1p_frac_bits: int = 8

    @property
    def log1p_t(self) -> FixedType:
        return log1p_type(self.count_width, self.log1p_frac_bits)

    @property
    def difference_t(self) -> FixedType:
        return difference_type(self.log1p_t)

    def counts(self, counts: np.ndarray) -> np.ndarray:
        """Counts as the channel counters hold them: saturated at ``2**count_width - 1`` (int64)."""
        return np.minimum(np.asarray(counts, dtype=np.int64), (1 << self.count_width) - 1)

    def logs(self, counts: np.ndarray) -> np.ndarray:
        """Raw ``log1p_t`` mantissas of the saturated counts (int32: the type is at most 31 bits here)."""
        c = self.counts(counts)
        if self.count_width <= _TABLE_MAX_WIDTH:
            raw = log1p_table(self.count_width, self.log1p_t)[c]
        else:
            raw = log1p_fixed(c, self.count_width, self.log1p_t)
        return raw.astype(np.int32 if self.log1p_t.width <= 31 else np.int64)

    def diagonal(self, logs: np.ndarray, k: int, clip: bool = False) -> np.ndarray:
        """Raw ``difference_t`` mantissas of diagonal ``k`` (clipped at 0 when ``clip``)."""
        d = diagonal_difference(logs, k)
        return np.maximum(d, 0) if clip else d

    def features(self, counts: np.ndarray, k: int, clip: bool = False) -> np.ndarray:
        """The float32 values (exact) of diagonal ``k`` of the raw counts: what a member is trained on."""
        return self.difference_t.to_float(self.diagonal(self.logs(counts), k, clip)).astype(np.float32)
