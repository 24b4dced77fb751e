"""The ``conv2d`` kind: a 2-D convolution, stride 1, ``valid`` or ``same`` padding (hls4ml's ``io_parallel``
``conv_2d_cl``, channels last).

Every output pixel is a dense layer over its window: the window's values in (row, column, channel) order
(zeros where ``same`` padding reaches outside the image) times the weights ``(kernel_height, kernel_width,
in_channels, filters)``, each product exact and cast to ``accum_t``, the accumulator starting at ``(accum_t) bias``,
the output ``(result_t) acc``. The kernel is exactly that: the windows are gathered (im2col) and handed to the
``dense`` kind's kernel, so the two share one implementation of the arithmetic and of its fast exact routes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.layers.base import LayerKind, Shape, as_shape, common_dict, image_shape, register
from flow.layers.dense import DenseLayer


class Padding(str, Enum):
    """Keras' padding modes at stride 1."""

    VALID = "valid"  # no padding: the output shrinks by kernel - 1
    SAME = "same"  # zeros around the image, (kernel - 1) // 2 before and the rest after: output = input size


def pad_before_after(kernel: int, padding: Padding) -> tuple[int, int]:
    """Rows (or columns) of zeros before and after the image, as TensorFlow and hls4ml place them at stride 1."""
    if padding is Padding.VALID:
        return 0, 0
    total = kernel - 1
    return total // 2, total - total // 2


@register
@dataclass(frozen=True, eq=False)
class Conv2DLayer:
    """A stride-1 2-D convolution of an ``in_shape`` = (height, width, channels) image with integer weights."""

    name: str
    in_shape: Shape
    padding: Padding
    weight_t: FixedType
    weights: np.ndarray  # (kernel_height, kernel_width, in_channels, filters) raw mantissas
    bias_t: FixedType
    biases: np.ndarray  # (filters,)
    accum_t: FixedType
    result_t: FixedType
    inputs: tuple[str, ...] = field(default=(), kw_only=True)
    kind: ClassVar[LayerKind] = LayerKind.CONV2D
    in_hls: ClassVar[bool] = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "in_shape", as_shape(self.in_shape, f"layer {self.name}"))
        object.__setattr__(self, "padding", Padding(self.padding))

    @property
    def kernel_size(self) -> tuple[int, int]:
        return int(self.weights.shape[0]), int(self.weights.shape[1])

    @property
    def filters(self) -> int:
        return int(self.weights.shape[3])

    @property
    def shape(self) -> Shape:
        (h, w, _), (kh, kw) = self.in_shape, self.kernel_size
        if self.padding is Padding.SAME:
            return (h, w, self.filters)
        return (h - kh + 1, w - kw + 1, self.filters)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Shape rule: (h, w, c) gives (h, w, filters) with ``same``, (h - kh + 1, w - kw + 1, filters) ``valid``."""
        image_shape(self, in_shapes)
        return self.shape

    def validate(self) -> None:
        """A 3-D input matching the weights' channels, an output of at least one pixel, raw values in range."""
        if len(self.in_shape) != 3 or self.weights.ndim != 4 or self.weights.shape[2] != self.in_shape[2]:
            raise FlowError(
                f"layer {self.name}: weights {self.weights.shape} do not fit an input of shape {list(self.in_shape)} "
                "(expected (kernel_height, kernel_width, in_channels, filters) on a (height, width, channels) input)"
            )
        if min(self.shape) < 1:
            raise FlowError(f"layer {self.name}: a {self.kernel_size} kernel does not fit a {self.in_shape} input")
        if self.biases.shape != (self.filters,):
            raise FlowError(f"layer {self.name} has {self.biases.shape} biases for {self.filters} filters")
        self.as_dense().validate()

    def as_dense(self) -> DenseLayer:
        """The dense layer every output pixel computes (weights ``(kh * kw * in_channels, filters)``)."""
        return DenseLayer(
            self.name,
            self.weight_t,
            self.weights.reshape(-1, self.filters),
            self.bias_t,
            self.biases,
            self.accum_t,
            self.result_t,
            inputs=self.inputs,
        )

    def window_taps(self) -> list[list[int | None]]:
        """Per output pixel (row-major), the flat input index of each window tap in (row, column, channel) order;
        None where ``same`` padding reaches outside the image (the tap is a constant 0)."""
        (h, w, c), (kh, kw) = self.in_shape, self.kernel_size
        oh, ow, _ = self.shape
        (top, _), (left, _) = pad_before_after(kh, self.padding), pad_before_after(kw, self.padding)
        taps = []
        for i in range(oh):
            for j in range(ow):
                row = []
                for di in range(kh):
                    for dj in range(kw):
                        r, s = i + di - top, j + dj - left
                        inside = 0 <= r < h and 0 <= s < w
                        row += [(r * w + s) * c + ch if inside else None for ch in range(c)]
                taps.append(row)
        return taps

    def as_full_dense(self) -> DenseLayer:
        """The whole layer as one dense layer ``(h * w * c) -> (out_h * out_w * filters)``: each output pixel's
        window weights in its column, zeros elsewhere (padding and taps outside the window), the biases repeated.
        It computes the same values (the extra terms are zero); the fully parallel RTL builds it as is."""
        (h, w, c), (kh, kw), f = self.in_shape, self.kernel_size, self.filters
        oh, ow, _ = self.shape
        (top, _), (left, _) = pad_before_after(kh, self.padding), pad_before_after(kw, self.padding)
        full = np.zeros((h * w * c, oh * ow * f), dtype=self.weights.dtype)
        for i in range(oh):
            for j in range(ow):
                col = (i * ow + j) * f
                for di in range(kh):
                    for dj in range(kw):
                        r, s = i + di - top, j + dj - left
                        if 0 <= r < h and 0 <= s < w:
                            row = (r * w + s) * c
                            full[row : row + c, col : col + f] = self.weights[di, dj]
        biases = np.tile(self.biases, oh * ow)
        return DenseLayer(
            self.name, self.weight_t, full, self.bias_t, biases, self.accum_t, self.result_t, inputs=self.inputs
        )

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {
            "in_shape": list(self.in_shape),
            "padding": self.padding.value,
            "kernel_size": list(self.kernel_size),
            "filters": self.filters,
            "weight_t": str(self.weight_t),
            "weights": self.weights.astype(np.int64).tolist(),
            "bias_t": str(self.bias_t),
            "biases": self.biases.astype(np.int64).tolist(),
            "accum_t": str(self.accum_t),
            "result_t": str(self.result_t),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Conv2DLayer:
        """Inverse of :meth:`to_dict`."""
        kh, kw = d["kernel_size"]
        return cls(
            name=d["name"],
            in_shape=tuple(d["in_shape"]),
            padding=Padding(d["padding"]),
            weight_t=FixedType.parse(d["weight_t"]),
            weights=np.asarray(d["weights"], dtype=np.int64).reshape(kh, kw, d["in_shape"][2], d["filters"]),
            bias_t=FixedType.parse(d["bias_t"]),
            biases=np.asarray(d["biases"], dtype=np.int64),
            accum_t=FixedType.parse(d["accum_t"]),
            result_t=FixedType.parse(d["result_t"]),
            inputs=tuple(d["inputs"]),
        )

    def windows(self, x: np.ndarray) -> np.ndarray:
        """Every output pixel's window ``(batch, out_h, out_w, kh * kw * in_channels)`` of raw inputs, zero-padded."""
        (kh, kw), batch = self.kernel_size, x.shape[0]
        x = x.reshape((batch, *self.in_shape))
        pads = (pad_before_after(kh, self.padding), pad_before_after(kw, self.padding))
        if any(sum(p) for p in pads):
            x = np.pad(x, ((0, 0), *pads, (0, 0)), constant_values=0)
        win = sliding_window_view(x, (kh, kw), axis=(1, 2))  # (batch, oh, ow, c, kh, kw)
        oh, ow = win.shape[1:3]
        return win.transpose(0, 1, 2, 4, 5, 3).reshape(batch, oh, ow, -1)

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs ``(batch, out_h, out_w, filters)`` for raw inputs ``xs[0]`` of type ``in_types[0]``."""
        win = self.windows(xs[0])
        batch, oh, ow, k = win.shape
        out = self.as_dense().kernel([win.reshape(batch * oh * ow, k)], in_types, exact_loop)
        return out.reshape(batch, oh, ow, self.filters)
