"""The table output stage (IR `clamp` layer): reference kernel, the metric that applies it, RTL of both archs."""

from __future__ import annotations

import numpy as np
import pytest

from flow import reference
from flow.data.tables import TableInfo, input_mapping
from flow.fixed import FixedType
from flow.ir import IR, ClampLayer, LayerKind, Task
from flow.layers.clamp import clamp
from flow.rtl import generate
from flow.rtl.lint import lint
from flow.sim import simulate
from tb.irgen import mlp_ir, write_vectors

TABLE = TableInfo("t", (8, 8), 6, 3, 50, 3, 50, 10)


def _table_ir(signed_word: bool = False) -> IR:
    """A 2 -> 4 -> 1 regressor with a table output stage whose bounds many outputs cross."""
    ir = mlp_ir("tab", [2, 4, 1], seed=2, in_t="fixed<4,1,RND_CONV,SAT>", out_t="fixed<12,1,RND_CONV,SAT>")
    ir = IR(ir.name, Task.REGRESSION, ir.inputs, ir.nodes)
    if signed_word:
        layer = ClampLayer("table_word", 1, FixedType.parse("fixed<7,1,RND,SAT>"), -20, 17)
        return ir.with_output_stage([layer])
    return ir.with_output_stage([TABLE.clamp_layer()], TABLE.to_dict())


def test_clamp_kernel_rounds_then_limits():
    """Cast to the word (RND_CONV: ties to even), then [lo, hi]; hand-computed."""
    layer = TABLE.clamp_layer()
    src = FixedType.parse("fixed<12,2>")  # 10 fraction bits; the word has 6: one word LSB = 16 raw
    x = np.array([[0], [16 * 3 + 8], [16 * 4 + 8], [16 * 40 + 7], [16 * 60], [-300]])
    got = clamp(x, src, layer).ravel().tolist()
    assert got == [3, 4, 4, 40, 50, 3]  # 3.5 -> 4 and 4.5 -> 4 (even), 63 -> 50, negative -> 0 -> 3


def test_metric_applies_exactly_the_ir_output_stage():
    """TableInfo.to_words (what every metric applies) equals the IR's clamp layer on every raw output."""
    ir = _table_ir()
    x = np.arange(-8, 8).reshape(-1, 1).repeat(2, axis=1)
    trace = reference.run(ir, x)
    net_out = trace.floats(len(ir.layers) - 2)
    words = trace.raw[-1]
    np.testing.assert_array_equal(TABLE.to_words(net_out) * 2**TABLE.bits, words)
    assert words.min() >= TABLE.saturation_low and words.max() <= TABLE.saturation_high


def test_ir_round_trip_and_hls_layers():
    """The clamp layer and the table description survive ir.json; hls_layers() is what hls4ml computes."""
    ir = _table_ir()
    back = IR.from_dict(ir.to_dict())
    assert back.to_dict() == ir.to_dict() and back.layers[-1].kind is LayerKind.CLAMP
    assert TableInfo.from_dict(back.table) == TABLE
    net = ir.hls_layers()
    assert len(net.layers) == len(ir.layers) - 1 and net.table is None


def test_bad_range_is_refused():
    """Bounds outside the word type are an IR error."""
    ir = mlp_ir("tab", [2, 3, 1], seed=1)
    with pytest.raises(Exception, match="does not fit"):
        ir.with_output_stage([ClampLayer("c", 1, FixedType.parse("ufixed<4,0>"), 0, 16)])


def test_input_mapping_follows_the_grid():
    """64 entries need 6 fraction bits: (7,0) = fixed<7,1> maps address bits straight; (6,0) loses half of them."""
    exact = input_mapping((64, 64), FixedType.parse("fixed<7,1,RND_CONV,SAT>"))
    assert [m["shift"] for m in exact] == [0, 0] and exact[1]["text"].startswith("address a1[5:0] -> in_data[12:7]")
    lossy = input_mapping((64,), FixedType.parse("fixed<6,1,RND_CONV,SAT>"))
    assert lossy[0]["shift"] is None and lossy[0]["distinct_inputs"] < 64 and "distinct" in lossy[0]["text"]


@pytest.mark.parametrize("arch", ["parallel", "folded"])
@pytest.mark.parametrize("signed_word", [False, True])
def test_rtl_output_stage_is_bit_exact(tmp_path, arch, signed_word):
    """Both architectures emit the clamp (common.elementwise_chain); the testbench checks every word; lint-clean."""
    ir = _table_ir(signed_word)
    design = generate(ir, arch, tmp_path / "rtl")
    assert lint(design) == []
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 200, seed=3)
    outs = np.load(vectors)["outputs"]
    lo, hi = ir.layers[-1].lo, ir.layers[-1].hi
    assert (outs == lo).any() and (outs == hi).any() and ((outs > lo) & (outs < hi)).any()
    r = simulate(design, vectors, "icarus", tmp_path / "sim", seed=1)
    assert r.passed, r.error
    top = (tmp_path / "rtl" / f"{design.top}.v").read_text()
    if not signed_word:
        assert "Replaces table 't': 8 x 8 entries of 6-bit words" in top and "out_data[5:0] is the table word" in top


def test_rtl_without_the_clamp_fails_the_testbench(tmp_path):
    """Known-wrong answer: RTL of the network alone (no output stage) against vectors of the full IR."""
    ir = _table_ir()
    no_clamp = ir.hls_layers().with_output_stage([ClampLayer("table_word", 1, TABLE.word_t, 0, 63)])
    design = generate(no_clamp, "parallel", tmp_path / "rtl")
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 100, seed=3)
    r = simulate(design, vectors, "icarus", tmp_path / "sim")
    assert not r.passed and r.mismatches > 0
