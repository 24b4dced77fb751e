"""The ensemble arrangements: raw spectrum in, every member's logits and the vote out.

An ensemble graph (``flow.ensemble_graph``: spectrum -> log1p -> per member diagonal_difference -> lane layers
(clip, cast) -> the member's layers -> vote) becomes one design: the feature stage
(:mod:`flow.rtl.ensemble_features`), the members' folded datapaths (:func:`flow.rtl.folded.layer_chain`, the
first layer taking one input per step as the stage streams it) and the voter (:mod:`flow.rtl.ensemble_vote`).

* ``parallel_members``: one datapath per member side by side, one shared spectrum buffer and feature stage that
  streams every member's inputs in one pass; the voter takes the members' results together.
* ``serial_members``: one datapath reused over the members (their weights and biases in its ROMs, one bank per
  member, picked by the member index that travels with each sample); the feature stage streams one member's
  inputs per pass, the members' logits are kept until the last one's arrive, then the voter takes them. The
  members must agree in every shape and in the types between layers; a dense layer's weight, bias, accumulator
  and result types may differ per member (the datapath holds their union, each bank casts its own field).

Ports are every qflow design's, with ``out_data`` holding every member's logits (member order of the vote's
inputs, member 0 low) and ``out_class`` the vote.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from flow.errors import FlowError
from flow.features import difference_type
from flow.fixed import FixedType
from flow.ir import IR, InputSpec, LayerKind, Task
from flow.layers import VoteLayer
from flow.rtl import folded
from flow.rtl.common import CHAIN_KINDS, ELEMENTWISE_EMITTERS, Emitted, segments
from flow.rtl.ensemble_features import Lane, feature_module, log1p_rom
from flow.rtl.ensemble_vote import vote_module

FIXED_BLOCKS = ["qflow_fixed_cast.v", "qflow_argmax.v"]
KNOBS = {"reuse_factors": None, "log1p": "auto"}
KINDS = CHAIN_KINDS | {LayerKind.LOG1P, LayerKind.DIAGONAL_DIFFERENCE, LayerKind.VOTE}


@dataclass(frozen=True)
class MemberPlan:
    """One member in the design: its input lane and its chain of layers (an IR from the lane's output)."""

    lane: Lane
    chain: IR
    logits_t: FixedType


@dataclass(frozen=True)
class EnsemblePlan:
    """An ensemble graph taken apart for the RTL."""

    n_channels: int
    count_width: int
    log1p_t: FixedType
    members: list[MemberPlan]
    vote: VoteLayer


def plan(ir: IR) -> EnsemblePlan:
    """The ensemble graph's parts; a one-line FlowError for a graph of another shape."""
    where = f"IR {ir.name}"
    vote = ir.output
    if vote.kind is not LayerKind.VOTE:
        raise FlowError(f"{where}: an ensemble arrangement needs a vote output node, not {vote.kind.value}")
    nodes = {n.name: n for n in ir.nodes}
    spectrum = ir.input
    log1p = None
    members = []
    for logits in vote.inputs:
        path = [nodes[logits]]
        while path[-1].kind is not LayerKind.DIAGONAL_DIFFERENCE:
            if len(path[-1].inputs) != 1 or path[-1].inputs[0] not in nodes:
                raise FlowError(f"{where}: member output {logits} does not come from a diagonal_difference node")
            path.append(nodes[path[-1].inputs[0]])
        diff = path.pop()
        path.reverse()
        src = nodes.get(diff.inputs[0])
        if src is None or src.kind is not LayerKind.LOG1P or src.inputs != (spectrum.name,):
            raise FlowError(f"{where}: {diff.name} must take the log1p of the graph input")
        if log1p is not None and src.name != log1p.name:
            raise FlowError(f"{where}: the members must share one log1p node")
        log1p = src
        first = next((i for i, n in enumerate(path) if n.kind is LayerKind.DENSE), None)
        if first is None:
            raise FlowError(f"{where}: member output {logits} has no dense layer")
        lane_layers, chain = path[:first], path[first:]
        bad = next((n for n in lane_layers if n.kind not in ELEMENTWISE_EMITTERS), None)
        if bad is not None:
            raise FlowError(f"{where}: {bad.name} ({bad.kind.value}) between the difference and a member's layers")
        lane_t = lane_layers[-1].result_t if lane_layers else difference_type(log1p.result_t)
        lane = Lane(diff.name, diff.diagonal, lane_layers, lane_t)
        in_name = lane_layers[-1].name if lane_layers else diff.name
        sub = IR(logits.split("/")[0], Task.CLASSIFICATION, [InputSpec(diff.shape, lane_t, in_name)], chain)
        members.append(MemberPlan(lane, sub, ir.types()[logits]))
    assert log1p is not None
    return EnsemblePlan(spectrum.n, log1p.count_width, log1p.result_t, members, vote)


def out_element_t(p: EnsemblePlan) -> FixedType:
    """The type of ``out_data``'s elements: every member's logits type (they must agree)."""
    types = {str(m.logits_t) for m in p.members}
    if len(types) != 1:
        raise FlowError(f"ensemble RTL: the members' logits types differ ({', '.join(sorted(types))})")
    return p.members[0].logits_t


def ports(ir: IR, p: EnsemblePlan) -> dict:
    """design.json's ports: the spectrum in, every member's logits and the vote out."""
    w, t = p.count_width, out_element_t(p)
    n_out = len(p.members) * p.vote.n_classes
    return {
        "clk": {"dir": "in", "width": 1},
        "rst": {"dir": "in", "width": 1, "note": "synchronous, active high"},
        "in_valid": {"dir": "in", "width": 1},
        "in_ready": {"dir": "out", "width": 1},
        "in_data": {
            "dir": "in",
            "width": p.n_channels * w,
            "elements": p.n_channels,
            "element_width": w,
            "type": str(ir.input.type),
            "sample_elements": p.n_channels,
            "beats": 1,
            "note": "channel 0 in the low bits, unsigned counts",
        },
        "out_valid": {"dir": "out", "width": 1},
        "out_ready": {"dir": "in", "width": 1},
        "out_data": {
            "dir": "out",
            "width": n_out * t.width,
            "elements": n_out,
            "element_width": t.width,
            "type": str(t),
            "note": f"member m's logit j at element m*{p.vote.n_classes} + j (members in the vote's input order)",
        },
        "out_class": {"dir": "out", "width": p.vote.result_t.width, "note": f"the {p.vote.method.value} vote"},
    }


def header(ir: IR, top: str, arch: str, p: EnsemblePlan, latency: int, ii: int) -> str:
    """The comment block of the top module."""
    t = out_element_t(p)
    m, n = len(p.members), p.vote.n_classes
    counts = f"{p.n_channels} unsigned {p.count_width}-bit channel counts, channel 0 low"
    return f"""// {top}: generated by qflow from the ensemble IR "{ir.name}" (arrangement: {arch}). Do not edit.
//
// Interface (every qflow design's; see flow/rtl/README.md):
//   in_valid / in_ready      a spectrum is taken on a rising edge with in_valid && in_ready
//   in_data   [{p.n_channels * p.count_width - 1}:0]  {counts}
//   out_valid / out_ready    a result is delivered on a rising edge with out_valid && out_ready
//   out_data  [{m * n * t.width - 1}:0]  the {m} members' {n} logits of {t}, member m's logit j at element m*{n} + j
//   out_class [{p.vote.result_t.width - 1}:0]  the {p.vote.method.value} vote (ties to the lowest class)
// Latency: {latency} cycles; initiation interval: {ii} cycle(s).
`timescale 1ns / 1ps
"""


def module_ports(top: str, p: EnsemblePlan) -> str:
    """The top module's declaration."""
    t = out_element_t(p)
    n_out = len(p.members) * p.vote.n_classes
    return f"""module {top} (
    input wire clk,
    input wire rst,
    input wire in_valid,
    output wire in_ready,
    input wire [{p.n_channels * p.count_width - 1}:0] in_data,
    output wire out_valid,
    input wire out_ready,
    output wire [{n_out * t.width - 1}:0] out_data,
    output wire [{p.vote.result_t.width - 1}:0] out_class
);
"""


def member_chain(
    chain: IR, top: str, reuse_factors: dict[str, int], src: folded.Link, banks: dict | None = None
) -> folded.Chain:
    """A member's folded datapath (``banks``: shared by several); its first layer takes one input per step."""
    segs = segments(chain, "folded")
    first = segs[1].dense
    own = {seg.dense.name: reuse_factors.get(seg.dense.name.split("/", 1)[-1]) for seg in segs[1:]}
    own = {k: v for k, v in own.items() if v is not None}
    if own.get(first.name, first.n_in) != first.n_in:
        raise FlowError(
            f"reuse_factors: the first layer of each member takes one input per step from the feature stage "
            f"(R = n_in = {first.n_in}), not {own[first.name]}"
        )
    return folded.layer_chain(segs, top, own, src, 1, banks)


def own_name(name: str) -> str:
    """A member node's name without the member prefix (``m3/fc1`` -> ``fc1``)."""
    return name.split("/", 1)[-1]


def shape_of(node) -> tuple:
    """What a shared datapath needs equal across members: kind and shape, and every type of a node but a dense
    layer's (each weight bank keeps its own: :mod:`flow.rtl.banks`)."""
    if node.kind is LayerKind.DENSE:
        return (node.kind, tuple(node.shape))
    types = ("result_t", "weight_t", "bias_t", "accum_t")
    return (node.kind, tuple(node.shape), *(str(getattr(node, t, "")) for t in types))


def shared_chain(p: EnsemblePlan) -> tuple[IR, dict[str, list]]:
    """Member 0's chain under member-less names, and per dense layer every member's (the weight banks)."""
    ref = p.members[0]
    for m in p.members[1:]:
        a, b = [shape_of(n) for n in ref.chain.nodes], [shape_of(n) for n in m.chain.nodes]
        bad = next(
            (i for i, (x, y) in enumerate(zip(a, b)) if x != y), None if len(a) == len(b) else min(len(a), len(b))
        )
        if bad is not None or str(m.lane.out_t) != str(ref.lane.out_t):
            where = ref.chain.nodes[bad].name if bad is not None and bad < len(ref.chain.nodes) else "its input"
            raise FlowError(
                f"serial_members: member {m.chain.name} differs from {ref.chain.name} at {own_name(where)} (shape or "
                "types); one shared datapath needs members of one structure (use parallel_members)"
            )
    spec = ref.chain.input
    nodes = [replace(n, name=own_name(n.name), inputs=tuple(own_name(i) for i in n.inputs)) for n in ref.chain.nodes]
    chain = IR("shared", Task.CLASSIFICATION, [InputSpec(spec.shape, spec.type, own_name(spec.name))], nodes)
    banks = {
        own_name(n.name): [m.chain.nodes[i] for m in p.members]
        for i, n in enumerate(ref.chain.nodes)
        if n.kind is LayerKind.DENSE
    }
    return chain, banks


def check_reuse_names(p: EnsemblePlan, reuse_factors: dict[str, int]) -> None:
    """Reuse factors name a member's own dense layers (``fc2``), applied to every member."""
    names = {n.name.split("/", 1)[-1] for m in p.members for n in m.chain.nodes if n.kind is LayerKind.DENSE}
    unknown = set(reuse_factors) - names
    if unknown:
        raise FlowError(f"reuse_factors: no member layer named {', '.join(sorted(unknown))} (known: {sorted(names)})")


def card_knobs(card_reuse: dict[str, int], override: dict[str, int] | None = None) -> dict:
    """The knobs from a project: the reuse factors given (``--reuse fc2=8``), for every member."""
    return {"reuse_factors": dict(override or {})}


def check_layer(name: str, n_in: int, n_out: int, reuse: int) -> None:
    """Members are ordinary cards: their layers are checked by their own architecture."""


def emit_parallel(ir: IR, top: str, reuse_factors: dict[str, int] | None = None, log1p: str = "auto") -> Emitted:
    """``parallel_members``: the feature stage, one folded datapath per member, the voter."""
    reuse_factors = dict(reuse_factors or {})
    p = plan(ir)
    check_reuse_names(p, reuse_factors)
    rom = log1p_rom(p.count_width, p.log1p_t, log1p)
    m_count = len(p.members)
    files: dict[str, str] = {}
    feat = f"{top}_features"
    files[f"{feat}.v"] = feature_module(
        feat, p.n_channels, rom, [m.lane for m in p.members], [list(range(m_count))], m_count
    )
    conns = "".join(
        f"        .o{i}_valid(fv{i}), .o{i}_ready(fr{i}), .o{i}_last(fl{i}), .o{i}_data(fx{i}),\n"
        for i in range(m_count)
    )
    body = ""
    for i, m in enumerate(p.members):
        body += f"    wire fv{i};\n    wire fr{i};\n    wire fl{i};\n    wire [{m.lane.out_t.width - 1}:0] fx{i};\n"
    body += "    /* verilator lint_off UNUSEDSIGNAL */\n    wire pass_unused;  // one pass: always 0\n"
    body += "    /* verilator lint_on UNUSEDSIGNAL */\n"
    body += (
        f"    {feat} u_features (.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),\n"
        f"{conns}        .pass_o(pass_unused));\n"
    )
    latency, ii, used = 0, 1, {}
    outs = []
    modules = [feat]
    n = p.n_channels
    for i, m in enumerate(p.members):
        chain = member_chain(m.chain, top, reuse_factors, folded.Link(f"fx{i}", f"fv{i}", f"fr{i}", f"fl{i}"))
        files.update(chain.files)
        modules += chain.modules
        body += chain.body
        outs.append(chain.out)
        # The spectrum is taken at edge 0; the member's last input is taken at edge k + n - 1 + 1.
        latency = max(latency, m.lane.diagonal + n + chain.latency_cycles + 1)
        ii = max(ii, chain.ii_cycles)
        used.update({k.split("/", 1)[-1]: v for k, v in chain.reuse_factors.items()})
    ii = max(ii, max(m.lane.diagonal for m in p.members) + n + 1)
    vote_name = f"{top}_vote"
    in_types = [m.logits_t for m in p.members]
    files[f"{vote_name}.v"] = vote_module(vote_name, p.vote, in_types)
    all_valid = " && ".join(o.valid for o in outs)
    logits = "{" + ", ".join(o.data for o in reversed(outs)) + "}"
    t = out_element_t(p)
    cw = p.vote.result_t.width
    body += f"""    // The members' results are taken together, with the vote, when all are there and the output is free
    wire [{m_count * p.vote.n_classes * t.width - 1}:0] logits = {logits};
"""
    handshake = f"    wire take_out = {all_valid} && (!out_valid_r || out_ready);\n"
    handshake += "".join(f"    assign {o.ready} = take_out;\n" for o in outs)
    body += vote_stage(vote_name, m_count * p.vote.n_classes * t.width, cw, handshake)
    text = header(ir, top, "parallel_members", p, latency, ii) + module_ports(top, p) + body
    files[f"{top}.v"] = text
    knobs = {"reuse_factors": used, "log1p": log1p}
    details = {"log1p": rom.details(), "members": len(p.members), "vote": p.vote.method.value}
    return Emitted(
        files, FIXED_BLOCKS, latency, ii, knobs, details, ports=ports(ir, p), layer_modules=[*modules, vote_name]
    )


def emit_serial(ir: IR, top: str, reuse_factors: dict[str, int] | None = None, log1p: str = "auto") -> Emitted:
    """``serial_members``: the feature stage (one pass per member), one folded datapath for all, the voter."""
    reuse_factors = dict(reuse_factors or {})
    p = plan(ir)
    check_reuse_names(p, reuse_factors)
    rom = log1p_rom(p.count_width, p.log1p_t, log1p)
    m_count, n = len(p.members), p.n_channels
    chain_ir, banks = shared_chain(p)
    files: dict[str, str] = {}
    feat = f"{top}_features"
    lanes = [m.lane for m in p.members]
    files[f"{feat}.v"] = feature_module(feat, n, rom, lanes, [[i] for i in range(m_count)], 1)
    sw = max(1, (m_count - 1).bit_length())
    body = f"    wire fv0;\n    wire fr0;\n    wire fl0;\n    wire [{lanes[0].out_t.width - 1}:0] fx0;\n"
    body += f"    wire [{sw - 1}:0] fpass;\n"
    body += (
        f"    {feat} u_features (.clk(clk), .rst(rst), .in_valid(in_valid), .in_ready(in_ready), .in_data(in_data),\n"
        "        .o0_valid(fv0), .o0_ready(fr0), .o0_last(fl0), .o0_data(fx0), .pass_o(fpass));\n"
    )
    chain = member_chain(chain_ir, top, reuse_factors, folded.Link("fx0", "fv0", "fr0", "fl0", sel="fpass"), banks)
    files.update(chain.files)
    body += chain.body
    out = chain.out
    t = out_element_t(p)
    cw = p.vote.result_t.width
    row = p.vote.n_classes * t.width
    is_last = f"{out.sel} == {sw}'d{m_count - 1}" if m_count > 1 else "1'b1"
    kept = "".join(f"    reg [{row - 1}:0] lb{i};\n" for i in range(m_count - 1))
    keep = "".join(
        f"        if ({out.valid} && !last_member && {out.sel} == {sw}'d{i}) lb{i} <= {out.data};\n"
        for i in range(m_count - 1)
    )
    logits = "{" + ", ".join([out.data, *(f"lb{i}" for i in reversed(range(m_count - 1)))]) + "}"
    body += f"""    // The members' logits arrive one member after the other; the last one's complete the vote's set.
    wire last_member = {is_last};
{kept}    wire [{m_count * row - 1}:0] logits = {logits};
"""
    handshake = f"    assign {out.ready} = !last_member || !out_valid_r || out_ready;\n"
    handshake += f"    wire take_out = {out.valid} && last_member && (!out_valid_r || out_ready);\n"
    body += vote_stage(f"{top}_vote", m_count * row, cw, handshake, keep)
    files[f"{top}_vote.v"] = vote_module(f"{top}_vote", p.vote, [m.logits_t for m in p.members])
    steps = sum(m.lane.diagonal + n for m in p.members)  # every pass, without stalls
    latency = steps + 1 + chain.latency_cycles
    ii = max(steps + 1, chain.ii_cycles)
    text = header(ir, top, "serial_members", p, latency, ii) + module_ports(top, p) + body
    files[f"{top}.v"] = text
    knobs = {"reuse_factors": {own_name(k): v for k, v in chain.reuse_factors.items()}, "log1p": log1p}
    details = {"log1p": rom.details(), "members": m_count, "vote": p.vote.method.value, "weight_banks": m_count}
    modules = [feat, *chain.modules, f"{top}_vote"]
    return Emitted(files, FIXED_BLOCKS, latency, ii, knobs, details, ports=ports(ir, p), layer_modules=modules)


@dataclass(frozen=True)
class Arrangement:
    """An ensemble arrangement in the RTL registry: the sibling interface of the chain architectures."""

    emit: object
    KNOBS: dict
    KINDS: frozenset
    card_knobs: object = card_knobs
    check_layer: object = check_layer


PARALLEL_MEMBERS = Arrangement(emit_parallel, KNOBS, KINDS)
SERIAL_MEMBERS = Arrangement(emit_serial, KNOBS, KINDS)


def vote_stage(vote_name: str, data_width: int, class_width: int, handshake: str, keep: str = "") -> str:
    """The vote of the wire ``logits`` and the output register, to ``endmodule``: ``handshake`` drives
    ``take_out`` and the members' ready; ``keep`` is more of the clocked process (serial_members' logit buffers)."""
    return f"""    wire [{class_width - 1}:0] vote_cls;
    {vote_name} u_vote (.logits(logits), .cls(vote_cls));
    reg out_valid_r;
    reg [{data_width - 1}:0] out_data_r;
    reg [{class_width - 1}:0] out_class_r;
{handshake}    always @(posedge clk) begin
{keep}        if (rst) out_valid_r <= 1'b0;
        else if (take_out) out_valid_r <= 1'b1;
        else if (out_ready) out_valid_r <= 1'b0;
        if (take_out) begin
            out_data_r <= logits;
            out_class_r <= vote_cls;
        end
    end
    assign out_valid = out_valid_r;
    assign out_data = out_data_r;
    assign out_class = out_class_r;
endmodule
"""
