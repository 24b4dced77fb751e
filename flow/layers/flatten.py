"""The ``flatten`` kind: a tensor as one row in (row, column, channel) order (Keras' ``channels_last`` Flatten)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.layers.base import LayerKind, Shape, as_shape, common_dict, one_input, register, size


@register
@dataclass(frozen=True)
class FlattenLayer:
    """Reshape ``in_shape`` to ``(size,)``; the values and their type are unchanged (``result_t`` is the input's)."""

    name: str
    in_shape: Shape
    result_t: FixedType
    inputs: tuple[str, ...] = field(default=(), kw_only=True)
    kind: ClassVar[LayerKind] = LayerKind.FLATTEN
    in_hls: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", as_shape(self.in_shape, f"layer {self.name}"))

    @property
    def shape(self) -> Shape:
        return (size(self.in_shape),)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Shape rule: any input of ``in_shape`` gives ``(size,)``."""
        got = one_input(self, in_shapes)
        if got != self.in_shape:
            raise FlowError(f"layer {self.name} expects an input of shape {list(self.in_shape)}, gets {list(got)}")
        return self.shape

    def validate(self) -> None:
        """Nothing beyond the shape to check."""

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {"in_shape": list(self.in_shape), "result_t": str(self.result_t)}

    @classmethod
    def from_dict(cls, d: dict) -> FlattenLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(d["name"], tuple(d["in_shape"]), FixedType.parse(d["result_t"]), inputs=tuple(d["inputs"]))

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """The raw inputs as ``(batch, size)``; a different input type is an error, not a silent cast."""
        if in_types[0] != self.result_t:
            raise FlowError(f"layer {self.name}: flatten keeps its input's type {in_types[0]}, not {self.result_t}")
        return xs[0].reshape(xs[0].shape[0], -1)
