"""The reference's throughput against the hls4ml C simulation on 10,000 diag_05 vectors (target: >= 50x)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

MODEL = "diag_05"
N_VECTORS = 10_000


def run() -> dict:
    """Build diag_05 if needed, then time both on the same random vectors."""
    from flow import reference
    from flow.build import Source, build_hls
    from flow.convert import HlsSettings, convert, predict, write_and_compile
    from flow.ir import IR
    from flow.model import load_keras
    from flow.project import Project
    from flow.verify import random_vectors

    project = Project.of(MODEL)
    if not project.ir_json.exists():
        build_hls(Source.from_card(MODEL))
    ir = IR.load(project.ir_json)
    x_raw, _ = random_vectors(ir, N_VECTORS, seed=0)
    x = ir.input.type.to_float(x_raw)

    reference.run(ir, x_raw[:100])  # warm-up
    t0 = time.perf_counter()
    ref_out = reference.run(ir, x_raw).raw[-1]
    ref_s = time.perf_counter() - t0

    tmp = Path(tempfile.mkdtemp(prefix="qflow-bench-"))
    try:
        hls_model = convert(load_keras(project.keras), HlsSettings.from_ir(project.load_ir()), tmp)
        compile_s = write_and_compile(hls_model)
        t0 = time.perf_counter()
        c_out = predict(hls_model, x)
        csim_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    equal = bool(np.array_equal(ir.output_t.to_float(ref_out), c_out))
    return {
        "model": MODEL,
        "vectors": N_VECTORS,
        "reference_seconds": round(ref_s, 4),
        "reference_samples_per_second": round(N_VECTORS / ref_s),
        "csim_compile_seconds": round(compile_s, 1),
        "csim_seconds": round(csim_s, 3),
        "csim_samples_per_second": round(N_VECTORS / csim_s),
        "speedup": round(csim_s / ref_s, 1),
        "outputs_equal": equal,
    }
