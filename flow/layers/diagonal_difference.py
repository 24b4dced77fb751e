"""The ``diagonal_difference`` kind: ``L[i+k+1] - L[i]`` along the last axis, zero-padded (a bin-ratio diagonal).

For an input of ``n`` values and diagonal ``k`` (0..n-2) the output has ``n - 1`` values: ``L[i+k+1] - L[i]``
for ``i = 0 .. n-k-2``, then zeros. The difference is exact: ``result_t`` must be
:func:`flow.features.difference_type` of the input type (signed, one more integer bit, same fraction bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flow.errors import FlowError
from flow.features import diagonal_difference, difference_type
from flow.fixed import FixedType
from flow.layers.base import Elementwise, LayerKind, Shape, common_dict, one_input, register


@register
@dataclass(frozen=True)
class DiagonalDifferenceLayer(Elementwise):
    """``L[i+k+1] - L[i]`` for diagonal ``k``, zero-padded to ``n - 1`` values, exact in ``result_t``."""

    diagonal: int
    kind: ClassVar[LayerKind] = LayerKind.DIAGONAL_DIFFERENCE
    in_hls: ClassVar[bool] = False

    @property
    def n_in(self) -> int:
        return self.n + 1

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Shape rule: a 1-D input of ``n`` values gives ``(n - 1,)``, which must be the declared shape."""
        got = one_input(self, in_shapes)
        if len(got) != 1 or got[0] < 2:
            raise FlowError(f"layer {self.name}: diagonal_difference takes a 1-D input of >= 2 values, got {list(got)}")
        if self.shape != (got[0] - 1,):
            shown = f"shape {list(self.shape)} but an input of {got[0]} gives [{got[0] - 1}]"
            raise FlowError(f"layer {self.name}: {shown}")
        if not 0 <= self.diagonal <= got[0] - 2:
            raise FlowError(f"layer {self.name}: diagonal {self.diagonal} outside 0..{got[0] - 2} for {got[0]} values")
        return self.shape

    def validate(self) -> None:
        """The diagonal is a non-negative integer."""
        k = self.diagonal
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise FlowError(f"layer {self.name}: diagonal must be an integer >= 0, got {k!r}")

    def check_input_types(self, in_types: list[FixedType]) -> None:
        """``result_t`` is the exact difference type of the input."""
        want = difference_type(in_types[0])
        got = self.result_t
        if (got.width, got.int_bits, got.signed) != (want.width, want.int_bits, want.signed):
            raise FlowError(f"layer {self.name}: the difference of {in_types[0]} is exact in {want}, not {got}")

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {"diagonal": int(self.diagonal), "result_t": str(self.result_t)}

    @classmethod
    def from_dict(cls, d: dict) -> DiagonalDifferenceLayer:
        """Inverse of :meth:`to_dict`."""
        t = FixedType.parse(d["result_t"])
        return cls(d["name"], d["shape"], t, int(d["diagonal"]), inputs=tuple(d["inputs"]))

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw differences for raw inputs ``xs[0]`` (int64: exact, the type is at most 64 bits wide)."""
        self.check_input_types(in_types)
        return diagonal_difference(np.asarray(xs[0]), self.diagonal)
