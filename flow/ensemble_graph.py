"""An ensemble as one IR graph: raw spectrum -> log1p -> per-member diagonal difference -> member cast -> member
layers -> vote -> class.

Each member is its own IR (its input type is the cast every member input goes through); its nodes enter the
ensemble under the member's name as a prefix (``diag_05/fc1``), so a member's trace can be compared with its own
C simulation node by node.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from flow.errors import FlowError
from flow.features import difference_type
from flow.fixed import FixedType
from flow.ir import IR, CastLayer, InputSpec, ReluLayer, Task
from flow.layers import DiagonalDifferenceLayer, Log1pLayer, VoteLayer
from flow.layers.log1p import count_type
from flow.layers.vote import SoftmaxTypes, VoteMethod, class_index_type

SPECTRUM = "spectrum"
LOG1P = "log1p"
VOTE = "vote"


@dataclass(frozen=True)
class Member:
    """One member: its diagonal and its own IR (input = the member's cast of the fixed-point difference)."""

    name: str
    diagonal: int
    ir: IR
    clip: bool = False  # features clipped at 0 before the cast (a card's dataset.clip)


def member_node(member: str, node: str) -> str:
    """The ensemble's name of a member's node."""
    return f"{member}/{node}"


def ensemble_ir(
    name: str,
    members: list[Member],
    *,
    count_width: int,
    log1p_t: FixedType,
    method: VoteMethod,
    softmax: SoftmaxTypes | None = None,
) -> IR:
    """The whole ensemble as one graph (validated)."""
    if not members:
        raise FlowError(f"ensemble {name}: no members")
    n_channels = members[0].ir.input.n + 1
    classes = {m.ir.n_outputs for m in members}
    if len(classes) != 1 or any(m.ir.input.n + 1 != n_channels for m in members):
        raise FlowError(f"ensemble {name}: members differ in input or class count")
    spectrum = InputSpec((n_channels,), count_type(count_width), SPECTRUM)
    nodes: list = [Log1pLayer(LOG1P, (n_channels,), log1p_t, count_width, inputs=(SPECTRUM,))]
    diff_t = difference_type(log1p_t)
    logits = []
    for m in members:
        prev = member_node(m.name, "diff")
        nodes.append(DiagonalDifferenceLayer(prev, (n_channels - 1,), diff_t, m.diagonal, inputs=(LOG1P,)))
        if m.clip:
            clip_t = FixedType(diff_t.width, diff_t.int_bits, signed=False)  # max(d, 0): exact, one bit fewer
            nodes.append(ReluLayer(member_node(m.name, "clip"), (n_channels - 1,), clip_t, inputs=(prev,)))
            prev = member_node(m.name, "clip")
        cast_name = member_node(m.name, m.ir.input.name)
        nodes.append(CastLayer(cast_name, m.ir.input.shape, m.ir.input.type, inputs=(prev,)))
        rename = {m.ir.input.name: cast_name}
        for node in m.ir.nodes:
            rename[node.name] = member_node(m.name, node.name)
            nodes.append(replace(node, name=rename[node.name], inputs=tuple(rename[i] for i in node.inputs)))
        logits.append(rename[m.ir.outputs[0]])
    n_classes = classes.pop()
    soft = (softmax or SoftmaxTypes.default()) if method is VoteMethod.SOFT else None
    nodes.append(VoteLayer(VOTE, method, n_classes, class_index_type(n_classes), soft, inputs=tuple(logits)))
    ir = IR(name, Task.CLASSIFICATION, [spectrum], nodes, members[0].ir.class_names, [VOTE], None)
    ir.validate()
    return ir


def observed_outputs(ir: IR, trace) -> tuple[np.ndarray, np.ndarray]:
    """What an ensemble design shows (``flow/rtl/ensemble.py``): every member's logits side by side (the vote's
    input order) and the vote's class, from a reference trace."""
    rows = len(trace.output_raw)
    logits = np.concatenate([np.asarray(trace.of(name)).reshape(rows, -1) for name in ir.output.inputs], axis=1)
    return logits.astype(np.int64), np.asarray(trace.output_raw)[:, 0].astype(np.int64)
