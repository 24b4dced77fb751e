"""The `flow verify` stage: the NumPy reference against the hls4ml C simulation, every layer, bit for bit."""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flow import reference, warm
from flow.build import load_test_data, signal_class_of
from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR
from flow.log import info
from flow.metrics import classification_metrics, trigger_roc
from flow.project import Project, read_json, write_json, write_npz

N_RANDOM = 10_000


@dataclass
class Mismatch:
    """The first place where the reference and the C simulation disagree."""

    layer: str
    layer_index: int
    vector: int
    output_index: int
    expected: int  # reference
    actual: int  # C simulation
    input_raw: list[int] = field(repr=False)


@dataclass
class Comparison:
    """Outcome of comparing every layer of every vector."""

    vectors: int
    layers_compared: int
    mismatches: int
    first: Mismatch | None
    mismatches_by_layer: dict[str, int]

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and self.vectors > 0


def to_raw(values: np.ndarray, t: FixedType, what: str) -> np.ndarray:
    """C-simulation doubles as raw mantissas; a value off the type's grid means the types disagree."""
    scaled = np.asarray(values, dtype=np.float64) * 2.0**t.frac_bits
    raw = np.round(scaled)
    off = np.flatnonzero(raw != scaled)
    if off.size:
        raise FlowError(f"{what}: C-simulation value {values.flat[off[0]]!r} is not on the grid of {t}")
    return raw.astype(np.int64)


def random_vectors(ir: IR, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Raw input vectors across the input type's whole range: uniform, corners and saturating patterns."""
    t = ir.input.type
    rng = np.random.default_rng(seed)
    lo, hi = int(t.min_raw), int(t.max_raw)
    n_in = ir.input.n
    corners = [
        np.full(n_in, lo),
        np.full(n_in, hi),
        np.zeros(n_in, dtype=np.int64),
        np.where(np.arange(n_in) % 2 == 0, hi, lo),
        np.where(np.arange(n_in) % 2 == 0, lo, hi),
        np.full(n_in, 1),
        np.full(n_in, -1 if t.signed else 1),
    ]
    n_corner = min(len(corners), n)
    n_extreme = (n - n_corner) // 5
    n_uniform = n - n_corner - n_extreme
    uniform = rng.integers(lo, hi, size=(n_uniform, n_in), endpoint=True)
    # Only extremes, randomly mixed: drives accumulators and later layers into saturation.
    extreme = np.where(rng.random((n_extreme, n_in)) < 0.5, lo, hi)
    raw = np.concatenate(
        [np.array(corners[:n_corner], dtype=np.int64).reshape(n_corner, n_in), uniform, extreme]
    ).astype(np.int64)
    kind = np.array(["corner"] * n_corner + ["random"] * (n_uniform + n_extreme))
    return raw, kind


def compare(
    ir: IR, x_raw: np.ndarray, csim_layers: dict[str, np.ndarray], trace: reference.Trace | None = None
) -> Comparison:
    """Every layer's reference output (``trace``, computed when not given) against the C simulation's."""
    trace = trace or reference.run(ir, x_raw)
    total, first, by_layer = 0, None, {}
    compared = 0
    for li, (layer, ref_raw) in enumerate(zip(ir.layers, trace.raw)):
        if layer.name not in csim_layers:
            continue
        compared += 1
        ref_raw = ref_raw.reshape(len(ref_raw), -1)  # image layers: (batch, h, w, c) compared flat
        got = csim_layers[layer.name].reshape(ref_raw.shape)
        bad = ref_raw != got
        count = int(bad.sum())
        by_layer[layer.name] = count
        total += count
        if count and first is None:
            v, j = (int(i) for i in np.argwhere(bad)[0])
            first = Mismatch(layer.name, li, v, j, int(ref_raw[v, j]), int(got[v, j]), [int(a) for a in x_raw[v]])
    return Comparison(len(x_raw), compared, total, first, by_layer)


def _csim_trace(hls_model, ir: IR, x: np.ndarray) -> dict[str, np.ndarray]:
    """Per-layer raw outputs of the C simulation (hls4ml's trace), keyed by IR layer name."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # hls4ml prints "Recompiling ... with tracing"
        _, traces = hls_model.trace(np.ascontiguousarray(x, dtype=np.float64))
    out = {}
    for layer in ir.layers:
        if layer.name in traces:
            out[layer.name] = to_raw(np.asarray(traces[layer.name]).reshape(len(x), -1), layer.result_t, layer.name)
    return out


def _hls_model_for(project: Project, ir: IR):
    """Convert the project's trained model again with the settings its IR records, tracing every layer."""
    from flow.convert import HlsSettings, convert
    from flow.model import load_keras

    settings = HlsSettings.from_ir(ir)
    model = load_keras(project.require(project.keras, "hls"))
    tmp = Path(tempfile.mkdtemp(prefix=f"qflow-verify-{project.name}-"))
    hls_model = convert(model, settings, tmp, trace=True)
    return model, hls_model, tmp


def _verified(project: Project, inputs: str) -> bool:
    """Whether the project holds a passed verify of exactly these inputs, with its vectors."""
    if not (project.verify_json.is_file() and project.vectors.is_file()):
        return False
    try:
        done = read_json(project.verify_json)
    except FlowError:
        return False
    return done.get(warm.FIELD) == inputs and done.get("passed") is True


def verify(project: Project, *, n_random: int = N_RANDOM, seed: int = 0, force: bool = False) -> dict[str, Any]:
    """Run the stage; writes verify.json (and, only when it passed, vectors.npz) and returns verify.json.

    Both record the digest of the IR they came from; a failed run removes vectors.npz, so no later stage can test
    RTL against an unverified reference. A passed run with the same inputs (:mod:`flow.warm`) is not redone.
    """
    import shutil

    project.check_owned()
    ir = project.load_ir()
    inputs = warm.inputs_digest(
        ir=ir.digest(),
        model=warm.file_digest(project.require(project.keras, "hls")),
        data=warm.file_digest(project.require(project.data, "hls")),
        n_random=n_random,
        seed=seed,
    )
    if not force and _verified(project, inputs):
        warm.say_up_to_date(project.name, "verify", inputs)
        return read_json(project.verify_json)
    X_test, y_test, _ = load_test_data(project)
    t0 = time.perf_counter()
    keras_model, hls_model, tmp = _hls_model_for(project, ir)
    try:
        from flow.ir_extract import extract_ir

        fresh = extract_ir(hls_model, ir.name, ir.task.value, ir.class_names)
        if fresh.to_dict() != ir.hls_layers().to_dict():
            raise FlowError(
                f"{project.ir_json}: stale; it does not match the trained model (run `{project.hls_command()}`)"
            )
        # Every layer of every vector is held at once: the first test vectors within the trace budget (the test
        # set is shuffled); the hardware's metrics below use the whole test set.
        n_traced = max(1, reference.batch_limit(ir) - n_random)
        test_raw = reference.quantize_input(ir, X_test[:n_traced].astype(np.float64))
        rand_raw, rand_kind = random_vectors(ir, n_random, seed)
        x_raw = np.concatenate([test_raw, rand_raw])
        kinds = np.concatenate([np.array(["test"] * len(test_raw)), rand_kind])
        info(f"{project.name}: C simulation of {len(x_raw)} vectors, every layer traced")
        t1 = time.perf_counter()
        # One traced run (each trace() call recompiles). The IR's input cast is the one definition of how floats
        # enter: the C simulation gets the values on the input grid, which its own cast keeps exact.
        x_csim = ir.input.type.to_float(x_raw)
        csim = _csim_trace(hls_model, ir, x_csim)
        csim_s = time.perf_counter() - t1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    t2 = time.perf_counter()
    trace = reference.run(ir, x_raw)
    ref_s = time.perf_counter() - t2
    result = compare(ir, x_raw, csim, trace)
    out_raw = trace.raw[-1]
    from flow import qkeras_check

    # QKeras computes the network, not a table's output stage.
    qkeras = qkeras_check.check(keras_model, ir.hls_layers(), test_raw)
    summary: dict[str, Any] = {
        "model": project.name,
        "ir_sha256": ir.digest(),
        warm.FIELD: inputs,
        "vectors_checked": result.vectors,
        "test_vectors": int(len(test_raw)),
        "random_vectors": int(len(rand_raw)),
        "layers_compared": result.layers_compared,
        "mismatches": result.mismatches,
        "mismatches_by_layer": result.mismatches_by_layer,
        "passed": result.passed and qkeras.passed,
        "bit_exact": result.passed,
        "first_mismatch": None if result.first is None else result.first.__dict__,
        "qkeras_vs_reference": qkeras.to_dict(),
        "qkeras_message": qkeras.message(),
        "csim_seconds": round(csim_s, 2),
        "reference_seconds": round(ref_s, 4),
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    arrays = {
        "inputs": x_raw,
        "outputs": out_raw,
        "kind": kinds,
        "input_t": np.array(str(ir.input.type)),
        "output_t": np.array(str(ir.output_t)),
        "ir_sha256": np.array(ir.digest()),
    }
    if ir.task.value == "classification":  # the hardware's metrics: the RTL is checked equal to the reference
        signal = signal_class_of(project)
        traced = len(test_raw) == len(X_test)
        out_test = ir.output_t.to_float(out_raw[: len(test_raw)]) if traced else reference.predict(ir, X_test)
        summary["hardware_metrics"] = classification_metrics(out_test, y_test, signal)
        if signal is not None:
            summary["roc"] = trigger_roc(out_test, y_test, signal)
    if ir.task.value == "classification":
        arrays["classes"] = np.argmax(out_raw, axis=1).astype(np.int64)
    if summary["passed"]:  # bit-exact and QKeras agrees
        write_npz(project.vectors, **arrays)
    else:
        project.vectors.unlink(missing_ok=True)
    write_json(project.verify_json, summary)
    return summary
