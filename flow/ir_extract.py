"""Build the IR from a converted hls4ml model, after its optimizer passes fixed every type and setting."""

from __future__ import annotations

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, AppliedHardware, CastLayer, DenseLayer, InputSpec, Layer, LayerHardware, ReluLayer, Task

SUPPORTED = "Input, Dense, Activation(relu), Activation(linear)"


def _type(precision) -> FixedType:
    return FixedType.parse(str(precision))


def _raw(values: np.ndarray, t: FixedType, what: str) -> np.ndarray:
    """Float weights on the grid of ``t`` as integer mantissas; off-grid values are a conversion bug."""
    scaled = np.asarray(values, dtype=np.float64) * 2.0**t.frac_bits
    raw = np.round(scaled)
    if not np.array_equal(raw, scaled):
        raise FlowError(f"{what}: values are not on the grid of {t}; the IR would not be bit-exact")
    return raw.astype(np.int64)


def _dense(layer, n_out: int, result_t: FixedType) -> DenseLayer:
    w_var, b_var = layer.weights["weight"], layer.weights["bias"]
    weight_t, bias_t = _type(w_var.type.precision), _type(b_var.type.precision)
    w = np.asarray(w_var.data)
    if layer.get_attr("_weights_transposed", False):
        w = w.T  # the Resource strategy stores (n_out, n_in)
    w = w.reshape(int(layer.get_input_variable().size()), n_out)
    return DenseLayer(
        name=layer.name,
        weight_t=weight_t,
        weights=_raw(w, weight_t, f"{layer.name} weights"),
        bias_t=bias_t,
        biases=_raw(np.asarray(b_var.data).reshape(n_out), bias_t, f"{layer.name} biases"),
        accum_t=_type(layer.get_attr("accum_t").precision),
        result_t=result_t,
        inputs=tuple(layer.inputs),
    )


def applied_hardware(hls_model, layer_names: list[str]) -> AppliedHardware:
    """The settings hls4ml applied: I/O type, clock, part, and each layer's reuse factor and strategy."""
    cfg = hls_model.config
    layers = {}
    for layer in hls_model.get_layers():
        strategy = layer.get_attr("strategy")
        if layer.name in layer_names and strategy is not None:  # activations have neither setting
            layers[layer.name] = LayerHardware(int(layer.get_attr("reuse_factor", 1)), str(strategy))
    return AppliedHardware(
        backend=str(cfg.get_config_value("Backend")),
        part=str(cfg.get_config_value("Part")),
        io_type=str(cfg.get_config_value("IOType")),
        clock_period_ns=float(cfg.get_config_value("ClockPeriod")),
        strategy=str(cfg.model_strategy),
        layers=layers,
    )


def extract_ir(hls_model, name: str, task: str, class_names: list[str] | None = None) -> IR:
    """Walk the hls4ml graph in order and turn each layer into an IR node (named inputs as hls4ml wires them)."""
    nodes: list[Layer] = []
    inputs: list[InputSpec] = []
    for layer in hls_model.get_layers():
        cls = layer.class_name
        out_var = layer.get_output_variable()
        result_t = _type(out_var.type.precision)
        shape = tuple(int(d) for d in out_var.shape)
        if cls == "InputLayer" or cls == "Input":
            inputs.append(InputSpec(shape, result_t, layer.name))
        elif cls == "Dense":
            nodes.append(_dense(layer, int(np.prod(shape)), result_t))
        elif cls in ("Activation", "ReLU") and str(layer.get_attr("activation", "")).lower() in ("relu", "linear"):
            kind = ReluLayer if str(layer.get_attr("activation")).lower() == "relu" else CastLayer
            nodes.append(kind(layer.name, shape, result_t, inputs=tuple(layer.inputs)))
        else:
            act = layer.get_attr("activation", None)
            what = f"{cls}({act})" if act else cls
            raise FlowError(
                f"layer {layer.name}: {what} is not supported by the reference and RTL (supported: {SUPPORTED})"
            )
    if not inputs:
        raise FlowError("the hls4ml model has no input layer")
    outputs = [str(o) for o in hls_model.outputs]
    hardware = applied_hardware(hls_model, [node.name for node in nodes])
    ir = IR(name, Task(task), inputs, nodes, class_names, outputs, hardware)
    ir.validate()
    return ir
