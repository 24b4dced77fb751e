"""Exact value ranges of every layer's outputs, propagated from the input type through the network.

A layer's declared type is usually far wider than what its values reach (a ReLU typed ``ufixed<14,4>`` after
weights that keep it below 3): ``shiftadd`` sizes its adders from these ranges, as da4ml does, instead of from
the declared input types. Ranges are raw mantissas ``(lo, hi)`` per element, sound for every input of the
network's input type. A dense output's range is exact over the box of its input ranges (each weight picks the
end of its input's range that minimises or maximises it); a cast keeps the ends when it is monotonic there (a
saturating mode, or a wrap that does not happen), else it gives its whole type.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flow.fixed import FixedType, Overflow, cast
from flow.ir import CastLayer, ClampLayer, DenseLayer, LayerKind, ReluLayer
from flow.layers import BatchNormLayer, Conv2DLayer, FlattenLayer, MaxPool2DLayer, size
from flow.rtl.common import Segment, aligned_biases

Ranges = list[tuple[int, int]]


def type_range(t: FixedType, n: int) -> Ranges:
    """Every raw value of ``t``, for ``n`` elements."""
    return [(t.min_raw, t.max_raw)] * n


def cast_range(r: tuple[int, int], src_frac_bits: int, dst: FixedType) -> tuple[int, int]:
    """The range of ``(dst) x`` for raw ``x`` in ``r`` with ``src_frac_bits`` fraction bits."""
    lo, hi = (int(v) for v in cast(np.array(r, dtype=object), src_frac_bits, dst))
    if dst.overflow is Overflow.SAT_ZERO:
        return (min(lo, 0), max(hi, 0)) if lo <= hi else (dst.min_raw, dst.max_raw)
    if dst.overflow is Overflow.WRAP:  # monotonic only where nothing wraps: the same ends as a saturating cast
        sat = FixedType(dst.width, dst.int_bits, dst.signed, dst.rounding, Overflow.SAT)
        s_lo, s_hi = (int(v) for v in cast(np.array(r, dtype=object), src_frac_bits, sat))
        if (s_lo, s_hi) != (lo, hi) or lo == dst.min_raw or hi == dst.max_raw:
            return dst.min_raw, dst.max_raw
    return lo, hi


def accumulator_ranges(layer: DenseLayer, x: Ranges, in_t: FixedType) -> Ranges | None:
    """Per output, the range of ``(accum_t) bias + sum(x * w)`` in raw accumulator mantissas; None if it may wrap."""
    shift = layer.accum_t.frac_bits - in_t.frac_bits - layer.weight_t.frac_bits
    w = np.asarray(layer.weights).astype(object)
    lo_x = np.array([a for a, _ in x], dtype=object)[:, None]
    hi_x = np.array([b for _, b in x], dtype=object)[:, None]
    p_lo, p_hi = w * lo_x, w * hi_x
    s_lo = np.minimum(p_lo, p_hi).sum(axis=0) if len(x) else np.zeros(layer.n_out, dtype=object)
    s_hi = np.maximum(p_lo, p_hi).sum(axis=0) if len(x) else np.zeros(layer.n_out, dtype=object)
    out = []
    for j, b in enumerate(aligned_biases(layer)):
        lo, hi = b + (int(s_lo[j]) << shift), b + (int(s_hi[j]) << shift)
        if lo < layer.accum_t.min_raw or hi > layer.accum_t.max_raw:
            return None
        out.append((lo, hi))
    return out


def _relu(r: Ranges, src: FixedType, layer: ReluLayer) -> Ranges:
    return [cast_range((max(lo, 0), max(hi, 0)), src.frac_bits, layer.result_t) for lo, hi in r]


def _cast(r: Ranges, src: FixedType, layer: CastLayer) -> Ranges:
    return [cast_range(v, src.frac_bits, layer.result_t) for v in r]


def _clamp(r: Ranges, src: FixedType, layer: ClampLayer) -> Ranges:
    out = []
    for v in r:
        lo, hi = cast_range(v, src.frac_bits, layer.result_t)
        out.append((min(max(lo, layer.lo), layer.hi), min(max(hi, layer.lo), layer.hi)))
    return out


def _batchnorm(r: Ranges, src: FixedType, layer: BatchNormLayer) -> Ranges:
    prod_f = src.frac_bits + layer.scale_t.frac_bits
    frac = max(prod_f, layer.bias_t.frac_bits)
    out = []
    for k, (lo, hi) in enumerate(r):
        c = k % layer.channels
        s, b = int(layer.scale[c]) << (frac - prod_f), int(layer.bias[c]) << (frac - layer.bias_t.frac_bits)
        ends = sorted((lo * s + b, hi * s + b))
        out.append(cast_range((ends[0], ends[1]), frac, layer.result_t))
    return out


def _maxpool(r: Ranges, src: FixedType, layer: MaxPool2DLayer) -> Ranges:
    (_, w, c), (ph, pw), (sh, sw) = layer.in_shape, layer.pool, layer.stride
    oh, ow, _ = layer.shape
    out = []
    for i in range(oh):
        for j in range(ow):
            for ch in range(c):
                win = [r[((i * sh + di) * w + j * sw + dj) * c + ch] for di in range(ph) for dj in range(pw)]
                acc = cast_range((max(lo for lo, _ in win), max(hi for _, hi in win)), src.frac_bits, layer.accum_t)
                out.append(cast_range(acc, layer.accum_t.frac_bits, layer.result_t))
    return out


# Elementwise (and image) layer -> its output ranges from its input ranges and input type.
ELEMENTWISE_RANGES: dict[type, Callable] = {
    ReluLayer: _relu,
    CastLayer: _cast,
    ClampLayer: _clamp,
    BatchNormLayer: _batchnorm,
    MaxPool2DLayer: _maxpool,
    FlattenLayer: lambda r, src, layer: r,
}


def window_ranges(conv: Conv2DLayer, x: Ranges) -> Ranges:
    """Per kernel tap, the union of its input's ranges over every output pixel's window (0 for a padding tap)."""
    out: list[tuple[int, int] | None] = [None] * (conv.kernel_size[0] * conv.kernel_size[1] * conv.in_shape[2])
    for row in conv.window_taps():
        for t, idx in enumerate(row):
            lo, hi = (0, 0) if idx is None else x[idx]
            out[t] = (lo, hi) if out[t] is None else (min(out[t][0], lo), max(out[t][1], hi))
    return [r or (0, 0) for r in out]


def _layer_accumulator_ranges(layer: DenseLayer | Conv2DLayer, x: Ranges, in_t: FixedType) -> Ranges | None:
    """A dense layer's accumulator ranges; a convolution's per (pixel, filter), from its kernel's tap ranges."""
    if layer.kind is not LayerKind.CONV2D:
        return accumulator_ranges(layer, x, in_t)
    acc = accumulator_ranges(layer.as_dense(), window_ranges(layer, x), in_t)
    return None if acc is None else acc * (size(layer.shape) // layer.filters)


def segment_output_ranges(seg: Segment, x: Ranges) -> Ranges:
    """The ranges after a segment (its dense layer, if any, then its elementwise layers) for inputs in ``x``."""
    t = seg.in_t
    r = x
    if seg.dense is not None:
        layer = seg.dense
        acc = _layer_accumulator_ranges(layer, x, seg.in_t)
        r = type_range(layer.accum_t, size(layer.shape)) if acc is None else acc
        r = [cast_range(v, layer.accum_t.frac_bits, layer.result_t) for v in r]
        t = layer.result_t
    for layer in seg.post:
        r = ELEMENTWISE_RANGES[type(layer)](r, t, layer)
        t = layer.result_t
    return r
