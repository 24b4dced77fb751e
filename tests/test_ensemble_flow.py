"""The ensemble end to end through the CLI (slow: two members trained and converted): hls, reuse, verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import flow.project
from flow.cli import main
from flow.project import Project

CARDS = Path(__file__).parent / "cards"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_ens(tmp_path_factory):
    root = tmp_path_factory.mktemp("hls_projects")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(flow.project, "PROJECTS_DIR", root)
        assert main(["-q", "hls", str(CARDS / "tiny_ens.yaml")]) == 0
        yield Project.of("tiny_ens")


def test_hls_builds_members_and_one_graph(tiny_ens):
    csim = json.loads(tiny_ens.csim_json.read_text())
    assert set(csim["accuracy"]) == {"hard", "soft", "logit_sum"}
    assert all(set(a) == {"float", "qkeras", "csim", "reference"} for a in csim["accuracy"].values())
    assert csim["reference_vs_member_csim_mismatches"] == {"tiny_ens_0": 0, "tiny_ens_3": 0}
    for i, name in enumerate(csim["members"]):
        assert Project.of(name).ir_json.is_file()
        copy = yaml.safe_load(Project.of(name).card.read_text())  # the card as the ensemble trained it
        assert (copy["dataset"]["share"], copy["dataset"]["share_index"], copy["dataset"]["share_count"]) == (
            "disjoint",
            i,
            2,
        )
    before = {p: p.stat().st_mtime_ns for p in (tiny_ens.ir_json, Project.of("tiny_ens_0").keras)}
    assert main(["-q", "hls", str(CARDS / "tiny_ens.yaml")]) == 0  # everything reused: nothing rewritten
    assert {p: p.stat().st_mtime_ns for p in before} == before


def test_verify_features_members_and_vote(tiny_ens):
    assert main(["-q", "verify", "tiny_ens", "-n", "60"]) == 0
    v = json.loads(tiny_ens.verify_json.read_text())
    assert v["passed"] and v["mismatches"] == 0 and v["vote"] == 0
    assert set(v["features"]) == {"tiny_ens_0", "tiny_ens_3"} and tiny_ens.vectors.is_file()


def test_sim_raw_spectra_to_class_in_both_simulators(tiny_ens):
    """`flow sim` of the ensemble (its card's arrangement): every member's logits and the vote, 0 mismatches."""
    for sim, n in (("icarus", 20), ("verilator", 500)):
        assert main(["-q", "sim", "tiny_ens", "--sim", sim, "-n", str(n)]) == 0
    assert main(["-q", "sim", "tiny_ens", "--sim", "icarus", "-n", "20", "--arch", "serial_members"]) == 0
    runs = json.loads((tiny_ens.root / "sim.json").read_text())
    for key in ("parallel_members/icarus", "parallel_members/verilator", "serial_members/icarus"):
        r = runs[key]
        assert r["passed"] and r["mismatches"] == 0 and r["vectors"] >= 20


def test_report_costs_every_part_of_both_arrangements(tiny_ens):
    """`flow report` of the ensemble (after the sims above): accuracy against members, parts and total in Yosys."""
    assert main(["-q", "report", "tiny_ens", "--no-timing"]) == 0
    d = json.loads((tiny_ens.report / "report.json").read_text())
    csim = json.loads(tiny_ens.csim_json.read_text())
    for method, acc in csim["accuracy"].items():  # all members voting: the figures make hls printed
        assert d["accuracy_vs_members"]["hardware"][method][-1] == acc["reference"]
        assert d["accuracy_vs_members"]["float"][method][-1] == acc["float"]
    assert set(d["arrangements"]) == {"parallel_members", "serial_members"}
    for e in d["arrangements"].values():
        assert all(p["status"] == "ok" and p["figures"]["LUT"] > 0 for p in e["parts"].values())
        assert e["total"]["LUT"] > 0 and e["total"]["osu018_um2"] > 0
    assert set(d["arrangements"]["parallel_members"]["parts"]) == {"feature stage", "tiny_ens_0", "tiny_ens_3", "voter"}
