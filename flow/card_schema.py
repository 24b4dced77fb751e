"""What the card parser and the search space share: where cards live, bitwidths, error messages naming a field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow.errors import FlowError
from flow.fixed import FixedType, parse_card_bits

QMODELS_DIR = Path(__file__).resolve().parent.parent / "qmodels"
# Card bitwidths stop at 64 bits: wider ones buy nothing (QKeras quantizes in float32), and past 1023 bits
# 2**width no longer fits a float (an OverflowError deep in the flow). hls4ml's ap_fixed would allow 1024.
MAX_CARD_WIDTH = 64


@dataclass(frozen=True)
class Bits:
    """A card bitwidth ``(W,I)``: QKeras ``quantized_bits(W,I)`` / ``quantized_relu(W,I)``."""

    width: int
    int_bits: int

    def __str__(self) -> str:
        return f"({self.width},{self.int_bits})"

    def fixed(self, kind: str) -> FixedType:
        """The hls4ml type of an activation quantized this way (``kind`` is ``bits`` or ``relu``)."""
        return FixedType.from_card((self.width, self.int_bits), kind)


class Where:
    """Builds error messages that name the card file (or the base card the field came from) and the field."""

    def __init__(self, path: Path | None, origins: dict[str, Path] | None = None):
        self.path = path
        self.origins = origins or {}

    def file_of(self, fld: str) -> Path | None:
        """The file that sets ``fld`` or its closest enclosing field (``layers[0].weight`` -> ``layers``)."""
        key = fld
        while key:
            if key in self.origins:
                return self.origins[key]
            key = key[: max(key.rfind("."), key.rfind("["), 0)]
        return self.path

    def error(self, fld: str, msg: str) -> FlowError:
        path = self.file_of(fld)
        return FlowError(f"{path if path else '<card>'}: {fld}: {msg}")


def check_bits(w: Where, fld: str, value: Any, kind: str) -> Bits:
    """A card bitwidth field ``(W,I)`` of ``kind`` (``bits`` or ``relu``); a one-line error naming the field."""
    try:
        width, int_bits = parse_card_bits(value)
        FixedType.from_card((width, int_bits), kind)
    except FlowError as exc:
        raise w.error(fld, str(exc)) from None
    except ValueError:  # int() of a number with more than 4300 digits
        raise w.error(fld, f"{value!r} is not allowed; expected (width,int_bits), e.g. (12,2)") from None
    if width > MAX_CARD_WIDTH:
        raise w.error(fld, f"({width},{int_bits}): width must be 1..{MAX_CARD_WIDTH}")
    return Bits(width, int_bits)
