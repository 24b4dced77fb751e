"""Batch normalisation folded into the card's fixed-point scale and shift (flow/batchnorm.py), and its card rules."""

from __future__ import annotations

import numpy as np
import pytest

from flow.batchnorm import fold, folded_variance, quantize
from flow.card import parse_card
from flow.card_schema import Bits
from flow.errors import FlowError

CARD = {
    "name": "bn",
    "dataset": {"kind": "trigger", "size": 6},
    "input": "(9,8)",
    "bitwidths": {"conv": "(8,2)", "dense": "(8,2)", "activation": "(10,4)", "batchnorm": "(10,3)"},
    "layers": [
        {"type": "conv2d", "filters": 2, "kernel": 3},
        {"type": "batchnorm"},
        {"type": "relu"},
        {"type": "flatten"},
        {"type": "dense", "units": 1},
    ],
}


def test_quantize_is_qkeras_quantized_bits() -> None:
    from qkeras import quantized_bits

    x = np.concatenate([np.linspace(-9, 9, 2001), [0.03125 * k + 0.015625 for k in range(-8, 8)]])  # ties
    for bits in (Bits(8, 2), Bits(10, 3), Bits(6, 0)):
        want = np.asarray(quantized_bits(bits.width, bits.int_bits, alpha=1)(x.astype(np.float32)), dtype=np.float64)
        assert np.array_equal(quantize(x, bits), want)
    assert not np.array_equal(quantize(x, Bits(8, 2)), quantize(x, Bits(8, 3)))  # a checker that can tell


@pytest.mark.parametrize("eps", [1e-3, 1e-5, 0.01, 0.3])
def test_folded_variance_makes_the_denominator_exactly_one(eps: float) -> None:
    var = folded_variance(eps)
    assert np.float32(var + np.float32(eps)) == 1.0
    assert 1.0 / np.sqrt(np.float32(var) + np.float32(eps)) == 1.0


def test_a_folded_keras_layer_computes_the_fixed_point_scale_and_shift() -> None:
    import tensorflow as tf

    from flow.card import LayerSpec

    rng = np.random.default_rng(0)
    layer = tf.keras.layers.BatchNormalization(name="bn")
    layer.build((None, 3))
    layer.set_weights([rng.normal(1, 0.3, 3), rng.normal(0, 1, 3), rng.normal(5, 2, 3), rng.uniform(1, 40, 3)])
    spec = LayerSpec(type="batchnorm", name="bn", scale=Bits(10, 3), bias=Bits(10, 3))
    scale, shift = fold(layer, spec)
    assert np.array_equal(quantize(scale, spec.scale), scale) and np.array_equal(quantize(shift, spec.bias), shift)
    x = np.round(rng.normal(0, 20, (500, 3)) * 64) / 64  # exact float32 values, as the layer before gives
    got = np.asarray(layer(tf.constant(x, tf.float32), training=False), dtype=np.float64)
    exact = x * scale + shift
    assert np.abs(got - exact).max() <= 4 * 2.0**-24 * np.abs(exact).max()
    assert not layer.trainable
    # Without the fold the layer computes something else: the check above can fail.
    layer.set_weights([np.ones(3), np.zeros(3), np.full(3, 5.0), np.full(3, 4.0)])
    assert np.abs(np.asarray(layer(tf.constant(x, tf.float32), training=False)) - exact).max() > 0.1


def test_card_batchnorm_takes_its_bitwidths_and_overrides() -> None:
    card = parse_card(CARD)
    bn = card.layers[1]
    assert (bn.type, bn.name, str(bn.scale), str(bn.bias)) == ("batchnorm", "bn1", "(10,3)", "(10,3)")
    over = {**CARD, "layers": [CARD["layers"][0], {"type": "batchnorm", "scale": "(12,4)"}, *CARD["layers"][2:]]}
    bn = parse_card(over).layers[1]
    assert (str(bn.scale), str(bn.bias)) == ("(12,4)", "(10,3)")
    assert card.bitwidths()["bn1.scale"] == "(10,3)"


@pytest.mark.parametrize(
    "layers, needle",
    [
        ([{"type": "batchnorm"}, {"type": "dense", "units": 1}], "layers[0]: a batchnorm goes right after a dense"),
        (
            [{"type": "dense", "units": 4}, {"type": "relu"}, {"type": "batchnorm"}, {"type": "dense", "units": 1}],
            "layers[2]: a batchnorm goes right after a dense or conv2d layer",
        ),
        (
            [{"type": "dense", "units": 4}, {"type": "batchnorm", "gamma": 1}, {"type": "dense", "units": 1}],
            "layers[1].gamma: unknown field; allowed: bias, name, scale, type",
        ),
        (
            [{"type": "dense", "units": 4}, {"type": "batchnorm", "scale": "(12,13)"}, {"type": "dense", "units": 1}],
            "layers[1].scale:",
        ),
    ],
)
def test_card_batchnorm_errors_are_one_line(layers, needle) -> None:
    spectra = {"kind": "spectra", "diagonal": 5}
    data = {k: v for k, v in CARD.items() if k != "layers"} | {"layers": layers, "dataset": spectra}
    with pytest.raises(FlowError) as err:
        parse_card(data)
    assert needle in str(err.value) and "\n" not in str(err.value)
