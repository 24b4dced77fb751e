"""The ``relu`` kind: ``(result_t) max(x, 0)`` element by element (hls4ml's ReLU activation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flow.fixed import FixedType, cast
from flow.layers.base import Elementwise, LayerKind, common_dict, register


@register
@dataclass(frozen=True)
class ReluLayer(Elementwise):
    """Elementwise ``max(x, 0)`` cast to ``result_t``."""

    kind: ClassVar[LayerKind] = LayerKind.RELU

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {"result_t": str(self.result_t)}

    @classmethod
    def from_dict(cls, d: dict) -> ReluLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(d["name"], d["shape"], FixedType.parse(d["result_t"]), inputs=tuple(d["inputs"]))

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs for raw inputs ``xs[0]`` of type ``in_types[0]``."""
        x = xs[0]
        pos = np.maximum(x, 0) if x.dtype != object else np.where(x > 0, x, 0)
        return cast(pos, in_types[0].frac_bits, self.result_t)
