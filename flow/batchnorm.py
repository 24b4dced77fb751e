"""Batch normalisation as the hardware computes it: statistics folded into the card's fixed-point scale and shift.

Keras' inference computes ``x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps))``. After
quantization-aware training qflow rewrites each batchnorm of a card as ``scale = q(gamma / sqrt(var + eps))`` and
``shift = q(beta - mean * scale)`` on the grids of the card's ``scale`` and ``bias`` bitwidths (QKeras'
``quantized_bits`` rounding: half to even, saturating), stored back as ``gamma = scale``, ``beta = shift``,
``mean = 0`` and ``var = 1 - eps`` (``var + eps`` is exactly 1 in float32). The Keras model then computes
``x * scale + shift`` within float32 rounding, hls4ml derives the same two constants, and the batchnorm layer is
frozen (inference mode) for the fine-tuning that follows, so the saved model is the specification of the hardware.
"""

from __future__ import annotations

import numpy as np

from flow.card import Bits, Card, LayerSpec
from flow.errors import FlowError


def quantize(values: np.ndarray, bits: Bits) -> np.ndarray:
    """``values`` on the grid of QKeras' ``quantized_bits(W, I)``: half-to-even rounding, saturating."""
    frac_bits = bits.width - 1 - bits.int_bits
    lo, hi = -(2 ** (bits.width - 1)), 2 ** (bits.width - 1) - 1
    raw = np.clip(np.round(np.asarray(values, dtype=np.float64) * 2.0**frac_bits), lo, hi)
    return raw * 2.0**-frac_bits


def folded_variance(eps: float) -> np.float32:
    """The moving variance whose ``var + eps`` is exactly 1 in float32 (and so ``rsqrt`` exactly 1)."""
    var = np.float32(1.0) - np.float32(eps)
    for _ in range(4):  # one float32 step either way settles it
        total = np.float32(var + np.float32(eps))
        if total == np.float32(1.0):
            return var
        var = np.nextafter(var, np.float32(0.0) if total > 1 else np.float32(2.0), dtype=np.float32)
    raise FlowError(f"batch normalisation epsilon {eps}: no float32 variance makes var + eps exactly 1")


def fold(layer, spec: LayerSpec) -> tuple[np.ndarray, np.ndarray]:
    """Rewrite one Keras BatchNormalization as the fixed-point scale and shift of ``spec``; returns both."""
    gamma, beta, mean, var = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    scale = quantize(gamma / np.sqrt(var + layer.epsilon), spec.scale)
    shift = quantize(beta - mean * scale, spec.bias)
    n = len(scale)
    layer.set_weights(
        [
            scale.astype(np.float32),
            shift.astype(np.float32),
            np.zeros(n, np.float32),
            np.full(n, folded_variance(layer.epsilon), np.float32),
        ]
    )
    layer.trainable = False  # inference mode from here on: the folded constants stay as they are
    return scale, shift


def fold_all(model, card: Card) -> int:
    """Fold every batchnorm of ``card`` in ``model`` (the QKeras model); returns how many there were."""
    specs = [spec for spec in card.layers if spec.type == "batchnorm"]
    for spec in specs:
        fold(model.get_layer(spec.name), spec)
    return len(specs)
