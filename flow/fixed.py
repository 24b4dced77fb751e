"""Exact ap_fixed semantics on integer mantissas (raw values), vectorised with NumPy.

A value of a :class:`FixedType` is ``raw * 2**-frac_bits``. Raw arrays are ``np.int64`` whenever the
destination type fits in 64 signed bits (and every intermediate fits); otherwise they are object arrays of
Python ints, which are slow but exact. Conversions follow ``ap_fixed_base::operator=`` in the ``ap_types``
headers shipped with hls4ml: quantization (rounding) first, then overflow handling; ``tests/test_fixed.py``
checks this module against those headers compiled with g++.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np

from flow.errors import FlowError

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1
# Largest right shift done directly on int64 values: keeps the rounding mask and the half-LSB in range.
_MAX_INT64_SHIFT = 62


class Rounding(str, Enum):
    """ap_fixed quantization modes (applied when fraction bits are dropped)."""

    TRN = "TRN"  # toward -inf
    TRN_ZERO = "TRN_ZERO"  # toward 0
    RND = "RND"  # half toward +inf
    RND_ZERO = "RND_ZERO"  # half toward 0
    RND_MIN_INF = "RND_MIN_INF"  # half toward -inf
    RND_INF = "RND_INF"  # half away from 0
    RND_CONV = "RND_CONV"  # half to even


class Overflow(str, Enum):
    """ap_fixed overflow modes (applied after quantization)."""

    WRAP = "WRAP"  # two's-complement wrap (unsigned: modulo 2**width)
    SAT = "SAT"  # clamp to [min, max]
    SAT_ZERO = "SAT_ZERO"  # 0 on overflow
    SAT_SYM = "SAT_SYM"  # signed: clamp to [-max, max]; unsigned: like SAT


_TYPE_RE = re.compile(r"^\s*(?:ap_)?(u?)(fixed|int)\s*<([^<>]*)>\s*$", re.IGNORECASE)
_CARD_RE = re.compile(r"^\s*[\(\[]?\s*(-?\d+)\s*,\s*(-?\d+)\s*[\)\]]?\s*$")


def _mode(enum: type[Enum], text: str, what: str, type_text: str) -> Enum:
    """Parse a rounding/overflow name, with or without the ``AP_`` prefix."""
    name = text.strip().upper().removeprefix("AP_")
    try:
        return enum(name)
    except ValueError:
        allowed = ", ".join(m.value for m in enum)  # type: ignore[attr-defined]
        raise FlowError(f"{type_text!r}: unknown {what} mode {text.strip()!r} (allowed: {allowed})") from None


def _int_arg(text: str, what: str, type_text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise FlowError(f"{type_text!r}: {what} must be an integer, got {text.strip()!r}") from None


def parse_card_bits(text: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """Parse card bit notation ``"(12,2)"``, ``"12,2"`` or ``[12, 2]`` into ``(width, int_bits)``."""
    if isinstance(text, str):
        m = _CARD_RE.match(text)
        if not m:
            raise FlowError(f"bad bitwidth {text!r}: expected (width,int_bits), e.g. (12,2)")
        return int(m.group(1)), int(m.group(2))
    if isinstance(text, (tuple, list)) and len(text) == 2 and all(isinstance(v, (int, np.integer)) for v in text):
        return int(text[0]), int(text[1])
    raise FlowError(f"bad bitwidth {text!r}: expected (width,int_bits), e.g. (12,2)")


@dataclass(frozen=True)
class FixedType:
    """An ap_fixed / ap_ufixed type: ``width`` total bits, ``int_bits`` integer bits (sign included)."""

    width: int
    int_bits: int
    signed: bool = True
    rounding: Rounding = Rounding.TRN
    overflow: Overflow = Overflow.WRAP

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width < 1:
            raise FlowError(f"fixed-point width must be an integer >= 1, got {self.width!r}")
        if not isinstance(self.int_bits, int):
            raise FlowError(f"fixed-point int_bits must be an integer, got {self.int_bits!r}")
        # Accept plain strings for the modes (e.g. from YAML) but store the enums.
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "overflow", Overflow(self.overflow))

    @property
    def frac_bits(self) -> int:
        return self.width - self.int_bits

    @property
    def min_raw(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_raw(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def lsb(self) -> float:
        return 2.0**-self.frac_bits

    @property
    def min_value(self) -> float:
        return float(np.ldexp(float(self.min_raw), -self.frac_bits))

    @property
    def max_value(self) -> float:
        return float(np.ldexp(float(self.max_raw), -self.frac_bits))

    @property
    def fits_int64(self) -> bool:
        """Whether every raw value of this type fits in ``np.int64``."""
        return self.min_raw >= _INT64_MIN and self.max_raw <= _INT64_MAX

    @classmethod
    def parse(cls, text: str) -> FixedType:
        """Parse an hls4ml precision string (``fixed<16,6,RND_CONV,SAT>``, ``ap_ufixed<8,0>``, ``int<8>``...)."""
        if not isinstance(text, str):
            raise FlowError(f"fixed-point type must be a string, got {text!r}")
        m = _TYPE_RE.match(text)
        if not m:
            raise FlowError(f"{text!r} is not a fixed-point type (expected e.g. fixed<16,6,RND_CONV,SAT> or int<8>)")
        unsigned, kind, body = m.group(1), m.group(2).lower(), m.group(3)
        args = [a for a in body.split(",")]
        if kind == "int":
            if len(args) != 1:
                raise FlowError(f"{text!r}: integer types take one argument, the width")
            width = _int_arg(args[0], "width", text)
            return cls(_checked_width(width, text), width, signed=not unsigned)
        if not 2 <= len(args) <= 5:
            raise FlowError(f"{text!r}: expected <width,int_bits[,rounding[,overflow[,sat_bits]]]>")
        width = _checked_width(_int_arg(args[0], "width", text), text)
        int_bits = _int_arg(args[1], "int_bits", text)
        rounding = _mode(Rounding, args[2], "rounding", text) if len(args) > 2 else Rounding.TRN
        overflow = _mode(Overflow, args[3], "overflow", text) if len(args) > 3 else Overflow.WRAP
        if len(args) > 4 and _int_arg(args[4], "saturation bits", text) != 0:
            raise FlowError(f"{text!r}: saturation bits (the 5th argument) other than 0 are not supported")
        return cls(width, int_bits, signed=not unsigned, rounding=rounding, overflow=overflow)  # type: ignore[arg-type]

    @classmethod
    def from_card(cls, bits: tuple[int, int] | list[int] | str, kind: Literal["bits", "relu"]) -> FixedType:
        """The activation type hls4ml gives QKeras ``quantized_bits(W,I)`` (kind "bits") or ``quantized_relu``."""
        width, int_bits = parse_card_bits(bits)
        shown = f"({width},{int_bits})"
        if width < 1:
            raise FlowError(f"{shown}: width must be >= 1")
        if int_bits < 0:
            raise FlowError(f"{shown}: integer bits must be >= 0")
        if kind == "bits":
            if int_bits >= width:
                raise FlowError(f"{shown}: integer bits must be < width {width} (quantized_bits adds a sign bit)")
            return cls(width, int_bits + 1, True, Rounding.RND_CONV, Overflow.SAT)
        if kind == "relu":
            if int_bits > width:
                raise FlowError(f"{shown}: integer bits must be <= width {width}")
            return cls(width, int_bits, False, Rounding.RND_CONV, Overflow.SAT)
        raise FlowError(f"unknown quantizer kind {kind!r} (allowed: bits, relu)")

    def __str__(self) -> str:
        args = [str(self.width), str(self.int_bits)]
        # Trailing defaults are omitted, as in C++: the overflow mode can only be given after the rounding mode.
        if self.overflow is not Overflow.WRAP:
            args += [self.rounding.value, self.overflow.value]
        elif self.rounding is not Rounding.TRN:
            args.append(self.rounding.value)
        return f"{'' if self.signed else 'u'}fixed<{','.join(args)}>"

    def to_float(self, raw: np.ndarray) -> np.ndarray:
        """The float64 values of raw mantissas (exact while they fit in 53 bits)."""
        return np.ldexp(np.asarray(raw).astype(np.float64), -self.frac_bits)

    def from_float(self, x: np.ndarray) -> np.ndarray:
        """Quantize float64 values exactly to raw mantissas of this type (its rounding and overflow)."""
        return from_float(x, self)

    def cast(self, raw: np.ndarray, src: FixedType) -> np.ndarray:
        """Convert raw mantissas of type ``src`` to raw mantissas of this type, as ap_fixed assignment does."""
        return cast(raw, src.frac_bits, self)


def _checked_width(width: int, text: str) -> int:
    if width < 1:
        raise FlowError(f"{text!r}: width must be >= 1")
    return width


# ---------------------------------------------------------------------------------------------------------------
# Vectorised kernels. The generic ones run on int64 arrays and on object arrays of Python ints alike.


def _round_increment(
    q: np.ndarray, above_half: np.ndarray, is_half: np.ndarray, nonzero: np.ndarray, neg: np.ndarray, mode: Rounding
) -> np.ndarray | None:
    """The 0/1 increment to add to ``q = floor(x)`` for rounding mode ``mode`` (None: none)."""
    if mode is Rounding.TRN:
        return None
    if mode is Rounding.TRN_ZERO:
        return neg & nonzero
    if mode is Rounding.RND:
        return above_half | is_half
    if mode is Rounding.RND_MIN_INF:
        return above_half
    if mode is Rounding.RND_ZERO:
        return above_half | (is_half & neg)
    if mode is Rounding.RND_INF:
        return above_half | (is_half & ~neg)
    # RND_CONV: ties go to the even neighbour.
    return above_half | (is_half & ((q & 1) == 1))


def _add(q: np.ndarray, inc: np.ndarray | None) -> np.ndarray:
    if inc is None:
        return q
    if q.dtype == object:
        return q + inc.astype(np.int64).astype(object)
    return q + inc.astype(np.int64)


def _wrap(v: np.ndarray, dst: FixedType) -> np.ndarray:
    """``v`` modulo ``2**width`` into the raw range of ``dst``."""
    width = dst.width
    if v.dtype == object:
        return ((v - dst.min_raw) % (1 << width)) + dst.min_raw
    if dst.signed:
        if width == 64:
            return v
        # Shift the kept bits to the top of a uint64 (modular, defined) and sign-extend back down.
        return ((v.view(np.uint64) << np.uint64(64 - width)).view(np.int64)) >> np.int64(64 - width)
    return v & np.int64((1 << width) - 1)


def _sat_min(dst: FixedType) -> int:
    """The lowest value saturation produces."""
    if dst.overflow is Overflow.SAT_SYM and dst.signed and dst.width > 1:
        # ap_fixed maps the most negative value itself to -max too. At width 1 it sets the raw bits to 1,
        # i.e. -1, so SAT_SYM then behaves like SAT.
        return -dst.max_raw
    return dst.min_raw


def _saturate(v: np.ndarray, dst: FixedType) -> np.ndarray:
    """Apply a non-WRAP overflow mode to exact values ``v``."""
    hi, lo = dst.max_raw, _sat_min(dst)
    if v.dtype != object:
        if dst.overflow is Overflow.SAT_ZERO:
            return np.where((v > hi) | (v < lo), np.int64(0), v)
        return np.clip(v, np.int64(lo), np.int64(hi))
    over, under = (v > hi).astype(bool), (v < lo).astype(bool)
    if dst.overflow is Overflow.SAT_ZERO:
        return np.where(over | under, 0, v)
    return np.where(over, hi, np.where(under, lo, v))


def _overflow(v: np.ndarray, dst: FixedType) -> np.ndarray:
    if dst.overflow is Overflow.WRAP:
        return _wrap(v, dst)
    return _saturate(v, dst)


def _as_int_array(raw: np.ndarray | int) -> np.ndarray:
    """``raw`` as an int64 array if every value fits, else an object array of Python ints."""
    a = np.asarray(raw)
    if a.dtype == np.int64:
        return a
    if a.dtype == object:
        if not a.size:
            return a.astype(np.int64)
        if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in a.flat):
            raise FlowError("raw fixed-point values must be integers")
        a = np.vectorize(int, otypes=[object])(a)
        if _INT64_MIN <= min(a.flat) and max(a.flat) <= _INT64_MAX:
            return a.astype(np.int64)
        return a
    if a.dtype.kind in "bi" or (a.dtype.kind == "u" and a.dtype.itemsize < 8):
        return a.astype(np.int64)
    if a.dtype.kind == "u":
        return a.astype(np.int64) if (not a.size or a.max() <= _INT64_MAX) else a.astype(object)
    raise FlowError(f"raw fixed-point values must be integers, got dtype {a.dtype}")


def _finish(v: np.ndarray, dst: FixedType) -> np.ndarray:
    """int64 when the destination type fits in it (the values then do), else object."""
    if dst.fits_int64:
        return v if v.dtype == np.int64 else v.astype(np.int64)
    return v if v.dtype == object else v.astype(object)


def cast(raw: np.ndarray | int, src_frac_bits: int, dst: FixedType) -> np.ndarray:
    """Convert raw mantissas with ``src_frac_bits`` fraction bits to raw mantissas of ``dst`` (ap_fixed rules)."""
    a = _as_int_array(raw)
    # The kernels see at least 1-d arrays: object arithmetic on a 0-d array gives a bare Python int.
    return _cast(a.reshape(-1), src_frac_bits, dst).reshape(a.shape)


def _cast(a: np.ndarray, src_frac_bits: int, dst: FixedType) -> np.ndarray:
    shift = src_frac_bits - dst.frac_bits
    if a.dtype == object or not dst.fits_int64:
        return _finish(_cast_object(a.astype(object), shift, dst), dst)
    if shift > 0:
        return _cast_right_int64(a, shift, dst)
    if shift < 0:
        return _cast_left_int64(a, -shift, dst)
    return _overflow(a, dst)


def _cast_object(a: np.ndarray, shift: int, dst: FixedType) -> np.ndarray:
    """Exact cast on Python ints (any width, any shift)."""
    if not a.size:
        return a
    if shift <= 0:
        return _overflow(a << -shift, dst)
    q = a >> shift
    rem = a & ((1 << shift) - 1)
    half = 1 << (shift - 1)
    neg = (a < 0).astype(bool)
    inc = _round_increment(
        q, (rem > half).astype(bool), (rem == half).astype(bool), (rem != 0).astype(bool), neg, dst.rounding
    )
    return _overflow(_add(q, inc), dst)


def _cast_right_int64(a: np.ndarray, shift: int, dst: FixedType) -> np.ndarray:
    """Drop ``shift`` fraction bits from int64 values, round, then handle overflow."""
    # For |a| <= 2**63 every shift >= 65 rounds the same way (|x| <= 1/4 LSB, no ties), so clamp; then fold the
    # bits beyond 62 into a sticky bit 0, which keeps the floor, the half bit and "anything below it" intact.
    shift = min(shift, 65)
    if shift > _MAX_INT64_SHIFT:
        t = shift - _MAX_INT64_SHIFT
        sticky = (a & np.int64((1 << t) - 1)) != 0
        a = (a >> np.int64(t)) | sticky.astype(np.int64)
        shift = _MAX_INT64_SHIFT
    if not a.size or a.max() < (1 << _MAX_INT64_SHIFT):
        # No offset added below can overflow: round by adding an offset, then floor-shift.
        return _overflow(_round_shift(a, shift, dst.rounding), dst)
    q = a >> np.int64(shift)
    rem = a & np.int64((1 << shift) - 1)
    half = np.int64(1 << (shift - 1))
    inc = _round_increment(q, rem > half, rem == half, rem != 0, a < 0, dst.rounding)
    return _overflow(_add(q, inc), dst)


def _round_shift(a: np.ndarray, shift: int, mode: Rounding) -> np.ndarray:
    """``round(a / 2**shift)`` for int64 ``a < 2**62``: ``(a + offset) >> shift`` with a per-mode offset."""
    s = np.int64(shift)
    half = np.int64(1 << (shift - 1))
    if mode is Rounding.TRN:
        return a >> s
    if mode is Rounding.RND:
        return (a + half) >> s
    if mode is Rounding.RND_MIN_INF:
        return (a + (half - 1)) >> s
    if mode is Rounding.RND_CONV:
        # A tie rounds up exactly when the truncated value is odd.
        return (a + (half - 1) + ((a >> s) & np.int64(1))) >> s
    sign = a >> np.int64(63)  # -1 for negative values, 0 otherwise
    if mode is Rounding.TRN_ZERO:
        return (a + (sign & np.int64((1 << shift) - 1))) >> s
    if mode is Rounding.RND_INF:
        return (a + half + sign) >> s
    return (a + (half - 1) - sign) >> s  # RND_ZERO


def _cast_left_int64(a: np.ndarray, k: int, dst: FixedType) -> np.ndarray:
    """Add ``k`` fraction bits (exact, no rounding), then handle overflow without leaving int64."""
    # Modular shift in uint64: exact modulo 2**64, which is all WRAP (width <= 64) needs.
    shifted = (a.view(np.uint64) << np.uint64(k)).view(np.int64) if k < 64 else np.zeros_like(a)
    if dst.overflow is Overflow.WRAP:
        return _wrap(shifted, dst)
    hi, lo = dst.max_raw, _sat_min(dst)
    # Compare before shifting: a << k > hi  <=>  a > floor(hi / 2**k); a << k < lo  <=>  a < ceil(lo / 2**k).
    over = a > np.int64(hi >> k)
    under = a < np.int64(-((-lo) >> k))
    if dst.overflow is Overflow.SAT_ZERO:
        return np.where(over | under, np.int64(0), shifted)
    return np.where(over, np.int64(hi), np.where(under, np.int64(lo), shifted))


def from_float(x: np.ndarray | float, dst: FixedType) -> np.ndarray:
    """Quantize float64 values exactly to raw mantissas of ``dst``; NaN raises, +-inf act as +-2**1024 (ap_fixed)."""
    a = np.asarray(x, dtype=np.float64)
    return _from_float(a.reshape(-1), dst).reshape(a.shape)  # 1-d inside, as in cast()


def _from_float(x: np.ndarray, dst: FixedType) -> np.ndarray:
    if not x.size:
        return _finish(np.zeros(x.shape, dtype=np.int64), dst)
    x_min, x_max = float(x.min()), float(x.max())  # NaN propagates into both
    if np.isnan(x_min) or np.isnan(x_max):
        raise FlowError(f"cannot convert NaN to {dst}")
    frac = dst.frac_bits
    if dst.fits_int64 and -1000 < frac < 1000 and max(-x_min, x_max) * 2.0**frac < 2.0**52:
        y = np.asarray(x * 2.0**frac)  # an array even for 0-d x, so the in-place rounding below works
        # Scaling by 2**frac is exact unless it shrinks values into subnormals: check it round-trips then.
        if frac >= 0 or np.array_equal(y * 2.0**-frac, x):
            if dst.rounding in _FLOAT_ROUNDERS and dst.overflow in (Overflow.SAT, Overflow.SAT_SYM):
                # Round and clamp in place in float64 (integers below 2**52 are exact), then convert once.
                _FLOAT_ROUNDERS[dst.rounding](y, out=y)
                np.clip(y, float(_sat_min(dst)), float(dst.max_raw), out=y)
                return y.astype(np.int64)
            return _overflow(_round_float(y, dst.rounding), dst)
    return _from_float_object(x, dst)


# Rounding modes IEEE float64 does exactly: round-to-nearest-even, floor and truncation.
_FLOAT_ROUNDERS = {Rounding.RND_CONV: np.rint, Rounding.TRN: np.floor, Rounding.TRN_ZERO: np.trunc}


def _round_float(y: np.ndarray, mode: Rounding) -> np.ndarray:
    """Round float64 values ``|y| < 2**52`` to int64 with ``mode`` (comparisons only: no inexact arithmetic)."""
    if mode in _FLOAT_ROUNDERS:
        return _FLOAT_ROUNDERS[mode](y).astype(np.int64)
    floor = np.floor(y)
    mid = floor + 0.5  # exact below 2**52; y - floor(y) would not be (e.g. y = -2**-60)
    inc = _round_increment(floor, y > mid, y == mid, y != floor, y < 0, mode)
    return _add(floor.astype(np.int64), inc)


def _from_float_object(x: np.ndarray, dst: FixedType) -> np.ndarray:
    """Exact slow path: each double as an integer over a common power-of-two denominator."""
    if not x.size:
        return _finish(np.zeros(x.shape, dtype=object), dst)
    nums, exps = [], []
    for v in x.flat:
        if np.isinf(v):
            n, d = (1 << 1024) * (1 if v > 0 else -1), 1
        else:
            n, d = float(v).as_integer_ratio()
        nums.append(n)
        exps.append(d.bit_length() - 1)
    src_frac = max(exps)
    raw = np.empty(x.shape, dtype=object)
    raw.flat[:] = [n << (src_frac - e) for n, e in zip(nums, exps)]
    return _finish(_cast_object(raw, src_frac - dst.frac_bits, dst), dst)
