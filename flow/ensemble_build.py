"""`flow hls` of an ensemble card: members built or reused, one IR graph from the raw spectrum to the class.

Each member is an ordinary project (``hls_projects/diag_NN``), built by :func:`flow.build.build_hls`, which reuses
it when its inputs are unchanged (:mod:`flow.warm`) and trains it when missing. The ensemble's project holds the
graph (``ir.json``), the test spectra as raw counts (``data.npz``), the card and ``csim.json``: the accuracy of
every voting kind from the members' float, QKeras and C-simulation outputs and from the reference on the graph,
and how many member logits the reference and each member's C simulation disagree on.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from flow import reference, scratch, warm
from flow.build import TEST_OUTPUTS, Source, build_hls, switch_generation
from flow.card import card_to_yaml
from flow.data.dataset import SpecContext
from flow.data.ensemble_check import hard_vote, soft_vote
from flow.data.spectra import check_spec, held_out_spectra
from flow.ensemble_card import EnsembleCard, MemberTraining
from flow.ensemble_graph import Member, ensemble_ir, member_node
from flow.errors import FlowError
from flow.fixed import from_float
from flow.ir import IR
from flow.layers.vote import VoteLayer, VoteMethod
from flow.log import info
from flow.project import Project, read_json, read_npz, write_json, write_npz

OUTPUTS = ("card.yaml", "data.npz", "ir.json", "csim.json")
BATCH = 256  # spectra per reference run: a batch's trace of 20 members stays ~100 MB

# Votes on float outputs (float and QKeras members): the flow.data.ensemble_check definitions, ties to the lowest.
FLOAT_VOTES: dict[VoteMethod, Callable[[np.ndarray, int], np.ndarray]] = {
    VoteMethod.HARD: hard_vote,
    VoteMethod.SOFT: lambda logits, n_classes: soft_vote(logits),
    VoteMethod.LOGIT_SUM: lambda logits, n_classes: logits.astype(np.float64).sum(axis=0).argmax(axis=-1),
}


def build_ensemble(
    card: EnsembleCard, *, force: bool = False, retrain: bool = False, projects_dir: Path | None = None
) -> dict[str, Any]:
    """Build or reuse every member, then the ensemble's graph and accuracies; returns its csim.json."""
    final = Project.of(card.name, projects_dir)
    final.check_owned(may_be_absent=True)  # before any work
    for project in (Project.of(m.name, projects_dir) for m in card.members):
        project.check_owned(may_be_absent=True)
    member_inputs = {}
    for m in card.members:
        # The card as the ensemble trains it (its share, flow.ensemble_card.MemberTraining), not as the file says.
        source = Source(m.name, card=m, built_by=f"make hls MODEL={card.name}" if _shared(card) else None)
        build_hls(source, retrain=retrain, projects_dir=projects_dir)
        member_inputs[m.name] = read_json(Project.of(m.name, projects_dir).marker)[warm.HLS_FIELD]
    inputs = warm.inputs_digest(card=card.path.read_text(), members=member_inputs)
    if not force and warm.hls_up_to_date(final, inputs, OUTPUTS):
        csim = read_json(final.csim_json)
        print(summary(csim))
        return csim
    scratch.remove_dead(final.root.parent, f".{final.name}.")
    stage = scratch.make(final.root.parent, f".{final.name}.", ".staging")
    try:
        csim = _build(card, Project(card.name, stage), projects_dir)
        switch_generation(final, stage, hls_command=f"make hls MODEL={card.name}", **{warm.HLS_FIELD: inputs})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    print(summary(csim))
    return csim


def _shared(card: EnsembleCard) -> bool:
    """Whether the members train another way than their own cards say (then only the ensemble rebuilds them)."""
    return card.member_training != MemberTraining()


def _build(card: EnsembleCard, project: Project, projects_dir: Path | None) -> dict[str, Any]:
    projects = [Project.of(m.name, projects_dir) for m in card.members]
    checked = [check_spec(m.dataset, SpecContext(m.path, files=False)) for m in card.members]
    members = [
        Member(m.name, ds["diagonal"], p.load_ir(), ds["clip"]) for m, ds, p in zip(card.members, checked, projects)
    ]
    irs = {method: _graph(card, members, method) for method in VoteMethod}
    ir = irs[card.voting]
    counts, y = held_out_spectra(checked[0], card.members[0].training.seed)
    info(f"{card.name}: {len(members)} members, reference on {len(counts)} test spectra")
    logits, votes = run_reference(ir, members, counts, list(irs.values()))
    outputs = [
        read_npz(p.root / TEST_OUTPUTS, ("qkeras", "csim"), hint=f"run `make hls MODEL={p.name}`") for p in projects
    ]
    member_mismatches = {}
    csim_raw = []
    for m, out, ref in zip(members, outputs, logits):
        raw = from_float(out["csim"].astype(np.float64), m.ir.output_t)
        member_mismatches[m.name] = int(np.sum(raw != ref))
        csim_raw.append(raw)
    kinds = {"float": [o.get("float") for o in outputs], "qkeras": [o["qkeras"] for o in outputs]}
    accuracy: dict[str, dict[str, float | None]] = {}
    n_classes = ir.output.n_classes
    vote_nodes = {method: g.output for method, g in irs.items()}
    for method in VoteMethod:
        acc: dict[str, float | None] = {}
        for kind, outs in kinds.items():
            if any(o is None for o in outs):
                acc[kind] = None  # a member trained before its float outputs were kept
            else:
                acc[kind] = _acc(FLOAT_VOTES[method](np.stack(outs), n_classes), y)
        node: VoteLayer = vote_nodes[method]
        acc["csim"] = _acc(node.kernel(csim_raw, [m.ir.output_t for m in members])[:, 0], y)
        acc["reference"] = _acc(votes[method], y)
        accuracy[method.value] = acc
    member_acc = {m.name: _acc(np.argmax(ref, axis=1), y) for m, ref in zip(members, logits)}
    project.card.write_text(card_to_yaml(_card_data(card)))
    narrow = np.int32 if card.stage.count_width <= 31 else np.int64
    write_npz(project.data, X_test=counts.astype(narrow), y_test=y, task=np.array("classification"))
    ir.save(project.ir_json)
    csim = {
        "model": card.name,
        "task": "classification",
        "members": list(card.member_names),
        "voting": card.voting.value,
        "arrangement": card.arrangement,
        "features": {"count_width": card.stage.count_width, "log1p_t": str(card.stage.log1p_t)},
        "n_vectors": int(len(y)),
        "accuracy": accuracy,
        "member_accuracy": member_acc,
        "reference_vs_member_csim_mismatches": member_mismatches,
        "metrics": {"accuracy": accuracy[card.voting.value]["reference"]},
    }
    write_json(project.csim_json, csim)
    return csim


def _graph(card: EnsembleCard, members: list[Member], method: VoteMethod) -> IR:
    return ensemble_ir(
        card.name, members, count_width=card.stage.count_width, log1p_t=card.stage.log1p_t, method=method
    )


def run_reference(
    ir: IR, members: list[Member], counts: np.ndarray, graphs: list[IR]
) -> tuple[list[np.ndarray], dict[VoteMethod, np.ndarray]]:
    """Each member's raw logits and every voting kind's class on ``counts``, in batches (one graph run)."""
    outs = [member_node(m.name, m.ir.outputs[0]) for m in members]
    logits: list[list[np.ndarray]] = [[] for _ in members]
    votes: dict[VoteMethod, list[np.ndarray]] = {g.output.method: [] for g in graphs}
    types = ir.types()
    for start in range(0, len(counts), BATCH):
        trace = reference.run(ir, counts[start : start + BATCH])
        batch = [trace.of(o) for o in outs]
        for i, b in enumerate(batch):
            logits[i].append(b)
        for g in graphs:
            node = g.output
            votes[node.method].append(node.kernel(batch, [types[o] for o in outs])[:, 0])
    return [np.concatenate(x) for x in logits], {k: np.concatenate(v) for k, v in votes.items()}


def _acc(pred: np.ndarray, y: np.ndarray) -> float:
    return round(float(np.mean(np.asarray(pred) == y)), 4)


def _card_data(card: EnsembleCard) -> dict:
    from flow.card import load_raw

    return load_raw(card.path) | {"name": card.name}


def summary(csim: dict) -> str:
    """The lines `make hls` ends with: accuracy per voting kind and source, members, agreement."""

    def shown(v):
        return "   n/a" if v is None else f"{v:.4f}"

    lines = [f"model      {csim['model']}  ({len(csim['members'])} members, voting {csim['voting']})"]
    lines.append(f"{'voting':<10} {'float':>7} {'QKeras':>7} {'C-sim':>7} {'ref':>7}")
    for method, acc in csim["accuracy"].items():
        cells = " ".join(f"{shown(acc[k]):>7}" for k in ("float", "qkeras", "csim", "reference"))
        lines.append(f"{method:<10} {cells}")
    accs = csim["member_accuracy"]
    best = max(accs, key=accs.get)
    lines.append(f"members    {min(accs.values()):.4f} .. {accs[best]:.4f} (best {best}), reference")
    bad = {k: v for k, v in csim["reference_vs_member_csim_mismatches"].items() if v}
    lines.append(
        "agreement  reference = each member's C-sim on every logit"
        if not bad
        else f"agreement  MISMATCH reference vs C-sim: {bad}"
    )
    return "\n".join(lines)


def require_agreement(csim: dict) -> None:
    """A FlowError when any member's reference logits differ from its C simulation."""
    bad = {k: v for k, v in csim["reference_vs_member_csim_mismatches"].items() if v}
    if bad:
        raise FlowError(f"{csim['model']}: reference differs from member C-sim: {bad}")
