"""The ``log1p`` kind: an elementwise function node, ``log(1 + c)`` of unsigned counts, correctly rounded.

The input is a tensor of unsigned integer counts (``ufixed<count_width,count_width>``: a spectrum's channels);
each output is the exact value ``log(1 + c)`` rounded and saturated by ``result_t``'s own modes
(:func:`flow.features.log1p_fixed`). Hardware may compute it any way that gives these bits (a full table, or a
leading-one detector and a small table).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flow.errors import FlowError
from flow.features import log1p_fixed
from flow.fixed import FixedType
from flow.layers.base import Elementwise, LayerKind, common_dict, register

MAX_COUNT_WIDTH = 32  # counts are uint32 at most: a spectrum channel's counter


def count_type(count_width: int) -> FixedType:
    """The type of a ``count_width``-bit unsigned count: ``ufixed<W,W>`` (an integer)."""
    return FixedType(count_width, count_width, signed=False)


@register
@dataclass(frozen=True)
class Log1pLayer(Elementwise):
    """Elementwise ``log(1 + c)`` of ``count_width``-bit unsigned counts, correctly rounded to ``result_t``."""

    count_width: int
    kind: ClassVar[LayerKind] = LayerKind.LOG1P
    in_hls: ClassVar[bool] = False

    def validate(self) -> None:
        """The count width is 1..32 and the result type fits int64."""
        w = self.count_width
        if isinstance(w, bool) or not isinstance(w, int) or not 1 <= w <= MAX_COUNT_WIDTH:
            raise FlowError(f"layer {self.name}: count_width must be an integer in 1..{MAX_COUNT_WIDTH}, got {w!r}")
        if not self.result_t.fits_int64:
            raise FlowError(f"layer {self.name}: result type {self.result_t} is wider than 64 bits")

    def check_input_types(self, in_types: list[FixedType]) -> None:
        """The input holds unsigned integer counts of exactly ``count_width`` bits."""
        want = count_type(self.count_width)
        got = in_types[0]
        if (got.width, got.int_bits, got.signed) != (want.width, want.int_bits, want.signed):
            raise FlowError(f"layer {self.name}: log1p takes {want} counts (count_width {self.count_width}), got {got}")

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {"count_width": int(self.count_width), "result_t": str(self.result_t)}

    @classmethod
    def from_dict(cls, d: dict) -> Log1pLayer:
        """Inverse of :meth:`to_dict`."""
        t = FixedType.parse(d["result_t"])
        return cls(d["name"], d["shape"], t, int(d["count_width"]), inputs=tuple(d["inputs"]))

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs for raw counts ``xs[0]``."""
        self.check_input_types(in_types)
        return log1p_fixed(np.asarray(xs[0]).astype(np.int64), self.count_width, self.result_t)
