"""The ``clamp`` kind: a table model's output stage, ``min(max((result_t) x, lo), hi)``.

hls4ml has no such layer: it follows the network and is checked against the reference by the RTL testbench only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, cast
from flow.layers.base import Elementwise, LayerKind, common_dict, register


@register
@dataclass(frozen=True)
class ClampLayer(Elementwise):
    """Elementwise cast to ``result_t``, then clamped to the raw range ``[lo, hi]`` (a table's output stage)."""

    lo: int
    hi: int
    kind: ClassVar[LayerKind] = LayerKind.CLAMP
    in_hls: ClassVar[bool] = False

    def validate(self) -> None:
        """``lo`` and ``hi`` are raw mantissas of ``result_t``, in order."""
        t = self.result_t
        if not t.min_raw <= self.lo <= self.hi <= t.max_raw:
            raise FlowError(f"{self.name} range [{self.lo}, {self.hi}] does not fit {t}")

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {"result_t": str(self.result_t), "lo": int(self.lo), "hi": int(self.hi)}

    @classmethod
    def from_dict(cls, d: dict) -> ClampLayer:
        """Inverse of :meth:`to_dict`."""
        t = FixedType.parse(d["result_t"])
        return cls(d["name"], d["shape"], t, int(d["lo"]), int(d["hi"]), inputs=tuple(d["inputs"]))

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs for raw inputs ``xs[0]`` of type ``in_types[0]``."""
        return clamp(xs[0], in_types[0], self)


def clamp(x: np.ndarray, in_t: FixedType, layer: ClampLayer) -> np.ndarray:
    """A clamp layer: ``(result_t) x``, then limited to ``[lo, hi]`` (raw mantissas of ``result_t``)."""
    y = cast(x, in_t.frac_bits, layer.result_t)
    return np.where(y < layer.lo, layer.lo, np.where(y > layer.hi, layer.hi, y)).astype(y.dtype)
