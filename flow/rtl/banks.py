"""Weight banks of a shared folded dense layer whose members' types differ (``serial_members``).

hls4ml's bit-exact pass types every member's weights, biases and accumulator from its own values, so members of one
structure can differ there. The shared datapath holds every bank in one union type: weights at the finest weight
fraction, the accumulator at the finest fraction and the most integer bits of any member. Every term is a
multiple of bank b's accumulator LSB and the union accumulator wraps modulo a multiple of bank b's modulus, so
bank b's own wrapped accumulator is an exact bit field of the union one; each bank's casts then run on that field.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding
from flow.layers import DenseLayer
from flow.rtl.common import aligned_biases, check_accumulator, elem_casts, elementwise_chain


@dataclass(frozen=True)
class SharedBanks:
    """The datapath's layer (union types, bank 0's weights) and every bank's weights and biases in those types."""

    layer: DenseLayer
    banks: list[DenseLayer]  # weights aligned to the union weight type
    biases: list[list[int]]  # each bank's (accum_t) bias as union accumulator mantissas
    own: list[DenseLayer]  # the members' layers as they are (their accum_t and result_t give the output casts)

    @property
    def uniform(self) -> bool:
        """Every bank of the same types: the datapath is the members' own."""
        return len({_types(b) for b in self.own}) == 1


def _types(layer: DenseLayer) -> tuple[str, ...]:
    return tuple(str(t) for t in (layer.weight_t, layer.bias_t, layer.accum_t, layer.result_t))


def union_weight_t(types: list[FixedType]) -> FixedType:
    """The narrowest type holding every raw weight of ``types`` exactly (finest fraction, most integer bits)."""
    signed = any(t.signed for t in types)
    frac = max(t.frac_bits for t in types)
    ints = max(t.int_bits + (1 if signed and not t.signed else 0) for t in types)
    return FixedType(ints + frac, ints, signed)


def union_accum_t(types: list[FixedType]) -> FixedType:
    """A wrapping accumulator whose modulus is a multiple of every bank's and whose LSB divides every bank's."""
    frac = max(t.frac_bits for t in types)
    ints = max(t.int_bits for t in types)
    return FixedType(ints + frac, ints, True, Rounding.TRN, Overflow.WRAP)


def shared_banks(banks: list[DenseLayer], in_t: FixedType) -> SharedBanks:
    """The union datapath of ``banks`` (members' layers of one shape) fed by inputs of ``in_t``."""
    for b in banks:
        check_accumulator(b, in_t)  # each bank's products exact, its accumulator wrapping (or provably safe)
    w_t = union_weight_t([b.weight_t for b in banks])
    acc_t = union_accum_t([b.accum_t for b in banks])
    aligned = [
        replace(b, weights=np.asarray(b.weights, dtype=object) << (w_t.frac_bits - b.weight_t.frac_bits), weight_t=w_t)
        for b in banks
    ]
    biases = [[v << (acc_t.frac_bits - b.accum_t.frac_bits) for v in aligned_biases(b)] for b in banks]
    layer = replace(aligned[0], accum_t=acc_t)
    return SharedBanks(layer, [replace(b, accum_t=acc_t) for b in aligned], biases, list(banks))


def bank_outputs(
    shared: SharedBanks, accs: list[str], post: list, sel: str, sel_width: int, out_width: int
) -> tuple[str, str]:
    """Each type-distinct bank's field of the union accumulators cast to its result and through ``post``, picked
    by ``sel``; returns (text, the packed result)."""
    acc_t = shared.layer.accum_t
    groups: dict[tuple[str, str], list[int]] = {}
    for b, layer in enumerate(shared.own):
        groups.setdefault((str(layer.accum_t), str(layer.result_t)), []).append(b)
    text, results = "", []
    for k, members in enumerate(groups.values()):
        own = shared.own[members[0]]
        if not post and own.result_t.width != out_width:
            raise FlowError(
                f"serial_members: layer {own.name}'s result {own.result_t} differs from another member's and no "
                "cast follows it; one shared datapath needs one output type per layer (use parallel_members)"
            )
        lo = acc_t.frac_bits - own.accum_t.frac_bits
        fields = [f"{a}[{lo + own.accum_t.width - 1}:{lo}]" for a in accs]
        cast, outs = elem_casts(f"rd{k}", fields, False, own.accum_t, own.result_t)
        chain, last = elementwise_chain(f"e{k}", own.result_t, post, outs)
        text += cast + chain
        results.append((members, last))
    if len(results) == 1:
        return text, results[0][1]
    text += f"    // The sample's bank picks its own casts.\n    reg [{len(accs) * out_width - 1}:0] res_bank;\n"
    text += f"    always @* begin\n        case ({sel})\n"
    for members, last in results[1:]:
        labels = ", ".join(f"{sel_width}'d{b}" for b in members)
        text += f"            {labels}: res_bank = {last};\n"
    text += f"            default: res_bank = {results[0][1]};\n        endcase\n    end\n"
    return text, "res_bank"
