"""The layer kinds of the IR: one registry, one module per kind.

Each kind is a frozen dataclass in its own module that owns its fields, ``validate()`` (raw values fit their
types), ``to_dict()``/``from_dict()`` (its node in ``ir.json``), ``out_shape(in_shapes)`` (the shape rule) and
``kernel(xs, in_types)`` (the bit-exact NumPy reference on raw mantissas). Every node also has ``name``,
``inputs`` (node or graph-input names), ``shape`` (its output tensor), ``result_t`` and the class attributes
``kind`` and ``in_hls`` (whether hls4ml's C simulation computes it). Adding a kind: a :class:`LayerKind` member,
its module, an entry in :data:`KINDS`, its RTL emitter in ``flow/rtl`` and its tests.
"""

from __future__ import annotations

from typing import Union

from flow.errors import FlowError
from flow.layers.base import LayerKind, Shape, size
from flow.layers.batchnorm import BatchNormLayer
from flow.layers.cast import CastLayer
from flow.layers.clamp import ClampLayer
from flow.layers.conv2d import Conv2DLayer, Padding
from flow.layers.dense import DenseLayer
from flow.layers.diagonal_difference import DiagonalDifferenceLayer
from flow.layers.flatten import FlattenLayer
from flow.layers.log1p import Log1pLayer
from flow.layers.maxpool2d import MaxPool2DLayer
from flow.layers.relu import ReluLayer
from flow.layers.vote import VoteLayer

Layer = Union[
    DenseLayer,
    ReluLayer,
    CastLayer,
    ClampLayer,
    Conv2DLayer,
    MaxPool2DLayer,
    FlattenLayer,
    BatchNormLayer,
    Log1pLayer,
    DiagonalDifferenceLayer,
    VoteLayer,
]

KINDS: dict[LayerKind, type] = {
    LayerKind.DENSE: DenseLayer,
    LayerKind.RELU: ReluLayer,
    LayerKind.CAST: CastLayer,
    LayerKind.CLAMP: ClampLayer,
    LayerKind.CONV2D: Conv2DLayer,
    LayerKind.MAXPOOL2D: MaxPool2DLayer,
    LayerKind.FLATTEN: FlattenLayer,
    LayerKind.BATCHNORM: BatchNormLayer,
    LayerKind.LOG1P: Log1pLayer,
    LayerKind.DIAGONAL_DIFFERENCE: DiagonalDifferenceLayer,
    LayerKind.VOTE: VoteLayer,
}


def layer_class(kind: str) -> type:
    """The class of a kind name; a FlowError lists the valid names."""
    try:
        return KINDS[LayerKind(kind)]
    except ValueError:
        raise FlowError(f"unknown layer kind {kind!r} (known: {', '.join(k.value for k in KINDS)})") from None


def layer_from_dict(d: dict) -> Layer:
    """A node of ``ir.json`` as its kind's dataclass."""
    return layer_class(d["kind"]).from_dict(d)


__all__ = [
    "KINDS",
    "BatchNormLayer",
    "CastLayer",
    "ClampLayer",
    "Conv2DLayer",
    "DenseLayer",
    "FlattenLayer",
    "MaxPool2DLayer",
    "Padding",
    "DiagonalDifferenceLayer",
    "Layer",
    "LayerKind",
    "Log1pLayer",
    "ReluLayer",
    "Shape",
    "VoteLayer",
    "layer_class",
    "layer_from_dict",
    "size",
]
