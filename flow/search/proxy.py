"""A fast analytic hardware cost: bit operations of the multipliers, adders and registers of a network.

For a dense layer with ``n_in`` inputs of ``bx`` bits, weights of ``bw`` bits and ``nnz_j`` non-zero
quantized weights into output ``j`` (``nnz = Σ_j nnz_j``), the accumulator width is hls4ml's ``auto`` rule
``acc = bx + bw + ⌈log2 n_in⌉ (+1 with a bias)`` and

* ``parallel`` (one constant multiplier per weight, zero weights free):
  ``mult = nnz · bx · bw``; ``add = Σ_j acc · max(nnz_j + [b_j ≠ 0] − 1, 0)``;
* ``folded`` (reuse factor R, ``P = ⌈n_in·n_out / R⌉`` shared multipliers, every weight in a ROM):
  ``mult = P · bx · bw``; ``add = P · acc``; ``rom = n_in · n_out · bw / 64`` (a LUT6 holds 64 ROM bits);
* ``shiftadd`` (multiplierless): ``mult = 0``; ``add = Σ_j acc · max(d_j + [b_j ≠ 0] − 1, 0)`` with ``d_j`` the
  canonical-signed-digit count of column j's weights;
* every architecture: ``reg = n_out · b_out`` (the layer's output register, ``b_out`` the width after its ReLU or output
  quantizer) plus ``n_in · bx`` for the network's input register.

``proxy = Σ_layers (mult + add + rom + reg)``, in bit operations (a full-adder bit and a partial-product bit
cost about one LUT each). It ranks configurations; it is not a LUT count. Each architecture's terms are its
``proxy_terms`` in flow/rtl (the architecture registry).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flow.card import Card
from flow.errors import FlowError


@dataclass(frozen=True)
class DenseShape:
    """What the proxy needs of one dense layer: quantized weights (n_in, n_out), biases and bit widths."""

    name: str
    weights: np.ndarray
    biases: np.ndarray
    x_bits: int
    w_bits: int
    out_bits: int | None = None  # None: the accumulator width
    reuse_factor: int = 1

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[1])

    @property
    def acc_bits(self) -> int:
        has_bias = bool(np.any(self.biases != 0))
        return self.x_bits + self.w_bits + math.ceil(math.log2(max(self.n_in, 1))) + int(has_bias)


def layer_cost(layer: DenseShape, arch: str) -> dict[str, float]:
    """The proxy terms of one dense layer (without the network's input register): the architecture's own
    ``proxy_terms`` (flow/rtl's registry) plus the layer's output register."""
    from flow.rtl import get_arch

    nnz = int((layer.weights != 0).sum())
    out_bits = layer.out_bits if layer.out_bits is not None else layer.acc_bits
    terms = get_arch(arch).proxy_terms(layer)
    return {**terms, "reg": float(layer.n_out * out_bits), "nonzero_weights": nnz, "acc_bits": layer.acc_bits}


def proxy_cost(layers: list[DenseShape], arch: str) -> dict:
    """``{"total", "mult", "add", "rom", "reg", "nonzero_weights", "layers": {...}}`` of a network."""
    if not layers:
        raise FlowError("proxy cost: the network has no dense layer")
    per = {layer.name: layer_cost(layer, arch) for layer in layers}
    out: dict = {k: sum(c[k] for c in per.values()) for k in ("mult", "add", "rom", "reg", "nonzero_weights")}
    out["reg"] += layers[0].n_in * layers[0].x_bits
    out["total"] = out["mult"] + out["add"] + out["rom"] + out["reg"]
    out["layers"] = per
    return out


def conv_as_dense(name: str, kernel: np.ndarray, bias: np.ndarray, in_shape, padding: str) -> tuple:
    """A convolution's (quantized float) kernel as its full dense matrix and repeated biases (the form the
    ``parallel`` RTL builds: Conv2DLayer.as_full_dense)."""
    from flow.fixed import FixedType
    from flow.layers import Conv2DLayer, Padding

    t = FixedType(32, 16)  # the proxy needs only which weights are non-zero and their digits
    conv = Conv2DLayer(name, tuple(in_shape), Padding(padding), t, np.asarray(kernel), t, np.asarray(bias), t, t)
    full = conv.as_full_dense()
    return full.weights, full.biases


def shapes_from_model(card: Card, model) -> list[DenseShape]:
    """The weighted layers of a trained QKeras model built from ``card`` as dense shapes, with their quantized
    weights: a conv2d as its full dense layer, a batchnorm as a diagonal one (one multiplier per element)."""
    shapes: list[DenseShape] = []
    x_bits = card.input.width
    dense = [layer for layer in card.layers if layer.type == "dense"]
    for spec in card.layers:
        if spec.type == "relu":
            x_bits = spec.activation.width
            if shapes and shapes[-1].out_bits is None:
                shapes[-1] = _with_out(shapes[-1], spec.activation.width)
        elif spec.type == "conv2d":
            layer = model.get_layer(spec.name)
            kernel, bias = layer.get_weights()
            wq = np.asarray(layer.kernel_quantizer_internal(kernel)).reshape(kernel.shape)
            bq = np.asarray(layer.bias_quantizer_internal(bias)).reshape(bias.shape)
            w, b = conv_as_dense(spec.name, wq, bq, layer.input_shape[1:], spec.padding)
            shapes.append(DenseShape(spec.name, w, b, x_bits, spec.weight.width))
            x_bits = shapes[-1].acc_bits
        elif spec.type == "batchnorm":
            layer = model.get_layer(spec.name)
            n = int(np.prod(layer.input_shape[1:]))
            scale, shift = (np.asarray(v, dtype=np.float64) for v in layer.get_weights()[:2])  # folded (flow.batchnorm)
            reps = n // len(scale)
            shapes.append(
                DenseShape(spec.name, np.diag(np.tile(scale, reps)), np.tile(shift, reps), x_bits, spec.scale.width)
            )
            x_bits = shapes[-1].acc_bits
        elif spec.type == "dense":
            layer = model.get_layer(spec.name)
            kernel, bias = layer.get_weights()
            wq = np.asarray(layer.kernel_quantizer_internal(kernel)).reshape(kernel.shape)
            bq = np.asarray(layer.bias_quantizer_internal(bias)).reshape(bias.shape)
            shape = DenseShape(spec.name, wq, bq, x_bits, spec.weight.width, None, spec.reuse_factor)
            if spec is dense[-1] and card.output is not None:
                shape = _with_out(shape, card.output.width)
            shapes.append(shape)
            x_bits = shape.acc_bits  # a dense straight after a dense sees the accumulator
    return shapes


def shapes_from_ir(ir, reuse_factors: dict[str, int] | None = None) -> list[DenseShape]:
    """The weighted layers of a chain IR as dense shapes (raw integer weights; only zero/non-zero and widths
    matter; a conv2d as its full dense layer, a batchnorm as a diagonal one); reuse factors default to the ones
    hls4ml applied (the IR's)."""
    from flow.ir import LayerKind

    shapes: list[DenseShape] = []
    layers = ir.chain("the cost proxy")
    reuse_factors = ir.reuse_factors() if reuse_factors is None else reuse_factors
    weighted = (LayerKind.DENSE, LayerKind.CONV2D, LayerKind.BATCHNORM)
    for k, (layer, in_t) in enumerate(zip(layers, ir.input_types())):
        if layer.kind not in weighted:
            continue
        out_t = layer.result_t
        for nxt in layers[k + 1 :]:
            if nxt.kind in weighted:
                break
            out_t = nxt.result_t
        if layer.kind is LayerKind.BATCHNORM:  # one multiplier per element: a diagonal layer
            reps = int(np.prod(layer.shape)) // layer.channels
            weights, biases, w_bits = np.diag(np.tile(layer.scale, reps)), np.tile(layer.bias, reps), layer.scale_t
        else:
            dense = layer.as_full_dense() if layer.kind is LayerKind.CONV2D else layer
            weights, biases, w_bits = dense.weights, dense.biases, dense.weight_t
        shapes.append(
            DenseShape(
                layer.name,
                np.asarray(weights),
                np.asarray(biases),
                in_t.width,
                w_bits.width,
                out_t.width,
                reuse_factors.get(layer.name, 1),
            )
        )
    return shapes


def _with_out(shape: DenseShape, out_bits: int) -> DenseShape:
    return DenseShape(shape.name, shape.weights, shape.biases, shape.x_bits, shape.w_bits, out_bits, shape.reuse_factor)
