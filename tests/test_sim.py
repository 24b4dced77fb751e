"""Generated designs against flow.reference in both simulators and both architectures (cocotb testbench)."""

from __future__ import annotations

import numpy as np
import pytest

from flow.errors import FlowError
from flow.ir import IR, DenseLayer, LayerKind
from flow.project import read_json, write_json, write_marker
from flow.rtl import generate
from flow.sim import run_stage, simulate
from tb.irgen import mlp_ir, random_ir, write_vectors


def random_reuse(ir: IR, seed: int) -> dict[str, int]:
    """A valid reuse factor per dense layer: below n_in, n_in, or a multiple of it."""
    rng = np.random.default_rng(seed)
    out = {}
    for layer in ir.layers:
        if isinstance(layer, DenseLayer):
            choices = [1, max(1, layer.n_in // 2), layer.n_in, layer.n_in * layer.n_out]
            out[layer.name] = int(choices[int(rng.integers(len(choices)))])
    return out


def random_stream(ir: IR, seed: int) -> dict:
    """Folded knobs with streaming input: the first layer's R <= n_in, a beat of 1-3 steps' inputs."""
    rng = np.random.default_rng(seed + 1)
    knobs = random_reuse(ir, seed)
    first = next(layer for layer in ir.layers if isinstance(layer, DenseLayer))
    r = int(rng.choice([1, max(1, first.n_in // 2), first.n_in]))
    knobs[first.name] = r
    lanes = -(-first.n_in // r)
    beat = lanes * int(rng.integers(1, 4))
    return {"reuse_factors": knobs, "in_beat": beat if beat <= first.n_in else lanes}


# (architecture, its knobs for a random IR): the whole-vector interface of both, and folded's streaming input
VARIANTS = {
    "parallel": ("parallel", lambda ir, seed: {"tree_pipeline": seed % 2}),
    "folded": ("folded", lambda ir, seed: {"reuse_factors": random_reuse(ir, seed)}),
    "folded-streaming": ("folded", random_stream),
    "shiftadd": ("shiftadd", lambda ir, seed: {"adder_depth_cut": seed % 3, "solver": "csd"}),  # da4ml: own test
}
CASES = [
    *[("icarus", seed) for seed in range(100, 103)],
    *[pytest.param("icarus", seed, marks=pytest.mark.slow) for seed in range(103, 106)],
    ("verilator", 200),
    # The harness is cycle-exact across simulators (test_harness_runs_are_cycle_exact_across_simulators), so one
    # Verilator seed per variant in the default tier; more with -m slow.
    pytest.param("verilator", 201, marks=pytest.mark.slow),
]
ARCHS = ["parallel", "folded", "shiftadd"]
FAST_KNOBS = {"shiftadd": {"solver": "csd"}}  # default knobs otherwise


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("sim,seed", CASES)
def test_bit_exact_against_reference(tmp_path, sim, seed, variant):
    """Random IRs (all cast modes, odd bias types, wrapping accumulators): every output equal, in order."""
    ir = random_ir(seed, mode_offset=seed)
    arch, knobs_of = VARIANTS[variant]
    design = generate(ir, arch, tmp_path / "rtl", **knobs_of(ir, seed))
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 300, seed=seed)
    r = simulate(design, vectors, sim, tmp_path / "sim", seed=seed)
    assert r.passed, r.error
    assert r.mismatches == 0 and r.vectors == 300
    assert r.latency_cycles == design.latency_cycles_expected


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_batchnorm_after_dense_is_bit_exact(tmp_path, variant):
    """A batchnorm after every dense layer (random scale/shift types, signed and unsigned scales), each architecture
    in Icarus."""
    ir = random_ir(104, mode_offset=7, batchnorm=True)
    assert sum(layer.kind is LayerKind.BATCHNORM for layer in ir.layers) >= 1
    arch, knobs_of = VARIANTS[variant]
    design = generate(ir, arch, tmp_path / "rtl", **knobs_of(ir, 104))
    r = simulate(design, write_vectors(ir, tmp_path / "vectors.npz", 200, seed=4), "icarus", tmp_path / "sim", seed=4)
    assert r.passed and r.mismatches == 0, r.error


@pytest.mark.slow  # da4ml's numba compilation takes minutes in a new environment
@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_shiftadd_with_da4ml_solver_is_bit_exact(tmp_path, sim):
    """da4ml's CMVM solution (fraction-bit intermediate terms included), cut every 2 adder levels."""
    ir = mlp_ir("da", [5, 6, 3], seed=6)
    design = generate(ir, "shiftadd", tmp_path / "rtl", solver="da4ml", adder_depth_cut=2)
    assert {g["solver"] for g in design.details["cmvm"].values()} == {"da4ml"}
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 200, seed=6)
    r = simulate(design, vectors, sim, tmp_path / "sim", seed=6)
    assert r.passed, r.error
    assert r.latency_cycles == design.latency_cycles_expected


@pytest.mark.parametrize("arch", ARCHS)
def test_broken_design_fails_with_a_readable_message(tmp_path, arch):
    """One weight changed in the RTL: the testbench names the vector, the output and both raw values."""
    ir = mlp_ir("broken", [4, 5, 3], seed=3)
    w = ir.layers[0].weights.copy()
    w[:, 1] += np.where(w[:, 1] < 100, 1, -1)  # output 1 of fc1 differs for every input
    fc = ir.layers[0]
    fc_bad = DenseLayer(fc.name, fc.weight_t, w, fc.bias_t, fc.biases, fc.accum_t, fc.result_t)
    bad = IR(ir.name, ir.task, ir.inputs, [fc_bad, *ir.nodes[1:]])
    design = generate(bad, arch, tmp_path / "rtl", **FAST_KNOBS.get(arch, {}))
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 50)
    r = simulate(design, vectors, "icarus", tmp_path / "sim")
    assert not r.passed and r.mismatches > 0
    assert r.error.startswith("vector ") and "expected" in r.error and "actual" in r.error and "inputs" in r.error
    assert "(raw)" in r.error


def test_wrong_expected_vector_fails(tmp_path):
    """The checker itself: a correct design against one altered expected output fails, naming that vector."""
    ir = mlp_ir("wrong", [4, 5, 3], seed=6)
    design = generate(ir, "folded", tmp_path / "rtl")
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 40)
    data = dict(np.load(vectors))
    data["outputs"][17, 2] += 1
    np.savez(vectors, **data)
    r = simulate(design, vectors, "icarus", tmp_path / "sim")
    assert not r.passed and r.mismatches == 1
    assert r.error.startswith("vector 17 ") and "output 2 is" in r.error and "inputs" in r.error


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_build_is_cached_by_design_digest(tmp_path, sim):
    """A second run of the same design reuses the simulator build; a changed design rebuilds."""
    ir = mlp_ir("cache", [3, 4, 2], seed=7)
    design = generate(ir, "parallel", tmp_path / "rtl")
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 20)
    first = simulate(design, vectors, sim, tmp_path / "sim")
    stamp = tmp_path / "sim" / f"build_{sim}" / "qflow_sources.sha256"
    mtime = stamp.stat().st_mtime_ns
    design = generate(ir, "parallel", tmp_path / "rtl")
    again = simulate(design, vectors, sim, tmp_path / "sim")
    assert first.passed and again.passed and stamp.stat().st_mtime_ns == mtime
    design = generate(ir, "parallel", tmp_path / "rtl", tree_pipeline=1)
    assert simulate(design, vectors, sim, tmp_path / "sim").passed and stamp.stat().st_mtime_ns != mtime


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_back_pressure_and_throughput(tmp_path, variant):
    """Heavy back-pressure loses or duplicates nothing; without it the design runs at its II."""
    ir = mlp_ir("bp", [5, 6, 4], seed=4)
    knobs = (
        {"reuse_factors": {"fc1": 5}, "in_beat": 2} if variant == "folded-streaming" else FAST_KNOBS.get(variant, {})
    )
    design = generate(ir, VARIANTS[variant][0], tmp_path / "rtl", **knobs)
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 200)
    r = simulate(design, vectors, "icarus", tmp_path / "sim", ready_prob=0.25, gap_prob=0.3, max_gap=5)
    assert r.passed, r.error
    r = simulate(design, vectors, "icarus", tmp_path / "sim", ready_prob=1.0, gap_prob=0.0)
    assert r.passed, r.error
    assert r.ii_cycles == design.ii_cycles and r.latency_cycles == design.latency_cycles_expected


def test_flow_sim_stage(tmp_path):
    """The stage reads ir.json + vectors.npz, writes rtl/<arch>/ and sim.json; missing inputs name the target."""
    ir = mlp_ir("m", [6, 8, 4], seed=5)
    root = tmp_path / "m"
    root.mkdir()
    write_marker(root, "m", ir_sha256=ir.digest())
    with pytest.raises(FlowError, match="ir.json: missing; run `make hls MODEL=m`"):
        run_stage("m", "icarus", "folded", 10, projects_dir=tmp_path)
    ir.save(root / "ir.json")
    with pytest.raises(FlowError, match="verify.json: missing; run `make verify MODEL=m`"):
        run_stage("m", "icarus", "folded", 10, projects_dir=tmp_path)
    write_json(root / "verify.json", {"ir_sha256": ir.digest(), "passed": True})
    with pytest.raises(FlowError, match="vectors.npz: missing; run `make verify MODEL=m`"):
        run_stage("m", "icarus", "folded", 10, projects_dir=tmp_path)
    write_vectors(ir, root / "vectors.npz", 120)
    r = run_stage("m", "icarus", "folded", 100, reuse={"fc1": 3}, projects_dir=tmp_path)
    assert r.passed and r.vectors == 100
    run_stage("m", "icarus", "parallel", 50, projects_dir=tmp_path)
    sim = read_json(root / "sim.json")
    assert set(sim) == {"folded/icarus", "parallel/icarus"}
    assert sim["folded/icarus"]["ii_cycles"] == 8 + 3 and (root / sim["folded/icarus"]["junit"]).exists()
    assert (root / "rtl" / "folded" / "design.json").exists() and (root / "rtl" / "parallel" / "files.txt").exists()


def test_clock_driver_checks_bit_exactly(tmp_path):
    """The per-clock driver (the old path, kept to compare against): passes a correct design, names a wrong vector."""
    ir = mlp_ir("clk", [4, 5, 3], seed=6)
    design = generate(ir, "folded", tmp_path / "rtl", reuse_factors={"fc1": 2}, in_beat=2)
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 30)
    r = simulate(design, vectors, "icarus", tmp_path / "sim", driver="clock")
    assert r.passed, r.error
    assert r.driver == "clock" and r.latency_cycles == design.latency_cycles_expected
    data = dict(np.load(vectors))
    data["outputs"][11, 0] += 1
    np.savez(vectors, **data)
    r = simulate(design, vectors, "icarus", tmp_path / "sim", driver="clock")
    assert not r.passed and r.error.startswith("vector 11 ") and "inputs" in r.error and "actual" in r.error
    with pytest.raises(FlowError, match="unknown testbench driver"):
        simulate(design, vectors, "icarus", tmp_path / "sim", driver="python")


@pytest.mark.slow  # a Verilator build
def test_harness_runs_are_cycle_exact_across_simulators(tmp_path):
    """The harness' clock stops while it waits for Python: the same seed gives the same cycles in both simulators."""
    ir = mlp_ir("exact", [3, 4, 2], seed=8)
    design = generate(ir, "parallel", tmp_path / "rtl")
    vectors = write_vectors(ir, tmp_path / "vectors.npz", 400)
    runs = [simulate(design, vectors, s, tmp_path / "sim", ready_prob=0.4, gap_prob=0.3, seed=5) for s in SIMS]
    assert all(r.passed for r in runs), [r.error for r in runs]
    assert runs[0].cycles == runs[1].cycles and runs[0].latency_cycles == runs[1].latency_cycles


SIMS = ("icarus", "verilator")
