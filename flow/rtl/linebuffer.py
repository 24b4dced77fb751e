"""The ``linebuffer`` architecture: a CNN streamed one pixel per beat, for the smallest area.

The input arrives one pixel (all its channels) per beat in raster order, ``in_last`` on the image's last pixel
(folded's streaming input, ``in_beat`` = the input's channels). Every stage passes pixels on with valid/ready:

* ``conv2d`` (stride 1, valid or same): a line buffer (:func:`line_buffer_module`, a RAM of KH rows of the input,
  rows written in turn) reads each output pixel's window tap pixel by tap pixel as soon as the window is complete
  (zeros outside the image), into a folded dense module (``folded.dense_module`` of the convolution's per-pixel
  dense layer, ``Conv2DLayer.as_dense``, weights in a ROM) whose reuse factor R sets the multipliers: one per filter
  and tap lane, ``KH * KW * C_in / R`` lanes per filter (default R = KH * KW * C_in: one multiplier per filter,
  R steps per output pixel). It adds the bias, casts and runs the elementwise layers after the convolution.
* ``maxpool2d`` (stride = pool): a row of partial maxima (:func:`pool_module`), then hls4ml's two casts.
* ``flatten``: nothing moves; the dense layers after it are folded's, the first consuming the stream pixel by
  pixel ((row, column, channel) order, as the IR flattens).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, LayerKind
from flow.layers import Conv2DLayer, MaxPool2DLayer
from flow.layers.conv2d import pad_before_after
from flow.rtl import folded
from flow.rtl.common import (
    CHAIN_KINDS,
    IMAGE_KINDS,
    DenseShapeLike,
    Elementwise,
    Emitted,
    Segment,
    elem_casts,
    elementwise_chain,
    ext,
    header,
    identifier,
    module_ports,
    output_handshake,
    output_stage,
    pack,
    signed_bits,
    unpack,
)
from flow.rtl.folded import Link, clog2

FIXED_BLOCKS = ["qflow_fixed_cast.v", "qflow_argmax.v"]
KNOBS = {"reuse_factors": None}
KINDS = CHAIN_KINDS | IMAGE_KINDS
ARCH = "linebuffer"


def card_knobs(card_reuse: dict[str, int], override: dict[str, int] | None = None) -> dict:
    """As folded: the reuse factors hls4ml applied above 1 (``override`` wins); R = 1 keeps the default."""
    return folded.card_knobs(card_reuse, override)


def check_layer(name: str, n_in: int, n_out: int, reuse: int) -> None:
    """A card's dense layer: folded's schedule (the convolutions are checked on the IR)."""
    folded.check_layer(name, n_in, n_out, reuse)


def proxy_terms(layer: DenseShapeLike) -> dict[str, float]:
    """Folded's proxy (a convolution reaches it as its full dense layer, which overstates its ROM)."""
    return folded.proxy_terms(layer)


@dataclass
class Stage:
    """An image layer (conv2d or maxpool2d) with the elementwise layers after it."""

    layer: Conv2DLayer | MaxPool2DLayer
    in_t: FixedType
    post: list[Elementwise] = field(default_factory=list)

    @property
    def out_t(self) -> FixedType:
        return self.post[-1].result_t if self.post else self.layer.result_t

    @property
    def channels(self) -> int:
        return int(self.layer.shape[2])


@dataclass
class Plan:
    """The chain cut into the streamed parts: elementwise layers on the input, image stages, the dense tail."""

    pre: list[Elementwise]
    stages: list[Stage]
    dense: list[Segment]  # folded's segments: a placeholder, then each dense layer with its elementwise layers


def plan(ir: IR) -> Plan:
    """The stages of ``ir``; a one-line FlowError for a chain this architecture does not stream."""
    if len(ir.input.shape) not in (1, 3):
        raise FlowError(f"{ARCH}: input {ir.input.name} has shape {list(ir.input.shape)}; it streams (h, w, c) or (n,)")
    pre: list = []
    stages: list[Stage] = []
    dense: list[Segment] = [Segment(None, ir.input.type, [])]
    flat = len(ir.input.shape) == 1  # a flat input streams one value per beat
    t = ir.input.type
    for layer in ir.chain(f"the {ARCH} architecture"):
        kind = layer.kind
        if kind in (LayerKind.CONV2D, LayerKind.MAXPOOL2D):
            if flat:
                raise FlowError(f"{ARCH}: layer {layer.name} ({kind.value}) comes after flatten")
            if kind is LayerKind.MAXPOOL2D and tuple(layer.stride) != tuple(layer.pool):
                raise FlowError(f"{ARCH}: layer {layer.name}: max pooling streams only with stride = pool")
            stages.append(Stage(layer, t))
        elif kind is LayerKind.FLATTEN:
            flat = True
        elif kind is LayerKind.DENSE:
            if not flat:
                raise FlowError(f"{ARCH}: dense layer {layer.name} before a flatten (the stream is of pixels)")
            dense.append(Segment(layer, t, []))
        else:
            if flat and len(dense) == 1 and kind is LayerKind.BATCHNORM:
                raise FlowError(f"{ARCH}: batchnorm {layer.name} between flatten and the first dense layer")
            (dense[-1].post if len(dense) > 1 else stages[-1].post if stages else pre).append(layer)
        t = layer.result_t
    if len(dense) == 1:
        raise FlowError(f"{ARCH}: IR {ir.name} has no dense layer after a flatten to end the stream in")
    return Plan(pre, stages, dense)


def pixel_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """(pixels, values per pixel) of a streamed tensor: an image's (h * w, c), a flat one's (n, 1)."""
    return (shape[0] * shape[1], shape[2]) if len(shape) == 3 else (shape[0], 1)


def conv_lanes(layer: Conv2DLayer, r: int) -> int:
    """Multipliers per filter for reuse factor ``r``; a FlowError unless they divide the input's channels."""
    n_in, c = layer.as_dense().n_in, layer.in_shape[2]
    lanes = math.ceil(n_in / r) if isinstance(r, int) and r >= 1 else 0
    if not 1 <= r <= n_in or c % lanes:
        ok = ", ".join(str(n_in // p) for p in range(1, c + 1) if c % p == 0)
        raise FlowError(
            f"{ARCH}: layer {layer.name}: reuse factor {r!r} must give whole pixels of taps per step "
            f"(KH * KW * C_in / R lanes dividing C_in = {c}): choose from {ok}"
        )
    return lanes


def emit(ir: IR, top: str, reuse_factors: dict[str, int] | None = None) -> Emitted:
    """Verilog for ``ir``: per convolution a line buffer and a folded MAC, per pooling a row of maxima, the dense
    tail folded, and the top."""
    p = plan(ir)
    reuse_factors = dict(reuse_factors or {})
    names = {s.layer.name for s in p.stages if s.layer.kind is LayerKind.CONV2D}
    names |= {s.dense.name for s in p.dense[1:] if s.dense is not None}
    unknown = set(reuse_factors) - names
    if unknown:
        raise FlowError(f"reuse_factors: no conv2d or dense layer named {', '.join(sorted(unknown))} in {ir.name}")
    files: dict[str, str] = {}
    modules: list[str] = []
    used: dict[str, int] = {}
    n_px, c = pixel_shape(ir.input.shape)
    in_t = ir.input.type
    text, cur = elementwise_chain("s0", in_t, p.pre, unpack("in_data", c, in_t.width), "in_data")
    body = text
    valid, ready = "in_valid", "in_ready"
    # Per stage, the cycles one image keeps it busy (the input: a beat per pixel).
    image_cycles = {"input": n_px}
    for stage in p.stages:
        layer = stage.layer
        lname = identifier(layer.name)
        name = f"{top}_{lname}"
        out_w = stage.channels * stage.out_t.width
        if isinstance(layer, Conv2DLayer):
            dense = layer.as_dense()
            r = reuse_factors.get(layer.name, dense.n_in)
            lanes = conv_lanes(layer, r)
            used[layer.name] = r
            cin = layer.in_shape[2]
            files[f"{name}_lb.v"] = line_buffer_module(f"{name}_lb", layer, stage.in_t)
            files[f"{name}.v"] = folded.dense_module(name, dense, stage.in_t, stage.post, stage.out_t, r, cin)
            modules += [f"{name}_lb", name]
            bw = cin * stage.in_t.width
            body += f"    wire [{bw - 1}:0] t_{lname};\n    wire tv_{lname};\n    wire tr_{lname};\n"
            body += f"    wire tl_{lname};\n    wire [{out_w - 1}:0] y_{lname};\n"
            body += f"    wire v_{lname};\n    wire r_{lname};\n"
            body += (
                f"    {name}_lb u_{lname}_lb (.clk(clk), .rst(rst), .in_valid({valid}), .in_ready({ready}), "
                f".in_data({cur}),\n        .out_valid(tv_{lname}), .out_ready(tr_{lname}), .out_data(t_{lname}), "
                f".out_last(tl_{lname}));\n"
                f"    {name} u_{lname} (.clk(clk), .rst(rst), .in_valid(tv_{lname}), .in_ready(tr_{lname}), "
                f".in_last(tl_{lname}), .x(t_{lname}),\n        .out_valid(v_{lname}), .out_ready(r_{lname}), "
                f".y(y_{lname}));\n"
            )
            oh, ow, _ = layer.shape
            steps = dense.n_in // lanes
            image_cycles[layer.name] = oh * ow * (steps + folded.OVERHEAD_CYCLES)
        else:
            files[f"{name}.v"] = pool_module(name, layer, stage.in_t, stage.post, stage.out_t)
            modules.append(name)
            body += f"    wire [{out_w - 1}:0] y_{lname};\n    wire v_{lname};\n    wire r_{lname};\n"
            body += (
                f"    {name} u_{lname} (.clk(clk), .rst(rst), .in_valid({valid}), .in_ready({ready}), .x({cur}),\n"
                f"        .out_valid(v_{lname}), .out_ready(r_{lname}), .y(y_{lname}));\n"
            )
            image_cycles[layer.name] = layer.in_shape[0] * layer.in_shape[1]
        cur, valid, ready = f"y_{lname}", f"v_{lname}", f"r_{lname}"

    # The dense tail: folded's modules, the first streaming one pixel per beat; in_last from a pixel count.
    pixels, fc = pixel_shape(p.stages[-1].layer.shape if p.stages else ir.input.shape)
    first = p.dense[1].dense
    assert first is not None
    r1 = reuse_factors.get(first.name, first.n_in)
    folded.check_reuse(first.name, first.n_in, first.n_out, r1)
    lanes = math.ceil(first.n_in / r1)
    if r1 > first.n_in or fc % lanes:
        raise FlowError(
            f"{ARCH}: layer {first.name}: reuse factor {r1} must take whole pixels of {fc} values per step group "
            f"(ceil(n_in / R) = {lanes} must divide {fc})"
        )
    pw = clog2(pixels)
    body += f"""    // The flattened stream's pixels counted: in_last of the first dense layer on the image's last one.
    reg [{pw - 1}:0] flat_px;
    wire flat_last = flat_px == {pw}'d{pixels - 1};
    always @(posedge clk) begin
        if (rst) flat_px <= {pw}'d0;
        else if ({valid} && {ready}) flat_px <= flat_last ? {pw}'d0 : flat_px + {pw}'d1;
    end
"""
    chain = folded.layer_chain(p.dense, top, reuse_factors, Link(cur, valid, ready, "flat_last"), fc)
    files.update(chain.files)
    modules += chain.modules
    used |= chain.reuse_factors
    body += chain.body
    plan1 = folded.stream_plan(first.n_in, r1, fc)
    for name, r in chain.reuse_factors.items():
        image_cycles[name] = (plan1.steps if name == first.name else r) + folded.OVERHEAD_CYCLES
    ii = max(image_cycles.values())
    latency = 1 + sum(image_cycles.values()) - n_px  # an upper bound: each stage's whole image after the last beat
    top_text = header(ir, top, ARCH, latency, ii, c)
    top_text += "/* verilator lint_off UNUSEDSIGNAL */\n"
    top_text += "// Reason: in_last is the streaming interface's; the stages count the image's pixels themselves.\n"
    top_text += module_ports(ir, top, c) + "/* verilator lint_on UNUSEDSIGNAL */\n" + body
    top_text += output_handshake(chain.out.valid, chain.out.ready)
    top_text += output_stage(ir, chain.out.data, "take_out") + "endmodule\n"
    files[f"{top}.v"] = top_text
    details = {"image_cycles": image_cycles}
    return Emitted(
        files, FIXED_BLOCKS, latency, ii, {"reuse_factors": used}, details=details, in_beat=c, layer_modules=modules
    )


def line_buffer_module(name: str, layer: Conv2DLayer, in_t: FixedType) -> str:
    """The window reader of a stride-1 convolution: KH rows of the input in a RAM, each output pixel's window read
    tap pixel by tap pixel (``out_last`` on its last) once its last input pixel has been written.

    Input row r (counted across images) goes to slot r mod KH. A pixel may be written when the one it replaces
    is needed by no window still to be read: its row is above the current window's, or is the window's top row
    left of the window. The next image's rows may start while the last windows of an image are read.
    """
    (h, w, c), (kh, kw) = layer.in_shape, layer.kernel_size
    oh, ow, _ = layer.shape
    (pt, _), (pl, _) = pad_before_after(kh, layer.padding), pad_before_after(kw, layer.padding)
    bw = c * in_t.width
    rw, cw, sw = clog2(h), clog2(w), clog2(kh)
    orw, ocw = clog2(oh), clog2(ow)
    dw, ew = clog2(kh), clog2(kw)
    depth = kh * w
    n = signed_bits(-max(kh, kw, pt + 1, pl + 1), 2 * max(h, w) + max(kh, kw))  # signed row/column arithmetic
    delta = (h - oh + 1) % kh  # slot advance of the window's top row from an image's last output row to the next

    def s(expr: str, width: int) -> str:
        return f"$signed({{{n - width}'d0, {expr}}})" if n > width else f"$signed({expr})"

    def k(value: int) -> str:
        return f"{n}'sd{value}" if value >= 0 else f"-{n}'sd{-value}"

    a = clog2(depth)
    col_a = f"col[{a - 1}:0]" if n >= a else f"{{{a - n}'d0, col}}"
    slot_a = ext("slot", sw, a, False)
    addr = f"""    /* verilator lint_off UNUSEDSIGNAL */
    // Reason: addresses are taken modulo the RAM's depth (a padded tap's column is never used).
    wire [{a - 1}:0] col_a = {col_a};
    /* verilator lint_on UNUSEDSIGNAL */
"""
    if kh == 1:
        addr += f"    wire [{a - 1}:0] rd_addr = col_a;\n    wire [{a - 1}:0] wr_addr = {ext('in_c', cw, a, False)};\n"
    else:
        addr += f"    wire [{a - 1}:0] rd_addr = {slot_a} * {a}'d{w} + col_a;\n"
        addr += (
            f"    wire [{a - 1}:0] wr_addr = {ext('in_slot', sw, a, False)} * {a}'d{w} + {ext('in_c', cw, a, False)};\n"
        )
    # The top row's slot: one more per output row, (h - oh + 1) more from an image's last row to the next's first.
    addr += mod_sum("top_img", "top", f"{sw}'d{delta}", kh, sw)
    addr += f"    wire [{sw - 1}:0] top_row_next = top == {sw}'d{kh - 1} ? {sw}'d0 : top + {sw}'d1;\n"
    return f"""// {name}: the line buffer of convolution {layer.name} ({h} x {w} x {c} input, {kh} x {kw} kernel,
// {layer.padding.value} padding): {kh} rows of {w} pixels in a RAM; each of the {oh} x {ow} output pixels' windows is
// read tap pixel by tap pixel, (row, column) order, zeros outside the image. Generated by qflow. Do not edit.
`timescale 1ns / 1ps
module {name} (
    input wire clk,
    input wire rst,
    input wire in_valid,
    output wire in_ready,
    input wire [{bw - 1}:0] in_data,
    output wire out_valid,
    input wire out_ready,
    output wire [{bw - 1}:0] out_data,
    output wire out_last
);
    // Writer: the next input pixel's row and column in its image, its row's slot; ahead: that image is the one
    // after the windows' (the windows' image has been written whole).
    reg [{rw - 1}:0] in_r;
    reg [{cw - 1}:0] in_c;
    reg [{sw - 1}:0] in_slot;
    reg ahead;
    // Reader: the output pixel whose window is read, the tap pixel within it, the slot of the window's top row.
    reg [{orw - 1}:0] oi;
    reg [{ocw - 1}:0] oj;
    reg [{dw - 1}:0] di;
    reg [{ew - 1}:0] dj;
    reg [{sw - 1}:0] top;
    wire signed [{n - 1}:0] top_row = {s("oi", orw)} - {k(pt)};
    wire signed [{n - 1}:0] left_col = {s("oj", ocw)} - {k(pl)};
    wire signed [{n - 1}:0] v_row = {s("in_r", rw)} + (ahead ? {k(h)} : {k(0)});
    // The pixel written replaces row v_row - {kh} of its slot: free unless a window still to be read needs it.
    wire free = v_row < {k(kh)} || v_row < top_row + {k(kh)}
        || (v_row == top_row + {k(kh)} && {s("in_c", cw)} < left_col);
    assign in_ready = free;
    wire wr = in_valid && free;
    wire in_end_row = in_c == {cw}'d{w - 1};
    wire in_end = in_end_row && in_r == {rw}'d{h - 1};
    // The window is complete once its last pixel (row need_r, column need_c) has been written.
    wire signed [{n - 1}:0] bottom = top_row + {k(kh - 1)};
    wire signed [{n - 1}:0] right = left_col + {k(kw - 1)};
    wire signed [{n - 1}:0] need_r = bottom > {k(h - 1)} ? {k(h - 1)} : bottom;
    wire signed [{n - 1}:0] need_c = right > {k(w - 1)} ? {k(w - 1)} : right;
    wire complete = ahead || {s("in_r", rw)} > need_r || ({s("in_r", rw)} == need_r && {s("in_c", cw)} > need_c);
    reg bv;
    wire rd = complete && (!bv || out_ready);
    wire last_tap = di == {dw}'d{kh - 1} && dj == {ew}'d{kw - 1};
    wire end_row = last_tap && oj == {ocw}'d{ow - 1};
    wire end_image = end_row && oi == {orw}'d{oh - 1};
    wire signed [{n - 1}:0] row = top_row + {s("di", dw)};
    wire signed [{n - 1}:0] col = left_col + {s("dj", ew)};
    wire pad = row < {k(0)} || row > {k(h - 1)} || col < {k(0)} || col > {k(w - 1)};
{mod_sum("slot", "top", ext("di", dw, sw, False), kh, sw) if kh > 1 else ""}{addr}    always @(posedge clk) begin
        if (rst) begin
            in_r <= {rw}'d0;
            in_c <= {cw}'d0;
            in_slot <= {sw}'d0;
            ahead <= 1'b0;
            oi <= {orw}'d0;
            oj <= {ocw}'d0;
            di <= {dw}'d0;
            dj <= {ew}'d0;
            top <= {sw}'d{(-pt) % kh};
            bv <= 1'b0;
        end else begin
            if (wr) begin
                in_c <= in_end_row ? {cw}'d0 : in_c + {cw}'d1;
                if (in_end_row) begin
                    in_r <= in_end ? {rw}'d0 : in_r + {rw}'d1;
                    in_slot <= in_slot == {sw}'d{kh - 1} ? {sw}'d0 : in_slot + {sw}'d1;
                end
            end
            if (wr && in_end && !(rd && end_image)) ahead <= 1'b1;
            else if (rd && end_image && !(wr && in_end)) ahead <= 1'b0;
            if (rd) begin
                bv <= 1'b1;
                dj <= dj == {ew}'d{kw - 1} ? {ew}'d0 : dj + {ew}'d1;
                if (dj == {ew}'d{kw - 1}) di <= last_tap ? {dw}'d0 : di + {dw}'d1;
                if (last_tap) oj <= end_row ? {ocw}'d0 : oj + {ocw}'d1;
                if (end_row) begin
                    oi <= end_image ? {orw}'d0 : oi + {orw}'d1;
                    top <= end_image ? top_img : top_row_next;
                end
            end else if (out_ready) begin
                bv <= 1'b0;
            end
        end
    end
    // The pixels: written as they arrive, read one tap pixel per step (synchronous read).
    reg [{bw - 1}:0] mem [0:{depth - 1}];
    reg [{bw - 1}:0] mem_q;
    reg pad_q;
    reg last_q;
    always @(posedge clk) begin
        if (wr) mem[wr_addr] <= in_data;
        if (rd) begin
            mem_q <= mem[rd_addr];
            pad_q <= pad;
            last_q <= last_tap;
        end
    end
    assign out_valid = bv;
    assign out_data = pad_q ? {bw}'d0 : mem_q;
    assign out_last = last_q;
endmodule
"""


def mod_sum(name: str, a: str, b: str, m: int, width: int) -> str:
    """A wire ``name`` = (a + b) mod m for ``a``, ``b`` (``width`` bits) below m."""
    if m == 1 << width or m == 1:  # the wrap is the width's own
        return f"    wire [{width - 1}:0] {name} = {a} + {b};\n"
    return (
        f"    wire [{width}:0] {name}_sum = {{1'b0, {a}}} + {{1'b0, {b}}};\n"
        f"    wire [{width - 1}:0] {name} = {name}_sum >= {width + 1}'d{m} ? {name}_sum[{width - 1}:0] - {width}'d{m} "
        f": {name}_sum[{width - 1}:0];\n"
    )


def pool_module(name: str, layer: MaxPool2DLayer, in_t: FixedType, post: list, out_t: FixedType) -> str:
    """Streaming max pooling (stride = pool): a row of partial maxima, one entry per output column; an output
    pixel leaves when its window's last pixel arrives (pixels past the last whole window are dropped)."""
    (h, w, c), (ph, pw) = layer.in_shape, layer.pool
    oh, ow, _ = layer.shape
    iw = in_t.width
    rw, cw = clog2(h), clog2(w)
    pr_w, pc_w = clog2(ph), clog2(pw)
    ocw = clog2((w - 1) // pw + 1)
    depth = (w - 1) // pw + 1
    gt = (lambda a, b: f"$signed({a}) > $signed({b})") if in_t.signed else (lambda a, b: f"{a} > {b}")
    lines = []
    maxima = []
    for ch in range(c):
        x, m, p = f"x[{ch * iw + iw - 1}:{ch * iw}]", f"m{ch}", f"pm_o[{ch * iw + iw - 1}:{ch * iw}]"
        lines.append(f"    wire [{iw - 1}:0] {m} = (first || {gt(x, p)}) ? {x} : {p};")
        maxima.append(m)
    acc_text, acc = elem_casts("a", maxima, False, in_t, layer.accum_t)
    res_text, res = elem_casts("r", acc, False, layer.accum_t, layer.result_t)
    chain, last = elementwise_chain("e", layer.result_t, post, res)
    inside = []
    if oh * ph < h:
        inside.append(f"r < {rw}'d{oh * ph}")
    if ow * pw < w:
        inside.append(f"s < {cw}'d{ow * pw}")
    inside_expr = " && ".join(inside) or "1'b1"
    return f"""// {name}: max pooling {layer.name} ({h} x {w} x {c}, pool {ph} x {pw}, stride = pool), streamed: a row
// of {depth} partial maxima; then (accum_t) {layer.accum_t}, (result_t) {layer.result_t}.
// Generated by qflow. Do not edit.
`timescale 1ns / 1ps
module {name} (
    input wire clk,
    input wire rst,
    input wire in_valid,
    output wire in_ready,
    input wire [{c * iw - 1}:0] x,
    output reg out_valid,
    input wire out_ready,
    output reg [{c * out_t.width - 1}:0] y
);
    reg [{rw - 1}:0] r;
    reg [{cw - 1}:0] s;
    reg [{pr_w - 1}:0] pr;
    reg [{pc_w - 1}:0] pc;
    reg [{ocw - 1}:0] oc;
    assign in_ready = !out_valid || out_ready;
    wire take = in_valid && in_ready;
    wire in_win = {inside_expr};
    wire first = pr == {pr_w}'d0 && pc == {pc_w}'d0;
    wire emit = in_win && pr == {pr_w}'d{ph - 1} && pc == {pc_w}'d{pw - 1};
    reg [{c * iw - 1}:0] pm [0:{depth - 1}];
    wire [{c * iw - 1}:0] pm_o = pm[oc];
{chr(10).join(lines)}
{acc_text}{res_text}{chain}    always @(posedge clk) begin
        if (rst) begin
            r <= {rw}'d0;
            s <= {cw}'d0;
            pr <= {pr_w}'d0;
            pc <= {pc_w}'d0;
            oc <= {ocw}'d0;
            out_valid <= 1'b0;
        end else begin
            if (take) begin
                if (s == {cw}'d{w - 1}) begin
                    s <= {cw}'d0;
                    pc <= {pc_w}'d0;
                    oc <= {ocw}'d0;
                    r <= r == {rw}'d{h - 1} ? {rw}'d0 : r + {rw}'d1;
                    pr <= (r == {rw}'d{h - 1} || pr == {pr_w}'d{ph - 1}) ? {pr_w}'d0 : pr + {pr_w}'d1;
                end else begin
                    s <= s + {cw}'d1;
                    pc <= pc == {pc_w}'d{pw - 1} ? {pc_w}'d0 : pc + {pc_w}'d1;
                    if (pc == {pc_w}'d{pw - 1}) oc <= oc + {ocw}'d1;
                end
            end
            if (take && emit) out_valid <= 1'b1;
            else if (out_ready) out_valid <= 1'b0;
        end
    end
    always @(posedge clk) begin
        if (take && in_win) pm[oc] <= {pack(maxima)};
        if (take && emit) y <= {last};
    end
endmodule
"""
