"""What qflow accepts from a QKeras model: one registry of quantizers and one of layers, checked before any work.

Each supported quantizer maps to the exact ap_fixed type that reproduces QKeras' forward pass (``tf.round`` is
half-to-even, ``clip`` saturates), so hls4ml and the IR get the same meaning as the trained model:

* ``quantized_bits(W, I)`` (alpha 1 or None, symmetric 0): ``fixed<W, I+1, RND_CONV, SAT>``, also when ``I = W-1``
  (hls4ml would declare ``int<W>``, losing QKeras' rounding and saturation); with ``keep_negative=False``:
  ``ufixed<W, I, RND_CONV, SAT>`` (hls4ml would keep it signed).
* ``quantized_relu(W, I)`` (negative_slope 0): ``ufixed<W, I, RND_CONV, SAT>``.

Anything else is refused in one line naming the layer, its quantizer and what is supported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding

SUPPORTED_QUANTIZERS = "quantized_bits(W,I) and quantized_relu(W,I) with alpha=1, symmetric=0, no stochastic rounding"
SUPPORTED_LAYERS = (
    "InputLayer, QDense, QActivation, Dropout, Activation('linear'); for images QConv2D (stride 1, valid or same), "
    "MaxPooling2D (no padding), Flatten and a Reshape of the input; BatchNormalization right after a QDense or QConv2D"
)


class Unsupported(Exception):
    """A quantizer setting with no bit-exact hardware meaning here (message: what is wrong)."""


def _config(quantizer) -> tuple[str, dict]:
    """A quantizer object, its serialised dict or its string form as (class name, config)."""
    if quantizer is None:
        return "", {}
    if isinstance(quantizer, str):
        from qkeras.quantizers import get_quantizer

        quantizer = get_quantizer(quantizer)
    if isinstance(quantizer, dict):
        return str(quantizer.get("class_name", "")), dict(quantizer.get("config") or {})
    if hasattr(quantizer, "get_config"):
        return type(quantizer).__name__, dict(quantizer.get_config())
    return getattr(quantizer, "__name__", type(quantizer).__name__), {}


def _int(cfg: dict, key: str, default: int) -> int:
    value = cfg.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Unsupported(f"{key}={value!r} is not a number") from None
    if number != int(number):
        raise Unsupported(f"{key}={value!r} is not an integer")
    return int(number)


def _common(cfg: dict) -> None:
    alpha = cfg.get("alpha")
    if alpha is not None and not (isinstance(alpha, (int, float)) and float(alpha) == 1.0):
        raise Unsupported(
            f"alpha={alpha!r} (a scale hls4ml cannot reproduce bit for bit; use alpha=1: QKeras gives a weight "
            "quantizer without alpha 'auto_po2')"
        )
    if cfg.get("use_stochastic_rounding"):
        raise Unsupported("use_stochastic_rounding=True (not deterministic)")
    if float(cfg.get("qnoise_factor", 1.0)) != 1.0:
        raise Unsupported(f"qnoise_factor={cfg['qnoise_factor']} (only 1.0 quantizes fully)")


def _quantized_bits(cfg: dict) -> FixedType:
    _common(cfg)
    width, integer = _int(cfg, "bits", 8), _int(cfg, "integer", 0)
    if cfg.get("symmetric"):
        raise Unsupported("symmetric=1")
    if width < 2 or integer < 0 or integer >= width:
        raise Unsupported(f"bits={width}, integer={integer} (need bits >= 2 and 0 <= integer < bits)")
    if cfg.get("keep_negative", True):
        return FixedType(width, integer + 1, True, Rounding.RND_CONV, Overflow.SAT)
    return FixedType(width, integer, False, Rounding.RND_CONV, Overflow.SAT)


def _quantized_relu(cfg: dict) -> FixedType:
    _common(cfg)
    width, integer = _int(cfg, "bits", 8), _int(cfg, "integer", 0)
    if float(cfg.get("negative_slope", 0.0) or 0.0) != 0.0:
        raise Unsupported(f"negative_slope={cfg['negative_slope']} (leaky ReLU is not in the IR)")
    if cfg.get("use_sigmoid"):
        raise Unsupported("use_sigmoid=1")
    if not cfg.get("is_quantized_clip", True) and cfg.get("relu_upper_bound") is not None:
        raise Unsupported(f"relu_upper_bound={cfg['relu_upper_bound']}")
    if width < 1 or integer < 0 or integer > width:
        raise Unsupported(f"bits={width}, integer={integer} (need bits >= 1 and 0 <= integer <= bits)")
    return FixedType(width, integer, False, Rounding.RND_CONV, Overflow.SAT)


# The registry: QKeras quantizer class -> the ap_fixed type of its output (or Unsupported).
QUANTIZERS: dict[str, Callable[[dict], FixedType]] = {
    "quantized_bits": _quantized_bits,
    "quantized_relu": _quantized_relu,
}


def quantizer_type(quantizer) -> FixedType:
    """The exact type of a quantizer's outputs; raises :class:`Unsupported` with the reason."""
    name, cfg = _config(quantizer)
    if name not in QUANTIZERS:
        raise Unsupported(f"{name or 'no quantizer'} is not supported")
    return QUANTIZERS[name](cfg)


def describe(quantizer) -> str:
    """A quantizer as the user wrote it (QKeras' own string form)."""
    if quantizer is None:
        return "none"
    if isinstance(quantizer, (str, dict)):
        name, cfg = _config(quantizer)
        return f"{name}({', '.join(f'{k}={v}' for k, v in cfg.items())})"
    return str(quantizer)


@dataclass(frozen=True)
class QLayer:
    """One Keras layer as qflow sees it: its name, class and the types of what it quantizes."""

    name: str
    class_name: str
    output_t: FixedType | None = None  # the activation quantizer's type (None: no quantizer at the output)
    weight_t: FixedType | None = None
    bias_t: FixedType | None = None
    hls_name: str = ""  # the hls4ml layer that carries ``output_t`` (a QDense's activation is split off)

    @property
    def quantizes_output(self) -> bool:
        return self.output_t is not None


def _refuse(where: str, layer, role: str, quantizer, reason: str) -> FlowError:
    return FlowError(
        f"{where}: layer {layer.name} ({type(layer).__name__}) {role} {describe(quantizer)}: {reason} "
        f"(supported: {SUPPORTED_QUANTIZERS})"
    )


def _typed(where: str, layer, role: str, quantizer) -> FixedType:
    try:
        return quantizer_type(quantizer)
    except Unsupported as exc:
        raise _refuse(where, layer, role, quantizer, str(exc)) from None


def _param_type(where: str, layer, attr: str, noun: str, fix: str) -> FixedType:
    """The fixed-point type of a QDense parameter quantizer (``attr``); float or unsigned parameters are refused."""
    # QDense keeps the quantizer objects in *_internal (the plain attribute may be the serialised form).
    q = getattr(layer, f"{attr}_internal", None) or getattr(layer, attr, None)
    if q is None:
        raise FlowError(
            f"{where}: layer {layer.name} ({type(layer).__name__}) has no {attr}: "
            f"float {noun} have no exact hardware meaning ({fix})"
        )
    t = _typed(where, layer, attr, q)
    if not t.signed:
        raise _refuse(where, layer, attr, q, f"keep_negative=False {noun} (hls4ml types them signed)")
    return t


def _qdense(where: str, layer) -> QLayer:
    return _weighted(where, layer, "QDense")


def _qconv2d(where: str, layer) -> QLayer:
    strides, dilation = tuple(layer.strides), tuple(layer.dilation_rate)
    if strides != (1, 1) or dilation != (1, 1) or layer.data_format != "channels_last":
        raise FlowError(
            f"{where}: layer {layer.name} (QConv2D) has strides {strides}, dilation {dilation}, {layer.data_format}; "
            "qflow converts stride 1, no dilation, channels_last"
        )
    return _weighted(where, layer, "QConv2D")


def _maxpool2d(where: str, layer) -> QLayer:
    if layer.padding != "valid" or tuple(layer.strides) != tuple(layer.pool_size):
        raise FlowError(
            f"{where}: layer {layer.name} (MaxPooling2D) has padding {layer.padding!r}, strides {layer.strides}; "
            "qflow converts padding='valid' with strides equal to the pool size"
        )
    return _passthrough(where, layer)


def _batchnorm(where: str, layer) -> QLayer:
    axis = layer.axis if isinstance(layer.axis, int) else (list(layer.axis) or [None])[-1]
    if axis not in (-1, len(layer.input_shape) - 1):
        raise FlowError(
            f"{where}: layer {layer.name} (BatchNormalization) normalises axis {layer.axis}; qflow converts the "
            "channel (last) axis"
        )
    return _passthrough(where, layer)


def _weighted(where: str, layer, class_name: str) -> QLayer:
    """A QDense or QConv2D: quantized weights and biases, an optional activation quantizer."""
    weight_t = _param_type(where, layer, "kernel_quantizer", "weights", "give it quantized_bits(W,I,alpha=1)")
    bias_t = None
    if layer.use_bias:
        bias_t = _param_type(
            where, layer, "bias_quantizer", "biases", "give it quantized_bits(W,I,alpha=1) or use_bias=False"
        )
    activation = getattr(layer, "activation", None)
    output_t = _activation_type(where, layer, activation)
    # hls4ml splits a QDense's activation into a layer named after the quantizer's class.
    hls_name = f"{layer.name}_{type(activation).__name__}" if output_t is not None else layer.name
    return QLayer(layer.name, class_name, output_t, weight_t, bias_t, hls_name)


def _activation_type(where: str, layer, activation) -> FixedType | None:
    """The type of a layer's activation: None for linear, a quantizer's type, or a one-line refusal."""
    name = getattr(activation, "__name__", None)
    if activation is None or name == "linear":
        return None
    if isinstance(activation, str):
        if activation == "linear":
            return None
        from qkeras.quantizers import get_quantizer

        activation = get_quantizer(activation)
    if type(activation).__name__ in QUANTIZERS or hasattr(activation, "get_config"):
        return _typed(where, layer, "activation", activation)
    raise FlowError(
        f"{where}: layer {layer.name} ({type(layer).__name__}) activation {name or activation!r} is unquantized: "
        f"it has no exact hardware meaning (use QActivation with {SUPPORTED_QUANTIZERS}); "
        "a softmax is not needed: the hardware outputs the logits and their argmax"
    )


def _qactivation(where: str, layer) -> QLayer:
    return QLayer(layer.name, "QActivation", _activation_type(where, layer, layer.activation), hls_name=layer.name)


def _activation(where: str, layer) -> QLayer:
    return QLayer(layer.name, "Activation", _activation_type(where, layer, layer.activation), hls_name=layer.name)


def _passthrough(where: str, layer) -> QLayer:
    return QLayer(layer.name, type(layer).__name__)


# The registry of Keras layer classes qflow converts; each returns its QLayer or raises a one-line FlowError.
LAYERS: dict[str, Callable[[str, object], QLayer]] = {
    "InputLayer": _passthrough,
    "QDense": _qdense,
    "QActivation": _qactivation,
    "Activation": _activation,
    "Dropout": _passthrough,
    "QConv2D": _qconv2d,
    "MaxPooling2D": _maxpool2d,
    "Flatten": _passthrough,
    "Reshape": _passthrough,
    "BatchNormalization": _batchnorm,
}


def check_model(keras_model, where: str) -> list[QLayer]:
    """Every layer of a Keras model checked against the registries, in order (a single chain, 1-D input)."""
    layers = list(keras_model.layers)
    if len(keras_model.inputs) != 1 or len(keras_model.outputs) != 1:
        raise FlowError(
            f"{where}: the model has {len(keras_model.inputs)} inputs and {len(keras_model.outputs)} "
            "outputs; qflow converts one input and one output"
        )
    shape = tuple(keras_model.input_shape)
    if len(shape) != 2:
        raise FlowError(f"{where}: input shape {shape[1:]}: qflow converts a flat (n,) input")
    checked: list[QLayer] = []
    previous = None
    feeds = _feeds(keras_model)
    for layer in layers:
        kind = type(layer).__name__
        if kind not in LAYERS:
            raise FlowError(
                f"{where}: layer {layer.name} ({kind}) is not supported (supported layers: {SUPPORTED_LAYERS})"
            )
        if previous is not None and layer.name in feeds:
            if feeds[layer.name] != {previous.name}:
                raise FlowError(
                    f"{where}: layer {layer.name} ({kind}) is not fed by the layer before it "
                    f"({previous.name}); qflow converts a single chain of layers"
                )
        q = LAYERS[kind](where, layer)
        quantizing = [c for c in checked if c.class_name not in ("InputLayer", "Dropout")]
        if q.class_name in ("QActivation", "Activation") and quantizing and quantizing[-1].quantizes_output:
            before = quantizing[-1]
            raise FlowError(
                f"{where}: layer {layer.name} ({kind}) quantizes the output of {before.name}'s quantizer again; "
                "hls4ml merges the two and loses the first rounding (keep one quantizer between QDense layers)"
            )
        if q.class_name == "BatchNormalization" and (
            not checked or checked[-1].class_name not in ("QDense", "QConv2D") or checked[-1].quantizes_output
        ):
            raise FlowError(
                f"{where}: layer {layer.name} (BatchNormalization) must follow a QDense or QConv2D without an "
                "activation: it scales that layer's exact outputs"
            )
        checked.append(q)
        previous = layer
    if not any(q.class_name == "QDense" for q in checked):
        raise FlowError(
            f"{where}: the model has no QDense layer (only {', '.join(q.class_name for q in checked)}); "
            "qflow converts networks with at least one QDense"
        )
    return checked


def _feeds(keras_model) -> dict[str, set[str]]:
    """Layer name -> the names of the layers feeding it, from a functional model's config (a Sequential is a chain)."""
    try:
        layers = keras_model.get_config().get("layers", [])
    except (NotImplementedError, AttributeError, TypeError):
        return {}
    feeds: dict[str, set[str]] = {}
    for entry in layers:
        nodes = entry.get("inbound_nodes") if isinstance(entry, dict) else None
        if isinstance(nodes, list):
            feeds[entry.get("name", "")] = {str(src[0]) for node in nodes for src in node if isinstance(src, list)}
    return feeds


def input_quantizer(checked: list[QLayer]) -> QLayer | None:
    """The QActivation(quantized_bits) right after the input, if the model has one (what hls4ml's bit-exact pass
    needs; without it qflow adds one)."""
    body = [q for q in checked if q.class_name not in ("InputLayer", "Dropout")]
    first = body[0] if body else None
    if first is not None and first.class_name == "QActivation" and first.output_t is not None:
        return first
    return None


def precision_overrides(checked: list[QLayer]) -> dict[str, str]:
    """hls4ml ``Precision.result`` per activation layer: the registry's exact type where hls4ml's own differs."""
    return {q.hls_name: str(q.output_t) for q in checked if q.output_t is not None}
