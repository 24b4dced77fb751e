"""flow.reference: hand-checked answers, fast routes equal to the per-product loop, saturation, IR round trip."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow import reference
from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding
from flow.ir import IR, CastLayer, DenseLayer, InputSpec, ReluLayer, Task
from flow.layers import dense as dense_kind
from flow.layers.dense import _exact_matmul

SAT = Rounding.RND_CONV, Overflow.SAT


def dense(name: str, w: list, b: list, wt: str, bt: str, acc: str, res: str) -> DenseLayer:
    return DenseLayer(
        name=name,
        weight_t=FixedType.parse(wt),
        weights=np.array(w, dtype=np.int64),
        bias_t=FixedType.parse(bt),
        biases=np.array(b, dtype=np.int64),
        accum_t=FixedType.parse(acc),
        result_t=FixedType.parse(res),
    )


def make_ir(input_t: str, n: int, layers: list, task: Task = Task.CLASSIFICATION) -> IR:
    ir = IR("t", task, [InputSpec(n, FixedType.parse(input_t))], layers)
    ir.validate()
    return ir


def tiny_ir() -> IR:
    """2 -> 2 -> relu -> 1 -> cast; the expected numbers are worked out in test_tiny_ir_by_hand."""
    return make_ir(
        "fixed<8,4,RND_CONV,SAT>",
        2,
        [
            # weights fixed<4,2> (LSB 1/4): [[1.0, -0.5], [0.75, 1.5]]; biases [0.25, -1.0]
            dense(
                "fc1", [[4, -2], [3, 6]], [1, -4], "fixed<4,2>", "fixed<4,2>", "fixed<16,8>", "fixed<8,4,RND_CONV,SAT>"
            ),
            ReluLayer(name="relu1", shape=2, result_t=FixedType.parse("ufixed<4,2,RND_CONV,SAT>")),
            # weights [[1.0], [-1.75]]; bias 0.5
            dense("fc2", [[4], [-7]], [2], "fixed<4,2>", "fixed<4,2>", "fixed<12,6>", "fixed<10,6>"),
            CastLayer(name="out", shape=1, result_t=FixedType.parse("fixed<6,3,RND,SAT>")),
        ],
    )


def test_tiny_ir_by_hand() -> None:
    ir = tiny_ir()
    x = reference.quantize_input(ir, np.array([[1.5, -0.6875], [2.03125, 0.25]]))
    # LSB 1/16; 2.03125 = 32.5 LSBs ties to even 32; the rest are on the grid.
    assert x.tolist() == [[24, -11], [32, 4]]
    t = reference.run(ir, x)
    # Sample 0, fc1 (products have 6 fraction bits, accum 8): 1.5*1.0 + -0.6875*0.75 + 0.25 = 1.234375
    # output 0; 1.5*-0.5 + -0.6875*1.5 - 1.0 = -2.78125. Result fixed<8,4> (LSB 1/16), RND_CONV:
    # 1.234375 = 19.75 LSB -> 20; -2.78125 = -44.5 LSB -> -44 (even).
    # Sample 1: 2.0 + 0.1875 + 0.25 = 2.4375 -> 39; -1.0 + 0.375 - 1.0 = -1.625 -> -26.
    assert t.raw[0].tolist() == [[20, -44], [39, -26]]
    # relu to ufixed<4,2> (LSB 1/4): 1.25 -> 5, 0 -> 0; 2.4375 = 9.75 LSB -> 10.
    assert t.raw[1].tolist() == [[5, 0], [10, 0]]
    # fc2: 1.25 + 0.5 = 1.75 (fixed<10,6>, LSB 1/16 -> 28); 2.5 + 0.5 = 3.0 -> 48.
    assert t.raw[2].tolist() == [[28], [48]]
    # out fixed<6,3,RND,SAT> (LSB 1/8, max 3.875): 1.75 -> 14; 3.0 -> 24.
    assert t.output_raw.tolist() == [[14], [24]]
    assert t.floats(3).tolist() == [[1.75], [3.0]]
    assert [str(ty) for ty in t.types] == [str(layer.result_t) for layer in ir.layers]
    assert reference.predict(ir, np.array([[1.5, -0.6875]])).tolist() == [[1.75]]


def saturating_ir(overflow: Overflow) -> IR:
    """One dense layer whose 4-bit integer accumulator overflows mid-sum: order and mode matter."""
    acc = str(FixedType(4, 4, True, Rounding.TRN, overflow))
    return make_ir("int<4>", 3, [dense("fc", [[5], [5], [-6]], [0], "int<4>", "int<4>", acc, "int<8>")])


@pytest.mark.parametrize(
    "overflow, expected",
    [
        # 5 -> 10 sat 7 -> 7 - 6 = 1
        (Overflow.SAT, 1),
        # 5 -> 10 wraps to -6 -> -12 wraps to 4 (= the true sum 4: modular arithmetic)
        (Overflow.WRAP, 4),
        # 5 -> 10 overflows to 0 -> -6
        (Overflow.SAT_ZERO, -6),
        (Overflow.SAT_SYM, 1),
    ],
)
def test_accumulator_overflow_in_input_order(overflow: Overflow, expected: int) -> None:
    ir = saturating_ir(overflow)
    x = np.array([[1, 1, 1]])
    assert reference.run(ir, x).output_raw.tolist() == [[expected]]
    assert reference.run(ir, x, exact_loop=True).output_raw.tolist() == [[expected]]


def test_sat_sym_accumulator_floor() -> None:
    # -5 - 5 = -10 -> SAT_SYM clamps at -7 (SAT would give -8); then +6 -> -1.
    ir = make_ir(
        "int<4>", 3, [dense("fc", [[-5], [-5], [6]], [0], "int<4>", "int<4>", "fixed<4,4,TRN,SAT_SYM>", "int<8>")]
    )
    assert reference.run(ir, np.array([[1, 1, 1]])).output_raw.tolist() == [[-1]]


def test_product_rounding_in_accumulator() -> None:
    # x = 0.75 (ufixed<4,1>, LSB 1/8), w = 0.25 (fixed<4,1>): each product 0.1875 truncates to 0 in an accumulator
    # with one fraction bit, so the sum is 0; truncating the exact sum 0.5625 instead would give 0.5.
    ir = make_ir(
        "ufixed<4,1>", 3, [dense("fc", [[2], [2], [2]], [0], "fixed<4,1>", "fixed<4,1>", "fixed<8,7>", "fixed<8,7>")]
    )
    x = np.array([[6, 6, 6]])
    assert reference.run(ir, x).output_raw.tolist() == [[0]]
    assert reference.run(ir, x, exact_loop=True).output_raw.tolist() == [[0]]


def test_result_saturation_and_relu() -> None:
    ir = make_ir(
        "fixed<8,8>",
        2,
        [
            dense("fc", [[100, -100], [100, -100]], [0, 0], "int<8>", "int<8>", "fixed<24,24>", "fixed<8,8,TRN,SAT>"),
            ReluLayer(name="r", shape=2, result_t=FixedType.parse("ufixed<4,4,RND_CONV,SAT>")),
        ],
    )
    t = reference.run(ir, np.array([[1, 1], [-1, 0]]))
    assert t.raw[0].tolist() == [[127, -128], [-100, 100]]
    assert t.output_raw.tolist() == [[15, 0], [0, 15]]


# ---------------------------------------------------------------------------------------------------------------
# Random IRs: every route equals the per-product loop.


def random_type(rng: np.random.Generator, max_width: int, int_lo: int = -3, modes: bool = True) -> FixedType:
    width = int(rng.integers(1, max_width + 1))
    r = list(Rounding)[int(rng.integers(len(Rounding)))] if modes else Rounding.TRN
    o = list(Overflow)[int(rng.integers(len(Overflow)))] if modes else Overflow.WRAP
    return FixedType(width, int(rng.integers(int_lo, width + 3)), bool(rng.random() < 0.7), r, o)


def random_raws(rng: np.random.Generator, t: FixedType, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(t.min_raw, t.max_raw, size=shape, endpoint=True, dtype=np.int64)


def random_dense(rng: np.random.Generator, name: str, in_t: FixedType, n_in: int, n_out: int, kind: str) -> DenseLayer:
    wt, bt = random_type(rng, 10, modes=False), random_type(rng, 10, modes=False)
    prod_frac = in_t.frac_bits + wt.frac_bits
    if kind == "auto":  # hls4ml's auto accumulator: products exact, never overflows
        extra = math.ceil(math.log2(max(n_in, 1))) + 1
        frac = max(prod_frac, bt.frac_bits)
        ints = max(in_t.int_bits + wt.int_bits, bt.int_bits) + extra
        acc_t = FixedType(frac + ints, ints, True, Rounding.TRN, Overflow.WRAP)
    elif kind == "wide":  # over 64 bits: the object route
        acc_t = FixedType(90, 90 - prod_frac - 2, True, Rounding.TRN, Overflow.SAT)
    else:  # anything, including rounding products and saturating mid-sum
        acc_t = random_type(rng, 16, int_lo=-2)
    return DenseLayer(
        name=name,
        weight_t=wt,
        weights=random_raws(rng, wt, (n_in, n_out)),
        bias_t=bt,
        biases=random_raws(rng, bt, (n_out,)),
        accum_t=acc_t,
        result_t=random_type(rng, 14),
    )


def random_ir(seed: int, kind: str) -> IR:
    rng = np.random.default_rng(seed)
    n_in, n_hidden, n_out = (int(v) for v in rng.integers(1, [16, 8, 5], endpoint=True))
    in_t = random_type(rng, 14)
    fc1 = random_dense(rng, "fc1", in_t, n_in, n_hidden, kind)
    relu = ReluLayer(name="relu1", shape=n_hidden, result_t=random_type(rng, 10))
    fc2 = random_dense(rng, "fc2", relu.result_t, n_hidden, n_out, kind)
    out = CastLayer(name="out", shape=n_out, result_t=random_type(rng, 12))
    return make_ir(str(in_t), n_in, [fc1, relu, fc2, out])


def assert_same_trace(a: reference.Trace, b: reference.Trace) -> None:
    assert len(a.raw) == len(b.raw)
    for i, (ra, rb) in enumerate(zip(a.raw, b.raw)):
        assert ra.shape == rb.shape
        assert [int(v) for v in ra.flat] == [int(v) for v in rb.flat], f"layer {i} differs"


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["auto", "any", "wide"]))
def test_routes_equal_the_loop(seed: int, kind: str) -> None:
    ir = random_ir(seed, kind)
    x = random_raws(np.random.default_rng(seed + 1), ir.input.type, (37, ir.input.n))
    assert_same_trace(reference.run(ir, x), reference.run(ir, x, exact_loop=True))


def _no_loop(*args: object, **kwargs: object) -> None:
    raise AssertionError("the per-product loop was used where a fast route applies")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_fast_routes_are_taken(seed: int) -> None:
    """auto accumulators use the sum-first route; rounding into a wrapping accumulator the per-product route."""
    ir = random_ir(seed, "auto")
    x = random_raws(np.random.default_rng(seed), ir.input.type, (20, ir.input.n))
    expected = reference.run(ir, x, exact_loop=True)
    layers = list(ir.layers)
    fc2 = layers[2]
    assert isinstance(fc2, DenseLayer)
    # A wrapping accumulator with fewer fraction bits than the products: each product must be rounded.
    acc = FixedType(12, 8, True, Rounding.RND_CONV, Overflow.WRAP)
    layers[2] = dataclasses.replace(fc2, accum_t=acc)
    rounding_ir = make_ir(str(ir.input.type), ir.input.n, layers)
    expected_rounding = reference.run(rounding_ir, x, exact_loop=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dense_kind, "_accumulate_loop", _no_loop)
        assert_same_trace(reference.run(ir, x), expected)
        assert_same_trace(reference.run(rounding_ir, x), expected_rounding)


@pytest.mark.parametrize("route", ["float", "int64", "object"])
def test_matmul_routes_agree(route: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(-(1 << 26), 1 << 26, size=(50, 300), dtype=np.int64)
    w = rng.integers(-(1 << 26), 1 << 26, size=(300, 7), dtype=np.int64)
    exact = (x.astype(object) @ w.astype(object)).astype(np.int64)
    with pytest.MonkeyPatch.context() as mp:
        if route == "float":
            mp.setattr(dense_kind, "_FLOAT_EXACT", 2.0**63)  # pretend floats are exact: must then differ
        elif route == "object":
            mp.setattr(dense_kind, "_INT64_SAFE", 0.0)
        got = _exact_matmul(x, w)
    if route == "float":
        # sums of 300 products of up to 2**52 exceed 2**53: float64 loses bits, which is why the bound exists.
        assert not np.array_equal(got, exact)
        small = _exact_matmul(x >> 12, w >> 12)
        assert np.array_equal(small, (x >> 12) @ (w >> 12))
    else:
        assert np.array_equal(got.astype(np.int64), exact)


# ---------------------------------------------------------------------------------------------------------------
# Corrupted types change outputs; save/load does not.


def diag_like_ir(n_in: int = 64, n_hidden: int = 16, n_out: int = 6, seed: int = 0) -> IR:
    """A small diag-shaped IR: 12-bit inputs, 8-bit weights, auto accumulators, RND_CONV/SAT activations."""
    rng = np.random.default_rng(seed)
    in_t = FixedType(12, 4, True, *SAT)
    w_t = FixedType(8, 1)
    relu_t = FixedType(8, 3, False, *SAT)
    out_t = FixedType(12, 5, True, *SAT)

    def fc(name: str, a: int, b: int, x_t: FixedType, res_t: FixedType) -> DenseLayer:
        ints = x_t.int_bits + w_t.int_bits + math.ceil(math.log2(a)) + 1
        acc = FixedType(ints + x_t.frac_bits + w_t.frac_bits, ints)
        w = rng.integers(-40, 40, size=(a, b), dtype=np.int64)
        return DenseLayer(name, w_t, w, w_t, rng.integers(-20, 20, size=b, dtype=np.int64), acc, res_t)

    layers = [
        fc("fc1", n_in, n_hidden, in_t, FixedType(16, 6, True, *SAT)),
        ReluLayer("relu1", n_hidden, relu_t),
        fc("fc2", n_hidden, n_out, relu_t, out_t),
    ]
    return make_ir(str(in_t), n_in, layers)


def test_corrupted_rounding_changes_outputs() -> None:
    ir = diag_like_ir()
    x = random_raws(np.random.default_rng(1), ir.input.type, (500, ir.input.n)) // 4
    good = reference.run(ir, x)
    layers = list(ir.layers)
    fc1 = layers[0]
    assert isinstance(fc1, DenseLayer)
    layers[0] = dataclasses.replace(fc1, result_t=dataclasses.replace(fc1.result_t, rounding=Rounding.TRN))
    bad = reference.run(make_ir(str(ir.input.type), ir.input.n, layers), x)
    assert not np.array_equal(good.raw[0], bad.raw[0])
    assert not np.array_equal(good.output_raw, bad.output_raw)


def test_corrupted_saturation_changes_outputs() -> None:
    ir = diag_like_ir()
    x = random_raws(np.random.default_rng(2), ir.input.type, (500, ir.input.n))
    layers = list(ir.layers)
    relu = layers[1]
    layers[1] = dataclasses.replace(relu, result_t=dataclasses.replace(relu.result_t, overflow=Overflow.WRAP))
    good, bad = reference.run(ir, x), reference.run(make_ir(str(ir.input.type), ir.input.n, layers), x)
    assert np.array_equal(good.raw[0], bad.raw[0])
    assert not np.array_equal(good.raw[1], bad.raw[1])


def test_save_load_round_trip(tmp_path: Path) -> None:
    ir = diag_like_ir()
    path = tmp_path / "ir.json"
    ir.save(path)
    loaded = IR.load(path)
    x = random_raws(np.random.default_rng(4), ir.input.type, (200, ir.input.n))
    assert_same_trace(reference.run(ir, x), reference.run(loaded, x))
    assert [str(t) for t in ir.input_types()] == [str(t) for t in loaded.input_types()]


def test_quantize_input_uses_input_type() -> None:
    ir = diag_like_ir()  # input fixed<12,4,RND_CONV,SAT>: LSB 1/256, range [-8, 8)
    x = np.zeros((1, ir.input.n))
    x[0, :5] = [0.5 / 256, 1.5 / 256, 100.0, -100.0, -8.0]
    assert reference.quantize_input(ir, x)[0, :5].tolist() == [0, 2, 2047, -2048, -2048]
    with pytest.raises(FlowError, match="NaN"):
        reference.quantize_input(ir, np.full((1, ir.input.n), np.nan))


def test_classify_ties_pick_lowest_index() -> None:
    # Output = the two inputs, duplicated: [a, b, a, b]; ties between equal outputs go to the lowest index.
    ir = make_ir(
        "int<8>",
        2,
        [dense("fc", [[1, 0, 1, 0], [0, 1, 0, 1]], [0, 0, 0, 0], "int<2>", "int<2>", "int<16>", "int<16>")],
    )
    x = np.array([[3.0, 5.0], [5.0, 3.0], [4.0, 4.0]])
    assert reference.classify(ir, x).tolist() == [1, 0, 0]


def test_run_rejects_bad_inputs() -> None:
    ir = tiny_ir()
    with pytest.raises(FlowError, match="shape"):
        reference.run(ir, np.zeros((3, 5), dtype=np.int64))
    with pytest.raises(FlowError, match="outside"):
        reference.run(ir, np.array([[1000, 0]]))
    with pytest.raises(FlowError, match="integers"):
        reference.run(ir, np.array([[0.5, 0.0]]))
