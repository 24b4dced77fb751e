"""The ``vote`` kind: an ensemble's members' logits in, one class index out, bit-exact for every method.

Every input is one member's logits, ``(n_classes,)`` raw mantissas of that member's output type. The output is
``(1,)``: the class index, an unsigned integer of ``result_t``. Ties always go to the lowest class index (as
numpy's and hls4ml's argmax), at every step below.

* ``hard``: each member's argmax; the number of members per class; the argmax of those counts.
* ``logit_sum``: the members' logits summed exactly (aligned to the finest fraction among them); the argmax.
* ``soft``: a fixed-point softmax per member, summed over the members, then the argmax. Per member with logits
  ``x`` of ``f`` fraction bits: ``d_j = max(x) - x_j`` (exact, >= 0), ``e_j = EXP[(exp_in_t) d_j]``,
  ``s = sum_j e_j`` (exact), ``r = RECIP[(recip_in_t) s]``, ``p_j = (prob_t)(e_j * r)``; the class sums of
  ``p_j`` are exact. ``EXP[i]`` is ``exp(-v)`` and ``RECIP[i]`` is ``1 / v`` for ``v = i * 2**-frac_bits`` of the
  table's input type, correctly rounded and saturated by ``exp_t`` / ``recip_t``'s own modes (``RECIP[0]`` is
  ``recip_t``'s largest value). The casts use the declared types' modes; the tables follow from the types, so
  the reference and the RTL build the same tables from ``ir.json``.
"""

from __future__ import annotations

import decimal
import functools
from dataclasses import dataclass, field
from enum import Enum
from fractions import Fraction
from typing import ClassVar

import numpy as np

from flow.errors import FlowError
from flow.features import round_exact
from flow.fixed import FixedType, Overflow, Rounding, cast
from flow.layers.base import LayerKind, Shape, register

MAX_TABLE_WIDTH = 16  # a table input type of W bits is a table of 2**W entries
_EXP_DIGITS = 60  # decimal digits for exp(): far beyond any table's 2 + 64 guard bits


class VoteMethod(str, Enum):
    """How the members' logits become one class."""

    HARD = "hard"
    SOFT = "soft"
    LOGIT_SUM = "logit_sum"


@dataclass(frozen=True)
class SoftmaxTypes:
    """The declared types of the fixed-point softmax (``soft`` voting); all unsigned."""

    exp_in_t: FixedType
    exp_t: FixedType
    recip_in_t: FixedType
    recip_t: FixedType
    prob_t: FixedType

    @classmethod
    def default(cls) -> SoftmaxTypes:
        """Types for 18-class members with ``fixed<12,5>`` logits: d in steps of 1/16 up to 16, sums up to 32."""
        return cls(
            FixedType(8, 4, False, Rounding.TRN, Overflow.SAT),
            FixedType(10, 1, False, Rounding.RND_CONV, Overflow.SAT),
            FixedType(10, 5, False, Rounding.TRN, Overflow.SAT),
            FixedType(11, 1, False, Rounding.RND_CONV, Overflow.SAT),
            FixedType(10, 1, False, Rounding.RND_CONV, Overflow.SAT),
        )

    def validate(self, where: str) -> None:
        """Every type is unsigned and fits int64; the two table inputs are at most 16 bits wide."""
        for name, t in self.to_dict().items():
            t = FixedType.parse(t)
            if t.signed or not t.fits_int64 or t.width > 32:
                raise FlowError(f"{where}: softmax type {name} must be unsigned and at most 32 bits wide, got {t}")
        for name in ("exp_in_t", "recip_in_t"):
            if getattr(self, name).width > MAX_TABLE_WIDTH:
                raise FlowError(f"{where}: softmax table input {name} is wider than {MAX_TABLE_WIDTH} bits")

    def to_dict(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in ("exp_in_t", "exp_t", "recip_in_t", "recip_t", "prob_t")}

    @classmethod
    def from_dict(cls, d: dict) -> SoftmaxTypes:
        return cls(*(FixedType.parse(d[n]) for n in ("exp_in_t", "exp_t", "recip_in_t", "recip_t", "prob_t")))


def class_index_type(n_classes: int) -> FixedType:
    """The unsigned integer type of a class index 0..n_classes-1."""
    width = max(1, (n_classes - 1).bit_length())
    return FixedType(width, width, signed=False)


@register
@dataclass(frozen=True)
class VoteLayer:
    """Members' logits (one input each, ``(n_classes,)``) -> the class index ``(1,)`` of ``result_t``."""

    name: str
    method: VoteMethod
    n_classes: int
    result_t: FixedType
    softmax: SoftmaxTypes | None = None  # soft voting only
    inputs: tuple[str, ...] = field(default=(), kw_only=True)
    kind: ClassVar[LayerKind] = LayerKind.VOTE
    in_hls: ClassVar[bool] = False
    gives_class: ClassVar[bool] = True  # the output is a class index, not logits

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", VoteMethod(self.method))

    @property
    def shape(self) -> Shape:
        return (1,)

    @property
    def n_in(self) -> int:
        return self.n_classes

    @property
    def n_out(self) -> int:
        return 1

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Shape rule: one or more inputs, each ``(n_classes,)``, give ``(1,)``."""
        if not in_shapes:
            raise FlowError(f"layer {self.name}: vote takes at least one member")
        bad = [list(s) for s in in_shapes if s != (self.n_classes,)]
        if bad:
            raise FlowError(f"layer {self.name}: every member must give [{self.n_classes}] logits, got {bad[0]}")
        return self.shape

    def validate(self) -> None:
        """Classes >= 2, a result type that holds every class index, softmax types exactly for soft voting."""
        if isinstance(self.n_classes, bool) or not isinstance(self.n_classes, int) or self.n_classes < 2:
            raise FlowError(f"layer {self.name}: n_classes must be an integer >= 2, got {self.n_classes!r}")
        t = self.result_t
        if t.frac_bits != 0 or t.signed or t.max_raw < self.n_classes - 1:
            need = f"an unsigned integer holding 0..{self.n_classes - 1}"
            raise FlowError(f"layer {self.name}: result type {t} must be {need}")
        if (self.softmax is None) == (self.method is VoteMethod.SOFT):
            need = "needs" if self.method is VoteMethod.SOFT else "takes no"
            raise FlowError(f"layer {self.name}: {self.method.value} voting {need} softmax types")
        if self.softmax is not None:
            self.softmax.validate(f"layer {self.name}")

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        out = {
            "kind": self.kind.value,
            "name": self.name,
            "inputs": list(self.inputs),
            "shape": list(self.shape),
            "method": self.method.value,
            "n_classes": int(self.n_classes),
            "result_t": str(self.result_t),
        }
        if self.softmax is not None:
            out["softmax"] = self.softmax.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> VoteLayer:
        """Inverse of :meth:`to_dict`."""
        soft = d.get("softmax")
        return cls(
            d["name"],
            VoteMethod(d["method"]),
            int(d["n_classes"]),
            FixedType.parse(d["result_t"]),
            None if soft is None else SoftmaxTypes.from_dict(soft),
            inputs=tuple(d["inputs"]),
        )

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """The class index ``(batch, 1)`` for every member's raw logits ``xs[m]`` ``(batch, n_classes)``."""
        scores = VOTERS[self.method](self, [np.asarray(x) for x in xs], in_types)
        return argmax_lowest(scores)[:, None].astype(np.int64)

    def scores(self, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
        """The per-class score the vote takes the argmax of: counts, exact logit sums or probability sums (raw)."""
        return VOTERS[self.method](self, [np.asarray(x) for x in xs], in_types)


def argmax_lowest(scores: np.ndarray) -> np.ndarray:
    """Index of the largest score per row; ties go to the lowest index (numpy's rule, written down)."""
    s = np.asarray(scores)
    if s.dtype == object:
        best = s.max(axis=1)
        return np.array([int(np.flatnonzero(row == b)[0]) for row, b in zip(s, best)], dtype=np.int64)
    return np.argmax(s, axis=1)


def _hard(layer: VoteLayer, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
    """Members per class: each member votes for its argmax."""
    counts = np.zeros((xs[0].shape[0], layer.n_classes), dtype=np.int64)
    rows = np.arange(xs[0].shape[0])
    for x in xs:
        counts[rows, argmax_lowest(x)] += 1
    return counts


def _logit_sum(layer: VoteLayer, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
    """The exact sum of the members' logits, each shifted to the finest fraction among them."""
    frac = max(t.frac_bits for t in in_types)
    bits = max(t.width + frac - t.frac_bits for t in in_types) + len(xs).bit_length()
    dtype = np.int64 if bits <= 62 else object
    total = np.zeros(xs[0].shape, dtype=dtype)
    for x, t in zip(xs, in_types):
        total = total + x.astype(dtype) * (1 << (frac - t.frac_bits))
    return total


def _soft(layer: VoteLayer, xs: list[np.ndarray], in_types: list[FixedType]) -> np.ndarray:
    """The exact sum over members of each member's fixed-point softmax (raw ``prob_t`` mantissas)."""
    sm = layer.softmax
    assert sm is not None
    exp = exp_table(sm.exp_in_t, sm.exp_t)
    recip = recip_table(sm.recip_in_t, sm.recip_t)
    total = np.zeros(xs[0].shape, dtype=np.int64)
    for x, t in zip(xs, in_types):
        d = x.max(axis=1, keepdims=True) - x
        e = exp[cast(d, t.frac_bits, sm.exp_in_t)]
        r = recip[cast(e.sum(axis=1, keepdims=True), sm.exp_t.frac_bits, sm.recip_in_t)]
        total += cast(e * r, sm.exp_t.frac_bits + sm.recip_t.frac_bits, sm.prob_t)
    return total


VOTERS = {VoteMethod.HARD: _hard, VoteMethod.LOGIT_SUM: _logit_sum, VoteMethod.SOFT: _soft}


@functools.lru_cache(maxsize=16)
def exp_table(in_t: FixedType, out_t: FixedType) -> np.ndarray:
    """``EXP[i]``: raw ``out_t`` of ``exp(-i * 2**-in_t.frac_bits)``, correctly rounded, for every raw ``i``."""
    guard = out_t.frac_bits + 2
    floors, inexact = [], []
    with decimal.localcontext() as ctx:
        ctx.prec = _EXP_DIGITS
        scale = decimal.Decimal(2) ** guard
        step = decimal.Decimal(2) ** -in_t.frac_bits
        for i in range(in_t.max_raw + 1):
            # exp(-v) is irrational for every rational v != 0 (Lindemann), so only i = 0 is exact.
            floors.append(int(((-i * step).exp() * scale).to_integral_value(rounding=decimal.ROUND_FLOOR)))
            inexact.append(i != 0)
    table = round_exact(np.array(floors, dtype=object), np.array(inexact), guard, out_t)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=16)
def recip_table(in_t: FixedType, out_t: FixedType) -> np.ndarray:
    """``RECIP[i]``: raw ``out_t`` of ``1 / (i * 2**-in_t.frac_bits)``, correctly rounded; ``RECIP[0]`` = max."""
    guard = out_t.frac_bits + 2
    floors, inexact = [0], [False]
    for i in range(1, in_t.max_raw + 1):
        v = Fraction(1 << in_t.frac_bits, i) if in_t.frac_bits >= 0 else Fraction(1, i << -in_t.frac_bits)
        scaled = v * (Fraction(2) ** guard)
        floors.append(scaled.numerator // scaled.denominator)
        inexact.append(scaled.denominator != 1)
    table = round_exact(np.array(floors, dtype=object), np.array(inexact), guard, out_t)
    table[0] = out_t.max_raw
    table.setflags(write=False)
    return table
