"""The ``cast`` kind: ``(result_t) x`` element by element (a linear quantizer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from flow.fixed import FixedType, cast
from flow.layers.base import Elementwise, LayerKind, common_dict, register


@register
@dataclass(frozen=True)
class CastLayer(Elementwise):
    """Elementwise cast to ``result_t`` (a linear quantizer)."""

    kind: ClassVar[LayerKind] = LayerKind.CAST

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {"result_t": str(self.result_t)}

    @classmethod
    def from_dict(cls, d: dict) -> CastLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(d["name"], d["shape"], FixedType.parse(d["result_t"]), inputs=tuple(d["inputs"]))

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs for raw inputs ``xs[0]`` of type ``in_types[0]``."""
        return cast(xs[0], in_types[0].frac_bits, self.result_t)
