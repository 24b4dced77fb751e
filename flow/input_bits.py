"""The input fixed-point type of a model that has no input quantizer: chosen from the training data or given."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding, from_float, parse_card_bits

DEFAULT_INPUT_WIDTH = 16
MAX_INPUT_WIDTH = 32


@dataclass(frozen=True)
class InputChoice:
    """``quantized_bits(width, int_bits)`` for the input, where it came from and what it clips."""

    width: int
    int_bits: int
    source: str  # "data" or "--input-bits"
    saturated: int  # training values outside the type's range
    total: int

    @property
    def fixed(self) -> FixedType:
        return FixedType(self.width, self.int_bits + 1, True, Rounding.RND_CONV, Overflow.SAT)

    def describe(self) -> str:
        share = 100.0 * self.saturated / max(self.total, 1)
        return (
            f"input quantized_bits({self.width},{self.int_bits}) = {self.fixed} ({self.source}); "
            f"saturates {self.saturated} of {self.total} training values ({share:.2f} %)"
        )


def parse_input_bits(text: str) -> tuple[int, int]:
    """``--input-bits (W,I)``: QKeras quantized_bits(W,I), 2 <= W <= 32, 0 <= I < W."""
    try:
        width, int_bits = parse_card_bits(text)
    except FlowError:
        raise FlowError(f"--input-bits {text!r}: expected (W,I), e.g. (16,4)") from None
    if not 2 <= width <= MAX_INPUT_WIDTH or not 0 <= int_bits < width:
        raise FlowError(
            f"--input-bits {text!r}: need 2 <= W <= {MAX_INPUT_WIDTH} and 0 <= I < W (I integer bits plus the sign)"
        )
    return width, int_bits


def choose_input(X_train: np.ndarray, given: tuple[int, int] | None = None) -> InputChoice:
    """The given ``(W,I)``, or the default width with just enough integer bits for the range of ``X_train``."""
    x = np.asarray(X_train, dtype=np.float64)
    if given is not None:
        width, int_bits = given
        source = "--input-bits"
    else:
        top = float(np.max(np.abs(x))) if x.size else 0.0
        # quantized_bits(W,I) holds [-2**I, 2**I - lsb]: the smallest I with 2**I > max|x|.
        int_bits = max(0, math.floor(math.log2(top)) + 1) if top > 0 else 0
        width = DEFAULT_INPUT_WIDTH
        if int_bits >= width:
            raise FlowError(
                f"X_train reaches {top:g}: over {width - 1} integer bits; scale the data or give --input-bits (W,I)"
            )
        source = f"from the range of X_train, [{x.min():g}, {x.max():g}]"
    t = FixedType(width, int_bits + 1, True, Rounding.RND_CONV, Overflow.SAT)
    raw = from_float(x, t)
    exact = np.ldexp(x, t.frac_bits)
    saturated = int(
        np.count_nonzero((raw == t.max_raw) & (exact > t.max_raw + 0.5))
        + np.count_nonzero((raw == t.min_raw) & (exact < t.min_raw - 0.5))
    )
    return InputChoice(width, int_bits, source, saturated, int(x.size))
