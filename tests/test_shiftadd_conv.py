"""shiftadd's convolutions: one kernel module per conv2d (its adder graph solved once) instantiated per pixel group,
time-multiplexed by ``conv_ii``; random tiny CNN IRs bit-exact in Icarus and Verilator, known-wrong designs fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flow.errors import FlowError
from flow.ir import IR, LayerKind
from flow.rtl import generate
from flow.rtl.lint import lint
from flow.sim import simulate
from tb.irgen import random_cnn_ir, random_inputs, write_vectors

# (simulator, seed, conv_ii); each run takes ~20 s on the shared machine, so all are in the slow tier
CASES = [
    pytest.param("icarus", 3, 3, marks=pytest.mark.slow),  # 6 x 3 x 1, same padding, 2 filters
    pytest.param("icarus", 1, 2, marks=pytest.mark.slow),  # valid, relu, a max pool dropping a column
    pytest.param("icarus", 4, 1, marks=pytest.mark.slow),  # two convolutions, a max pool between them
    pytest.param("icarus", 7, 4, marks=pytest.mark.slow),
    pytest.param("verilator", 2, 5, marks=pytest.mark.slow),  # two same-padded convolutions
    pytest.param("verilator", 6, 1, marks=pytest.mark.slow),
]


def _run(tmp_path, ir: IR, sim: str, seed: int, design_ir: IR | None = None, **knobs):
    design = generate(design_ir or ir, "shiftadd", tmp_path / "rtl", solver="csd", **knobs)
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 60, seed=seed)
    return design, simulate(design, vectors, sim, tmp_path / "sim", seed=seed)


@pytest.mark.parametrize("sim,seed,conv_ii", CASES)
def test_random_cnn_is_bit_exact(tmp_path, sim, seed, conv_ii):
    """Every output equal, in order, with idle gaps and back-pressure; latency and II as design.json says."""
    ir = random_cnn_ir(seed, mode_offset=seed)
    design, r = _run(tmp_path, ir, sim, seed, conv_ii=conv_ii, adder_depth_cut=seed % 3)
    assert r.passed and r.mismatches == 0, r.error
    assert r.latency_cycles == design.latency_cycles_expected
    assert design.ii_cycles == conv_ii and r.ii_cycles == conv_ii
    assert lint(design) == []


def test_a_cnn_design_is_lint_clean(tmp_path):
    """Verilator -Wall on a time-multiplexed CNN design with a max pool that drops a column: no warnings."""
    d = generate(random_cnn_ir(1, mode_offset=1), "shiftadd", tmp_path / "rtl", solver="csd", conv_ii=2)
    assert lint(d) == []


@pytest.mark.slow  # two Icarus runs (~20 s each on the shared machine)
@pytest.mark.parametrize("broken", ["tap", "filter"])
def test_a_wrong_kernel_fails(tmp_path, broken):
    """The RTL of a kernel with its window flipped (a true convolution, not Keras' correlation) or one filter's
    weights changed, against the correct network's vectors: mismatches."""
    ir = random_cnn_ir(3, mode_offset=3)
    conv = ir.nodes[0]
    w = conv.weights[::-1, ::-1].copy() if broken == "tap" else conv.weights.copy()
    if broken == "filter":
        w[..., -1] += np.where(w[..., -1] < conv.weight_t.max_raw, 1, -1)
    assert not np.array_equal(w, conv.weights)
    bad = IR(ir.name, ir.task, ir.inputs, [dataclasses.replace(conv, weights=w), *ir.nodes[1:]])
    _, r = _run(tmp_path, ir, "icarus", 3, bad, conv_ii=3)
    assert not r.passed and r.mismatches > 0


def test_kernel_solved_once_and_instantiated_per_pixel_group(tmp_path):
    """design.json: per convolution the solver, adders, instances (ceil(pixels / conv_ii)) and the kernel module
    (one file, in layer_modules so the ASIC flows map it once); the dense layer as before; the Verilog instantiates
    each kernel that many times."""
    ir = random_cnn_ir(2, mode_offset=2)  # 6 x 4 x 1 -> conv same (24 pixels) -> relu -> conv same -> dense
    for conv_ii, instances in ((1, 24), (5, 5), (24, 1), (30, 1)):
        d = generate(ir, "shiftadd", tmp_path / f"rtl{conv_ii}", solver="csd", conv_ii=conv_ii)
        info = d.details["cmvm"]["conv0"]
        assert info["solver"] == "csd-greedy" and info["adders"] > 0 and info["pixels"] == 24
        assert info["instances"] == instances and info["conv_ii"] == conv_ii
        assert info["kernel"] in d.layer_modules and "qflow_cnn2_conv0" in d.layer_modules
        text = (d.out_dir / "qflow_cnn2_conv0.v").read_text()
        assert text.count(f"{info['kernel']} u_k") == instances
        assert (d.out_dir / f"{info['kernel']}.v").is_file()
        assert d.ii_cycles == conv_ii
        assert "instances" not in d.details["cmvm"]["fc"]


def test_conv_ii_errors_and_networks_without_convolutions(tmp_path):
    from tb.irgen import mlp_ir

    ir = random_cnn_ir(3)
    for bad in (0, 1.5, True, "5"):
        with pytest.raises(FlowError, match="conv_ii must be an integer >= 1"):
            generate(ir, "shiftadd", tmp_path / "x", solver="csd", conv_ii=bad)
    d = generate(mlp_ir("m", [3, 2]), "shiftadd", tmp_path / "m", solver="csd", conv_ii=5)
    assert d.ii_cycles == 1  # nothing to time-multiplex


@pytest.mark.parametrize("seed", range(8))
def test_value_ranges_hold_through_convolutions(seed):
    """The ranges propagated through conv2d (a kernel tap's range is its inputs' union over every window, 0 for
    padding), max pooling and flatten contain every layer output of random and corner vectors."""
    from flow import reference
    from flow.rtl import value_ranges
    from flow.rtl.common import segments

    ir = random_cnn_ir(seed, mode_offset=seed)
    x, _ = random_inputs(ir, 1000, seed)
    trace = reference.run(ir, x)
    r = value_ranges.type_range(ir.input.type, ir.input.n)
    k = -1
    for seg in segments(ir, "shiftadd", full_dense=False):
        r = value_ranges.segment_output_ranges(seg, r)
        k += (seg.dense is not None) + len(seg.post)
        if k < 0:
            continue
        out = np.asarray(trace.raw[k], dtype=object).reshape(len(x), -1)
        lo, hi = np.array([a for a, _ in r], dtype=object), np.array([b for _, b in r], dtype=object)
        assert (out >= lo).all() and (out <= hi).all()
    assert any(n.kind is LayerKind.CONV2D for n in ir.nodes)


def test_conv_ii_from_the_cards_clock_and_rate():
    """`flow sim` derives conv_ii from the card: 40 MHz at 5 ns allows 5 cycles a sample; no rate, no knob."""
    from flow.rtl import rate_knobs
    from tb.irgen import mlp_ir

    cnn = random_cnn_ir(3)
    assert rate_knobs("shiftadd", cnn, 5.0, 40.0) == {"conv_ii": 5}
    assert rate_knobs("shiftadd", cnn, 3.0, 40.0) == {"conv_ii": 8}
    assert rate_knobs("shiftadd", cnn, 30.0, 40.0) == {"conv_ii": 1}
    assert rate_knobs("shiftadd", cnn, 5.0, None) == {}
    assert rate_knobs("shiftadd", mlp_ir("m", [3, 2]), 5.0, 40.0) == {}
    assert rate_knobs("parallel", cnn, 5.0, 40.0) == {}


def test_adder_depth_cut_registers_a_time_multiplexed_kernel_in_whole_beats(tmp_path):
    """At conv_ii = P the kernel's cut registers are padded to a multiple of P cycles; latency grows by that."""
    ir = random_cnn_ir(2, mode_offset=2)
    flat = generate(ir, "shiftadd", tmp_path / "flat", solver="csd", conv_ii=5)
    cut = generate(ir, "shiftadd", tmp_path / "cut", solver="csd", conv_ii=5, adder_depth_cut=1)
    convs = {k: v for k, v in cut.details["cmvm"].items() if "kernel" in v}
    assert convs and all(v["kernel_delay_cycles"] % 5 == 0 and v["kernel_delay_cycles"] > 0 for v in convs.values())
    assert all(v["kernel_input_registered"] for v in convs.values())  # the window multiplexer has its own stage
    assert all(v["kernel_delay_cycles"] == 0 for k, v in flat.details["cmvm"].items() if "kernel" in v)
    grown = sum(v["kernel_delay_cycles"] for v in convs.values())
    dense_cuts = cut.latency_cycles_expected - flat.latency_cycles_expected - grown
    assert dense_cuts >= 0 and cut.ii_cycles == flat.ii_cycles == 5
    assert lint(cut) == []
