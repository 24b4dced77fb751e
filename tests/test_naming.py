"""One way to name a model (card path, card name or project name) and the search's baseline (the built model)."""

from __future__ import annotations

from pathlib import Path

import pytest

import flow.project
from flow.card import load_card
from flow.cli import card_for, project_name
from flow.errors import FlowError
from flow.project import write_json
from flow.search.baseline import built_baseline, next_command
from flow.search.pareto import best_vs_default
from tb.irgen import mlp_ir

CARDS = Path(__file__).parent / "cards"


@pytest.mark.parametrize(
    ("given", "name"),
    [("qmodels/examples/calib16.yaml", "calib16"), ("calib16", "calib16"), ("/x/y/m.h5", "m"), ("c.yml", "c")],
)
def test_project_name(given, name):
    assert project_name(given) == name


def test_project_name_refuses_paths_that_are_not_cards():
    with pytest.raises(FlowError, match="a name, not a path"):
        project_name("../escape")


def test_search_finds_a_built_card_by_its_project_name(tmp_path, monkeypatch):
    """`flow search calib` for a card outside qmodels/: the project's copy of the card."""
    monkeypatch.setattr(flow.project, "PROJECTS_DIR", tmp_path)
    assert card_for("nowhere") == "nowhere"  # the card loader then names what is allowed
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "card.yaml").write_text("name: nowhere\n")
    assert card_for("nowhere") == str(tmp_path / "nowhere" / "card.yaml")
    assert card_for("diag_05") == "diag_05" and card_for("a/b.yaml") == "a/b.yaml"


def test_baseline_is_the_built_model(tmp_path):
    """C-sim metric, the IR's proxy cost and the report's Yosys cost; None while the model is not built."""
    card = load_card(CARDS / "tiny_lut.yaml")
    assert built_baseline(card, "rmse", tmp_path) is None
    root = tmp_path / "tiny_lut"
    root.mkdir()
    mlp_ir("tiny_lut", [2, 8, 1], seed=1).save(root / "ir.json")
    write_json(root / "csim.json", {"metrics": {"rmse": 6.0}})
    cost = {"xc7": {"status": "ok", "fpga": {"LUT": 640}}, "asic": {"status": "ok", "asic": {"osu018": {}}}}
    write_json(root / "report" / "report.json", {"archs": {"parallel": {"cost": cost}}})
    b = built_baseline(card, "rmse", tmp_path)
    assert b["metric"] == 6.0 and b["LUT"] == 640 and b["proxy_cost"] > 0 and "built model" in b["source"]
    # A front point that beat a short-trained trial 0 (10.5) but not the built model (6.0) is not "close".
    front = [{"k": 1, "card": "tiny_lut_p1", "trial": 3, "metric": 9.7, "proxy_cost": b["proxy_cost"] / 2}]
    assert best_vs_default(front, b, "minimize")["point"] is None
    assert best_vs_default(front, {"metric": 10.5, "proxy_cost": b["proxy_cost"]}, "minimize")["point"] == 1
    s = {"model": "tiny_lut", "best_vs_default": {"card": "tiny_lut_p1"}}
    assert next_command(s).startswith("make hls MODEL=tiny_lut_p1")
    assert "--synth-check" in next_command({"model": "tiny_lut", "best_vs_default": {"point": None}})


def test_folded_default_folds(tmp_path):
    """Without reuse factors from hls4ml the folded RTL uses R = n_in (II = n_in + 3), and hls4ml's 1 (II 4) too."""
    import dataclasses

    from flow.ir import AppliedHardware, LayerHardware
    from flow.rtl import generate, get_arch

    ir = mlp_ir("tiny_lut", [2, 8, 1], seed=1)
    assert ir.reuse_factors() == {}
    assert generate(ir, "folded", tmp_path / "rtl").ii_cycles == 8 + 3  # fc2: R = n_in = 8
    layers = {"fc1": LayerHardware(1, "latency"), "fc2": LayerHardware(4, "resource")}
    hw = AppliedHardware("Vitis", "xcu250-figd2104-2L-e", "io_parallel", 5.0, "latency", layers)
    ir = dataclasses.replace(ir, hardware=hw)
    assert ir.reuse_factors() == {"fc1": 1, "fc2": 4}
    assert get_arch("folded").card_knobs(ir.reuse_factors()) == {"reuse_factors": {"fc2": 4}}
