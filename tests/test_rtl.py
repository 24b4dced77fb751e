"""The RTL generator without cocotb: the cast block against flow.fixed (Icarus), lint, folder layout, errors."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

from flow.errors import FlowError, ToolError
from flow.fixed import FixedType, Overflow, Rounding, cast
from flow.ir import IR, DenseLayer, InputSpec, Task
from flow.rtl import ARCHS, generate
from flow.rtl.common import OVERFLOW_CODE, ROUNDING_CODE, SOURCE_DIR
from flow.rtl.lint import lint
from flow.tb.packing import pack_rows, unpack_rows
from flow.tools import find_tool
from tb.irgen import mlp_ir, random_ir

IN_W = 9


def _cast_configs() -> list[tuple[int, bool, FixedType]]:
    """Every rounding x overflow mode, signed and unsigned, with shifts from -5 to +12 fraction bits."""
    rng = np.random.default_rng(7)
    configs = []
    for k, (rnd, ovf) in enumerate((r, o) for r in Rounding for o in Overflow):
        for signed_out in (True, False):
            in_f = int(rng.integers(-3, 10))
            out_w = int(rng.integers(1, 8))
            out_f = in_f - int(rng.integers(-5, 13))
            configs.append((in_f, bool(k % 2), FixedType(out_w, out_w - out_f, signed_out, rnd, ovf)))
    return configs


def test_fixed_cast_block_matches_flow_fixed_exhaustively(tmp_path):
    """qflow_fixed_cast.v equals flow.fixed.cast on every 9-bit input, for every mode pair and odd shifts."""
    configs = _cast_configs()
    insts, prints = [], []
    for k, (in_f, in_s, dst) in enumerate(configs):
        insts.append(
            f"    wire [{dst.width - 1}:0] d{k};\n"
            f"    qflow_fixed_cast #(.IN_W({IN_W}), .IN_F({in_f}), .IN_S({int(in_s)}), .OUT_W({dst.width}), "
            f".OUT_F({dst.frac_bits}), .OUT_S({int(dst.signed)}), .RND({ROUNDING_CODE[dst.rounding]}), "
            f".OVF({OVERFLOW_CODE[dst.overflow]})) u{k} (.din(v[{IN_W - 1}:0]), .dout(d{k}));"
        )
        prints.append(f"d{k}")
    fmt = " ".join(["%0d"] * len(prints))
    harness = tmp_path / "harness.v"
    harness.write_text(
        "`timescale 1ns / 1ps\nmodule harness;\n    reg [15:0] v;\n"
        + "\n".join(insts)
        + f"\n    initial begin\n        for (v = 0; v < {1 << IN_W}; v = v + 1) begin\n"
        + f'            #1 $display("{fmt}", {", ".join(prints)});\n        end\n        $finish;\n    end\nendmodule\n'
    )
    iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
    out = tmp_path / "h.vvp"
    subprocess.run(
        [str(iverilog), "-g2005", "-o", str(out), str(SOURCE_DIR / "qflow_fixed_cast.v"), str(harness)], check=True
    )
    lines = subprocess.run([str(vvp), "-n", str(out)], capture_output=True, text=True, check=True).stdout.split("\n")
    got = np.array([[int(t) for t in ln.split()] for ln in lines if ln and ln[0].isdigit()], dtype=np.int64)
    assert got.shape == (1 << IN_W, len(configs))
    codes = np.arange(1 << IN_W, dtype=np.int64)
    for k, (in_f, in_s, dst) in enumerate(configs):
        raw = np.where(codes >= 1 << (IN_W - 1), codes - (1 << IN_W), codes) if in_s else codes
        want = cast(raw, in_f, dst) & ((1 << dst.width) - 1)
        bad = np.flatnonzero(want != got[:, k])
        assert not bad.size, (
            f"{in_f=} {in_s=} -> {dst}: raw {raw[bad[0]]} gives {got[bad[0], k]:#x}, expected {want[bad[0]]:#x}"
        )


@pytest.mark.parametrize("arch", list(ARCHS))
def test_generated_verilog_is_lint_clean(tmp_path, arch):
    """verilator --lint-only -Wall: no warnings (waivers are in the Verilog, with reasons)."""
    for seed in range(6):
        ir = random_ir(seed)
        knobs = {"parallel": {"tree_pipeline": seed % 3}, "shiftadd": {"solver": "csd", "adder_depth_cut": seed % 3}}
        knobs = knobs.get(arch, {})
        design = generate(ir, arch, tmp_path / f"d{seed}", **knobs)
        assert lint(design) == [], f"seed {seed}"


def test_design_folder(tmp_path):
    """files.txt lists every Verilog file in compile order; design.json records top, ports and figures."""
    ir = mlp_ir("tiny-net", [3, 4, 2])
    d = generate(ir, "folded", tmp_path / "rtl", reuse_factors={"fc1": 3, "fc2": 8})
    files = (tmp_path / "rtl" / "files.txt").read_text().split()
    assert files[-1] == "qflow_tiny_net.v" and files[0] == "qflow_fixed_cast.v"
    assert all((tmp_path / "rtl" / f).exists() for f in files)
    meta = json.loads((tmp_path / "rtl" / "design.json").read_text())
    assert meta["top"] == d.top == "qflow_tiny_net"
    assert meta["arch"] == "folded" and meta["knobs"] == {"reuse_factors": {"fc1": 3, "fc2": 8}}
    assert meta["ii_cycles"] == 11 and meta["latency_cycles_expected"] == 1 + 6 + 11
    assert meta["ports"]["in_data"]["width"] == 36 and meta["ports"]["out_class"]["width"] == 1
    assert len(meta["ir_sha256"]) == 64
    assert "Interface" in (tmp_path / "rtl" / "qflow_tiny_net.v").read_text()
    assert meta["layer_modules"] == ["qflow_tiny_net_fc1", "qflow_tiny_net_fc2"]  # what the ASIC flow maps alone
    assert all(f"module {m} (" in (tmp_path / "rtl" / f"{m}.v").read_text() for m in meta["layer_modules"])


def test_user_errors_are_one_line(tmp_path):
    ir = mlp_ir("e", [4, 3, 2])
    with pytest.raises(FlowError, match="choose from: parallel, folded, shiftadd"):
        generate(ir, "systolic", tmp_path / "x")
    with pytest.raises(FlowError, match="unknown knob"):
        generate(ir, "parallel", tmp_path / "x", reuse_factors={})
    with pytest.raises(FlowError, match="multiple of n_in"):
        generate(ir, "folded", tmp_path / "x", reuse_factors={"fc1": 6})
    with pytest.raises(FlowError, match="no dense layer named fc9"):
        generate(ir, "folded", tmp_path / "x", reuse_factors={"fc9": 1})
    fc = ir.layers[0]
    narrow = DenseLayer(fc.name, fc.weight_t, fc.weights, fc.bias_t, fc.biases, FixedType(12, 8), fc.result_t)
    bad = IR("e", Task.REGRESSION, [InputSpec(4, ir.input.type)], [narrow])
    with pytest.raises(FlowError, match="only exact products"):
        generate(bad, "parallel", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_missing_tool_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("QFLOW_VERILATOR", "/nonexistent/verilator")
    with pytest.raises(ToolError, match="QFLOW_VERILATOR=/nonexistent/verilator is not an executable"):
        find_tool("verilator")
    with pytest.raises(ToolError, match="unknown tool"):
        find_tool("vivado")


def test_tools_found_with_versions():
    assert tuple(int(v) for v in find_tool("verilator").version.split(".")[:2]) >= (5, 36)
    assert find_tool("iverilog").version


def test_packing_round_trips():
    rng = np.random.default_rng(0)
    for width, signed in ((12, True), (8, False), (1, False), (21, True)):
        lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if signed else (0, 1 << width)
        x = rng.integers(lo, hi, size=(50, 7))
        words = pack_rows(x, width)
        assert words[0] == sum((int(v) & ((1 << width) - 1)) << (i * width) for i, v in enumerate(x[0]))
        np.testing.assert_array_equal(unpack_rows(words, 7, width, signed), x)


def test_streaming_input_ports_and_errors(tmp_path):
    """in_beat: a beat-wide in_data plus in_last, no register holding the whole vector; bad beats are one line."""
    ir = mlp_ir("st", [10, 4, 2], seed=2)
    d = generate(ir, "folded", tmp_path / "rtl", reuse_factors={"fc1": 5}, in_beat=4)
    assert d.ports["in_data"]["width"] == 4 * ir.input.type.width and d.ports["in_data"]["beats"] == 3
    assert "in_last" in d.ports and d.knobs == {"reuse_factors": {"fc1": 5, "fc2": 4}, "in_beat": 4}
    assert " sr;" not in (tmp_path / "rtl" / "qflow_st_fc1.v").read_text()
    assert lint(d) == []
    with pytest.raises(FlowError, match="multiple of the 2 inputs layer fc1 takes per step"):
        generate(ir, "folded", tmp_path / "x", reuse_factors={"fc1": 5}, in_beat=3)
    with pytest.raises(FlowError, match="reuse factor <= n_in"):
        generate(ir, "folded", tmp_path / "x", reuse_factors={"fc1": 20}, in_beat=2)
    with pytest.raises(FlowError, match="from 1 to n_in = 10"):
        generate(ir, "folded", tmp_path / "x", in_beat=11)
    with pytest.raises(FlowError, match="unknown knob"):
        generate(ir, "parallel", tmp_path / "x", in_beat=2)
    assert not (tmp_path / "x").exists()
