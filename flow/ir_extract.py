"""Build the IR from a converted hls4ml model, after its optimizer passes fixed every type and setting."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, AppliedHardware, CastLayer, DenseLayer, InputSpec, Layer, LayerHardware, ReluLayer, Task
from flow.layers import BatchNormLayer, Conv2DLayer, FlattenLayer, MaxPool2DLayer, Padding

SUPPORTED = "Input, Dense, Activation(relu), Activation(linear), Conv2D, Pooling2D(max), Reshape, BatchNormalization"


def _type(precision) -> FixedType:
    return FixedType.parse(str(precision))


def _raw(values: np.ndarray, t: FixedType, what: str) -> np.ndarray:
    """Float weights on the grid of ``t`` as integer mantissas; off-grid values are a conversion bug."""
    scaled = np.asarray(values, dtype=np.float64) * 2.0**t.frac_bits
    raw = np.round(scaled)
    if not np.array_equal(raw, scaled):
        raise FlowError(f"{what}: values are not on the grid of {t}; the IR would not be bit-exact")
    return raw.astype(np.int64)


def _dense(layer, n_out: int, result_t: FixedType, n_in: int | None = None) -> DenseLayer:
    w_var, b_var = layer.weights["weight"], layer.weights["bias"]
    weight_t, bias_t = _type(w_var.type.precision), _type(b_var.type.precision)
    w = np.asarray(w_var.data)
    if layer.get_attr("_weights_transposed", False):
        w = w.T  # the Resource strategy stores (n_out, n_in)
    w = w.reshape(int(layer.get_input_variable().size()) if n_in is None else n_in, n_out)
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


def _conv2d(layer, result_t: FixedType) -> Conv2DLayer:
    """hls4ml's Conv2D (weights (kh, kw, in_channels, filters)); stride 1, padding none or TensorFlow's 'same'."""
    a = layer.get_attr
    in_shape = (int(a("in_height")), int(a("in_width")), int(a("n_chan")))
    kh, kw, n_filt = int(a("filt_height")), int(a("filt_width")), int(a("n_filt"))
    pads = (int(a("pad_top")), int(a("pad_bottom")), int(a("pad_left")), int(a("pad_right")))
    same = (*pad_split(kh), *pad_split(kw))
    if (int(a("stride_height")), int(a("stride_width"))) != (1, 1) or pads not in ((0, 0, 0, 0), same):
        raise FlowError(f"layer {layer.name}: Conv2D with strides or padding {pads} other than stride 1, valid or same")
    dense = _dense(layer, n_filt, result_t, n_in=kh * kw * in_shape[2])
    return Conv2DLayer(
        layer.name,
        in_shape,
        Padding.SAME if any(pads) else Padding.VALID,
        dense.weight_t,
        dense.weights.reshape(kh, kw, in_shape[2], n_filt),
        dense.bias_t,
        dense.biases,
        dense.accum_t,
        result_t,
        inputs=tuple(layer.inputs),
    )


def _batchnorm(layer, shape: tuple[int, ...], result_t: FixedType) -> BatchNormLayer:
    """hls4ml's unfused BatchNormalization (``normalize``): one scale and one bias per channel (the last axis)."""
    s_var, b_var = layer.weights["scale"], layer.weights["bias"]
    scale_t, bias_t = _type(s_var.type.precision), _type(b_var.type.precision)
    channels = shape[-1]
    return BatchNormLayer(
        layer.name,
        shape,
        result_t,
        inputs=tuple(layer.inputs),
        scale_t=scale_t,
        scale=_raw(np.asarray(s_var.data).reshape(channels), scale_t, f"{layer.name} scale"),
        bias_t=bias_t,
        bias=_raw(np.asarray(b_var.data).reshape(channels), bias_t, f"{layer.name} bias"),
    )


def pad_split(kernel: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding at stride 1: (kernel - 1) // 2 before, the rest after."""
    return (kernel - 1) // 2, kernel - 1 - (kernel - 1) // 2


def _pool2d(layer, result_t: FixedType) -> MaxPool2DLayer:
    a = layer.get_attr
    if "max" not in str(a("pool_op", "")).lower() or any(int(a(p)) for p in ("pad_top", "pad_bottom", "pad_left")):
        raise FlowError(f"layer {layer.name}: only max pooling without padding is supported")
    return MaxPool2DLayer(
        layer.name,
        (int(a("in_height")), int(a("in_width")), int(a("n_filt"))),
        (int(a("pool_height")), int(a("pool_width"))),
        (int(a("stride_height")), int(a("stride_width"))),
        _type(a("accum_t").precision),
        result_t,
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
    renamed: dict[str, str] = {}  # a layer hls4ml keeps that the IR folds away -> the tensor it passes on
    for layer in hls_model.get_layers():
        cls = layer.class_name
        out_var = layer.get_output_variable()
        result_t = _type(out_var.type.precision)
        shape = tuple(int(d) for d in out_var.shape)
        if cls == "InputLayer" or cls == "Input":
            inputs.append(InputSpec(shape, result_t, layer.name))
        elif cls == "Dense":
            nodes.append(_dense(layer, int(np.prod(shape)), result_t))
        elif cls == "Conv2D":
            nodes.append(_conv2d(layer, result_t))
        elif cls == "BatchNormalization":
            nodes.append(_batchnorm(layer, shape, result_t))
        elif cls == "Pooling2D":
            nodes.append(_pool2d(layer, result_t))
        elif cls == "Reshape" and not nodes and len(inputs) == 1 and list(layer.inputs) == [inputs[0].name]:
            # A reshape of the graph input (the flat data as an image) keeps every value: the input takes its shape.
            inputs[0] = InputSpec(shape, inputs[0].type, inputs[0].name)
            renamed[layer.name] = inputs[0].name
        elif cls == "Reshape" and len(shape) == 1:
            src = renamed.get(layer.inputs[0], layer.inputs[0])
            in_shape = nodes[-1].shape if nodes and nodes[-1].name == src else inputs[0].shape
            nodes.append(FlattenLayer(layer.name, in_shape, result_t, inputs=(src,)))
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
    nodes = [replace(n, inputs=tuple(renamed.get(i, i) for i in n.inputs)) for n in nodes]
    outputs = [str(o) for o in hls_model.outputs]
    hardware = applied_hardware(hls_model, [node.name for node in nodes])
    ir = IR(name, Task(task), inputs, nodes, class_names, outputs, hardware)
    ir.validate()
    return ir
