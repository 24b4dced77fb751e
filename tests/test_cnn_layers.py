"""The CNN layer kinds (conv2d, maxpool2d, flatten, batchnorm): each kernel against a loop written from hls4ml's
C++ (``nnet_conv2d_latency.h``, ``nnet_pooling.h``, ``nnet_batchnorm.h``), shape rules, JSON round trips, a
whole CNN through the reference, and known-wrong answers that the oracles reject."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow import reference
from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding, cast
from flow.ir import IR, InputSpec, Task
from flow.layers import (
    BatchNormLayer,
    Conv2DLayer,
    DenseLayer,
    FlattenLayer,
    MaxPool2DLayer,
    Padding,
    ReluLayer,
    layer_from_dict,
)
from flow.layers.base import LayerKind
from flow.layers.conv2d import pad_before_after

MODES = [(r, o) for r in (Rounding.TRN, Rounding.RND_CONV, Rounding.RND) for o in (Overflow.WRAP, Overflow.SAT)]


def rtype(rng: np.random.Generator, width: tuple[int, int] = (3, 12), signed: bool | None = None) -> FixedType:
    w = int(rng.integers(*width, endpoint=True))
    r, o = MODES[int(rng.integers(len(MODES)))]
    s = bool(rng.integers(2)) if signed is None else signed
    return FixedType(w, int(rng.integers(-1, w + 1)), s, r, o)


def raws(rng: np.random.Generator, t: FixedType, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(t.min_raw, t.max_raw, size=shape, endpoint=True).astype(np.int64)


def random_conv(rng: np.random.Generator, padding: Padding) -> tuple[Conv2DLayer, FixedType]:
    h, w, c = (int(v) for v in rng.integers(3, 6, 3))
    kh, kw, f = int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 4))
    in_t, wt, bt = rtype(rng), rtype(rng, signed=True), rtype(rng, signed=True)
    # Narrow accumulators with every mode: the per-product casts and saturation of hls4ml's loop matter.
    acc = rtype(rng, (4, 20), signed=True)
    layer = Conv2DLayer(
        "conv", (h, w, c), padding, wt, raws(rng, wt, (kh, kw, c, f)), bt, raws(rng, bt, (f,)), acc, rtype(rng)
    )
    layer.validate()
    return layer, in_t


def conv_loop(layer: Conv2DLayer, x: np.ndarray, in_t: FixedType) -> np.ndarray:
    """``conv_2d_latency_cl`` written out: per output pixel, window in (row, col, channel) order, zero padding."""
    (h, w, c), (kh, kw), f = layer.in_shape, layer.kernel_size, layer.filters
    (top, _), (left, _) = pad_before_after(kh, layer.padding), pad_before_after(kw, layer.padding)
    oh, ow, _ = layer.shape
    acc_t, prod_frac = layer.accum_t, in_t.frac_bits + layer.weight_t.frac_bits
    out = np.zeros((x.shape[0], oh, ow, f), dtype=object)
    for b in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                for o in range(f):
                    acc = int(cast(int(layer.biases[o]), layer.bias_t.frac_bits, acc_t))
                    for di in range(kh):
                        for dj in range(kw):
                            for ch in range(c):
                                r, s = i + di - top, j + dj - left
                                v = int(x[b, r, s, ch]) if 0 <= r < h and 0 <= s < w else 0
                                p = int(cast(v * int(layer.weights[di, dj, ch, o]), prod_frac, acc_t))
                                acc = int(cast(acc + p, acc_t.frac_bits, acc_t))
                    out[b, i, j, o] = int(cast(acc, acc_t.frac_bits, layer.result_t))
    return out


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(list(Padding)))
def test_conv2d_equals_hls4ml_loop(seed: int, padding: Padding) -> None:
    rng = np.random.default_rng(seed)
    layer, in_t = random_conv(rng, padding)
    x = raws(rng, in_t, (3, *layer.in_shape))
    got = layer.kernel([x], [in_t])
    assert got.shape == (3, *layer.shape)
    assert got.astype(object).tolist() == conv_loop(layer, x, in_t).tolist()
    assert layer.kernel([x], [in_t], exact_loop=True).astype(object).tolist() == got.astype(object).tolist()


def test_conv2d_known_wrong_answers_are_rejected() -> None:
    """A flipped kernel (true convolution instead of Keras' correlation) and padding on the wrong side differ."""
    rng = np.random.default_rng(5)
    t = FixedType(8, 4, True)
    acc = FixedType(24, 12, True)
    w = raws(rng, t, (3, 3, 1, 2))
    layer = Conv2DLayer("c", (5, 5, 1), "same", t, w, t, np.zeros(2, np.int64), acc, acc)
    x = raws(rng, t, (2, 5, 5, 1))
    want = conv_loop(layer, x, t).tolist()
    flipped = Conv2DLayer("c", (5, 5, 1), "same", t, w[::-1, ::-1].copy(), t, np.zeros(2, np.int64), acc, acc)
    assert flipped.kernel([x], [t]).astype(object).tolist() != want
    shifted = layer.kernel([np.roll(x, 1, axis=1)], [t]).astype(object).tolist()
    assert shifted != want and layer.kernel([x], [t]).astype(object).tolist() == want


def test_conv2d_shape_rules_and_errors() -> None:
    t = FixedType(8, 4, True)
    w = np.zeros((3, 3, 2, 4), np.int64)
    same = Conv2DLayer("c", (12, 12, 2), "same", t, w, t, np.zeros(4, np.int64), t, t)
    valid = Conv2DLayer("c", (12, 12, 2), "valid", t, w, t, np.zeros(4, np.int64), t, t)
    assert same.out_shape([(12, 12, 2)]) == (12, 12, 4) and valid.out_shape([(12, 12, 2)]) == (10, 10, 4)
    assert pad_before_after(3, Padding.SAME) == (1, 1) and pad_before_after(4, Padding.SAME) == (1, 2)
    with pytest.raises(FlowError, match=r"layer c expects an input of shape \[12, 12, 2\], gets \[12, 12, 3\]"):
        same.out_shape([(12, 12, 3)])
    with pytest.raises(FlowError, match="do not fit an input of shape"):
        Conv2DLayer("c", (12, 12, 3), "same", t, w, t, np.zeros(4, np.int64), t, t).validate()
    with pytest.raises(FlowError, match="c weights do not fit fixed<8,4>"):
        Conv2DLayer("c", (12, 12, 2), "same", t, w + 500, t, np.zeros(4, np.int64), t, t).validate()
    with pytest.raises(ValueError, match="'full'"):
        Conv2DLayer("c", (12, 12, 2), "full", t, w, t, np.zeros(4, np.int64), t, t)


def maxpool_loop(layer: MaxPool2DLayer, x: np.ndarray, in_t: FixedType) -> list:
    oh, ow, c = layer.shape
    (ph, pw), (sh, sw) = layer.pool, layer.stride
    out = np.zeros((x.shape[0], oh, ow, c), dtype=object)
    for b in range(x.shape[0]):
        for i in range(oh):
            for j in range(ow):
                for ch in range(c):
                    m = max(int(x[b, i * sh + di, j * sw + dj, ch]) for di in range(ph) for dj in range(pw))
                    a = int(cast(m, in_t.frac_bits, layer.accum_t))
                    out[b, i, j, ch] = int(cast(a, layer.accum_t.frac_bits, layer.result_t))
    return out.tolist()


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_maxpool2d_equals_hls4ml_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w, c = (int(v) for v in rng.integers(2, 7, 3))
    pool = (int(rng.integers(1, h + 1)), int(rng.integers(1, w + 1)))
    stride = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    in_t = rtype(rng)
    layer = MaxPool2DLayer("p", (h, w, c), pool, stride, rtype(rng), rtype(rng))
    layer.validate()
    x = raws(rng, in_t, (4, h, w, c))
    got = layer.kernel([x], [in_t])
    assert got.shape == (4, *layer.shape) and got.astype(object).tolist() == maxpool_loop(layer, x, in_t)


def test_maxpool2d_known_wrong_and_shape() -> None:
    t = FixedType(8, 8, True)
    layer = MaxPool2DLayer("p", (4, 4, 1), (2, 2), (2, 2), t, t)
    assert layer.out_shape([(4, 4, 1)]) == (2, 2, 1)
    assert MaxPool2DLayer("p", (5, 5, 3), (2, 2), (2, 2), t, t).shape == (2, 2, 3)  # the last row is dropped
    x = np.arange(16, dtype=np.int64).reshape(1, 4, 4, 1) - 8
    assert layer.kernel([x], [t])[0, :, :, 0].tolist() == [[-3, -1], [5, 7]]
    assert layer.kernel([x], [t])[0, :, :, 0].tolist() != [[-8, -6], [0, 2]]  # a min-pool is not accepted
    with pytest.raises(FlowError, match="does not fit"):
        MaxPool2DLayer("p", (2, 2, 1), (3, 3), (1, 1), t, t).validate()


def test_flatten_order_shape_and_type() -> None:
    t = FixedType(8, 4, True)
    layer = FlattenLayer("f", (2, 3, 2), t)
    x = np.arange(24, dtype=np.int64).reshape(2, 2, 3, 2)
    assert layer.out_shape([(2, 3, 2)]) == (12,)
    np.testing.assert_array_equal(layer.kernel([x], [t]), x.reshape(2, 12))  # (row, col, channel): C order
    with pytest.raises(FlowError, match="keeps its input's type"):
        layer.kernel([x], [FixedType(9, 4, True)])


def batchnorm_oracle(layer: BatchNormLayer, x: np.ndarray, in_t: FixedType) -> list:
    """Exact rationals, then one cast of the exact value (on a grid fine enough for every term)."""
    frac = in_t.frac_bits + layer.scale_t.frac_bits + layer.bias_t.frac_bits + 64
    out = []
    for v, ch in zip(x.reshape(-1).tolist(), np.broadcast_to(np.arange(layer.channels), x.shape).reshape(-1)):
        exact = Fraction(v, 2**in_t.frac_bits) * Fraction(int(layer.scale[ch]), 2**layer.scale_t.frac_bits)
        exact += Fraction(int(layer.bias[ch]), 2**layer.bias_t.frac_bits)
        out.append(int(cast(int(exact * 2**frac), frac, layer.result_t)))
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_batchnorm_equals_exact_scale_and_shift(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(1, 4)), int(rng.integers(1, 4)), int(rng.integers(1, 5)))
    in_t, st_, bt = rtype(rng, (2, 40)), rtype(rng, signed=True), rtype(rng, signed=True)
    c = shape[-1]
    layer = BatchNormLayer(
        "bn", shape, rtype(rng), scale_t=st_, scale=raws(rng, st_, (c,)), bias_t=bt, bias=raws(rng, bt, (c,))
    )
    layer.validate()
    x = raws(rng, in_t, (3, *shape)) if in_t.fits_int64 else np.zeros((3, *shape), np.int64)
    got = layer.kernel([x], [in_t])
    assert got.shape == x.shape
    assert [int(v) for v in got.reshape(-1)] == batchnorm_oracle(layer, x, in_t)


def test_batchnorm_known_wrong_and_errors() -> None:
    t = FixedType(8, 4, True, Rounding.RND_CONV, Overflow.SAT)
    layer = BatchNormLayer("bn", (2,), t, scale_t=t, scale=np.array([16, 8]), bias_t=t, bias=np.array([16, -16]))
    x = np.array([[16, 16]])  # 1.0, 1.0 -> 1 * 1 + 1 = 2 and 1 * 0.5 - 1 = -0.5
    assert layer.kernel([x], [t]).tolist() == [[32, -8]]
    assert batchnorm_oracle(layer, x, t) == [32, -8] and batchnorm_oracle(layer, x, t) != [32, 8]
    with pytest.raises(FlowError, match="scale of shape"):
        BatchNormLayer("bn", (3,), t, scale_t=t, scale=np.array([1, 2]), bias_t=t, bias=np.zeros(3)).validate()


def tiny_cnn(batchnorm: bool = True) -> IR:
    """6x6x1 -> conv 3x3x2 same -> relu -> maxpool 2 -> [batchnorm] -> conv 3x3x2 valid -> flatten -> dense 1."""
    rng = np.random.default_rng(0)
    t, acc = FixedType(8, 3, True), FixedType(24, 10, True)
    small = FixedType(6, 1, True)  # weights of |w| <= 1 on t's grid: the activations stay mostly in range
    pos = FixedType(6, 0, False)  # unsigned batchnorm scales, as hls4ml types all-positive ones
    act = FixedType(10, 5, True, Rounding.RND_CONV, Overflow.SAT)
    relu = FixedType(10, 5, False, Rounding.RND_CONV, Overflow.SAT)
    nodes = [
        Conv2DLayer("c1", (6, 6, 1), "same", t, raws(rng, small, (3, 3, 1, 2)), t, raws(rng, t, (2,)), acc, act),
        ReluLayer("r1", (6, 6, 2), relu),
        MaxPool2DLayer("p1", (6, 6, 2), (2, 2), (2, 2), relu, relu),
        BatchNormLayer(
            "bn", (3, 3, 2), act, scale_t=pos, scale=raws(rng, pos, (2,)), bias_t=t, bias=raws(rng, t, (2,))
        ),
        Conv2DLayer("c2", (3, 3, 2), "valid", t, raws(rng, small, (3, 3, 2, 2)), t, raws(rng, t, (2,)), acc, act),
        FlattenLayer("fl", (1, 1, 2), act),
        DenseLayer("fc", t, raws(rng, small, (2, 1)), t, raws(rng, t, (1,)), acc, act),
    ]
    if not batchnorm:
        nodes = [n for n in nodes if n.kind is not LayerKind.BATCHNORM]
    ir = IR(
        "cnn",
        Task.CLASSIFICATION,
        [InputSpec((6, 6, 1), FixedType(9, 1, True, Rounding.RND_CONV, Overflow.SAT))],
        nodes,
    )
    ir.validate()
    return ir


def test_a_cnn_runs_through_the_reference_and_round_trips() -> None:
    ir = tiny_cnn()
    again = IR.from_dict(ir.to_dict())
    assert again.digest() == ir.digest()
    for node in ir.nodes:
        assert layer_from_dict(node.to_dict()).to_dict() == node.to_dict()
    x = np.random.default_rng(1).integers(0, 255, (50, 36))
    trace = reference.run(ir, x)
    assert [r.shape[1:] for r in trace.raw] == [(6, 6, 2), (6, 6, 2), (3, 3, 2), (3, 3, 2), (1, 1, 2), (2,), (1,)]
    np.testing.assert_array_equal(trace.output_raw, reference.run(again, x).output_raw)


def test_a_wrong_shape_in_the_graph_is_one_line() -> None:
    d = tiny_cnn().to_dict()
    d["nodes"][4]["in_shape"] = [4, 4, 2]
    with pytest.raises(FlowError, match=r"IR cnn: layer c2 expects an input of shape \[4, 4, 2\], gets \[3, 3, 2\]"):
        IR.from_dict(d)


def test_full_dense_form_equals_the_windows() -> None:
    """The parallel RTL builds each convolution as one dense layer: same outputs as the window kernel."""
    rng = np.random.default_rng(7)
    for padding in Padding:
        layer, in_t = random_conv(rng, padding)
        x = raws(rng, in_t, (5, *layer.in_shape))
        full = layer.as_full_dense().kernel([x.reshape(5, -1)], [in_t], exact_loop=True)
        assert full.tolist() == layer.kernel([x], [in_t], exact_loop=True).reshape(5, -1).tolist()


@pytest.mark.parametrize("broken", ["", "conv", "batchnorm"])
def test_parallel_rtl_of_a_cnn_in_icarus(tmp_path, broken) -> None:
    """conv (same) -> relu -> maxpool -> batchnorm -> conv (valid) -> flatten -> dense, bit for bit; a design
    with a wrong layer fails."""
    from flow.rtl import generate
    from flow.sim import simulate
    from tb.irgen import write_vectors

    ir = tiny_cnn()
    nodes = list(ir.nodes)
    if broken == "conv":  # the first convolution flipped (a true convolution, not Keras' correlation) in the RTL
        nodes[0] = dataclasses.replace(nodes[0], weights=nodes[0].weights[::-1, ::-1].copy())
    if broken == "batchnorm":  # one channel's shift off by one LSB of the layer's result
        i = next(i for i, n in enumerate(nodes) if n.kind is LayerKind.BATCHNORM)
        bn = nodes[i]
        bias = bn.bias.copy()
        step = 1 << (bn.bias_t.frac_bits - bn.result_t.frac_bits)
        bias[1] += step if bias[1] + step <= bn.bias_t.max_raw else -step
        nodes[i] = dataclasses.replace(bn, bias=bias)
    design = generate(IR(ir.name, ir.task, ir.inputs, nodes), "parallel", tmp_path / "rtl")
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 40, seed=3)
    r = simulate(design, vectors, "icarus", tmp_path / "sim", seed=3)
    assert r.passed is not bool(broken) and (r.mismatches > 0) is bool(broken), r.error
