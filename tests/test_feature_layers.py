"""The feature node kinds (log1p, diagonal_difference): kernels against oracles, validation, JSON, in a graph."""

from __future__ import annotations

import decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow import reference
from flow.errors import FlowError
from flow.features import difference_type, log1p_type
from flow.fixed import FixedType, Overflow, Rounding
from flow.ir import IR, InputSpec, Task
from flow.layers import DiagonalDifferenceLayer, Log1pLayer, layer_from_dict
from flow.layers.log1p import count_type

MODES = [(r, o) for r in Rounding for o in (Overflow.SAT, Overflow.WRAP)]


def oracle_log1p(count: int, out: FixedType) -> int:
    """log1p(count) in ``out`` from 60-digit decimals: round half to even or half up, then SAT or WRAP."""
    with decimal.localcontext() as ctx:
        ctx.prec = 60
        scaled = decimal.Decimal(count + 1).ln() * decimal.Decimal(2) ** out.frac_bits
        mode = {Rounding.RND_CONV: decimal.ROUND_HALF_EVEN, Rounding.TRN: decimal.ROUND_FLOOR}
        raw = int(scaled.to_integral_value(rounding=mode.get(out.rounding, decimal.ROUND_HALF_UP)))
    if out.overflow is Overflow.SAT:
        return min(max(raw, out.min_raw), out.max_raw)
    return (raw - out.min_raw) % (1 << out.width) + out.min_raw


def oracle_difference(logs: list[int], k: int) -> list[int]:
    """L[i+k+1] - L[i], zero-padded, written as a loop."""
    n = len(logs)
    return [logs[i + k + 1] - logs[i] if i + k + 1 < n else 0 for i in range(n - 1)]


def log1p_mismatches(layer: Log1pLayer, counts: np.ndarray) -> int:
    """How many outputs of the layer's kernel differ from the decimal oracle."""
    got = layer.kernel([counts[None, :]], [count_type(layer.count_width)])[0]
    return sum(int(g) != oracle_log1p(int(c), layer.result_t) for c, g in zip(counts, got))


def feature_ir(n: int = 12, count_width: int = 8, frac_bits: int = 6, k: int = 2) -> IR:
    """spectrum -> log1p -> one diagonal difference."""
    log_t = log1p_type(count_width, frac_bits)
    nodes = [
        Log1pLayer("log1p", (n,), log_t, count_width, inputs=("spectrum",)),
        DiagonalDifferenceLayer("diff", (n - 1,), difference_type(log_t), k, inputs=("log1p",)),
    ]
    ir = IR("feat", Task.REGRESSION, [InputSpec((n,), count_type(count_width), "spectrum")], nodes)
    ir.validate()
    return ir


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 24),
    st.integers(2, 20),
    st.integers(-2, 8),
    st.sampled_from(MODES),
    st.data(),
)
def test_log1p_kernel_is_the_correctly_rounded_value_in_the_declared_modes(count_width, width, int_bits, mode, data):
    """Every rounding with SAT and WRAP: the kernel equals the decimal oracle (RND* other than CONV: half up)."""
    rounding, overflow = mode
    if rounding not in (Rounding.RND_CONV, Rounding.TRN, Rounding.RND):
        rounding = Rounding.RND  # no tie is possible (log1p is irrational), so every RND* mode is RND here
    out = FixedType(width, int_bits, data.draw(st.booleans()), rounding, overflow)
    counts = data.draw(st.lists(st.integers(0, (1 << count_width) - 1), min_size=1, max_size=30))
    layer = Log1pLayer("l", (len(counts),), out, count_width)
    assert log1p_mismatches(layer, np.array(counts, dtype=np.int64)) == 0


def test_log1p_check_catches_a_float_rounded_table():
    """Known wrong: log1p rounded half up from float32 differs from the oracle somewhere in 16-bit counts."""
    out = log1p_type(16, 12)
    counts = np.arange(0, 1 << 16, 37, dtype=np.int64)
    wrong = np.floor(np.log1p(counts.astype(np.float32)) * np.float32(2**12) + np.float32(0.5)).astype(np.int64)
    want = [oracle_log1p(int(c), out) for c in counts]
    assert sum(int(w) != g for w, g in zip(wrong, want)) > 0
    assert log1p_mismatches(Log1pLayer("l", (counts.size,), out, 16), counts) == 0


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 40).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 2))), st.data())
def test_diagonal_difference_equals_the_loop(n_k, data):
    n, k = n_k
    log_t = FixedType(9, 4, signed=False)
    logs = data.draw(st.lists(st.integers(0, log_t.max_raw), min_size=n, max_size=n))
    layer = DiagonalDifferenceLayer("d", (n - 1,), difference_type(log_t), k)
    got = layer.kernel([np.array([logs])], [log_t])[0].tolist()
    assert got == oracle_difference(logs, k)
    assert all(difference_type(log_t).min_raw <= v <= difference_type(log_t).max_raw for v in got)


def test_difference_check_catches_a_shifted_diagonal():
    """Known wrong: L[i+k] - L[i] (one channel short) differs from the oracle."""
    logs = list(range(0, 40, 3))
    wrong = [logs[i + 2] - logs[i] if i + 2 < len(logs) else 0 for i in range(len(logs) - 1)]
    assert wrong != oracle_difference(logs, 2)


def test_feature_graph_runs_round_trips_and_matches_the_oracles():
    ir = feature_ir()
    back = IR.from_dict(ir.to_dict())
    assert back.to_dict() == ir.to_dict()
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 256, size=(50, 12))
    counts[0] = 255
    trace = reference.run(back, counts)
    logs = trace.of("log1p")
    assert logs.tolist() == [[oracle_log1p(int(c), ir.node("log1p").result_t) for c in row] for row in counts]
    assert trace.of("diff").tolist() == [oracle_difference(row, 2) for row in logs.tolist()]


@pytest.mark.parametrize(
    "edit, message",
    [
        ({"count_width": 0}, "count_width must be"),
        ({"count_width": 9}, "log1p takes ufixed<9,9> counts"),
        ({"diff_t": "fixed<12,4>"}, "is exact in"),
        ({"diagonal": 11}, "diagonal 11 outside 0..10"),
        ({"diff_shape": [12]}, "an input of 12 gives [11]"),
        ({"input_t": "fixed<8,8>"}, "log1p takes ufixed<8,8> counts"),
    ],
)
def test_feature_nodes_refuse_bad_fields_in_one_line(edit, message):
    d = feature_ir().to_dict()
    log_node, diff_node = d["nodes"]
    log_node["count_width"] = edit.get("count_width", log_node["count_width"])
    diff_node["result_t"] = edit.get("diff_t", diff_node["result_t"])
    diff_node["diagonal"] = edit.get("diagonal", diff_node["diagonal"])
    diff_node["shape"] = edit.get("diff_shape", diff_node["shape"])
    d["inputs"][0]["type"] = edit.get("input_t", d["inputs"][0]["type"])
    with pytest.raises(FlowError, match=message.replace("[", r"\[").replace("]", r"\]")) as exc:
        IR.from_dict(d)
    assert "\n" not in str(exc.value)


def test_layer_json_round_trip():
    for node in feature_ir().nodes:
        assert layer_from_dict(node.to_dict()) == node
