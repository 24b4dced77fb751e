"""Build the IR from a converted hls4ml model, after its optimizer passes fixed every type."""

from __future__ import annotations

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, CastLayer, DenseLayer, InputSpec, Layer, ReluLayer, Task

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


def extract_ir(hls_model, name: str, task: str, class_names: list[str] | None = None) -> IR:
    """Walk the hls4ml graph in order and turn each layer into an IR layer."""
    layers: list[Layer] = []
    input_spec: InputSpec | None = None
    for layer in hls_model.get_layers():
        cls = layer.class_name
        out_var = layer.get_output_variable()
        result_t = _type(out_var.type.precision)
        n_out = int(np.prod(out_var.shape))
        if cls == "InputLayer" or cls == "Input":
            input_spec = InputSpec(n=n_out, type=result_t)
        elif cls == "Dense":
            w_var = layer.weights["weight"]
            b_var = layer.weights["bias"]
            weight_t, bias_t = _type(w_var.type.precision), _type(b_var.type.precision)
            w = np.asarray(w_var.data)
            if layer.get_attr("_weights_transposed", False):
                w = w.T  # the Resource strategy stores (n_out, n_in)
            n_in = int(layer.get_input_variable().size())
            w = w.reshape(n_in, n_out)
            layers.append(
                DenseLayer(
                    name=layer.name,
                    weight_t=weight_t,
                    weights=_raw(w, weight_t, f"{layer.name} weights"),
                    bias_t=bias_t,
                    biases=_raw(np.asarray(b_var.data).reshape(n_out), bias_t, f"{layer.name} biases"),
                    accum_t=_type(layer.get_attr("accum_t").precision),
                    result_t=result_t,
                )
            )
        elif cls in ("Activation", "ReLU") and str(layer.get_attr("activation", "")).lower() in ("relu", "linear"):
            act = str(layer.get_attr("activation")).lower()
            kind = ReluLayer if act == "relu" else CastLayer
            layers.append(kind(name=layer.name, n=n_out, result_t=result_t))
        else:
            act = layer.get_attr("activation", None)
            what = f"{cls}({act})" if act else cls
            raise FlowError(
                f"layer {layer.name}: {what} is not supported by the reference and RTL (supported: {SUPPORTED})"
            )
    if input_spec is None:
        raise FlowError("the hls4ml model has no input layer")
    ir = IR(name=name, task=Task(task), input=input_spec, layers=layers, class_names=class_names)
    ir.validate()
    return ir
