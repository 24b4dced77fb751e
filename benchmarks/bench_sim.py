"""Simulation speed: Verilator build time and samples/s, Icarus samples/s (``run() -> dict`` of figures).

* lut-sized parallel design (2 -> 16 -> 16 -> 1): Verilator and Icarus samples/s (target: Verilator >= 5,000/s).
* diag-sized folded design (1023 -> 40 relu -> 18, R = 1023 and 40): Verilator build, then 2,000 vectors end to
  end with the build warm (target: under 3 minutes).
* the same folded design with streaming input (``in_beat=1``): Verilator samples/s and latency from the last beat.
* the default testbench (HDL harness) against the per-clock Python driver (``driver="clock"``) on the lut-sized
  parallel and both diag-sized folded designs, side by side in one run (wall and CPU samples/s, their ratio).
* diag-sized parallel design in Verilator: how long the build takes (stopped after ``PARALLEL_BUILD_LIMIT_S``).
* the jet-tagger-shaped 16 -> 64 -> 32 -> 32 -> 5 design (``benchmarks.bench_area.jet_ir``) in ``shiftadd`` and
  ``parallel``: Verilator build wall and CPU seconds with the options of ``flow.sim`` against the same options
  without ``VERILATOR_SPLIT_FUNCS``, side by side in one run, each build then checked on 300 vectors (target:
  <= 60 s on 2 cores).

Throughput runs drive a sample every cycle the design accepts one and keep ``out_ready`` high.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_area import jet_ir
from flow.ir import Task
from flow.rtl import Design, generate
from flow.sim import VERILATOR_FAST, simulate
from tb.irgen import mlp_ir, write_vectors

PARALLEL_BUILD_LIMIT_S = 600
DIAG_TYPES = {
    "in_t": "fixed<12,5,RND_CONV,SAT>",
    "w_t": "fixed<8,1>",
    "relu_t": "ufixed<8,3,RND_CONV,SAT>",
    "out_t": "fixed<12,6,RND_CONV,SAT>",
}


def _fast(design: Design, vectors: Path, sim: str, work: Path, n: int, driver: str = "harness"):
    return simulate(design, vectors, sim, work, n=n, gap_prob=0.0, ready_prob=1.0, driver=driver)


def drivers_side_by_side(name: str, design: Design, vectors: Path, work: Path, n: int, n_clock: int) -> dict:
    """Verilator samples/s of the HDL harness against the per-clock Python driver, in the same run."""
    new = _fast(design, vectors, "verilator", work, n)
    old = _fast(design, vectors, "verilator", work, n_clock, driver="clock")
    return {
        f"{name}_harness_samples_per_s": round(new.samples_per_second, 1),
        f"{name}_harness_samples_per_cpu_s": round(new.vectors / new.cpu_seconds, 1),
        f"{name}_clock_samples_per_s": round(old.samples_per_second, 1),
        f"{name}_clock_samples_per_cpu_s": round(old.vectors / old.cpu_seconds, 1),
        f"{name}_harness_over_clock": round(new.samples_per_second / old.samples_per_second, 1),
        f"{name}_harness_build_s": new.build_seconds,
        f"{name}_drivers_passed": new.passed and old.passed,
    }


def bench_lut(work: Path) -> dict:
    """The lut-sized parallel design in both simulators."""
    ir = mlp_ir("lut_bench", [2, 16, 16, 1], task=Task.REGRESSION)
    design = generate(ir, "parallel", work / "rtl")
    vectors = write_vectors(ir, work / "vectors.npz", 20_000)
    v = _fast(design, vectors, "verilator", work / "sim", 20_000)
    i = _fast(design, vectors, "icarus", work / "sim", 5_000)
    return drivers_side_by_side("lut_parallel", design, vectors, work / "sim", 20_000, 5_000) | {
        "lut_parallel_verilator_build_s": v.build_seconds,
        "lut_parallel_verilator_samples_per_s": round(v.samples_per_second),
        "lut_parallel_icarus_samples_per_s": round(i.samples_per_second),
        "lut_parallel_passed": v.passed and i.passed,
    }


def bench_diag_folded(work: Path) -> dict:
    """The diag-sized folded design: a cold Verilator build, then 2,000 vectors end to end with a warm build."""
    ir = mlp_ir("diag_bench", [1023, 40, 18], **DIAG_TYPES)
    t0 = time.perf_counter()
    design = generate(ir, "folded", work / "rtl", reuse_factors={"fc1": 1023, "fc2": 40})
    gen_s = time.perf_counter() - t0
    vectors = write_vectors(ir, work / "vectors.npz", 2000)
    cold = _fast(design, vectors, "verilator", work / "sim", 20)
    t1 = time.perf_counter()
    design = generate(ir, "folded", work / "rtl", reuse_factors={"fc1": 1023, "fc2": 40})
    warm = _fast(design, vectors, "verilator", work / "sim", 2000)
    end_to_end = time.perf_counter() - t1
    i = _fast(design, vectors, "icarus", work / "sim", 10)
    stream = generate(ir, "folded", work / "rtl_stream", reuse_factors={"fc1": 1023, "fc2": 40}, in_beat=1)
    s = _fast(stream, vectors, "verilator", work / "sim_stream", 2000)
    sides = drivers_side_by_side("diag_folded", design, vectors, work / "sim", 2000, 200)
    sides |= drivers_side_by_side("diag_folded_streaming", stream, vectors, work / "sim_stream", 2000, 100)
    return sides | {
        "diag_folded_streaming_verilator_build_s": s.build_seconds,
        "diag_folded_streaming_verilator_samples_per_s": round(s.samples_per_second, 1),
        "diag_folded_streaming_latency_cycles": s.latency_cycles,
        "diag_folded_streaming_passed": s.passed,
        "diag_folded_generate_s": round(gen_s, 2),
        "diag_folded_verilator_build_s": cold.build_seconds,
        "diag_folded_verilator_2000_end_to_end_s": round(end_to_end, 1),
        "diag_folded_verilator_samples_per_s": round(warm.samples_per_second, 1),
        "diag_folded_ii_cycles": warm.ii_cycles,
        "diag_folded_latency_cycles": warm.latency_cycles,
        "diag_folded_icarus_samples_per_s": round(i.samples_per_second, 1),
        "diag_folded_passed": cold.passed and warm.passed and i.passed,
    }


def bench_diag_parallel(work: Path, limit_s: int = PARALLEL_BUILD_LIMIT_S) -> dict:
    """Generate the diag-sized parallel design and build it in Verilator in a child process, stopped at the limit."""
    ir = mlp_ir("diag_par", [1023, 40, 18], **DIAG_TYPES)
    t0 = time.perf_counter()
    design = generate(ir, "parallel", work / "rtl")
    gen_s = time.perf_counter() - t0
    vectors = write_vectors(ir, work / "vectors.npz", 200)
    code = (
        "import sys, json; from pathlib import Path; from flow.rtl import Design; from flow.sim import simulate; "
        "r = simulate(Design.load(Path(sys.argv[1])), Path(sys.argv[2]), 'verilator', Path(sys.argv[3]), n=200, "
        "gap_prob=0.0, ready_prob=1.0); print(json.dumps(r.to_dict()))"
    )
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    t1 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(design.out_dir), str(vectors), str(work / "sim")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)  # the child and its make/c++ processes, nothing else
        proc.communicate()
        return {
            "diag_parallel_generate_s": round(gen_s, 1),
            "diag_parallel_verilator_build_s": None,
            "diag_parallel_verilator_note": f"build did not finish within {limit_s} s (stopped)",
        }
    import json

    res = json.loads(out.strip().splitlines()[-1]) if proc.returncode == 0 and out.strip() else {}
    return {
        "diag_parallel_generate_s": round(gen_s, 1),
        "diag_parallel_verilator_build_s": res.get("build_seconds"),
        "diag_parallel_verilator_total_s": round(time.perf_counter() - t1, 1),
        "diag_parallel_verilator_samples_per_s": res.get("samples_per_second"),
        "diag_parallel_passed": res.get("passed"),
    }


def bench_jet_build(work: Path, archs: tuple[str, ...] = ("shiftadd", "parallel"), unsplit: bool = True) -> dict:
    """Verilator build of the jet-shaped design: the flow's options against those without split functions
    (``unsplit=False``: the flow's options only)."""
    ir = jet_ir()
    vectors = write_vectors(ir, work / "vectors.npz", 300, seed=1)
    out: dict = {}
    variants = (("split", None), ("unsplit", list(VERILATOR_FAST)))[: 2 if unsplit else 1]
    for arch in archs:
        design = generate(ir, arch, work / arch)
        for tag, args in variants:
            r = simulate(design, vectors, "verilator", work / f"sim_{arch}_{tag}", n=300, verilator_args=args)
            out[f"jet_{arch}_{tag}_build_s"] = round(r.build_seconds, 1)
            out[f"jet_{arch}_{tag}_build_cpu_s"] = round(r.build_cpu_seconds, 1)
            out[f"jet_{arch}_{tag}_mismatches"] = r.mismatches if r.passed or r.mismatches else r.error
        if unsplit:
            split_s, unsplit_s = out[f"jet_{arch}_split_build_cpu_s"], out[f"jet_{arch}_unsplit_build_cpu_s"]
            out[f"jet_{arch}_unsplit_over_split_build_cpu"] = round(unsplit_s / split_s, 2) if split_s else None
    return out


def run(include_diag_parallel: bool = True, include_jet: bool = True) -> dict:
    """All simulation figures (takes a few minutes; the diag parallel build up to 10 more)."""
    with tempfile.TemporaryDirectory(prefix="qflow-bench-sim-") as tmp:
        work = Path(tmp)
        figures = {}
        figures.update(bench_lut(work / "lut"))
        figures.update(bench_diag_folded(work / "diag_folded"))
        if include_jet:
            figures.update(bench_jet_build(work / "jet"))
        if include_diag_parallel:
            figures.update(bench_diag_parallel(work / "diag_parallel"))
    return figures


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sim", description=__doc__.split("\n")[0])
    parser.add_argument("--jet-only", action="store_true", help="only the jet-sized Verilator build figures")
    parser.add_argument("--no-jet", action="store_true", help="skip the jet-sized Verilator builds")
    parser.add_argument("--no-diag-parallel", action="store_true", help="skip the diag-sized parallel build")
    parser.add_argument(
        "--jet-arch",
        action="append",
        choices=["shiftadd", "parallel"],
        help="with --jet-only: only these (default: both)",
    )
    parser.add_argument("--no-unsplit", action="store_true", help="with --jet-only: only the flow's (split) build")
    args = parser.parse_args()
    if args.jet_only:
        archs = tuple(args.jet_arch or ("shiftadd", "parallel"))
        with tempfile.TemporaryDirectory(prefix="qflow-bench-sim-") as tmp:
            print(json.dumps(bench_jet_build(Path(tmp), archs, unsplit=not args.no_unsplit), indent=2))
        sys.exit(0)
    print(json.dumps(run(include_diag_parallel=not args.no_diag_parallel, include_jet=not args.no_jet), indent=2))
