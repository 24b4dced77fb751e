"""The ``maxpool2d`` kind: 2-D max pooling without padding (hls4ml's ``io_parallel`` ``pooling2d_cl``, Max).

Each output is the largest input of its ``pool`` window (windows ``stride`` apart, Keras' default stride is the
pool size); hls4ml returns it as ``accum_t`` and assigns that to ``result_t``, so both casts are applied in turn.
Padding is refused: hls4ml pads max pooling with a pattern that is the most negative value only for signed types.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from flow.errors import FlowError
from flow.fixed import FixedType, cast
from flow.layers.base import LayerKind, Shape, as_shape, common_dict, image_shape, register


@register
@dataclass(frozen=True, eq=False)
class MaxPool2DLayer:
    """Max pooling of an ``in_shape`` = (height, width, channels) image, channel by channel."""

    name: str
    in_shape: Shape
    pool: tuple[int, int]
    stride: tuple[int, int]
    accum_t: FixedType
    result_t: FixedType
    inputs: tuple[str, ...] = field(default=(), kw_only=True)
    kind: ClassVar[LayerKind] = LayerKind.MAXPOOL2D
    in_hls: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", as_shape(self.in_shape, f"layer {self.name}"))
        object.__setattr__(self, "pool", as_shape(self.pool, f"layer {self.name} pool"))
        object.__setattr__(self, "stride", as_shape(self.stride, f"layer {self.name} stride"))

    @property
    def shape(self) -> Shape:
        (h, w, c), (ph, pw), (sh, sw) = self.in_shape, self.pool, self.stride
        return ((h - ph) // sh + 1, (w - pw) // sw + 1, c)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Shape rule: ``(h, w, c)`` gives ``((h - ph) // sh + 1, (w - pw) // sw + 1, c)``."""
        image_shape(self, in_shapes)
        return self.shape

    def validate(self) -> None:
        """A 3-D input, 2-D pool and stride, a window that fits."""
        if len(self.in_shape) != 3 or len(self.pool) != 2 or len(self.stride) != 2:
            raise FlowError(f"layer {self.name}: needs a (height, width, channels) input and 2-D pool and stride")
        if self.pool[0] > self.in_shape[0] or self.pool[1] > self.in_shape[1]:
            raise FlowError(f"layer {self.name}: a {list(self.pool)} pool does not fit a {list(self.in_shape)} input")

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {
            "in_shape": list(self.in_shape),
            "pool": list(self.pool),
            "stride": list(self.stride),
            "accum_t": str(self.accum_t),
            "result_t": str(self.result_t),
        }

    @classmethod
    def from_dict(cls, d: dict) -> MaxPool2DLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(
            d["name"],
            tuple(d["in_shape"]),
            tuple(d["pool"]),
            tuple(d["stride"]),
            FixedType.parse(d["accum_t"]),
            FixedType.parse(d["result_t"]),
            inputs=tuple(d["inputs"]),
        )

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs ``(batch, out_h, out_w, channels)`` for raw inputs ``xs[0]`` of type ``in_types[0]``."""
        x = xs[0].reshape((xs[0].shape[0], *self.in_shape))
        (ph, pw), (sh, sw) = self.pool, self.stride
        oh, ow, _ = self.shape
        win = sliding_window_view(x, (ph, pw), axis=(1, 2))[:, : (oh - 1) * sh + 1 : sh, : (ow - 1) * sw + 1 : sw]
        largest = win.max(axis=(-2, -1))  # (batch, oh, ow, c)
        return cast(cast(largest, in_types[0].frac_bits, self.accum_t), self.accum_t.frac_bits, self.result_t)
