"""The layer kinds of the IR: one registry, one module per kind.

Each kind is a frozen dataclass in its own module that owns its fields, ``validate()`` (raw values fit their
types), ``to_dict()``/``from_dict()`` (its node in ``ir.json``), ``out_shape(in_shapes)`` (the shape rule) and
``kernel(xs, in_types)`` (the bit-exact NumPy reference on raw mantissas). Every node also has ``name``,
``inputs`` (node or graph-input names), ``shape`` (its output tensor), ``result_t`` and the class attributes
``kind`` and ``in_hls`` (whether hls4ml's C simulation computes it): :class:`~flow.layers.base.LayerNode`.
Adding a kind: a :class:`LayerKind` member and its module here, whose class is ``@register``-ed (this package
imports every module in it), then its RTL emitter in ``flow/rtl`` and its tests. The names below are re-exported
for convenience; a new kind need not be added to them.
"""

from __future__ import annotations

import importlib
import pkgutil

from flow.errors import FlowError
from flow.layers.base import KINDS, LayerKind, LayerNode, Shape, size
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

for _module in pkgutil.iter_modules(__path__):  # every kind module registers its class on import
    importlib.import_module(f"{__name__}.{_module.name}")
_unregistered = [k.value for k in LayerKind if k not in KINDS]
if _unregistered:
    raise ImportError(f"layer kinds without a registered class: {', '.join(_unregistered)}")

Layer = LayerNode  # the IR's node type


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
    "LayerNode",
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
