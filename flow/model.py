"""Keras models from a card: the quantized QKeras model and its float twin."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from flow.card import Bits, Card, LayerSpec
from flow.errors import FlowError


def _qbits(bits: Bits):
    from qkeras import quantized_bits

    # alpha=1: 'auto' scales add a layer that hls4ml cannot make bit-exact.
    return quantized_bits(bits.width, bits.int_bits, alpha=1)


def output_units(n_outputs: int) -> tuple[int, ...]:
    """The last dense layer's allowed widths: one logit per class, or a single logit for two classes."""
    return (n_outputs, 1) if n_outputs == 2 else (n_outputs,)


def _dense(spec: LayerSpec, quantized: bool):
    from qkeras import QDense
    from tensorflow.keras import layers

    if not quantized:
        return layers.Dense(spec.units, name=spec.name)
    return QDense(spec.units, kernel_quantizer=_qbits(spec.weight), bias_quantizer=_qbits(spec.bias), name=spec.name)


def _relu(spec: LayerSpec, quantized: bool):
    from qkeras import QActivation, quantized_relu
    from tensorflow.keras import layers

    if not quantized:
        return layers.ReLU(name=spec.name)
    return QActivation(quantized_relu(spec.activation.width, spec.activation.int_bits), name=spec.name)


def _conv2d(spec: LayerSpec, quantized: bool):
    from qkeras import QConv2D
    from tensorflow.keras import layers

    conv = dict(filters=spec.filters, kernel_size=spec.kernel, padding=spec.padding, name=spec.name)
    if not quantized:
        return layers.Conv2D(**conv)
    return QConv2D(**conv, kernel_quantizer=_qbits(spec.weight), bias_quantizer=_qbits(spec.bias))


def _keras(name: str):
    """A plain Keras layer class, the same in the float and the quantized model."""

    def build(spec: LayerSpec, quantized: bool):
        from tensorflow.keras import layers

        args = {"dropout": (spec.rate,), "maxpool2d": (spec.pool,)}.get(spec.type, ())
        return getattr(layers, name)(*args, name=spec.name)

    return build


# Card layer type (flow.card.CARD_LAYERS) -> its Keras layer, quantized or the float twin. A batchnorm trains
# as Keras' own layer; flow/batchnorm.py folds its statistics into the card's fixed-point scale and shift.
KERAS_LAYERS: dict[str, Callable[[LayerSpec, bool], object]] = {
    "dense": _dense,
    "relu": _relu,
    "dropout": _keras("Dropout"),
    "conv2d": _conv2d,
    "maxpool2d": _keras("MaxPooling2D"),
    "flatten": _keras("Flatten"),
    "batchnorm": _keras("BatchNormalization"),
}


def build_model(
    card: Card, n_features: int, n_outputs: int, *, quantized: bool = True, image_shape: list[int] | None = None
):
    """The card's network as a Keras model; ``quantized=False`` gives the float baseline. A card with conv2d layers
    reshapes its flat input (after the input quantizer) to the dataset's ``image_shape``."""
    import tensorflow as tf
    from qkeras import QActivation

    layers = tf.keras.layers
    inp = tf.keras.Input((n_features,), name="x")
    x = QActivation(_qbits(card.input), name="input_q")(inp) if quantized else inp
    last_units = [spec.units for spec in card.layers if spec.type == "dense"][-1]
    if last_units not in output_units(n_outputs):
        raise FlowError(
            f"{card.path}: layers: the last dense layer has {last_units} units; the dataset has {n_outputs} outputs"
        )
    if any(spec.type == "conv2d" for spec in card.layers):
        if not image_shape or int(np.prod(image_shape)) != n_features:
            raise FlowError(f"{card.path}: layers: conv2d layers need image data; dataset has {n_features} features")
        x = layers.Reshape(tuple(image_shape), name="image")(x)
    for spec in card.layers:
        x = KERAS_LAYERS[spec.type](spec, quantized)(x)
    if quantized and card.output is not None:
        x = QActivation(_qbits(card.output), name="output_q")(x)
    return tf.keras.Model(inp, x, name=card.name)


def custom_objects() -> dict:
    """What ``load_model`` needs to read a saved QKeras model."""
    from qkeras.utils import _add_supported_quantized_objects

    objects: dict = {}
    _add_supported_quantized_objects(objects)
    return objects


def load_keras(path):
    """Load a saved (Q)Keras model."""
    import tensorflow as tf

    if Path(path).is_dir():
        raise FlowError(f"{path}: is a directory; expected a saved QKeras .h5 model file")
    try:
        return tf.keras.models.load_model(path, custom_objects=custom_objects(), compile=False)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise FlowError(f"{path}: not a readable QKeras .h5 model ({reason})") from None


INPUT_QUANTIZER_NAME = "qflow_input_q"


def add_input_quantizer(keras_model, width: int, int_bits: int):
    """The same network (same weights) behind ``QActivation(quantized_bits(width, int_bits, alpha=1))``: the input
    quantizer hls4ml's bit-exact pass needs, which the C simulation, the IR and QKeras then share."""
    import tensorflow as tf
    from qkeras import QActivation, quantized_bits

    inp = tf.keras.Input(keras_model.input_shape[1:], name=keras_model.layers[0].name)
    x = QActivation(quantized_bits(width, int_bits, alpha=1), name=INPUT_QUANTIZER_NAME)(inp)
    for layer in keras_model.layers[1:]:  # a single chain (flow.quantizers.check_model): reuse the layer objects
        x = layer(x)
    return tf.keras.Model(inp, x, name=keras_model.name)
