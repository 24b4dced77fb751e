"""`flow report` of an ensemble without training or synthesis: a tiny random ensemble written as projects.

Members 15 -> 3 -> 4 (the RTL tests' tiny ensemble); their "C-sim" test outputs are the reference's logits, so the
accuracy against the number of members can be checked against the graph's own vote. The Yosys part runs in
tests/test_ensemble_flow.py (slow).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_ensemble_rtl import spectra, tiny_ensemble

import flow.project
from flow import ensemble_report, reference
from flow.build import TEST_OUTPUTS
from flow.cli import main
from flow.ensemble_graph import member_node
from flow.errors import FlowError
from flow.layers.vote import VoteMethod
from flow.project import Project, write_json, write_marker, write_npz
from flow.rtl import generate
from tb.irgen import mlp_ir

N_TEST = 90


def write_projects(root, method: str = "soft") -> tuple[Project, dict]:
    """The ensemble project ``ens`` and its members' projects as ``make hls`` leaves them (no hls/ folders)."""
    ir = tiny_ensemble(method, diagonals=(0, 2, 5))
    counts = spectra(N_TEST, seed=3)
    trace = reference.run(ir, counts)
    rng = np.random.default_rng(0)
    names = [name.split("/", 1)[0] for name in ir.output.inputs]
    # Labels: the vote, with 30 % replaced by random classes (so that accuracies differ between member counts)
    noise = rng.integers(0, ir.output.n_classes, size=N_TEST)
    y = np.where(rng.random(N_TEST) < 0.3, noise, trace.output_raw[:, 0])
    for name in names:
        member_ir = mlp_ir(name, [15, 3, 4], seed=int(name[1:]))  # tiny_ensemble's member
        out = member_node(name, member_ir.outputs[0])
        logits, t = trace.of(out), ir.types()[out]
        sub = Project.of(name, root).root
        sub.mkdir(parents=True)
        member_ir.save(sub / "ir.json")
        write_marker(sub, name, ir_sha256=member_ir.digest())
        csim = logits / 2.0**t.frac_bits
        write_npz(sub / TEST_OUTPUTS, qkeras=csim, csim=csim, float=csim + rng.normal(0, 0.05, csim.shape))
    proj = Project.of("ens", root)
    proj.root.mkdir(parents=True)
    ir.save(proj.ir_json)
    write_marker(proj.root, "ens", ir_sha256=ir.digest())
    proj.card.write_text(f"name: ens\nmembers: [{', '.join(names)}]\nvoting: {method}\n")
    write_npz(proj.data, X_test=counts, y_test=y, task=np.array("classification"))
    csim = {
        "model": "ens",
        "members": names,
        "voting": method,
        "accuracy": {m.value: {"float": None, "qkeras": None, "csim": None, "reference": None} for m in VoteMethod},
        "member_accuracy": {n: 0.0 for n in names},
        "reference_vs_member_csim_mismatches": {n: 0 for n in names},
    }
    write_json(proj.csim_json, csim)
    return proj, {"ir": ir, "trace": trace, "y": y}


@pytest.fixture()
def ens(tmp_path):
    return write_projects(tmp_path)


def test_accuracy_against_members_ends_at_the_graphs_vote(ens, tmp_path):
    proj, ref = ens
    csim = json.loads(proj.csim_json.read_text())
    curve = ensemble_report.accuracy_curve(csim, ref["y"], tmp_path)
    assert set(curve["hardware"]) == set(curve["float"]) == {"hard", "soft", "logit_sum"}
    full = np.mean(ref["trace"].output_raw[:, 0] == ref["y"])  # the graph's own soft vote of all three members
    assert curve["hardware"]["soft"][-1] == round(float(full), 4)
    first = np.argmax(ref["trace"].of(member_node("m0", "fc2")), axis=1)
    assert all(curve["hardware"][m][0] == round(float(np.mean(first == ref["y"])), 4) for m in ("hard", "logit_sum"))
    assert all(len(v) == 3 for v in curve["hardware"].values())


def test_report_without_synthesis_writes_tables_and_plots(ens, tmp_path, monkeypatch):
    proj, ref = ens
    generate(ref["ir"], "parallel_members", proj.rtl / "parallel_members")
    generate(ref["ir"], "serial_members", proj.rtl / "serial_members")
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", tmp_path)
    assert main(["-q", "report", "ens", "--no-synth"]) == 0  # the CLI takes an ensemble to its own report
    d = json.loads((proj.report / "report.json").read_text())
    assert d["kind"] == "ensemble" and set(d["arrangements"]) == {"parallel_members", "serial_members"}
    assert np.sum(d["confusion"]) == N_TEST
    assert np.trace(d["confusion"]) == round(d["accuracy_vs_members"]["hardware"]["soft"][-1] * N_TEST)
    for e in d["arrangements"].values():
        assert e["cycles"]["latency"] > 0 and e["cycles"]["ii_ns"] == e["cycles"]["ii"] * d["clock"]["period_ns"]
    assert {p for p in d["plots"]} == {"accuracy_vs_members.png", "confusion_vote.png"}
    assert all((proj.report / p).stat().st_size > 1000 for p in d["plots"])
    assert "| 3 (+m5) |" in (proj.report / "report.md").read_text()


def test_parts_of_each_arrangement(ens):
    proj, ref = ens
    for arch, want in (
        ("parallel_members", ["feature stage", "m0", "m2", "m5", "voter"]),
        ("serial_members", ["feature stage", "shared datapath (3 weight banks)", "voter"]),
    ):
        design = generate(ref["ir"], arch, proj.rtl / arch)
        parts = ensemble_report.parts(ref["ir"], design.out_dir, {"top": design.top})
        assert [p.name for p in parts] == want
        assert parts[0].modules == (f"{design.top}_features",) and parts[-1].modules == (f"{design.top}_vote",)


def test_known_wrong_inputs_are_refused(ens, tmp_path):
    """A member whose C-sim differs from the reference, or an RTL folder without a voter, gives one line."""
    proj, ref = ens
    csim = json.loads(proj.csim_json.read_text())
    csim["reference_vs_member_csim_mismatches"]["m2"] = 3
    with pytest.raises(FlowError, match="reference differs from member C-sim"):
        ensemble_report.accuracy_curve(csim, ref["y"], tmp_path)
    design = generate(ref["ir"], "parallel_members", proj.rtl / "parallel_members")
    files = design.out_dir / "files.txt"
    files.write_text("".join(f + "\n" for f in files.read_text().split() if not f.endswith("_vote.v")))
    with pytest.raises(FlowError, match="no module for qflow_ens_vote"):
        ensemble_report.parts(ref["ir"], design.out_dir, {"top": design.top})
