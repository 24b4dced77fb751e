"""What every layer kind shares: the kind names, shapes, and the base of the elementwise kinds."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar, Protocol

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType

Shape = tuple[int, ...]


class LayerKind(str, Enum):
    """The layer kinds of the IR (each one module of :mod:`flow.layers` whose class is ``@register``-ed)."""

    DENSE = "dense"
    RELU = "relu"
    CAST = "cast"
    CLAMP = "clamp"
    CONV2D = "conv2d"
    MAXPOOL2D = "maxpool2d"
    FLATTEN = "flatten"
    BATCHNORM = "batchnorm"
    LOG1P = "log1p"
    DIAGONAL_DIFFERENCE = "diagonal_difference"
    VOTE = "vote"


# The registry: kind -> its dataclass. Each kind's module registers its class with @register; importing
# flow.layers imports every module of the package, so a new kind is its LayerKind member and its module.
KINDS: dict[LayerKind, type] = {}


def register(cls: type) -> type:
    """Class decorator: ``cls`` (with a ``kind`` class attribute) is the IR's class for that kind."""
    kind = LayerKind(cls.kind)
    if KINDS.get(kind, cls) is not cls:
        raise FlowError(f"layer kind {kind.value} registered twice ({KINDS[kind].__name__}, {cls.__name__})")
    KINDS[kind] = cls
    return cls


class LayerNode(Protocol):
    """What every registered kind provides (the IR's node type)."""

    name: str
    inputs: tuple[str, ...]
    shape: Shape
    result_t: FixedType
    kind: ClassVar[LayerKind]
    in_hls: ClassVar[bool]

    def validate(self) -> None: ...

    def to_dict(self) -> dict: ...

    def out_shape(self, in_shapes: list[Shape]) -> Shape: ...

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray: ...


def as_shape(shape: int | Shape | list[int], what: str) -> Shape:
    """A tensor shape as a tuple of positive ints (an int ``n`` is the 1-D shape ``(n,)``)."""
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise FlowError(f"{what}: shape must be positive integers, got {shape!r}")
    return tuple(int(d) for d in dims)


def size(shape: Shape) -> int:
    """The number of values in a tensor of ``shape``."""
    return math.prod(shape)


def common_dict(layer) -> dict:
    """The fields every node has in ``ir.json``: kind, name, inputs, shape."""
    return {"kind": layer.kind.value, "name": layer.name, "inputs": list(layer.inputs), "shape": list(layer.shape)}


def image_shape(layer, in_shapes: list[Shape]) -> Shape:
    """The ``(height, width, channels)`` input of a single-input 2-D layer, which must be its declared ``in_shape``."""
    got = one_input(layer, in_shapes)
    if got != layer.in_shape:
        raise FlowError(f"layer {layer.name} expects an input of shape {list(layer.in_shape)}, gets {list(got)}")
    return got


def one_input(layer, in_shapes: list[Shape]) -> Shape:
    """The shape of a single-input layer's input; a FlowError when it has another number of inputs."""
    if len(in_shapes) != 1:
        raise FlowError(f"layer {layer.name}: {layer.kind.value} takes one input, got {len(in_shapes)}")
    return in_shapes[0]


@dataclass(frozen=True)
class Elementwise:
    """An elementwise layer: one input, output of the same ``shape`` cast to ``result_t``."""

    name: str
    shape: Shape
    result_t: FixedType
    inputs: tuple[str, ...] = field(default=(), kw_only=True)  # () in a constructor: the previous node
    kind: ClassVar[LayerKind]
    in_hls: ClassVar[bool] = True  # whether hls4ml's C simulation computes this kind (else: post-processing)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", as_shape(self.shape, f"layer {self.name}"))

    @property
    def n(self) -> int:
        return size(self.shape)

    @property
    def n_in(self) -> int:
        return self.n

    @property
    def n_out(self) -> int:
        return self.n

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Shape rule: the input's shape, which must be the declared one."""
        got = one_input(self, in_shapes)
        if got != self.shape:
            raise FlowError(f"layer {self.name}: shape {list(self.shape)} but its input has shape {list(got)}")
        return self.shape

    def validate(self) -> None:
        """Nothing beyond the shape to check."""
