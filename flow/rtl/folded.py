"""The ``folded`` architecture: each dense layer time-multiplexed by a reuse factor R.

A layer runs R steps per sample with ``ceil(n_in * n_out / R)`` multipliers (exactly that when R divides the
work as hls4ml requires). Weights sit in a ROM (``reg`` array initialised in an ``initial`` block, read
synchronously: Yosys maps it to block RAM or LUTs), one word per step holding every multiplier's weight.
Inputs sit in a rotating register read at a fixed place. Two schedules, as hls4ml's Resource strategy:

* R <= n_in: every output has ``ceil(n_in / R)`` multipliers; step c feeds input ``p * R + c`` to multiplier p.
* R > n_in (R a multiple of n_in): ``Q = R / n_in`` outputs share a multiplier, one after the other.

Layers are chained with valid/ready handshakes; a layer takes a new sample when it is idle and its result has
been taken (II = max over layers of R + 3 cycles). Default R = n_in (n_out multipliers, one input per step).

Knob ``in_beat = B`` streams the input: ``in_data`` carries B inputs per beat (``in_last`` on a sample's last
beat) and the first layer consumes each beat as its steps need it, so nothing holds the whole vector. Its steps
then read contiguous inputs (step c: inputs ``c * P .. c * P + P - 1``, P = ceil(n_in / R)), which needs R <= n_in
and B a multiple of P; S = ceil(n_in / P) steps, B / P per beat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, DenseLayer, LayerKind
from flow.rtl.banks import bank_outputs, shared_banks
from flow.rtl.common import (
    CHAIN_KINDS,
    IMAGE_KINDS,
    DenseShapeLike,
    Emitted,
    aligned_biases,
    check_accumulator,
    elem_casts,
    elementwise_chain,
    ext,
    header,
    identifier,
    lit,
    module_ports,
    output_handshake,
    output_stage,
    post_size,
    segments,
    signed_width,
    unpack,
)

FIXED_BLOCKS = ["qflow_fixed_cast.v", "qflow_argmax.v"]
KNOBS = {"reuse_factors": None, "in_beat": None}
KINDS = CHAIN_KINDS | IMAGE_KINDS  # a conv2d is folded as its full dense layer (Conv2DLayer.as_full_dense)
ROM_BITS_PER_LUT = 64  # proxy: a LUT6 holds 64 ROM bits
OVERHEAD_CYCLES = 3  # per sample and layer: take, ROM read, last accumulation


def clog2(n: int) -> int:
    """Bits to count 0 .. n-1 (at least 1)."""
    return max(1, math.ceil(math.log2(n))) if n > 1 else 1


def check_reuse(name: str, n_in: int, n_out: int, r: int) -> int:
    """``r`` if the folded schedule supports it for dense layer ``name`` (n_in -> n_out), else a FlowError."""
    if not isinstance(r, (int, np.integer)) or r < 1:
        raise FlowError(f"layer {name}: reuse factor must be an integer >= 1, got {r!r}")
    if r > n_in and (r % n_in or r > n_in * n_out):
        raise FlowError(
            f"layer {name}: reuse factor {r} > n_in = {n_in} must be a multiple of n_in up to "
            f"n_in * n_out = {n_in * n_out}"
        )
    return int(r)


def card_knobs(card_reuse: dict[str, int], override: dict[str, int] | None = None) -> dict:
    """The knobs the reuse factors hls4ml applied (the IR's) give this architecture (``override`` wins).

    R = 1 is hls4ml's fully parallel default: folded by it, a layer would be a parallel one with an II of 4, so
    such a layer keeps the folded default R = n_in.
    """
    folded = {name: r for name, r in card_reuse.items() if r > 1}
    return {"reuse_factors": {**folded, **(override or {})}}


def check_layer(name: str, n_in: int, n_out: int, reuse: int) -> None:
    """A FlowError unless the folded schedule supports the card's reuse factor for this layer."""
    check_reuse(name, n_in, n_out, reuse)


def proxy_terms(layer: DenseShapeLike) -> dict[str, float]:
    """Proxy bit operations: ``P = ceil(n_in * n_out / R)`` shared multipliers and accumulators, weights in ROM."""
    p = math.ceil(layer.n_in * layer.n_out / max(layer.reuse_factor, 1))
    return {
        "mult": float(p * layer.x_bits * layer.w_bits),
        "add": float(p * layer.acc_bits),
        "rom": layer.n_in * layer.n_out * layer.w_bits / ROM_BITS_PER_LUT,
    }


def check_beat(ir: IR, r: int, in_beat: int | None) -> int | None:
    """``in_beat`` if the first dense layer (reuse factor ``r``) can consume beats of that size, else a FlowError."""
    if in_beat is None:
        return None
    first = next((layer for layer in ir.chain("the folded architecture") if layer.kind is LayerKind.DENSE), None)
    if not isinstance(in_beat, (int, np.integer)) or not 1 <= in_beat <= ir.input.n:
        raise FlowError(f"in_beat must be an integer from 1 to n_in = {ir.input.n}, got {in_beat!r}")
    if first is None:
        raise FlowError("in_beat: streaming input needs a dense layer to consume it")
    if any(layer.kind is LayerKind.CONV2D for layer in ir.nodes):
        raise FlowError("in_beat: an image streams into its convolutions in the linebuffer architecture")
    if r > first.n_in:
        raise FlowError(
            f"in_beat: streaming input needs the first layer's reuse factor <= n_in = {first.n_in} (layer "
            f"{first.name} has R = {r}, which reads every input R / n_in times)"
        )
    lanes = math.ceil(first.n_in / r)
    if in_beat % lanes:
        raise FlowError(
            f"in_beat = {in_beat} must be a multiple of the {lanes} inputs layer {first.name} takes per step "
            f"(ceil(n_in / R) with R = {r})"
        )
    return int(in_beat)


def emit(ir: IR, top: str, reuse_factors: dict[str, int] | None = None, in_beat: int | None = None) -> Emitted:
    """Verilog for ``ir``: one module per dense layer and the top (``in_beat``: streaming input)."""
    reuse_factors = dict(reuse_factors or {})
    dense_names = {layer.name for layer in ir.chain("the folded architecture") if layer.kind is LayerKind.DENSE}
    unknown = set(reuse_factors) - dense_names
    if unknown:
        raise FlowError(f"reuse_factors: no dense layer named {', '.join(sorted(unknown))} in {ir.name}")
    files: dict[str, str] = {}
    segs = segments(ir, "folded")
    first_r = next((reuse_factors.get(g.dense.name, g.dense.n_in) for g in segs[1:] if g.dense is not None), 1)
    in_beat = check_beat(ir, first_r, in_beat)
    in_elems = unpack("in_data", in_beat or ir.input.n, ir.input.type.width)
    text, cur = elementwise_chain("s0", ir.input.type, segs[0].post, in_elems, "in_data")
    chain = layer_chain(segs, top, reuse_factors, Link(cur, "in_valid", "in_ready", "in_last"), in_beat)
    files.update(chain.files)
    body = text + chain.body
    cur, valid, ready = chain.out.data, chain.out.valid, chain.out.ready
    latency, ii, used = 1 + chain.latency_cycles, chain.ii_cycles, chain.reuse_factors
    knobs = {"reuse_factors": used, **({"in_beat": in_beat} if in_beat else {})}
    top_text = header(ir, top, "folded", latency, ii, in_beat) + module_ports(ir, top, in_beat) + body
    top_text += output_handshake(valid, ready)
    top_text += output_stage(ir, cur, "take_out") + "endmodule\n"
    files[f"{top}.v"] = top_text
    return Emitted(files, FIXED_BLOCKS, latency, ii, knobs, in_beat=in_beat, layer_modules=chain.modules)


@dataclass(frozen=True)
class Link:
    """A valid/ready connection between stages: the data bus, its valid, its ready (and last, streaming)."""

    data: str
    valid: str
    ready: str
    last: str = ""
    sel: str = ""  # the weight bank of the sample (shared datapaths)


@dataclass(frozen=True)
class Chain:
    """The folded dense layers of a chain: their modules, the top's instances, the output link and figures."""

    files: dict[str, str]
    body: str
    out: Link
    latency_cycles: int  # from the edge taking the sample (streaming: its last beat) to the last layer's valid
    ii_cycles: int
    reuse_factors: dict[str, int]

    @property
    def modules(self) -> list[str]:
        """The layer modules, one per file (named as its module)."""
        return [name.removesuffix(".v") for name in self.files]


def layer_chain(
    segs: list,
    top: str,
    reuse_factors: dict[str, int],
    src: Link,
    in_beat: int | None,
    banks: dict[str, list[DenseLayer]] | None = None,
) -> Chain:
    """One module and instance per dense layer of ``segs[1:]``, fed by ``src`` (``in_beat``: streaming input).

    ``banks``: per layer name, the layers whose weights share it (picked by ``src.sel``, carried along).
    """
    files: dict[str, str] = {}
    body = ""
    cur, valid, ready, sel = src.data, src.valid, src.ready, src.sel
    latency, ii = 0, 1
    used: dict[str, int] = {}
    beat = in_beat
    for seg in segs[1:]:
        layer = seg.dense
        assert layer is not None
        r = check_reuse(layer.name, layer.n_in, layer.n_out, reuse_factors.get(layer.name, layer.n_in))
        used[layer.name] = r
        lname = identifier(layer.name)
        name = f"{top}_{lname}"
        bank = (banks or {}).get(layer.name)
        files[f"{name}.v"] = dense_module(name, layer, seg.in_t, seg.post, seg.out_t, r, beat, bank)
        out = f"y_{lname}"
        last = f".in_last({src.last}), " if beat else ""
        body += f"    wire [{seg.n_out * seg.out_t.width - 1}:0] {out};\n"
        body += f"    wire v_{lname};\n    wire r_{lname};\n"
        sel_ports = ""
        if bank and len(bank) > 1:
            body += f"    wire [{clog2(len(bank)) - 1}:0] s_{lname};\n"
            sel_ports = f", .sel({sel}), .sel_o(s_{lname})"
            sel = f"s_{lname}"
        body += (
            f"    {name} u_{lname} (.clk(clk), .rst(rst), .in_valid({valid}), .in_ready({ready}), {last}.x({cur}),\n"
            f"        .out_valid(v_{lname}), .out_ready(r_{lname}), .y({out}){sel_ports});\n"
        )
        cur, valid, ready = out, f"v_{lname}", f"r_{lname}"
        if beat:
            plan = stream_plan(layer.n_in, r, beat)
            latency += plan.last_steps + OVERHEAD_CYCLES  # counted from the last beat
            ii = max(ii, plan.steps + OVERHEAD_CYCLES)
        else:
            latency += r + OVERHEAD_CYCLES
            ii = max(ii, r + OVERHEAD_CYCLES)
        beat = None
    return Chain(files, body, Link(cur, valid, ready, sel=sel), latency, ii, used)


@dataclass(frozen=True)
class StreamPlan:
    """How a streaming first layer consumes its beats: inputs per step, steps per sample and per beat."""

    lanes: int  # P: inputs per step
    steps: int  # S = ceil(n_in / P)
    steps_per_beat: int  # B / P
    last_steps: int  # steps of the last beat

    @property
    def beats(self) -> int:
        return -(-self.steps // self.steps_per_beat)


def stream_plan(n_in: int, r: int, in_beat: int) -> StreamPlan:
    """The beat schedule of a first layer with reuse factor ``r`` (<= n_in) and ``in_beat`` inputs per beat."""
    lanes = math.ceil(n_in / r)
    steps = math.ceil(n_in / lanes)
    per_beat = in_beat // lanes
    return StreamPlan(lanes, steps, per_beat, steps - (math.ceil(steps / per_beat) - 1) * per_beat)


def schedule(layer: DenseLayer, r: int, contiguous: bool = False) -> tuple[int, int, int, int, np.ndarray, np.ndarray]:
    """(L, Q, P, G, idx_in, idx_out): steps per output pass, passes, multipliers per group, groups, and for
    each step c and multiplier (g, p) the input and output index it serves (-1: idle).

    ``contiguous`` (streaming input, R <= n_in): step c reads inputs c * P + p, in the order they arrive, over
    S = ceil(n_in / P) steps (the sum is the same in any order: the accumulator wraps modulo 2**W).
    """
    n_in, n_out = layer.n_in, layer.n_out
    if contiguous:
        p_ = math.ceil(n_in / r)
        steps = math.ceil(n_in / p_)
        c = np.arange(steps)[:, None, None]
        p = np.arange(p_)[None, None, :]
        g = np.arange(n_out)[None, :, None]
        i = c * p_ + p + 0 * g
        i = np.where(i < n_in, i, -1)
        j = np.where(i >= 0, g + 0 * i, -1)
        return steps, 1, p_, n_out, i, j
    if r <= n_in:
        steps, q_, p_, g_ = r, 1, math.ceil(n_in / r), n_out
        c = np.arange(r)[:, None, None]
        p = np.arange(p_)[None, None, :]
        g = np.arange(g_)[None, :, None]
        i = p * r + c + 0 * g
        j = g + 0 * c + 0 * p
        i = np.where(i < n_in, i, -1)
        j = np.where(i >= 0, j, -1)
    else:
        steps, q_ = n_in, r // n_in
        p_, g_ = 1, math.ceil(n_out / q_)
        c = np.arange(r)[:, None, None]
        g = np.arange(g_)[None, :, None]
        i = (c % n_in) + 0 * g
        j = g * q_ + c // n_in
        i = np.where(j < n_out, i, -1)
        j = np.where(j < n_out, j, -1)
    return steps, q_, p_, g_, i, j


def dense_module(
    name: str,
    layer: DenseLayer,
    in_t: FixedType,
    post: list,
    out_t: FixedType,
    r: int,
    in_beat: int | None = None,
    banks: list[DenseLayer] | None = None,
) -> str:
    """One folded dense layer (plus its elementwise layers) with valid/ready on both sides.

    ``in_beat``: the input arrives in beats of that many elements (``in_last`` on the last) and is consumed
    step by step as it arrives (contiguous schedule); otherwise the whole vector is taken at once.
    ``banks``: layers of the same shape and types whose weights and biases share the datapath (one ensemble
    member each): a sample's ``sel`` (taken with it) picks its bank and comes out as ``sel_o`` with its result.
    """
    banks = banks or [layer]
    shared = shared_banks(banks, in_t) if len(banks) > 1 else None
    if shared is not None and not shared.uniform:  # members' types differ: the union datapath, casts per bank
        layer, banks = shared.layer, shared.banks
    nb = len(banks)
    sw = clog2(nb)
    shift = check_accumulator(layer, in_t)
    acc_t, w_t = layer.accum_t, layer.weight_t
    aw, iw, ww, ow = acc_t.width, in_t.width, w_t.width, out_t.width
    cap = aw - shift
    n_in, n_out = layer.n_in, layer.n_out
    steps, nq, nparts, ngroups, idx_in, idx_out = schedule(layer, r, contiguous=in_beat is not None)
    n_steps = steps * nq  # ROM words: R, or S steps of a streaming layer
    bank_biases = shared.biases if shared is not None and not shared.uniform else [aligned_biases(b) for b in banks]
    biases = bank_biases[0]
    xs_w, ws_w = signed_width(in_t), signed_width(w_t)
    pw = xs_w + ws_w
    sum_w = pw + clog2(nparts) if nparts > 1 else pw
    cw, iw_c, qw = clog2(n_steps), clog2(steps), clog2(nq)
    depth = 1 << cw
    row_w = ngroups * nparts * ww
    lane_w = nparts * iw

    # The input arrangement: entry c (of `steps`) holds multiplier p's input in bits [p*iw +: iw].
    entries = []
    for c in range(steps):
        parts = []
        for p in reversed(range(nparts)):
            i = int(idx_in[c, 0, p]) if r <= n_in else c
            parts.append(f"x[{i * iw + iw - 1}:{i * iw}]" if 0 <= i < n_in else f"{iw}'d0")
        entries.append(", ".join(parts))
    x_arr = "{" + ", ".join(reversed(entries)) + "}"
    rotate = f"{{sr[{lane_w - 1}:0], sr[{steps * lane_w - 1}:{lane_w}]}}" if steps > 1 else "sr"

    # ROM rows: multiplier (g, p)'s weight at bits [(g*nparts + p)*ww +: ww].
    mask = (1 << ww) - 1
    rom_lines = []
    for b, bank in enumerate(banks):  # bank b at words b * depth ..
        wmat = np.asarray(bank.weights, dtype=object)
        for c in range(n_steps):
            word = 0
            for g in range(ngroups):
                for p in range(nparts):
                    i, j = int(idx_in[c, g, p]), int(idx_out[c, g, p])
                    if i >= 0 and j >= 0:
                        word |= (int(wmat[i, j]) & mask) << ((g * nparts + p) * ww)
            rom_lines.append(f"        rom[{b * depth + c}] = {row_w}'h{word:x};")
        rom_lines += [f"        rom[{b * depth + c}] = {row_w}'h0;" for c in range(n_steps, depth)]
    words = (1 << sw) * depth if nb > 1 else depth
    rom_lines += [f"        rom[{k}] = {row_w}'h0;" for k in range(nb * depth, words)]

    lines = []
    for p in range(nparts):
        xp = f"x_q[{p * iw + iw - 1}:{p * iw}]"
        xs = xp if in_t.signed else "{1'b0, " + xp + "}"
        lines.append(f"    wire [{xs_w - 1}:0] xs{p} = {xs};")
    for g in range(ngroups):
        prods = []
        for p in range(nparts):
            k = g * nparts + p
            wp = f"w_q[{k * ww + ww - 1}:{k * ww}]"
            ws = wp if w_t.signed else "{1'b0, " + wp + "}"
            lines.append(f"    wire [{ws_w - 1}:0] ws{g}_{p} = {ws};")
            lines.append(f"    wire [{pw - 1}:0] prod{g}_{p} = $signed(xs{p}) * $signed(ws{g}_{p});")
            prods.append(ext(f"prod{g}_{p}", pw, sum_w, True))
        lines.append(f"    wire [{sum_w - 1}:0] sum{g} = {' + '.join(prods)};")
        if cap > 0:
            term = ext(f"sum{g}", sum_w, cap, True)
            term = f"{{{term}, {shift}'d0}}" if shift else term
        else:
            term = f"{aw}'d0"
        lines.append(f"    wire [{aw - 1}:0] term{g} = {term};")
        if nb > 1:  # the bank's bias: by sel_q (and the output pass)
            lines.append(f"    reg [{aw - 1}:0] bias{g};")
            kw = sw + (qw if nq > 1 else 0)
            key = "{sel_q, s1_q}" if nq > 1 else "sel_q"
            cases = "".join(
                f"            {kw}'d{(b << qw if nq > 1 else b) + q}: "
                f"bias{g} = {lit(bank_biases[b][g * nq + q], aw)};\n"
                for b in range(nb)
                for q in range(nq)
                if g * nq + q < n_out and bank_biases[b][g * nq + q]
            )
            lines.append(
                f"    always @* begin\n        case ({key})\n{cases}            default: bias{g} = {aw}'d0;\n"
                "        endcase\n    end"
            )
        elif nq == 1:
            lines.append(f"    wire [{aw - 1}:0] bias{g} = {lit(biases[g], aw)};")
        else:
            lines.append(f"    reg [{aw - 1}:0] bias{g};")
            cases = "".join(
                f"            {qw}'d{q}: bias{g} = {lit(biases[g * nq + q], aw)};\n"
                for q in range(nq)
                if g * nq + q < n_out and biases[g * nq + q]
            )
            lines.append(
                f"    always @* begin\n        case (s1_q)\n{cases}            default: bias{g} = {aw}'d0;\n"
                "        endcase\n    end"
            )
        lines.append(f"    reg [{aw - 1}:0] acc{g};")
        update = f"acc{g} <= (s1_first ? bias{g} : acc{g}) + term{g};"
        lines.append(f"    always @(posedge clk) begin\n        if (s1_v) {update}\n    end")

    # Max pooling after the layer leaves fewer values; elementwise layers keep n_out (linebuffer's per-pixel
    # kernel passes layers shaped as the whole image)
    pooled = any(e.kind is LayerKind.MAXPOOL2D for e in post)
    n_y = post_size(post, n_out) if pooled else n_out
    if n_y != n_out and nq > 1:
        raise FlowError(f"layer {layer.name}: reuse factor {r} > n_in with max pooling after it is not folded")
    writes = ["            y <= res;"] if n_y != n_out else []
    for g in range(ngroups if n_y == n_out else 0):
        src = f"res[{g * ow + ow - 1}:{g * ow}]"
        if nq == 1:
            writes.append(f"            y[{g * ow + ow - 1}:{g * ow}] <= {src};")
        else:
            cases = "".join(
                f"                {qw}'d{q}: y[{(g * nq + q) * ow + ow - 1}:{(g * nq + q) * ow}] <= {src};\n"
                for q in range(nq)
                if g * nq + q < n_out
            )
            writes.append(f"            case (s2_q)\n{cases}                default: ;\n            endcase")

    q_regs = ""
    q_logic = ""
    q_final = ""
    if nq > 1:
        q_regs = f"    reg [{qw - 1}:0] q;\n    reg [{qw - 1}:0] s1_q;\n    reg [{qw - 1}:0] s2_q;\n"
        q_logic = (
            f"            if (take) q <= {qw}'d0;\n"
            f"            else if (run && i == {iw_c}'d{steps - 1}) q <= q + {qw}'d1;\n"
            "            s1_q <= q;\n            s2_q <= s1_q;\n"
        )
        q_final = f" && s1_q == {qw}'d{nq - 1}"

    if shared is not None and not shared.uniform:
        chain = ""
        out_cast, last = bank_outputs(shared, [f"acc{g}" for g in range(ngroups)], post, "sel_q", sw, ow)
    else:
        out_cast, outs = elem_casts("rd", [f"acc{g}" for g in range(ngroups)], False, acc_t, layer.result_t)
        chain, last = elementwise_chain("e", layer.result_t, post, outs)
    if in_beat is None:
        control = whole_vector_control(r, steps, cw, iw_c, q_regs, q_logic, q_final, lane_w, x_arr, rotate)
        x_port, last_port = f"[{n_in * iw - 1}:0] x", ""
    else:
        plan = stream_plan(n_in, r, in_beat)
        control = stream_control(plan, cw, in_beat * iw, lane_w)
        x_port, last_port = f"[{in_beat * iw - 1}:0] x", "    input wire in_last,\n"
    sel_ports, sel_logic = "", ""
    if nb > 1:
        sel_ports = f",\n    input wire [{sw - 1}:0] sel,\n    output reg [{sw - 1}:0] sel_o"
        sel_logic = f"""    // The bank (ensemble member) of the sample: taken with it, shown with its result.
    reg [{sw - 1}:0] sel_q;
    always @(posedge clk) begin
        if (take) sel_q <= sel;
        if (s2_final) sel_o <= sel_q;
    end
"""
    banks_doc = f", {nb} weight banks" if nb > 1 else ""
    text = f"""// {name}: dense layer {layer.name} ({n_in} -> {n_out}) folded by R = {r}{banks_doc}:
// {ngroups * nparts} multiplier(s), {steps} step(s) per output pass, {nq} pass(es). Generated by qflow. Do not edit.
// x: {n_in} x {in_t}{f" in beats of {in_beat}" if in_beat else ""}; acc: {acc_t};
// y: {n_out} x {out_t}, held until taken (out_valid/out_ready).
`timescale 1ns / 1ps
module {name} (
    input wire clk,
    input wire rst,
    input wire in_valid,
    output wire in_ready,
{last_port}    input wire {x_port},
    output reg out_valid,
    input wire out_ready,
    output reg [{n_y * ow - 1}:0] y{sel_ports}
);
{control}{sel_logic}    // Weights: one ROM word per step, read synchronously.
    reg [{row_w - 1}:0] rom [0:{words - 1}];
    reg [{row_w - 1}:0] w_q;
    initial begin
{chr(10).join(rom_lines)}
    end
    always @(posedge clk) begin
        if (step) w_q <= rom[{"{sel_q, c}" if nb > 1 else "c"}];
    end
    // Multiply, accumulate in accum_t (modulo 2**{aw}), starting from (accum_t) bias.
/* verilator lint_off UNUSEDSIGNAL */
// Reason: products are declared at the operand-sum width; bits above the accumulator are wrapped away.
{chr(10).join(lines)}
/* verilator lint_on UNUSEDSIGNAL */
{out_cast}{chain}    wire [{(n_y if n_y != n_out else ngroups) * ow - 1}:0] res = {last};
    always @(posedge clk) begin
        if (s2_v) begin
{chr(10).join(writes)}
        end
    end
{verilator_input_entries(steps, lane_w, x_arr) if in_beat is None else ""}endmodule
"""
    return text


def whole_vector_control(
    r: int,
    steps: int,
    cw: int,
    iw_c: int,
    q_regs: str,
    q_logic: str,
    q_final: str,
    lane_w: int,
    x_arr: str,
    rotate: str,
) -> str:
    """Control and input register of a layer taking its whole input vector at once (``step`` every run cycle)."""
    skip, resume = ("`ifndef VERILATOR ", "`endif ") if steps > 1 else ("", "")  # see verilator_input_entries
    return f"""    reg busy;
    reg run;
    reg [{cw - 1}:0] c;
    reg [{iw_c - 1}:0] i;
{q_regs}    assign in_ready = !busy && (!out_valid || out_ready);
    wire take = in_valid && in_ready;
    wire step = run;
    reg s1_v;
    reg s1_first;
    reg s1_last;
    reg s2_v;
    reg s2_final;
    wire s1_final = s1_v && s1_last{q_final};
    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            run <= 1'b0;
            out_valid <= 1'b0;
            s1_v <= 1'b0;
            s2_v <= 1'b0;
            s2_final <= 1'b0;
        end else begin
            if (take) begin
                busy <= 1'b1;
                run <= 1'b1;
            end else if (run && c == {cw}'d{r - 1}) begin
                run <= 1'b0;
            end
            s1_v <= run;
            s2_v <= s1_v && s1_last;
            s2_final <= s1_final;
            if (s2_final) begin
                out_valid <= 1'b1;
                busy <= 1'b0;
            end else if (out_valid && out_ready) begin
                out_valid <= 1'b0;
            end
        end
    end
    // Step counters: c over all R steps (the ROM address), i within an output pass.
    always @(posedge clk) begin
        if (take) begin
            c <= {cw}'d0;
            i <= {iw_c}'d0;
        end else if (run) begin
            c <= c + {cw}'d1;
            i <= i == {iw_c}'d{steps - 1} ? {iw_c}'d0 : i + {iw_c}'d1;
        end
        s1_first <= i == {iw_c}'d0;
        s1_last <= i == {iw_c}'d{steps - 1};
{q_logic}    end
{skip}    // Inputs: loaded on take, rotated one entry per step; entry 0 feeds the multipliers.
    reg [{steps * lane_w - 1}:0] sr;
    reg [{lane_w - 1}:0] x_q;
    always @(posedge clk) begin
        if (take) sr <= {x_arr};
        else if (run) sr <= {rotate};
        if (run) x_q <= sr[{lane_w - 1}:0];
    end
{resume}"""


def verilator_input_entries(steps: int, lane_w: int, x_arr: str) -> str:
    """Verilator's form of the rotating input register: the same entries in an array read at the step's place.

    Rotating the whole vector is most of Verilator's time for a wide first layer (1023 x 12 bits: ~60 %); here
    a step moves no data, and ``x_q`` gets the same value (``i`` counts steps modulo the entries, as the rotation
    does). It sits at the module's end and the register it replaces is left out by directives on lines of their
    own, so synthesis and Icarus read the same text on the same lines as without it (Yosys names cells by source
    line, and their order, which follows the names, changes its mapping).
    """
    if steps == 1:
        return ""
    return f"""`ifdef VERILATOR
    // The input register as Verilator runs it (see the `ifndef above): entries read where the step is.
    wire [{steps * lane_w - 1}:0] x_entries = {x_arr};
    reg [{lane_w - 1}:0] entry [0:{steps - 1}];
    reg [{lane_w - 1}:0] x_q;
    integer e;
    always @(posedge clk) begin
        if (take) for (e = 0; e < {steps}; e = e + 1) entry[e] <= x_entries[e*{lane_w} +: {lane_w}];
        if (run) x_q <= entry[i];
    end
`endif
"""


def stream_control(plan: StreamPlan, cw: int, beat_w: int, lane_w: int) -> str:
    """Control and beat register of a streaming first layer: a step whenever the beat register holds one."""
    k, s = plan.steps_per_beat, plan.steps
    lw = clog2(k + 1)
    shift = f"{{{lane_w}'d0, bq[{beat_w - 1}:{lane_w}]}}" if k > 1 else "bq"
    ready = f"accepting && left <= {lw}'d1" if k > 1 else "accepting"
    return f"""    // Streaming input: a beat of {k} step(s) is taken when the previous one is (being) used up; the
    // first beat of a sample only when idle and the result register is free. Step c: inputs c*{plan.lanes} on.
    reg busy;
    reg phase_in;
    reg [{lw - 1}:0] left;
    reg [{cw - 1}:0] c;
    wire accepting = phase_in || (!busy && (!out_valid || out_ready));
    assign in_ready = {ready};
    wire beat = in_valid && in_ready;
    wire take = beat && !phase_in;
    wire step = left != {lw}'d0;
    reg s1_v;
    reg s1_first;
    reg s1_last;
    reg s2_v;
    reg s2_final;
    wire s1_final = s1_v && s1_last;
    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            phase_in <= 1'b0;
            left <= {lw}'d0;
            c <= {cw}'d0;
            out_valid <= 1'b0;
            s1_v <= 1'b0;
            s2_v <= 1'b0;
            s2_final <= 1'b0;
        end else begin
            if (take) busy <= 1'b1;
            if (beat) begin
                phase_in <= !in_last;
                left <= in_last ? {lw}'d{plan.last_steps} : {lw}'d{k};
            end else if (step) begin
                left <= left - {lw}'d1;
            end
            if (step) c <= c == {cw}'d{s - 1} ? {cw}'d0 : c + {cw}'d1;
            s1_v <= step;
            s2_v <= s1_v && s1_last;
            s2_final <= s1_final;
            if (s2_final) begin
                out_valid <= 1'b1;
                busy <= 1'b0;
            end else if (out_valid && out_ready) begin
                out_valid <= 1'b0;
            end
        end
    end
    always @(posedge clk) begin
        s1_first <= c == {cw}'d0;
        s1_last <= c == {cw}'d{s - 1};
    end
    // The beat register: {k} step(s) of {plan.lanes} input(s), the next step's in the low bits.
    reg [{beat_w - 1}:0] bq;
    reg [{lane_w - 1}:0] x_q;
    always @(posedge clk) begin
        if (beat) bq <= x;
        else if (step) bq <= {shift};
        if (step) x_q <= bq[{lane_w - 1}:0];
    end
"""
