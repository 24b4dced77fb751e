"""``shiftadd``'s convolutions: the kernel's adder graph solved once, one module instantiated per pixel group.

A conv2d's kernel (``kh * kw * in_channels`` window values -> ``filters`` outputs: the adder graph, the bias,
the result cast and the pixel-wise layers after it, e.g. ReLU) is one module. The layer's module instantiates it
``ceil(pixels / conv_ii)`` times: with ``conv_ii = P`` each instance computes P output pixels, one per cycle of
a P-cycle beat (the top's phase counter ``ph`` picks the window), the first P - 1 pixels' values held in a bank.
On the beat's last cycle the layers that need the whole image (max pooling, flatten and what follows) take every
pixel and the layer's output register loads. A window tap outside the image (``same`` padding) is a constant 0.
``adder_depth_cut`` registers the kernel's adder graph (``shiftadd.py``); with ``conv_ii = P`` its outputs are then
delayed to a whole number of beats, so a kernel output still belongs to the phase ``ph`` shows (the window it was
computed from was chosen that many beats earlier, from the input then held) and the layer's output stays beat-aligned.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from flow.fixed import FixedType
from flow.layers import Conv2DLayer, LayerKind, size
from flow.rtl import cmvm, value_ranges
from flow.rtl.common import ELEMENTWISE_EMITTERS, Segment, check_accumulator, elementwise_chain, unpack


@dataclass(frozen=True)
class ConvPlan:
    """How one convolution is built: its kernel's inputs and outputs, instances and phases."""

    conv: Conv2DLayer
    in_t: FixedType
    pixel_post: list  # the layers after the convolution computed per pixel, inside the kernel
    rest_post: list  # the layers from the first whole-image one (max pooling, flatten) on
    ii: int  # pixels per instance (the beat's cycles)
    kernel_stages: int = 0  # the kernel's adder-level registers
    window_registered: bool = False  # a register between the window's phase multiplexer and the kernel

    @property
    def kernel_delay(self) -> int:
        """Cycles from a window to its kernel output as the layer reads it: the window register and the kernel's
        registers, padded to whole beats."""
        return -(-(self.kernel_stages + self.window_registered) // self.ii) * self.ii

    @property
    def pad(self) -> int:
        """The delay line's registers on each kernel output."""
        return self.kernel_delay - self.kernel_stages - self.window_registered

    @property
    def pixels(self) -> int:
        return size(self.conv.shape) // self.conv.filters

    @property
    def instances(self) -> int:
        return -(-self.pixels // self.ii)

    @property
    def pixel_t(self) -> FixedType:
        """The kernel's output type (after the pixel-wise layers)."""
        return self.pixel_post[-1].result_t if self.pixel_post else self.conv.result_t

    def pixel_of(self, instance: int, phase: int) -> int | None:
        """The output pixel an instance computes in a phase (None: idle)."""
        q = phase * self.instances + instance
        return q if q < self.pixels else None


def plan(seg: Segment, ii: int) -> ConvPlan:
    """Split the layers after the convolution at the first one that is not element by element."""
    k = next((i for i, layer in enumerate(seg.post) if layer.kind not in ELEMENTWISE_EMITTERS), len(seg.post))
    return ConvPlan(seg.dense, seg.in_t, seg.post[:k], seg.post[k:], ii)


def conv_module(
    name: str,
    seg: Segment,
    x_ranges: value_ranges.Ranges,
    ii: int,
    solver: str,
    budget_s: float,
    cut: int,
    dense_module,
) -> tuple[str, int, tuple[str, str], dict]:
    """The layer module of one convolution, its register stages (``ii`` cycles when time-multiplexed), the
    kernel module (name, text) and design.json's figures for the layer.

    ``dense_module`` is shiftadd's (the kernel is its dense layer, its output a wire); its adder-level registers
    (``cut``) delay a kernel output by whole beats (``ConvPlan.kernel_delay``), so the layer takes ``ii`` plus that.
    """
    p = plan(seg, ii)
    conv, in_t = p.conv, p.in_t
    kernel = conv.as_dense()
    shift = check_accumulator(kernel, in_t)
    k_ranges = value_ranges.window_ranges(conv, x_ranges)
    graph = cmvm.solve(kernel.weights, in_t, solver, budget_s, k_ranges)
    kname = f"{name}_kernel"
    k_text, k_stages = dense_module(
        kname, kernel, in_t, p.pixel_post, p.pixel_t, graph, shift, cut, k_ranges, registered=False
    )
    # Pipelined (cut) and time-multiplexed: the window multiplexer gets its own stage, so every path of the layer
    # lies within the layer or within the kernel.
    p = dataclasses.replace(p, kernel_stages=k_stages, window_registered=bool(cut) and ii > 1)
    details = graph.to_dict() | {"instances": p.instances, "pixels": p.pixels, "conv_ii": ii, "kernel": kname}
    details["kernel_delay_cycles"] = p.kernel_delay
    # A kernel's output is a wire: registered by the delay line when there is one, else the layer's path runs
    # through the kernel into the bank and the whole-image layers (what the timing bounds need; so for its input).
    details["kernel_output_registered"] = p.pad > 0
    details["kernel_input_registered"] = p.window_registered
    return _layer_text(name, kname, p), ii + p.kernel_delay, (kname, k_text), details


def _read_pixels(p: ConvPlan) -> set[int]:
    """The output pixels the next layer reads (a max pool without padding drops an odd image's last row/column)."""
    pool = p.rest_post[0] if p.rest_post and p.rest_post[0].kind is LayerKind.MAXPOOL2D else None
    if pool is None:
        return set(range(p.pixels))
    (_, w, _), (ph, pw), (sh, sw) = pool.in_shape, pool.pool, pool.stride
    oh, ow, _ = pool.shape
    rows = [i * sh + di for i in range(oh) for di in range(ph)]
    return {r * w + j * sw + dj for r in rows for j in range(ow) for dj in range(pw)}


def _layer_text(name: str, kname: str, p: ConvPlan) -> str:
    """The layer module: the kernel instances, their windows (by phase), the bank, the whole-image layers."""
    conv, in_t, ii = p.conv, p.in_t, p.ii
    iw, f, pt = in_t.width, conv.filters, p.pixel_t
    n_in = size(conv.in_shape)
    taps = conv.window_taps()
    k_in = len(taps[0])
    pw = (ii - 1).bit_length()
    out_t = p.rest_post[-1].result_t if p.rest_post else pt
    n_y = size(p.rest_post[-1].shape) if p.rest_post else size(conv.shape)

    def window(q: int | None) -> str:
        parts = [f"{iw}'d0" if q is None or t is None else f"x[{t * iw + iw - 1}:{t * iw}]" for t in taps[q or 0]]
        return "{" + ", ".join(reversed(parts)) + "}"

    read = _read_pixels(p)
    pad = p.pad
    lines: list[str] = []
    regs: list[str] = []
    for i in range(p.instances):
        if not any(p.pixel_of(i, ph) in read for ph in range(ii)):
            continue  # every pixel of this instance is one a max pool drops
        choices = [window(p.pixel_of(i, ph)) for ph in range(ii)]
        expr = choices[-1]
        for ph in range(ii - 2, -1, -1):  # the last phase's window is the default
            if choices[ph] != expr:
                expr = f"(ph == {pw}'d{ph}) ? {choices[ph]} : {expr}"
        if p.window_registered:
            lines.append(f"    reg [{k_in * iw - 1}:0] w{i};")
            regs.append(f"        if (en) w{i} <= {expr};")
        else:
            lines.append(f"    wire [{k_in * iw - 1}:0] w{i} = {expr};")
        lines.append(f"    wire [{f * pt.width - 1}:0] k{i};")
        out = f"k{i}_d0" if pad else f"k{i}"
        if pad:  # the kernel's output delayed to a whole number of beats
            lines.append(f"    wire [{f * pt.width - 1}:0] {out};")
            lines += [f"    reg [{f * pt.width - 1}:0] k{i}_d{j};" for j in range(1, pad + 1)]
            lines.append(f"    assign k{i} = k{i}_d{pad};")
            regs += [f"        if (en) k{i}_d{j} <= k{i}_d{j - 1};" for j in range(1, pad + 1)]
        lines.append(f"    {kname} u_k{i} (.clk(clk), .en(en), .x(w{i}), .y({out}));")
    elems: list[str] = []
    for q in range(p.pixels):
        ph, i = divmod(q, p.instances)
        if q not in read:
            elems += [f"{pt.width}'d0"] * f
            continue
        src = f"k{i}"
        if ph < ii - 1:  # held until the beat's last phase
            src = f"b{ph}_{i}"
            lines.append(f"    reg [{f * pt.width - 1}:0] {src};")
            regs.append(f"        if (en && ph == {pw}'d{ph}) {src} <= k{i};")
        elems += unpack(src, f, pt.width)
    chain, packed = elementwise_chain("e", pt, p.rest_post, elems)
    load = f"en && ph == {pw}'d{ii - 1}" if ii > 1 else "en"
    unused = len({t for q in read for t in taps[q] if t is not None}) < n_in
    text = f"// {name}: conv2d layer {conv.name} {list(conv.in_shape)} -> {list(conv.shape)} ({conv.padding.value}), "
    text += f"generated by qflow. Do not edit.\n// {p.pixels} pixels: {p.instances} instance(s) of {kname}, "
    text += f"{ii} pixel(s) each (one per phase"
    text += f", {p.kernel_delay} cycle(s) from a window to its output" if p.kernel_delay else ""
    text += "); then" + "".join(f" {q.kind.value}" for q in p.rest_post)
    text += f" and a register (y: {n_y} x {out_t}).\n`timescale 1ns / 1ps\n"
    if unused:
        text += "/* verilator lint_off UNUSEDSIGNAL */\n// Reason: inputs no window reads are not connected.\n"
    ports = f"    input wire [{pw - 1}:0] ph,\n" if ii > 1 else ""
    text += f"module {name} (\n    input wire clk,\n    input wire en,\n{ports}"
    text += f"    input wire [{n_in * iw - 1}:0] x,\n    output reg [{n_y * out_t.width - 1}:0] y\n);\n"
    if unused:
        text += "/* verilator lint_on UNUSEDSIGNAL */\n"
    text += "\n".join(lines) + "\n"
    if regs:
        text += "    always @(posedge clk) begin\n" + "\n".join(regs) + "\n    end\n"
    text += chain
    text += f"    always @(posedge clk) begin\n        if ({load}) y <= {packed};\n    end\nendmodule\n"
    return text
