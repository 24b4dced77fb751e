"""The ``parallel`` architecture: fully unrolled, one sample per clock (II = 1).

Each dense layer is one module: a constant multiplication per non-zero weight (``$signed(x) * $signed(W)``,
which synthesis maps to LUTs or DSPs), a balanced adder tree per output whose nodes are exactly as wide as their
value range needs, ``(accum_t) bias`` added at the root, then the output cast and the elementwise layers that
follow, and a register. ``tree_pipeline = k`` adds a register after every k adder levels. The whole pipeline
moves together (``en``) unless a result waits at the output: no sample is lost or duplicated.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, DenseLayer, LayerKind
from flow.rtl.common import (
    CHAIN_KINDS,
    IMAGE_KINDS,
    DenseShapeLike,
    Emitted,
    Segment,
    aligned_biases,
    check_accumulator,
    elem_casts,
    elementwise_chain,
    ext,
    header,
    identifier,
    lit,
    module_ports,
    no_reuse_knobs,
    output_stage,
    post_size,
    segments,
    signed_bits,
    signed_width,
    unpack,
)

FIXED_BLOCKS = ["qflow_fixed_cast.v", "qflow_argmax.v"]
KNOBS = {"tree_pipeline": 0}
KINDS = CHAIN_KINDS | IMAGE_KINDS  # a conv2d is built as its full dense layer (Conv2DLayer.as_full_dense)


def card_knobs(card_reuse: dict[str, int], override: dict[str, int] | None = None) -> dict:
    """The knobs a project's card gives this architecture: none (reuse factors do not apply)."""
    return no_reuse_knobs("parallel", override)


def check_layer(name: str, n_in: int, n_out: int, reuse: int) -> None:
    """Any card layer is accepted (the reuse factor is hls4ml's alone)."""


def proxy_terms(layer: DenseShapeLike) -> dict[str, float]:
    """Proxy bit operations: a constant multiplier per non-zero weight, an adder tree per output."""
    nnz_j = (np.asarray(layer.weights) != 0).sum(axis=0)
    terms = nnz_j + (np.asarray(layer.biases).reshape(-1) != 0) - 1
    return {
        "mult": float(int(nnz_j.sum()) * layer.x_bits * layer.w_bits),
        "add": float(int(np.maximum(terms, 0).sum()) * layer.acc_bits),
        "rom": 0.0,
    }


def emit(ir: IR, top: str, tree_pipeline: int = 0) -> Emitted:
    """Verilog for ``ir``: one module per dense layer and the top."""
    if not isinstance(tree_pipeline, int) or tree_pipeline < 0:
        raise FlowError(f"tree_pipeline must be an integer >= 0, got {tree_pipeline!r}")

    def layer_module(name: str, seg: Segment) -> tuple[str, int]:
        return dense_module(name, seg.dense, seg.in_t, seg.post, seg.out_t, tree_pipeline)

    files, latency, layers = emit_pipeline(ir, top, "parallel", layer_module)
    return Emitted(files, FIXED_BLOCKS, latency, 1, {"tree_pipeline": tree_pipeline}, layer_modules=layers)


def emit_pipeline(
    ir: IR,
    top: str,
    arch: str,
    layer_module: Callable[[str, Segment], tuple[str, int]],
    ii: int = 1,
    full_dense: bool = True,
):
    """The files of a pipelined design, its latency and its layer modules; ``layer_module(name, segment)`` gives
    a layer's module (ports clk, en, x, y) and its register stages.

    ``ii`` > 1 (time-multiplexed convolutions, ``segments(full_dense=False)``): a phase counter ``ph`` counts the
    ``ii`` cycles of a beat, every conv2d module gets it as a port too, and a sample is taken only on a beat's
    last cycle (its convolutions' inputs then hold still for the whole beat they take).
    """
    files: dict[str, str] = {}
    layers: list[str] = []
    segs = segments(ir, arch, full_dense)
    phased = ii > 1
    body = ""
    n = ir.input.n
    # Stage 0: the input register, then the elementwise layers before the first dense layer.
    text, cur = elementwise_chain("s0", ir.input.type, segs[0].post, unpack("in_r", n, ir.input.type.width), "in_r")
    body += text
    latency = 2  # input and output registers
    for seg in segs[1:]:
        layer = seg.dense
        assert layer is not None
        name = f"{top}_{identifier(layer.name)}"
        module, stages = layer_module(name, seg)
        files[f"{name}.v"] = module
        layers.append(name)
        out = f"y_{identifier(layer.name)}"
        body += f"    wire [{seg.n_out * seg.out_t.width - 1}:0] {out};\n"
        ph = ".ph(ph), " if phased and layer.kind is LayerKind.CONV2D else ""
        body += f"    {name} u_{identifier(layer.name)} (.clk(clk), .en(en), {ph}.x({cur}), .y({out}));\n"
        cur = out
        latency += stages
    top_text = header(ir, top, arch, latency, ii) + module_ports(ir, top)
    take = "en"
    top_text += """    // Global stall: every register moves unless a result is waiting at the output.
    wire en = !out_valid || out_ready;
"""
    if phased:
        pw = (ii - 1).bit_length()
        take = "en && beat_end"
        top_text += f"""    // Phase of the {ii}-cycle beat: each convolution instance computes one pixel per phase.
    reg [{pw - 1}:0] ph;
    wire beat_end = ph == {pw}'d{ii - 1};
    always @(posedge clk) begin
        if (rst) ph <= {pw}'d0;
        else if (en) ph <= beat_end ? {pw}'d0 : ph + {pw}'d1;
    end
"""
    top_text += f"""    assign in_ready = {take};
    reg [{latency - 1}:0] valid;
    always @(posedge clk) begin
        if (rst) valid <= {latency}'d0;
        else if (en) valid <= {{valid[{latency - 2}:0], in_valid{" && beat_end" if phased else ""}}};
    end
    assign out_valid = valid[{latency - 1}];
    reg [{n * ir.input.type.width - 1}:0] in_r;
    always @(posedge clk) begin
        if ({take}) in_r <= in_data;
    end
"""
    top_text += body + output_stage(ir, cur, "en") + "endmodule\n"
    files[f"{top}.v"] = top_text
    return files, latency, layers


def dense_module(
    name: str, layer: DenseLayer, in_t: FixedType, post: list, out_t: FixedType, tree_pipeline: int
) -> tuple[str, int]:
    """One dense layer (plus its elementwise layers) as a module; returns (text, register stages)."""
    shift = check_accumulator(layer, in_t)
    acc_t = layer.accum_t
    aw = acc_t.width
    cap = aw - shift  # the sum is only needed modulo 2**cap
    iw, xs_w = in_t.width, signed_width(in_t)
    n_in, n_out = layer.n_in, layer.n_out
    w = np.asarray(layer.weights, dtype=object)
    biases = aligned_biases(layer)
    used = [i for i in range(n_in) if any(w[i, j] != 0 for j in range(n_out))] if cap > 0 else []
    depth = max((int(np.count_nonzero(layer.weights[:, j])) for j in range(n_out)), default=0)
    levels = (depth - 1).bit_length() if depth > 1 else 0
    reg_levels = {lv for lv in range(1, levels) if tree_pipeline and lv % tree_pipeline == 0}

    lines: list[str] = []
    regs: list[str] = []
    for i in used:
        src = f"x[{i * iw + iw - 1}:{i * iw}]"
        xs = src if in_t.signed else "{1'b0, " + src + "}"
        lines.append(f"    wire [{xs_w - 1}:0] x{i} = {xs};")
    accs = []
    for j in range(n_out):
        terms = []  # (name, width, lo, hi)
        if cap > 0:
            for i in used:
                wv = int(w[i, j])
                if wv == 0:
                    continue
                ww = signed_bits(wv, wv)
                pw = xs_w + ww
                lo, hi = sorted((wv * in_t.min_raw, wv * in_t.max_raw))
                pname = f"p{j}_{i}"
                lines.append(f"    wire [{pw - 1}:0] {pname} = $signed(x{i}) * $signed({lit(wv, ww)});")
                terms.append((pname, pw, lo, hi))
        for lv in range(1, levels + 1):
            nxt = []
            for k in range(0, len(terms), 2):
                if k + 1 == len(terms):
                    nxt.append(terms[k])
                    continue
                (a, aw_, alo, ahi), (b, bw, blo, bhi) = terms[k], terms[k + 1]
                lo, hi = alo + blo, ahi + bhi
                nw = min(signed_bits(lo, hi), cap)
                nname = f"t{j}_{lv}_{k // 2}"
                lines.append(f"    wire [{nw - 1}:0] {nname} = {ext(a, aw_, nw, True)} + {ext(b, bw, nw, True)};")
                nxt.append((nname, nw, lo, hi))
            if lv in reg_levels:
                staged = []
                for nname, nw, lo, hi in nxt:
                    rname = f"{nname}_r" if nname.startswith("t") else f"{nname}_r{lv}"
                    lines.append(f"    reg [{nw - 1}:0] {rname};")
                    regs.append(f"            {rname} <= {nname};")
                    staged.append((rname, nw, lo, hi))
                nxt = staged
            terms = nxt
        acc = f"acc{j}"
        bias = lit(biases[j], aw)
        if terms:
            sname, sw, _, _ = terms[0]
            summed = ext(sname, sw, cap, True)
            if shift:
                summed = f"{{{summed}, {shift}'d0}}"
            rhs = f"{bias} + {summed}" if biases[j] else summed
        else:
            rhs = bias
        lines.append(f"    wire [{aw - 1}:0] {acc} = {rhs};")
        accs.append(acc)

    text = f"// {name}: dense layer {layer.name} ({n_in} -> {n_out}), generated by qflow. Do not edit.\n"
    text += f"// x: {n_in} x {in_t}; acc: {acc_t}; y: {n_out} x {out_t} (after {layer.result_t}"
    text += "".join(f", {p.kind.value} {p.result_t}" for p in post) + "), registered.\n"
    text += "`timescale 1ns / 1ps\n"
    unused = len(used) < n_in
    if unused:
        text += "/* verilator lint_off UNUSEDSIGNAL */\n"
        text += "// Reason: inputs whose weights are all zero are not connected.\n"
    text += f"module {name} (\n    input wire clk,\n    input wire en,\n"
    n_y = post_size(post, n_out)
    text += f"    input wire [{n_in * iw - 1}:0] x,\n    output reg [{n_y * out_t.width - 1}:0] y\n);\n"
    if unused:
        text += "/* verilator lint_on UNUSEDSIGNAL */\n"
    text += "/* verilator lint_off UNUSEDSIGNAL */\n"
    text += "// Reason: products are declared at the operand-sum width Verilator expects and sums as wide as the\n"
    text += "// accumulator needs; bits above a value's range (sign copies) or the accumulator (wrapped) are unused.\n"
    text += "\n".join(lines) + "\n/* verilator lint_on UNUSEDSIGNAL */\n"
    if regs:
        text += "    always @(posedge clk) begin\n        if (en) begin\n" + "\n".join(regs)
        text += "\n        end\n    end\n"
    # One cast per output (not one vector cast on a packed bus: Icarus would re-evaluate all of them on
    # every change of any accumulator).
    casts, outs = elem_casts("r", accs, False, acc_t, layer.result_t)
    chain, last = elementwise_chain("e", layer.result_t, post, outs)
    text += casts + chain
    text += f"    always @(posedge clk) begin\n        if (en) y <= {last};\n    end\nendmodule\n"
    return text, 1 + len(reg_levels)
