"""The ensemble's voter in RTL: the members' logits in, the class out, combinational and bit-exact with
:class:`flow.layers.VoteLayer` for every method (:data:`VOTE_EMITTERS`).

* ``hard``: each member's argmax (``qflow_argmax``), the members per class, the argmax of those counts.
* ``logit_sum``: the members' logits aligned to the finest fraction among them and summed exactly; the argmax.
* ``soft``: per member ``d_j = max - x_j``, ``EXP[(exp_in_t) d_j]``, the exact sum, ``RECIP[(recip_in_t) sum]``,
  ``(prob_t)(e_j * r)``; the exact class sums over the members; the argmax. The two tables are built by the
  vote kind's own functions (``exp_table``, ``recip_table``), so the reference and the RTL read the same words.

Ties go to the lowest class at every step (``qflow_argmax``'s rule and the vote kind's).
"""

from __future__ import annotations

from collections.abc import Callable

from flow.fixed import FixedType
from flow.layers.vote import VoteLayer, VoteMethod, exp_table, recip_table
from flow.rtl.common import cast_params, ext, signed_width

FIXED_BLOCKS = ["qflow_fixed_cast.v", "qflow_argmax.v"]


def clog2(n: int) -> int:
    """Bits to count 0 .. n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


def member_elems(in_types: list[FixedType], n: int) -> tuple[str, list[list[str]]]:
    """Wires ``lg<m>_<j>``: member m's logit j from the packed ``logits`` port (member 0 low, each its own width)."""
    text, out, pos = "", [], 0
    for i, t in enumerate(in_types):
        row = []
        for j in range(n):
            lo = pos + j * t.width
            text += f"    wire [{t.width - 1}:0] lg{i}_{j} = logits[{lo + t.width - 1}:{lo}];\n"
            row.append(f"lg{i}_{j}")
        out.append(row)
        pos += n * t.width
    return text, out


def argmax(prefix: str, elems: list[str], width: int, signed: bool, cw: int) -> tuple[str, str]:
    """``qflow_argmax`` over ``elems`` (each ``width`` bits); (text, the index wire)."""
    bus = "{" + ", ".join(reversed(elems)) + "}"
    text = f"    wire [{cw - 1}:0] {prefix};\n"
    text += (
        f"    qflow_argmax #(.N({len(elems)}), .W({width}), .S({int(signed)}), .CW({cw})) u_{prefix} "
        f"(.din({bus}), .idx({prefix}));\n"
    )
    return text, prefix


def _hard(layer: VoteLayer, in_types: list[FixedType]) -> tuple[str, list[str], int, bool]:
    """Members per class (counts of each member's argmax)."""
    n, m = layer.n_classes, len(in_types)
    cw, kw = clog2(n), clog2(m + 1)
    text, members = member_elems(in_types, n)
    idx = []
    for i, (t, elems) in enumerate(zip(in_types, members)):
        chunk, w = argmax(f"am{i}", elems, t.width, t.signed, cw)
        text += chunk
        idx.append(w)
    scores = []
    for j in range(n):
        terms = " + ".join(ext(f"({w} == {cw}'d{j})", 1, kw, False) for w in idx)
        text += f"    wire [{kw - 1}:0] cnt{j} = {terms};\n"
        scores.append(f"cnt{j}")
    return text, scores, kw, False


def _logit_sum(layer: VoteLayer, in_types: list[FixedType]) -> tuple[str, list[str], int, bool]:
    """The exact sums of the members' logits, each shifted to the finest fraction (as the vote kind)."""
    n = layer.n_classes
    frac = max(t.frac_bits for t in in_types)
    sw = max(signed_width(t) + frac - t.frac_bits for t in in_types) + len(in_types).bit_length()
    text, elems = member_elems(in_types, n)
    scores = []
    for j in range(n):
        terms = []
        for t, e in zip(in_types, elems):
            sh = frac - t.frac_bits
            val = ext(e[j], t.width, sw - sh, t.signed)
            terms.append(f"{{{val}, {sh}'d0}}" if sh else val)
        text += f"    wire [{sw - 1}:0] sum{j} = {' + '.join(terms)};\n"
        scores.append(f"sum{j}")
    return text, scores, sw, True


def _table_function(name: str, table, in_w: int, out_w: int) -> str:
    """A combinational ROM as a Verilog function (a case per word)."""
    cases = "".join(f"            {in_w}'d{i}: {name} = {out_w}'d{int(v)};\n" for i, v in enumerate(table))
    return (
        f"    function [{out_w - 1}:0] {name}(input [{in_w - 1}:0] a);\n        begin\n            case (a)\n"
        f"{cases}            default: {name} = {out_w}'d0;\n            endcase\n        end\n    endfunction\n"
    )


def _soft(layer: VoteLayer, in_types: list[FixedType]) -> tuple[str, list[str], int, bool]:
    """The exact class sums of each member's fixed-point softmax."""
    sm = layer.softmax
    assert sm is not None
    n, m = layer.n_classes, len(in_types)
    ew, rw, pw = sm.exp_t.width, sm.recip_t.width, sm.prob_t.width
    text, members = member_elems(in_types, n)
    text += _table_function("exp_rom", exp_table(sm.exp_in_t, sm.exp_t), sm.exp_in_t.width, ew)
    text += _table_function("recip_rom", recip_table(sm.recip_in_t, sm.recip_t), sm.recip_in_t.width, rw)
    sum_w = ew + clog2(n + 1)
    probs: list[list[str]] = []
    for i, (t, elems) in enumerate(zip(in_types, members)):
        xw = signed_width(t)
        xs = [e if t.signed else f"{{1'b0, {e}}}" for e in elems]
        # The maximum by a chain of comparisons (any order gives the same value).
        text += f"    wire [{xw - 1}:0] mx{i}_0 = {xs[0]};\n"
        for j in range(1, n):
            prev = f"mx{i}_{j - 1}"
            text += f"    wire [{xw - 1}:0] mx{i}_{j} = $signed({xs[j]}) > $signed({prev}) ? {xs[j]} : {prev};\n"
        mx = f"mx{i}_{n - 1}"
        for j in range(n):
            # max - x fits the logit's width unsigned (0 .. 2**W - 1).
            text += f"    wire [{t.width - 1}:0] d{i}_{j} = {ext(mx, xw, t.width, True)} - {elems[j]};\n"
            text += f"    wire [{sm.exp_in_t.width - 1}:0] di{i}_{j};\n"
            text += (
                f"    qflow_fixed_cast #({cast_params(t.width, t.frac_bits, False, sm.exp_in_t)}) u_di{i}_{j} "
                f"(.din(d{i}_{j}), .dout(di{i}_{j}));\n"
            )
            text += f"    wire [{ew - 1}:0] e{i}_{j} = exp_rom(di{i}_{j});\n"
        terms = " + ".join(ext(f"e{i}_{j}", ew, sum_w, False) for j in range(n))
        text += f"    wire [{sum_w - 1}:0] s{i} = {terms};\n"
        text += f"    wire [{sm.recip_in_t.width - 1}:0] si{i};\n"
        text += (
            f"    qflow_fixed_cast #({cast_params(sum_w, sm.exp_t.frac_bits, False, sm.recip_in_t)}) u_si{i} "
            f"(.din(s{i}), .dout(si{i}));\n"
        )
        text += f"    wire [{rw - 1}:0] r{i} = recip_rom(si{i});\n"
        for j in range(n):
            text += f"    wire [{ew + rw - 1}:0] er{i}_{j} = e{i}_{j} * r{i};\n"
            text += f"    wire [{pw - 1}:0] p{i}_{j};\n"
            params = cast_params(ew + rw, sm.exp_t.frac_bits + sm.recip_t.frac_bits, False, sm.prob_t)
            text += f"    qflow_fixed_cast #({params}) u_p{i}_{j} (.din(er{i}_{j}), .dout(p{i}_{j}));\n"
        probs.append([f"p{i}_{j}" for j in range(n)])
    tw = pw + clog2(m + 1)
    scores = []
    for j in range(n):
        terms = " + ".join(ext(probs[i][j], pw, tw, False) for i in range(m))
        text += f"    wire [{tw - 1}:0] ps{j} = {terms};\n"
        scores.append(f"ps{j}")
    return text, scores, tw, False


# method -> (layer, member logit types) -> (Verilog, score wires, their width, signed)
VOTE_EMITTERS: dict[VoteMethod, Callable[[VoteLayer, list[FixedType]], tuple[str, list[str], int, bool]]] = {
    VoteMethod.HARD: _hard,
    VoteMethod.LOGIT_SUM: _logit_sum,
    VoteMethod.SOFT: _soft,
}


def logits_width(in_types: list[FixedType], n_classes: int) -> int:
    """Bits of the packed ``logits`` port."""
    return sum(n_classes * t.width for t in in_types)


def vote_module(name: str, layer: VoteLayer, in_types: list[FixedType]) -> str:
    """The voter as one combinational module: ``logits`` (every member's, member 0 low) -> ``cls``."""
    cw = layer.result_t.width
    body, scores, sw, signed = VOTE_EMITTERS[layer.method](layer, in_types)
    chunk, idx = argmax("best", scores, sw, signed, cw)
    return f"""// {name}: {layer.method.value} voting over {len(in_types)} member(s) of {layer.n_classes} classes,
// ties to the lowest class. Generated by qflow. Do not edit.
`timescale 1ns / 1ps
/* verilator lint_off UNUSEDSIGNAL */
// Reason: products and sums are declared wide enough for every value; a cast uses only the bits it needs.
module {name} (
    input wire [{logits_width(in_types, layer.n_classes) - 1}:0] logits,
    output wire [{cw - 1}:0] cls
);
{body}{chunk}    assign cls = {idx};
endmodule
/* verilator lint_on UNUSEDSIGNAL */
"""
