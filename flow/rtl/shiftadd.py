"""The ``shiftadd`` architecture: multiplierless, fully pipelined (II = 1).

Each dense layer is one constant matrix-vector product built from shifts and adders: an adder graph (see
``adder_graph.py``) from da4ml's CMVM solver when it finishes within ``solver_budget_s``, else from qflow's own
CSD + greedy sharing (``csd.py``); design.json's ``details`` says which, per layer. Every adder is exactly as wide
as its value range (and no wider than the accumulator needs: the sum is only needed modulo 2**W). Then, as in
``parallel``, ``(accum_t) bias`` is added, the output cast and the elementwise layers follow, and a register.
``adder_depth_cut = k`` registers the graph after every k adder levels. One global stall (``en``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, Rounding
from flow.ir import IR, DenseLayer, LayerKind
from flow.rtl import cmvm, shiftadd_conv, value_ranges
from flow.rtl.adder_graph import AdderGraph, Term
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
    lit,
    no_reuse_knobs,
    segments,
    signed_bits,
    signed_width,
)
from flow.rtl.csd import csd_digits
from flow.rtl.parallel import emit_pipeline

FIXED_BLOCKS = ["qflow_fixed_cast.v", "qflow_argmax.v"]
KNOBS = {"adder_depth_cut": 0, "solver": "auto", "solver_budget_s": cmvm.DEFAULT_BUDGET_S, "conv_ii": 1}
KINDS = CHAIN_KINDS | IMAGE_KINDS  # a conv2d: its kernel's graph once, instantiated per pixel (shiftadd_conv.py)


def card_knobs(card_reuse: dict[str, int], override: dict[str, int] | None = None) -> dict:
    """The knobs a project's card gives this architecture: none (reuse factors do not apply)."""
    return no_reuse_knobs("shiftadd", override)


def check_knobs(knobs: dict) -> None:
    """A FlowError unless the knobs given (a user's, or ``emit``'s arguments) are valid values."""
    cmvm.check_solver(knobs.get("solver", "auto"), knobs.get("solver_budget_s", cmvm.DEFAULT_BUDGET_S))
    for name, low in (("adder_depth_cut", 0), ("conv_ii", 1)):
        v = knobs.get(name, low)
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise FlowError(f"shiftadd knob {name} must be an integer >= {low}, got {v!r}")


def rate_knobs(ir: IR, period_ns: float, rate_mhz: float | None) -> dict:
    """``conv_ii`` for a network with convolutions that must take a sample every ``1000 / rate_mhz`` ns at a
    ``period_ns`` clock: the most cycles per sample that rate allows (40 MHz at 5 ns: 5); none without a rate."""
    if not rate_mhz or not any(node.kind is LayerKind.CONV2D for node in ir.nodes):
        return {}
    return {"conv_ii": max(1, int(1000.0 / rate_mhz / period_ns + 1e-9))}


def check_layer(name: str, n_in: int, n_out: int, reuse: int) -> None:
    """Any card layer is accepted (the reuse factor is hls4ml's alone)."""


def proxy_terms(layer: DenseShapeLike) -> dict[str, float]:
    """Proxy bit operations: one accumulator-wide adder per CSD digit beyond the first of each output, no
    multipliers (sharing, which removes more, is not modelled)."""
    w = np.asarray(layer.weights, dtype=np.float64)
    raw = np.rint(w * 2.0**32).astype(object)  # a power-of-two scale does not change the digit count
    digits = np.array([[len(csd_digits(int(v))) for v in row] for row in raw]).reshape(w.shape)
    per_out = digits.sum(axis=0) + (np.asarray(layer.biases).reshape(-1) != 0) - 1
    return {"mult": 0.0, "add": float(int(np.maximum(per_out, 0).sum()) * layer.acc_bits), "rom": 0.0}


def emit(
    ir: IR,
    top: str,
    adder_depth_cut: int = 0,
    solver: str = "auto",
    solver_budget_s: float = cmvm.DEFAULT_BUDGET_S,
    conv_ii: int = 1,
) -> Emitted:
    """Verilog for ``ir``: one module per dense or conv2d layer (a convolution's kernel module too) and the top.

    ``conv_ii = P``: each convolution kernel instance computes P output pixels, one per cycle (II = P when the
    network has a convolution); the dense layers stay fully parallel.
    """
    check_knobs(
        {"adder_depth_cut": adder_depth_cut, "solver": solver, "solver_budget_s": solver_budget_s, "conv_ii": conv_ii}
    )
    graphs: dict[str, dict] = {}
    kernels: dict[str, str] = {}  # convolution kernel module -> its text
    segs = segments(ir, "shiftadd", full_dense=False)
    # Convolutions come before any dense layer (a dense output is 1-D), so their beats lead the pipeline.
    ii = conv_ii if any(seg.dense.kind is LayerKind.CONV2D for seg in segs[1:]) else 1
    # Each dense layer's input ranges (raw), propagated from the network input: adders are sized from these.
    x_ranges = [value_ranges.segment_output_ranges(segs[0], value_ranges.type_range(ir.input.type, ir.input.n))]
    for seg in segs[1:-1]:
        x_ranges.append(value_ranges.segment_output_ranges(seg, x_ranges[-1]))
    ranges_of = {seg.dense.name: r for seg, r in zip(segs[1:], x_ranges)}

    def layer_module(name: str, seg: Segment) -> tuple[str, int]:
        layer = seg.dense
        x = ranges_of[layer.name]
        if layer.kind is LayerKind.CONV2D:
            text, stages, kernel, graphs[layer.name] = shiftadd_conv.conv_module(
                name, seg, x, ii, solver, solver_budget_s, adder_depth_cut, dense_module
            )
            kernels[kernel[0]] = kernel[1]
            return text, stages
        shift = check_accumulator(layer, seg.in_t)
        graph = cmvm.solve(layer.weights, seg.in_t, solver, solver_budget_s, x)
        graphs[layer.name] = graph.to_dict()
        return dense_module(name, layer, seg.in_t, seg.post, seg.out_t, graph, shift, adder_depth_cut, x)

    layer_files, latency, layers = emit_pipeline(ir, top, "shiftadd", layer_module, ii=ii, full_dense=False)
    files = {f"{k}.v": text for k, text in kernels.items()} | layer_files
    knobs = {"adder_depth_cut": adder_depth_cut, "solver": solver, "solver_budget_s": solver_budget_s}
    knobs["conv_ii"] = conv_ii
    details = {"cmvm": graphs}
    return Emitted(files, FIXED_BLOCKS, latency, ii, knobs, details=details, layer_modules=layers + list(kernels))


class _Signals:
    """Wire names of graph nodes per pipeline stage; registered copies are made on demand."""

    def __init__(self, base: dict[int, str], width: dict[int, int], stage: dict[int, int]) -> None:
        self.base, self.width, self.stage = base, width, stage
        self.decls: list[str] = []
        self.regs: list[str] = []
        self._at: dict[tuple[int, int], str] = {}

    def at(self, node: int, st: int) -> str:
        """Node ``node``'s value as seen in stage ``st`` (>= its own stage)."""
        own = self.stage[node]
        if st <= own:
            return self.base[node]
        key = (node, st)
        if key not in self._at:
            prev = self.at(node, st - 1)
            name = f"{self.base[node]}_s{st}"
            self.decls.append(f"    reg [{self.width[node] - 1}:0] {name};")
            self.regs.append(f"            {name} <= {prev};")
            self._at[key] = name
        return self._at[key]


def _term(sig: str, width: int, shift: int, to_w: int) -> str | None:
    """``sig`` (``width`` bits, two's complement) shifted left by ``shift`` into ``to_w`` bits (None: all zero)."""
    if to_w - shift <= 0:
        return None
    v = ext(sig, width, to_w - shift, True)
    return f"{{{v}, {shift}'d0}}" if shift else v


def _sum(parts: list[tuple[str | None, bool]], width: int) -> str:
    """``+-`` the parts in ``width`` bits (a part of None is zero)."""
    parts = [(p, neg) for p, neg in parts if p is not None]
    pos = [p for p, neg in parts if not neg]
    negs = [p for p, neg in parts if neg]
    if not pos:
        pos = [f"{width}'d0"]
    return " - ".join([" + ".join(pos), *negs]) if negs else " + ".join(pos)


def dense_module(
    name: str,
    layer: DenseLayer,
    in_t: FixedType,
    post: list,
    out_t: FixedType,
    graph: AdderGraph,
    shift: int,
    cut: int,
    x_ranges: value_ranges.Ranges | None = None,
    registered: bool = True,
) -> tuple[str, int]:
    """One dense layer (plus its elementwise layers) as a module; returns (text, register stages).

    ``x_ranges`` (raw, per input; default the whole input type) size the adders; where the accumulator's range
    cannot wrap it is only as wide as that range (the same value, so the casts see the same number).
    ``registered=False``: ``y`` is a wire (a convolution kernel, registered by the layer around it).
    """
    n_in, n_out = layer.n_in, layer.n_out
    x_ranges = x_ranges or value_ranges.type_range(in_t, n_in)
    acc_ranges = value_ranges.accumulator_ranges(layer, x_ranges, in_t)
    acc_t = layer.accum_t
    if acc_ranges is not None:  # never wraps: the narrowest two's complement holding every accumulator value
        aw = min(acc_t.width, max(signed_bits(lo, hi) for lo, hi in acc_ranges) if acc_ranges else 1)
        acc_t = FixedType(aw, aw - acc_t.frac_bits, True, acc_t.rounding, acc_t.overflow)
    aw = acc_t.width
    cap = aw - shift  # the sum is only needed modulo 2**cap
    iw = in_t.width
    biases = aligned_biases(layer)
    fold = _rounding_fold(acc_t, layer.result_t, post, acc_ranges)
    if fold is not None:  # the rounding cast's half LSB joins the bias constant, so the cast only truncates
        biases = [b + (1 << (fold.drop - 1)) for b in biases]
        post = fold.post
    outputs: list[Term | None] = graph.outputs if cap > 0 else [None] * n_out

    live = _live_nodes(graph, outputs)
    exp = graph.lsb_exponents()
    ranges = graph.mantissa_ranges([lo for lo, _ in x_ranges], [hi for _, hi in x_ranges])
    need = graph.needed_bits(exp, cap)
    levels = graph.levels()
    stage = {k: (levels[k] - 1) // cut if cut and levels[k] else 0 for k in live}
    last = max((stage[t.node] for t in outputs if t is not None), default=0)
    width, base = {}, {}
    lines: list[str] = []
    for k in sorted(live):
        if k < n_in:  # only the low bits its range needs (two's complement; unsigned inputs get a zero sign)
            xs_w = min(signed_width(in_t), signed_bits(*x_ranges[k]))
            width[k], base[k] = xs_w, f"x{k}"
            mag_w = xs_w if in_t.signed else xs_w - 1
            src = f"x[{k * iw + mag_w - 1}:{k * iw}]"
            xs = src if in_t.signed else ("{1'b0, " + src + "}" if mag_w else "1'b0")
            lines.append(f"    wire [{xs_w - 1}:0] x{k} = {xs};")
        else:
            width[k], base[k] = max(1, min(signed_bits(*ranges[k]), need[k])), f"n{k}"
    sig = _Signals(base, width, stage)
    for k in sorted(live):
        if k < n_in:
            continue
        parts = []
        for t in graph.operands(k):
            sh = exp[t.node] + t.shift - exp[k]
            parts.append((_term(sig.at(t.node, stage[k]), width[t.node], sh, width[k]), t.neg))
        lines.append(f"    wire [{width[k] - 1}:0] n{k} = {_sum(parts, width[k])};")
    accs = []
    for j, t in enumerate(outputs):
        bias = lit(biases[j], aw)
        acc = f"acc{j}"
        if t is None:
            lines.append(f"    wire [{aw - 1}:0] {acc} = {bias};")
            accs.append(acc)
            continue
        e = exp[t.node] + t.shift
        s = sig.at(t.node, last)
        if e >= 0:
            part = _term(s, width[t.node], e, cap)
        else:  # a mantissa with fraction bits: the integer sum is its upper part
            lines.append(f"    wire [{cap - e - 1}:0] f{j} = {ext(s, width[t.node], cap - e, True)};")
            part = f"f{j}[{cap - e - 1}:{-e}]"
        summed = _sum([(part, t.neg)], cap)
        lines.append(f"    wire [{cap - 1}:0] sum{j} = {summed};")
        total = f"{{sum{j}, {shift}'d0}}" if shift else f"sum{j}"
        lines.append(f"    wire [{aw - 1}:0] {acc} = {bias + ' + ' + total if biases[j] else total};")
        accs.append(acc)
    if fold is not None and fold.to_even:  # a tie (dropped bits 100..0, now 000..0) rounded up to odd goes down
        d = fold.drop
        for j, acc in enumerate(accs):
            even = f"{acc}[{d}] & |{acc}[{d - 1}:0]"
            lines.append(f"    wire [{aw - 1}:0] t{j} = {{{acc}[{aw - 1}:{d + 1}], {even}, {acc}[{d - 1}:0]}};")
            accs[j] = f"t{j}"

    used_inputs = sum(1 for k in live if k < n_in)
    text = f"// {name}: dense layer {layer.name} ({n_in} -> {n_out}) as shift-add terms ({graph.solver}: "
    text += f"{len(graph.adders)} adders), generated by qflow. Do not edit.\n"
    text += f"// x: {n_in} x {in_t}; acc: {acc_t}; y: {n_out} x {out_t} (after {layer.result_t}"
    text += "".join(f", {p.kind.value} {p.result_t}" for p in post) + f"), {last} adder-level register(s).\n"
    text += "`timescale 1ns / 1ps\n"
    if used_inputs < n_in:
        text += "/* verilator lint_off UNUSEDSIGNAL */\n"
        text += "// Reason: inputs whose weights are all zero are not connected.\n"
    kernel = not registered
    if kernel:
        text += "/* verilator lint_off UNUSEDSIGNAL */\n// Reason: only the input bits a value range needs are read"
        text += " (the union over every window); a kernel without adder-level registers has no clock.\n"
    waived = used_inputs < n_in or kernel
    # Inputs read only in their range's low bits: the waiver shares lines with the ports (no line moves, so
    # Yosys names the cells as before).
    narrow = not waived and any(width[k] - (0 if in_t.signed else 1) < iw for k in live if k < n_in)
    off = " /* verilator lint_off UNUSEDSIGNAL */ // Reason: x is read only in its value range's bits" if narrow else ""
    on = " /* verilator lint_on UNUSEDSIGNAL */" if narrow else ""
    text += f"module {name} (\n    input wire clk,\n    input wire en,{off}\n"
    text += f"    input wire [{n_in * iw - 1}:0] x,\n    output {'reg' if registered else 'wire'} "
    text += f"[{n_out * out_t.width - 1}:0] y\n);{on}\n"
    if waived:
        text += "/* verilator lint_on UNUSEDSIGNAL */\n"
    text += "/* verilator lint_off UNUSEDSIGNAL */\n"
    text += "// Reason: terms are sign-extended or truncated to their adder's width; bits above a value's range or\n"
    text += "// above what the accumulator keeps (it wraps) go unused.\n"
    text += "\n".join(sig.decls + lines) + "\n/* verilator lint_on UNUSEDSIGNAL */\n"
    if sig.regs:
        text += "    always @(posedge clk) begin\n        if (en) begin\n" + "\n".join(sig.regs)
        text += "\n        end\n    end\n"
    res_t = fold.result_t if fold is not None else layer.result_t
    if acc_t.width < layer.accum_t.width and res_t.frac_bits == acc_t.frac_bits and _fits(acc_ranges, res_t):
        casts, outs, res_t = "", accs, acc_t  # (result_t) acc changes no value: the narrow sum goes on
    else:
        casts, outs = elem_casts("r", accs, False, acc_t, res_t)
    chain, packed = elementwise_chain("e", res_t, post, outs)
    if not post and res_t.width != layer.result_t.width:  # the port carries result_t: sign-extend narrow sums
        packed = "{" + ", ".join(ext(o, res_t.width, layer.result_t.width, True) for o in reversed(outs)) + "}"
    text += casts + chain
    if not registered:
        return text + f"    assign y = {packed};\nendmodule\n", last
    text += f"    always @(posedge clk) begin\n        if (en) y <= {packed};\n    end\nendmodule\n"
    return text, 1 + last


@dataclasses.dataclass(frozen=True)
class _RoundingFold:
    """The first cast after the accumulator that rounds, done as ``floor((acc + half) / 2**drop)``."""

    drop: int  # accumulator fraction bits that cast drops
    to_even: bool  # RND_CONV: a tie rounded up to an odd value is taken one down
    result_t: FixedType  # the layer's result type as emitted (truncating when it is the rounding cast)
    post: list  # the elementwise layers as emitted (a leading ReLU's cast truncating when it is the rounding one)


FOLDED_ROUNDING = (Rounding.RND, Rounding.RND_CONV)  # round half up, half to even: floor after adding half


def _rounding_fold(acc_t: FixedType, result_t: FixedType, post: list, acc_ranges) -> _RoundingFold | None:
    """Where the layer's first lossy cast rounds half up or to even, that rounding as a floor after the bias.

    The cast is either the result cast or, after a lossless result cast, a leading ReLU's: rounding is monotone
    and keeps 0, so ``round(max(x, 0)) = max(round(x), 0)`` and the ReLU may see ``x + half``. Needs accumulator
    ranges (the sum never wraps) with room for the half; None when the layer has no such cast.
    """
    if acc_ranges is None:
        return None
    to_trn = lambda t: dataclasses.replace(t, rounding=Rounding.TRN)  # noqa: E731
    drop = acc_t.frac_bits - result_t.frac_bits
    if drop > 0:
        if post or result_t.rounding not in FOLDED_ROUNDING:
            return None  # (a result cast that rounds before other layers: rare, left as it is)
        fold = _RoundingFold(drop, result_t.rounding is Rounding.RND_CONV, to_trn(result_t), [])
    elif drop == 0 and post and post[0].kind is LayerKind.RELU:
        relu_t = post[0].result_t
        drop = result_t.frac_bits - relu_t.frac_bits
        if drop <= 0 or relu_t.rounding not in FOLDED_ROUNDING:
            return None
        relu = dataclasses.replace(post[0], result_t=to_trn(relu_t))
        fold = _RoundingFold(drop, relu_t.rounding is Rounding.RND_CONV, result_t, [relu, *post[1:]])
    else:
        return None
    half = 1 << (fold.drop - 1)
    shifted = [(lo, hi + half) for lo, hi in acc_ranges]
    if fold.drop + 1 >= acc_t.width or not _fits(shifted, FixedType(acc_t.width, acc_t.int_bits, acc_t.signed)):
        return None
    if fold.post and not _fits(shifted, result_t):
        return None  # the lossless result cast must stay lossless for acc + half
    return fold


def _fits(ranges: value_ranges.Ranges | None, t: FixedType) -> bool:
    """Whether every range lies within ``t``'s raw values."""
    return ranges is not None and all(t.min_raw <= lo and hi <= t.max_raw for lo, hi in ranges)


def _live_nodes(graph: AdderGraph, outputs: list[Term | None]) -> set[int]:
    """The nodes some output depends on."""
    live: set[int] = set()
    todo = [t.node for t in outputs if t is not None]
    while todo:
        k = todo.pop()
        if k in live:
            continue
        live.add(k)
        if k >= graph.n_in:
            todo += [t.node for t in graph.operands(k)]
    return live
