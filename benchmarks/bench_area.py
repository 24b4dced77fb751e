"""Area benchmark: every RTL architecture on identical weights, side by side in one run, through the same Yosys flows.

Models: ``lut_charge`` and ``lut_discharge`` (their ``hls_projects/<m>/ir.json``; skipped with a hint when not
built) and a jet-tagger-shaped 16 -> 64 -> 32 -> 32 -> 5 MLP with 6-bit weights and activations built directly as
an IR (random weights, seed 0). For each design: the ``shiftadd`` solver used per layer, xc7 LUT/FF/CARRY4/DSP,
``-nodsp`` LUTs, OSU018 and sky130 HD µm² (each flow stopped at ``QFLOW_BENCH_YOSYS_S``, default 900 s, and
reported as such), latency, II and Yosys time, then the ratios shiftadd / parallel and shiftadd / da4ml. The
shiftadd designs are first simulated bit-exactly in Verilator and Icarus against the reference (build time
measured). ``da4ml`` is da4ml's own Verilog on the same weights (``flow.da4ml_peer``: its trace API from the IR,
checked bit-exact against the reference on the vectors before it is costed; combinational, or pipelined every
``QFLOW_BENCH_DA4ML_CUTOFF`` adder delays when set). ``QFLOW_BENCH_MODELS``, ``QFLOW_BENCH_ARCHS`` and
``QFLOW_BENCH_FLOWS`` (comma lists) choose the models, the architectures and the Yosys flows.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from flow import da4ml_peer
from flow.cost.yosys import cost_rtl
from flow.ir import IR
from flow.project import PROJECTS_DIR
from flow.rtl import ARCHS, generate
from flow.sim import simulate
from tb.irgen import mlp_ir, write_vectors

YOSYS_LIMIT_S = float(os.environ.get("QFLOW_BENCH_YOSYS_S", 900))
FLOWS = tuple(os.environ.get("QFLOW_BENCH_FLOWS", "xc7_nodsp,xc7,asic").split(","))
SIM_VECTORS = 300
ARCH_NAMES = tuple(os.environ.get("QFLOW_BENCH_ARCHS", ",".join(ARCHS)).split(","))
MODELS = tuple(os.environ.get("QFLOW_BENCH_MODELS", "lut_charge,lut_discharge,jet_mlp").split(","))
DA4ML_CUTOFF = float(os.environ.get("QFLOW_BENCH_DA4ML_CUTOFF", -1))


def jet_ir() -> IR:
    """The jet-tagger-shaped model: 16 -> 64 -> 32 -> 32 -> 5, 6-bit weights, inputs and ReLU outputs."""
    return mlp_ir(
        "jet_mlp",
        [16, 64, 32, 32, 5],
        in_t="fixed<6,3,RND_CONV,SAT>",
        w_t="fixed<6,1>",
        relu_t="ufixed<6,3,RND_CONV,SAT>",
        out_t="fixed<12,6,RND_CONV,SAT>",
    )


def models() -> dict[str, IR | str]:
    """The benchmark's IRs (a string says why a model is missing)."""
    out: dict[str, IR | str] = {}
    for name in ("lut_charge", "lut_discharge"):
        path = Path(PROJECTS_DIR) / name / "ir.json"
        out[name] = IR.load(path) if path.is_file() else f"not built: run `make hls MODEL={name}`"
    out["jet_mlp"] = jet_ir()
    return {k: v for k, v in out.items() if k in MODELS}


def _figures(cost: dict) -> dict:
    """The flat figures of one design's cost (a flow that failed or timed out says so)."""
    f: dict = {}
    for flow, r in cost.items():
        if r.get("status") not in (None, "ok"):
            f[f"{flow}_status"] = r.get("status")
            continue
        f[f"{flow}_yosys_s"] = r.get("seconds") or r.get("wall_seconds")
        if flow == "xc7":
            fpga = r.get("fpga", {})
            f.update({"LUT": fpga.get("LUT"), "FF": fpga.get("FF"), "CARRY4": fpga.get("CARRY4")})
            f["DSP48E1"] = fpga.get("DSP48E1")
        elif flow == "xc7_nodsp":
            f["LUT_nodsp"] = r.get("fpga", {}).get("LUT")
        elif flow == "asic":
            asic = r.get("asic", {})
            f["osu018_um2"] = asic.get("osu018", {}).get("area_um2")
            f["sky130_hd_um2"] = asic.get("sky130_hd", {}).get("area_um2")
    return f


def bench_model(name: str, ir: IR, work: Path) -> dict:
    """Every architecture of one model: simulation check (shiftadd), cost, ratios."""
    out: dict = {}
    vectors = write_vectors(ir, work / "vectors.npz", SIM_VECTORS, seed=1)
    for arch in ARCH_NAMES:
        t0 = time.perf_counter()
        design = generate(ir, arch, work / arch)
        entry: dict = {"generate_s": round(time.perf_counter() - t0, 1)}
        entry.update(latency=design.latency_cycles_expected, ii=design.ii_cycles)
        if design.details.get("cmvm"):
            entry["cmvm"] = {
                k: {"solver": v["solver"], "adders": v["adders"]} for k, v in design.details["cmvm"].items()
            }
            for sim in ("verilator", "icarus"):
                r = simulate(design, vectors, sim, work / f"sim_{arch}_{sim}")
                entry[f"{sim}_mismatches"] = r.mismatches if r.passed or r.mismatches else r.error
                entry[f"{sim}_build_s"] = r.build_seconds
        t0 = time.perf_counter()
        cost = cost_rtl(work / arch, flows=FLOWS, timeout_s=YOSYS_LIMIT_S)
        entry["cost_s"] = round(time.perf_counter() - t0, 1)
        entry.update(_figures(cost))
        out[arch] = entry
        print(f"  {name}/{arch}: {entry}", flush=True)
    out["da4ml"] = bench_da4ml(name, ir, work, vectors)
    sa = out.get("shiftadd", {}).get("LUT_nodsp")
    for other in ("parallel", "folded", "da4ml"):
        theirs = out.get(other, {}).get("LUT_nodsp")
        if sa and theirs:
            out[f"shiftadd_over_{other}_LUT_nodsp"] = round(sa / theirs, 3)
    return out


def bench_da4ml(name: str, ir: IR, work: Path, vectors: Path) -> dict:
    """da4ml's own design of ``ir``: traced, checked bit-exact on the vectors' inputs, then costed the same way."""
    import numpy as np

    t0 = time.perf_counter()
    try:
        peer = da4ml_peer.generate(ir, work / "da4ml", np.load(vectors)["inputs"], DA4ML_CUTOFF)
    except Exception as exc:  # a peer that cannot be built is a figure of the benchmark, not its end
        entry = {"status": f"failed: {type(exc).__name__}: {exc}"[:300]}
        print(f"  {name}/da4ml: {entry}", flush=True)
        return entry
    entry: dict = {"generate_s": round(time.perf_counter() - t0, 1), "trace_s": peer.trace_s}
    entry.update(latency=peer.latency_cycles, ii=1, reference_vectors_equal=peer.vectors_checked)
    entry["da4ml_cost_estimate"] = peer.adders_cost
    t0 = time.perf_counter()
    cost = cost_rtl(peer.out_dir, flows=FLOWS, timeout_s=YOSYS_LIMIT_S)
    entry["cost_s"] = round(time.perf_counter() - t0, 1)
    entry.update(_figures(cost))
    print(f"  {name}/da4ml: {entry}", flush=True)
    return entry


def run() -> dict:
    """All models, one after the other, in one run."""
    figures: dict = {"flows": list(FLOWS), "yosys_limit_s": YOSYS_LIMIT_S}
    with tempfile.TemporaryDirectory(prefix="qflow_bench_area_") as tmp:
        for name, ir in models().items():
            if isinstance(ir, str):
                figures[name] = ir
                continue
            print(f"== area: {name}", flush=True)
            figures[name] = bench_model(name, ir, Path(tmp) / name)
    return figures
