"""Pieces shared by the architecture generators: Verilog literals, casts, layer grouping, the top's ports."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding
from flow.ir import IR, CastLayer, ClampLayer, DenseLayer, LayerKind, ReluLayer, Task
from flow.layers import BatchNormLayer, Conv2DLayer, MaxPool2DLayer, size

SOURCE_DIR = Path(__file__).resolve().parent / "source"

# The mode numbers of source/qflow_fixed_cast.v.
ROUNDING_CODE = {
    Rounding.TRN: 0,
    Rounding.TRN_ZERO: 1,
    Rounding.RND: 2,
    Rounding.RND_ZERO: 3,
    Rounding.RND_MIN_INF: 4,
    Rounding.RND_INF: 5,
    Rounding.RND_CONV: 6,
}
OVERFLOW_CODE = {Overflow.WRAP: 0, Overflow.SAT: 1, Overflow.SAT_ZERO: 2, Overflow.SAT_SYM: 3}

Elementwise = ReluLayer | CastLayer | ClampLayer


class DenseShapeLike(Protocol):
    """What an architecture's cost proxy reads of a dense layer (``flow.search.proxy.DenseShape``)."""

    weights: np.ndarray
    biases: np.ndarray
    x_bits: int
    w_bits: int
    reuse_factor: int

    @property
    def n_in(self) -> int: ...

    @property
    def n_out(self) -> int: ...

    @property
    def acc_bits(self) -> int: ...


def no_reuse_knobs(arch: str, override: dict[str, int] | None) -> dict:
    """No knobs from a card; reuse factors given for an architecture that has none are a FlowError."""
    if override:
        raise FlowError(f"--reuse applies to the folded architecture, not {arch}")
    return {}


@dataclass
class Emitted:
    """What an architecture generator returns: files (name -> text) and the figures for design.json."""

    files: dict[str, str]
    fixed_blocks: list[str]
    latency_cycles: int | None
    ii_cycles: int
    knobs: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)  # what the generator decided (design.json "details")
    in_beat: int | None = None  # elements per input beat (streaming input); None: the whole vector at once
    ports: dict | None = None  # design.json's ports when they are not ports_doc's (an ensemble's)
    layer_modules: list[str] = field(default_factory=list)  # one module per layer: the ASIC flow maps each alone


@dataclass
class Segment:
    """A dense layer (or None at the network input) followed by its elementwise layers."""

    dense: DenseLayer | Conv2DLayer | None  # a Conv2DLayer only from segments(..., full_dense=False)
    in_t: FixedType
    post: list[Elementwise]

    @property
    def out_t(self) -> FixedType:
        if self.post:
            return self.post[-1].result_t
        return self.dense.result_t if self.dense is not None else self.in_t

    @property
    def n_out(self) -> int:
        """Values leaving the segment (max pooling after the dense layer leaves fewer)."""
        return post_size(self.post, size(self.dense.shape) if self.dense is not None else 0)


def post_size(post: list, n: int) -> int:
    """Values after the layers ``post`` that follow a layer of ``n`` outputs."""
    return size(post[-1].shape) if post else n


def segments(ir: IR, arch: str, full_dense: bool = True) -> list[Segment]:
    """Group a chain: leading elementwise layers (dense None), then each dense layer with the layers after it.

    A conv2d starts a segment too: as its full dense layer, or (``full_dense=False``) as itself.
    """
    segs: list[Segment] = [Segment(None, ir.input.type, [])]
    t = ir.input.type
    for layer in ir.chain(f"the {arch} architecture"):
        if layer.kind is LayerKind.DENSE:
            segs.append(Segment(layer, t, []))
        elif layer.kind is LayerKind.CONV2D:  # only architectures whose KINDS list it get here
            segs.append(Segment(layer.as_full_dense() if full_dense else layer, t, []))
        else:
            segs[-1].post.append(layer)
        t = layer.result_t
    return segs


def identifier(name: str) -> str:
    """A Verilog identifier from a model or layer name."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if re.match(r"[A-Za-z_]", s) else f"m_{s}"


def top_name(ir: IR) -> str:
    """The top module's name: ``qflow_<ir.name>``."""
    return f"qflow_{identifier(ir.name)}"


def class_width(ir: IR) -> int:
    """Width of ``out_class``: enough for the output count (1 for regression or a single output)."""
    return max(1, int(ir.n_outputs - 1).bit_length())


def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in [lo, hi]."""
    w = 1
    while lo < -(1 << (w - 1)) or hi > (1 << (w - 1)) - 1:
        w += 1
    return w


def signed_width(t: FixedType) -> int:
    """Width of the type's raw values as two's complement (unsigned types need one more bit)."""
    return t.width + (0 if t.signed else 1)


def lit(value: int, width: int) -> str:
    """A sized Verilog literal holding ``value`` as two's complement in ``width`` bits."""
    return f"{width}'h{int(value) & ((1 << width) - 1):x}"


def ext(name: str, from_w: int, to_w: int, signed: bool) -> str:
    """``name`` (``from_w`` bits) sign- or zero-extended, or truncated, to ``to_w`` bits."""
    if to_w == from_w:
        return name
    if to_w < from_w:
        return f"{name}[{to_w - 1}:0]"
    fill = f"{name}[{from_w - 1}]" if signed else "1'b0"
    return f"{{{{{to_w - from_w}{{{fill}}}}}, {name}}}"


def cast_params(src_w: int, src_f: int, src_s: bool, dst: FixedType) -> str:
    """The parameter list of qflow_fixed_cast for one conversion."""
    return (
        f".IN_W({src_w}), .IN_F({src_f}), .IN_S({int(src_s)}), .OUT_W({dst.width}), .OUT_F({dst.frac_bits}), "
        f".OUT_S({int(dst.signed)}), .RND({ROUNDING_CODE[dst.rounding]}), .OVF({OVERFLOW_CODE[dst.overflow]})"
    )


def elem_casts(prefix: str, elems: list[str], relu: bool, src: FixedType, dst: FixedType) -> tuple[str, list[str]]:
    """One ``qflow_fixed_cast`` per element (ReLU clamps first); returns (text, the element wires).

    Casting element by element, never a packed bus, keeps Icarus from re-evaluating every cast whenever any
    one element changes (a folded layer's accumulators change every cycle).
    """
    params = cast_params(src.width, src.frac_bits, src.signed, dst)
    text, outs = "", []
    for k, e in enumerate(elems):
        din = e
        if relu and src.signed:
            din = f"{prefix}_m{k}"
            text += f"    wire [{src.width - 1}:0] {prefix}_i{k} = {e};\n"
            msb = f"{prefix}_i{k}[{src.width - 1}]"
            text += f"    wire [{src.width - 1}:0] {din} = {msb} ? {src.width}'d0 : {prefix}_i{k};\n"
        out = f"{prefix}_{k}"
        text += f"    wire [{dst.width - 1}:0] {out};\n"
        text += f"    qflow_fixed_cast #({params}) u_{prefix}_{k} (.din({din}), .dout({out}));\n"
        outs.append(out)
    return text, outs


def elem_clamps(prefix: str, elems: list[str], src: FixedType, layer: ClampLayer) -> tuple[str, list[str]]:
    """A clamp layer element by element: ``qflow_fixed_cast`` to ``result_t``, then limited to ``[lo, hi]``.

    A bound equal to the type's own limit is left out (the comparison would be constant; Verilator warns).
    """
    t = layer.result_t
    text, casted = elem_casts(f"{prefix}_c", elems, False, src, t)
    sig = (lambda e: f"$signed({e})") if t.signed else (lambda e: e)
    outs = []
    for k, c in enumerate(casted):
        expr = c
        if layer.hi < t.max_raw:
            expr = f"({sig(c)} > {sig(lit(layer.hi, t.width))}) ? {lit(layer.hi, t.width)} : {expr}"
        if layer.lo > t.min_raw:
            expr = f"({sig(c)} < {sig(lit(layer.lo, t.width))}) ? {lit(layer.lo, t.width)} : {expr}"
        out = f"{prefix}_{k}"
        text += f"    wire [{t.width - 1}:0] {out} = {expr};\n"
        outs.append(out)
    return text, outs


def elem_batchnorm(prefix: str, elems: list[str], src: FixedType, layer: BatchNormLayer) -> tuple[str, list[str]]:
    """Per-channel ``x * scale + bias``, exact (as the reference's kernel), then one ``qflow_fixed_cast``."""
    x_w = signed_width(src)
    s_t, b_t = layer.scale_t, layer.bias_t
    s_w = signed_width(s_t)  # hls4ml types all-positive scales unsigned: one more bit as a signed constant
    prod_w, prod_f = x_w + s_w, src.frac_bits + s_t.frac_bits
    frac = max(prod_f, b_t.frac_bits)
    k_prod, k_bias = frac - prod_f, frac - b_t.frac_bits
    b_w = signed_width(b_t)
    total_w = max(prod_w + k_prod, b_w + k_bias) + 1

    def shifted(e: str, w: int, k: int) -> str:  # sign-extended to total_w bits, ``k`` zero bits below
        return ext(e, w, total_w - k, True) if not k else f"{{{ext(e, w, total_w - k, True)}, {k}'d0}}"

    text, sums = "", []
    for k, e in enumerate(elems):
        c = k % layer.channels
        x = f"{{1'b0, {e}}}" if not src.signed else e
        p, t = f"{prefix}_p{k}", f"{prefix}_t{k}"
        text += f"    wire signed [{prod_w - 1}:0] {p} = $signed({x}) * $signed({lit(layer.scale[c], s_w)});\n"
        bias = f"{prefix}_b{k}"
        text += f"    wire [{b_w - 1}:0] {bias} = {lit(layer.bias[c], b_w)};\n"
        text += f"    wire [{total_w - 1}:0] {t} = {shifted(p, prod_w, k_prod)} + {shifted(bias, b_w, k_bias)};\n"
        sums.append(t)
    cast_text, outs = elem_casts(prefix, sums, False, FixedType(total_w, total_w - frac, True), layer.result_t)
    return text + cast_text, outs


# How each elementwise layer kind becomes Verilog: (prefix, elements, input type, layer) -> (text, elements).
ELEMENTWISE_EMITTERS = {
    LayerKind.RELU: lambda prefix, elems, src, layer: elem_casts(prefix, elems, True, src, layer.result_t),
    LayerKind.CAST: lambda prefix, elems, src, layer: elem_casts(prefix, elems, False, src, layer.result_t),
    LayerKind.CLAMP: elem_clamps,
    LayerKind.BATCHNORM: elem_batchnorm,
}
# What the chain-based architectures emit: dense layers (each its own) and the elementwise kinds above.
CHAIN_KINDS = frozenset({LayerKind.DENSE, *ELEMENTWISE_EMITTERS})


def elem_maxpool(prefix: str, elems: list[str], src: FixedType, layer: MaxPool2DLayer) -> tuple[str, list[str]]:
    """Max pooling on the (row, column, channel) elements: a comparison tree per window, then hls4ml's two casts
    (to ``accum_t``, then to ``result_t``)."""
    (_, w, c), (ph, pw), (sh, sw) = layer.in_shape, layer.pool, layer.stride
    oh, ow, _ = layer.shape
    gt = (lambda a, b: f"$signed({a}) > $signed({b})") if src.signed else (lambda a, b: f"{a} > {b}")
    text, maxima = "", []
    for i in range(oh):
        for j in range(ow):
            for ch in range(c):
                window = [elems[((i * sh + di) * w + j * sw + dj) * c + ch] for di in range(ph) for dj in range(pw)]
                level = 0
                while len(window) > 1:
                    nxt = []
                    for k in range(0, len(window) - 1, 2):
                        name = f"{prefix}_m{len(maxima)}_{level}_{k // 2}"
                        a, b = window[k], window[k + 1]
                        text += f"    wire [{src.width - 1}:0] {name} = ({gt(a, b)}) ? {a} : {b};\n"
                        nxt.append(name)
                    window = nxt + window[len(window) - len(window) % 2 :]
                    level += 1
                maxima.append(window[0])
    acc_text, acc = elem_casts(f"{prefix}_a", maxima, False, src, layer.accum_t)
    res_text, out = elem_casts(f"{prefix}_r", acc, False, layer.accum_t, layer.result_t)
    return text + acc_text + res_text, out


# The image layers after a (lowered) convolution: they may change the number of elements.
IMAGE_EMITTERS = {
    LayerKind.MAXPOOL2D: elem_maxpool,
    LayerKind.FLATTEN: lambda prefix, elems, src, layer: ("", elems),  # (row, column, channel) order is kept
}
# What an architecture that lowers each conv2d to its full dense layer (Conv2DLayer.as_full_dense) emits too.
IMAGE_KINDS = frozenset({LayerKind.CONV2D, *IMAGE_EMITTERS})


def pack(elems: list[str]) -> str:
    """A Verilog concatenation with element 0 in the low bits."""
    return "{" + ", ".join(reversed(elems)) + "}"


def unpack(bus: str, n: int, width: int) -> list[str]:
    """Part-selects of a packed bus, element 0 low."""
    return [f"{bus}[{k * width + width - 1}:{k * width}]" for k in range(n)]


def elementwise_chain(
    prefix: str, t: FixedType, layers: list[Elementwise], elems: list[str], bus: str | None = None
) -> tuple[str, str]:
    """Verilog for a chain of relu/cast layers, element by element; returns (text, the packed result).

    ``bus``, when given, is the packed form of ``elems``: returned as is when there is no layer.
    """
    if not layers and bus is not None:
        return "", bus
    text = ""
    for layer in layers:
        emitter = ELEMENTWISE_EMITTERS.get(layer.kind) or IMAGE_EMITTERS[layer.kind]
        chunk, elems = emitter(f"{prefix}_{identifier(layer.name)}", elems, t, layer)
        text += chunk
        t = layer.result_t
    return text, pack(elems)


def accum_shift(layer: DenseLayer, in_t: FixedType) -> int:
    """Fraction bits the accumulator has beyond an exact product; a FlowError if it has fewer."""
    acc_t, w_t = layer.accum_t, layer.weight_t
    shift = acc_t.frac_bits - (in_t.frac_bits + w_t.frac_bits)
    if shift < 0:
        raise FlowError(
            f"layer {layer.name}: accum_t {acc_t} has {acc_t.frac_bits} fraction bits, fewer than the products' "
            f"{in_t.frac_bits + w_t.frac_bits}; the RTL supports only exact products (use an 'auto' accumulator)"
        )
    return shift


def aligned_biases(layer: DenseLayer) -> list[int]:
    """``(accum_t) bias`` as raw accumulator mantissas (any bias frac_bits, negative or large)."""
    raw = layer.accum_t.cast(np.asarray(layer.biases, dtype=object), layer.bias_t)
    return [int(v) for v in np.asarray(raw).ravel()]


def check_accumulator(layer: DenseLayer, in_t: FixedType) -> int:
    """The accumulator shift; non-WRAP accumulators must provably never overflow (the RTL sums modulo 2**W)."""
    shift = accum_shift(layer, in_t)
    if layer.accum_t.overflow is not Overflow.WRAP:
        acc_t = layer.accum_t
        xmax = max(abs(in_t.min_raw), abs(in_t.max_raw))
        bias = np.abs(np.asarray(aligned_biases(layer), dtype=object))
        worst = bias + (np.abs(layer.weights.astype(object)).sum(axis=0) * xmax << shift)
        if worst.size and (max(worst) > acc_t.max_raw or (acc_t.signed and max(worst) > -acc_t.min_raw)):
            raise FlowError(
                f"layer {layer.name}: accum_t {acc_t} may overflow with {acc_t.overflow.value}; the RTL "
                "implements accumulators that wrap (use WRAP or a wider accumulator)"
            )
        if not acc_t.signed:
            raise FlowError(f"layer {layer.name}: unsigned accumulators must use WRAP")
    return shift


def beats(ir: IR, in_beat: int | None) -> int:
    """Input beats per sample: ``ceil(n_in / in_beat)``, 1 for the whole-vector interface."""
    return -(-ir.input.n // in_beat) if in_beat else 1


def ports_doc(ir: IR, top: str, in_beat: int | None = None) -> dict:
    """The port list recorded in design.json (``in_beat``: elements per input beat, streaming input)."""
    in_t, out_t = ir.input.type, ir.output_t
    n_beat = in_beat or ir.input.n
    stream = {
        "in_last": {"dir": "in", "width": 1, "note": f"high on the last of {beats(ir, in_beat)} beats of a sample"}
    }
    return {
        "clk": {"dir": "in", "width": 1},
        "rst": {"dir": "in", "width": 1, "note": "synchronous, active high"},
        "in_valid": {"dir": "in", "width": 1},
        "in_ready": {"dir": "out", "width": 1},
        "in_data": {
            "dir": "in",
            "width": n_beat * in_t.width,
            "elements": n_beat,
            "element_width": in_t.width,
            "type": str(in_t),
            "sample_elements": ir.input.n,
            "beats": beats(ir, in_beat),
            "note": "input 0 in the low bits, raw two's-complement mantissas"
            + (
                f"; beat b holds inputs b*{in_beat} .. b*{in_beat}+{in_beat - 1} (zeros past the last)"
                if in_beat
                else ""
            ),
        },
        **(stream if in_beat else {}),
        "out_valid": {"dir": "out", "width": 1},
        "out_ready": {"dir": "in", "width": 1},
        "out_data": {
            "dir": "out",
            "width": ir.n_outputs * out_t.width,
            "elements": ir.n_outputs,
            "element_width": out_t.width,
            "type": str(out_t),
            "note": "output 0 in the low bits",
        },
        "out_class": {
            "dir": "out",
            "width": class_width(ir),
            "note": "argmax of out_data, lowest index on ties"
            if ir.task is Task.CLASSIFICATION
            else "regression: tied to 0",
        },
    }


def header(ir: IR, top: str, arch: str, latency: int | None, ii: int, in_beat: int | None = None) -> str:
    """The comment block at the top of the generated top module: the interface, in words."""
    in_t, out_t = ir.input.type, ir.output_t
    n_beat = in_beat or ir.input.n
    data_doc = (
        f"""//   in_valid / in_ready      a beat is taken on a rising edge with in_valid && in_ready
//   in_data   [{n_beat * in_t.width - 1}:0]  a beat of {n_beat} inputs of {in_t} (streaming input):
//                            beat b: input b*{n_beat} + k at bits [k*{in_t.width} +: {in_t.width}], zeros past the last
//   in_last                  high on the last of {beats(ir, in_beat)} beats of a sample
"""
        if in_beat
        else f"""//   in_valid / in_ready      a sample is taken on a rising edge with in_valid && in_ready
//   in_data   [{ir.input.n * in_t.width - 1}:0]  {ir.input.n} inputs of {in_t},
//                            input k at bits [k*{in_t.width} +: {in_t.width}]
"""
    )
    cls = (
        "argmax of out_data (lowest index on ties)"
        if ir.task is Task.CLASSIFICATION
        else "tied to 0 (regression model)"
    )
    taking = "the last beat of a sample" if in_beat else "a sample"
    lat = f"{latency} cycles (from the edge taking {taking} to the first cycle its result is shown)"
    return f"""// {top}: generated by qflow from the IR of model "{ir.name}" (architecture: {arch}). Do not edit.
//
// Interface (the same for every qflow design; see flow/rtl/README.md):
//   clk                      rising edge
//   rst                      synchronous, active high
{data_doc}//   out_valid / out_ready    a result is delivered on a rising edge with out_valid && out_ready;
//                            out_data/out_class hold still while out_valid && !out_ready
//   out_data  [{ir.n_outputs * out_t.width - 1}:0]  {ir.n_outputs} outputs of {out_t},
//                            output k at bits [k*{out_t.width} +: {out_t.width}]
//   out_class [{class_width(ir) - 1}:0]  {cls}
// All values are raw two's-complement (unsigned types: plain binary) mantissas of their fixed-point types.
// Latency: {lat}; initiation interval: {ii} cycle(s).
{table_mapping_doc(ir)}`timescale 1ns / 1ps
"""


def table_mapping_doc(ir: IR) -> str:
    """Header lines of a table model: which address bits drive ``in_data`` and how ``out_data`` is the table word."""
    if not ir.table:
        return ""
    from flow.data.tables import TableInfo, input_mapping

    t = TableInfo.from_dict(ir.table)
    shape = " x ".join(str(s) for s in t.shape)
    lines = [f"Replaces table {t.name!r}: {shape} entries of {t.bits}-bit words (values {t.value_min}..{t.value_max})."]
    lines += [m["text"] for m in input_mapping(t.shape, ir.input.type)]
    stage = ir.output
    if stage.kind is LayerKind.CLAMP:
        w = ir.output_t.width
        lines.append(
            f"out_data[{w - 1}:0] is the table word itself (0..{2**t.bits - 1}), rounded (RND_CONV) and clamped to "
            f"[{stage.lo}, {stage.hi}] by the output stage"
        )
    return "".join(f"// {line}\n" for line in lines)


def module_ports(ir: IR, top: str, in_beat: int | None = None) -> str:
    """The top module's declaration (ports only; ``in_beat``: streaming input with ``in_last``)."""
    n_in_bits = (in_beat or ir.input.n) * ir.input.type.width
    last = "    input wire in_last,\n" if in_beat else ""
    n_out_bits = ir.n_outputs * ir.output_t.width
    return f"""module {top} (
    input wire clk,
    input wire rst,
    input wire in_valid,
    output wire in_ready,
{last}    input wire [{n_in_bits - 1}:0] in_data,
    output wire out_valid,
    input wire out_ready,
    output wire [{n_out_bits - 1}:0] out_data,
    output wire [{class_width(ir) - 1}:0] out_class
);
"""


def output_handshake(valid: str, ready: str) -> str:
    """The output register's valid/ready: it takes a result (``take_out``) when empty or being emptied."""
    return f"""    // Output register: takes a result when empty or being emptied.
    reg out_valid_r;
    assign {ready} = !out_valid_r || out_ready;
    wire take_out = {valid} && {ready};
    always @(posedge clk) begin
        if (rst) out_valid_r <= 1'b0;
        else if (take_out) out_valid_r <= 1'b1;
        else if (out_ready) out_valid_r <= 1'b0;
    end
    assign out_valid = out_valid_r;
"""


def output_stage(ir: IR, src: str, load: str) -> str:
    """The output register: ``out_data`` (from ``src``) and ``out_class`` (argmax), loaded when ``load``."""
    n, t = ir.n_outputs, ir.output_t
    cw = class_width(ir)
    text = f"    reg [{n * t.width - 1}:0] out_data_r;\n    reg [{cw - 1}:0] out_class_r;\n"
    if ir.task is Task.CLASSIFICATION and n > 1:
        text += f"    wire [{cw - 1}:0] class_next;\n"
        text += (
            f"    qflow_argmax #(.N({n}), .W({t.width}), .S({int(t.signed)}), .CW({cw})) u_argmax "
            f"(.din({src}), .idx(class_next));\n"
        )
    else:
        text += f"    wire [{cw - 1}:0] class_next = {cw}'d0;\n"
    text += f"""    always @(posedge clk) begin
        if ({load}) begin
            out_data_r <= {src};
            out_class_r <= class_next;
        end
    end
    assign out_data = out_data_r;
    assign out_class = out_class_r;
"""
    return text
