"""hls4ml: configuration from the card, conversion with the bit-exact pass, the project on disk, C simulation."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flow import csim_cache
from flow.card import Hardware
from flow.errors import FlowError
from flow.layers import LayerKind
from flow.log import info

PROJECT_NAME = "myproject"


@dataclass(frozen=True)
class HlsSettings:
    """What hls4ml needs beyond the Keras model."""

    hardware: Hardware
    reuse_factors: dict[str, int]

    @classmethod
    def from_card(cls, card) -> HlsSettings:
        return cls(card.hardware, {s.name: s.reuse_factor for s in card.layers if s.type == "dense"})

    @classmethod
    def from_ir(cls, ir) -> HlsSettings:
        """The settings hls4ml applied to ``ir`` (its ``hardware`` record): converting again gives the same model."""
        hw = ir.hardware
        if hw is None:
            raise FlowError(f"IR {ir.name} records no hls4ml settings; rebuild it with `make hls MODEL={ir.name}`")
        hardware = Hardware(hw.backend, hw.part, hw.clock_period_ns, hw.io_type, hw.strategy)
        dense = {node.name for node in ir.nodes if node.kind is LayerKind.DENSE}
        return cls(hardware, {name: rf for name, rf in hw.reuse_factors().items() if name in dense})


def hls_config(keras_model, settings: HlsSettings, *, trace: bool = False) -> dict:
    """hls4ml's per-layer configuration; activation precisions are the exact QKeras types (flow.quantizers)."""
    import hls4ml

    from flow.quantizers import check_model, precision_overrides

    checked = check_model(keras_model, keras_model.name)
    cfg = hls4ml.utils.config_from_keras_model(keras_model, granularity="name", backend=settings.hardware.backend)
    for name, precision in precision_overrides(checked).items():
        if name in cfg["LayerName"]:  # hls4ml would type integer quantizers int<W> and keep_negative=False signed
            cfg["LayerName"][name].setdefault("Precision", {})["result"] = precision
    cfg["Model"]["Strategy"] = settings.hardware.strategy
    for name, rf in settings.reuse_factors.items():
        if name in cfg["LayerName"]:
            cfg["LayerName"][name]["ReuseFactor"] = rf
            cfg["LayerName"][name]["Strategy"] = settings.hardware.strategy
    if trace:
        for layer_cfg in cfg["LayerName"].values():
            layer_cfg["Trace"] = True
    return cfg


def convert(
    keras_model,
    settings: HlsSettings,
    output_dir: Path,
    tb_inputs: np.ndarray | None = None,
    tb_outputs: np.ndarray | None = None,
    *,
    trace: bool = False,
):
    """Convert a QKeras model to an hls4ml ModelGraph writing into ``output_dir`` (not yet written)."""
    import hls4ml

    from flow.log import quiet_tensorflow

    quiet_tensorflow()
    cfg = hls_config(keras_model, settings, trace=trace)
    extra = {}
    if tb_inputs is not None and tb_outputs is not None:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "tb_data").mkdir(exist_ok=True)
        np.save(output_dir / "tb_data" / "tb_input_features.npy", np.asarray(tb_inputs, dtype=np.float64))
        np.save(output_dir / "tb_data" / "tb_output_predictions.npy", np.asarray(tb_outputs, dtype=np.float64))
        extra = {
            "input_data_tb": str(output_dir / "tb_data" / "tb_input_features.npy"),
            "output_data_tb": str(output_dir / "tb_data" / "tb_output_predictions.npy"),
        }
    try:
        hls_model = hls4ml.converters.convert_from_keras_model(
            keras_model,
            hls_config=cfg,
            output_dir=str(output_dir),
            project_name=PROJECT_NAME,
            backend=settings.hardware.backend,
            io_type=settings.hardware.io_type,
            part=settings.hardware.part,
            clock_period=settings.hardware.clock_period_ns,
            bit_exact=True,
            **extra,
        )
    except Exception as exc:  # hls4ml raises bare Exceptions for unsupported layers
        raise FlowError(f"hls4ml could not convert the model: {exc}") from exc
    csim_cache.use_cache(hls_model)
    return hls_model


def write_and_compile(hls_model) -> float:
    """Write the project and build (or reuse, :mod:`flow.csim_cache`) its C simulation; returns seconds taken."""
    t0 = time.perf_counter()
    try:
        reused = csim_cache.compile_cached(hls_model)  # writes the project too
    except FlowError:
        raise
    except Exception as exc:
        raise FlowError(f"hls4ml C simulation did not build: {exc}") from exc
    if reused:
        info("C simulation: these sources were compiled before; the cached library is used")
    return time.perf_counter() - t0


def predict(hls_model, X: np.ndarray) -> np.ndarray:
    """C-simulation outputs for float64 inputs, shape (n, n_outputs)."""
    with csim_cache.in_firmware(hls_model):
        y = hls_model.predict(np.ascontiguousarray(X, dtype=np.float64))
    return np.asarray(y, dtype=np.float64).reshape(len(X), -1)


def find_hls_tool(backend: str) -> str | None:
    """The vendor HLS executable for a backend, if installed."""
    names = ("vitis_hls", "vitis-run") if backend == "Vitis" else ("vivado_hls",)
    for name in names:
        if shutil.which(name):
            return name
    return None


def synthesize(hls_dir: Path, backend: str) -> dict:
    """Run vendor C synthesis when the tool is on PATH; otherwise say it was skipped."""
    tool = find_hls_tool(backend)
    if tool is None:
        info(f"C synthesis skipped: no {'vitis_hls' if backend == 'Vitis' else 'vivado_hls'} on PATH")
        return {"status": "skipped", "reason": "vendor HLS tool not on PATH"}
    t0 = time.perf_counter()
    cmd = [tool, "-f", "build_prj.tcl", "reset=1", "csim=0", "synth=1", "cosim=0", "export=0"]
    proc = subprocess.run(cmd, cwd=hls_dir, capture_output=True, text=True)
    (hls_dir / "csynth.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        return {"status": "failed", "log": "hls/csynth.log", "seconds": time.perf_counter() - t0}
    return {"status": "done", "tool": tool, "log": "hls/csynth.log", "seconds": time.perf_counter() - t0}
