"""The ``batchnorm`` kind: batch normalisation not fused into a layer, as a fixed-point scale and shift per channel
(hls4ml's ``io_parallel`` ``normalize``).

``y = (result_t)(x * scale + bias)``: the product and the sum are exact (ap_fixed widens both), and only the final
assignment rounds and saturates. ``scale`` and ``bias`` are raw mantissas of ``scale_t`` and ``bias_t``, one per
channel (the last axis of ``shape``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, cast
from flow.layers.base import Elementwise, LayerKind, common_dict, register


@register
@dataclass(frozen=True, eq=False)
class BatchNormLayer(Elementwise):
    """Per-channel ``x * scale + bias`` cast to ``result_t``."""

    scale_t: FixedType = field(kw_only=True)
    scale: np.ndarray = field(kw_only=True)  # (channels,) raw mantissas of scale_t
    bias_t: FixedType = field(kw_only=True)
    bias: np.ndarray = field(kw_only=True)  # (channels,) raw mantissas of bias_t
    kind: ClassVar[LayerKind] = LayerKind.BATCHNORM

    @property
    def channels(self) -> int:
        return int(self.shape[-1])

    def validate(self) -> None:
        """One scale and one bias per channel, raw values in their types."""
        for what, raw, t in (("scale", self.scale, self.scale_t), ("bias", self.bias, self.bias_t)):
            if raw.shape != (self.channels,):
                raise FlowError(f"layer {self.name} has {what} of shape {raw.shape} for {self.channels} channels")
            if raw.size and (raw.min() < t.min_raw or raw.max() > t.max_raw):
                raise FlowError(f"{self.name} {what} do not fit {t}")

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {
            "scale_t": str(self.scale_t),
            "scale": self.scale.astype(np.int64).tolist(),
            "bias_t": str(self.bias_t),
            "bias": self.bias.astype(np.int64).tolist(),
            "result_t": str(self.result_t),
        }

    @classmethod
    def from_dict(cls, d: dict) -> BatchNormLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(
            d["name"],
            d["shape"],
            FixedType.parse(d["result_t"]),
            inputs=tuple(d["inputs"]),
            scale_t=FixedType.parse(d["scale_t"]),
            scale=np.asarray(d["scale"], dtype=np.int64),
            bias_t=FixedType.parse(d["bias_t"]),
            bias=np.asarray(d["bias"], dtype=np.int64),
        )

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs for raw inputs ``xs[0]`` of type ``in_types[0]``: exact scale and shift, then one cast."""
        in_t = in_types[0]
        prod_frac = in_t.frac_bits + self.scale_t.frac_bits
        frac = max(prod_frac, self.bias_t.frac_bits)
        k_scale, k_bias = frac - prod_frac, frac - self.bias_t.frac_bits
        # Bits of |x * scale| and |bias| on the common grid: int64 when their sum cannot reach 2**63.
        bits = max(in_t.width + self.scale_t.width + k_scale, self.bias_t.width + k_bias) + 1
        dtype = np.int64 if bits < 63 and xs[0].dtype != object else object
        x = xs[0].astype(dtype)
        total = x * (self.scale.astype(dtype) << k_scale) + (self.bias.astype(dtype) << k_bias)
        return cast(total, frac, self.result_t)
