"""A design costed part by part: which layer modules are parts, their Yosys figures and the sum."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tools import have, use_own_cache

from flow.cost import parts
from flow.errors import FlowError

KERNEL = "module t_k (input [3:0] a, output [4:0] y);\n  assign y = a + (a << 1);\nendmodule\n"
CONV = """module t_conv1 (input clk, input [3:0] a, input [3:0] b, output reg [9:0] y);
  wire [4:0] ya, yb;
  t_k ka (.a(a), .y(ya));
  t_k #() kb (.a(b), .y(yb));
  always @(posedge clk) y <= ya + yb;
endmodule
"""
FC = "module t_fc1 (input clk, input [9:0] x, output reg [10:0] y);\n  always @(posedge clk) y <= x + 3;\nendmodule\n"


def _rtl(folder: Path, layer_modules: list[str], texts: dict[str, str]) -> tuple[Path, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in texts.items():
        (folder / f"{name}.v").write_text(text)
    (folder / "files.txt").write_text("".join(f"{n}.v\n" for n in texts))
    design = {"top": "t", "arch": "test", "layer_modules": layer_modules}
    (folder / "design.json").write_text(json.dumps(design))
    return folder, design


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Results go to a fresh cache per test; the fetched libraries stay where `make setup` put them."""
    use_own_cache(tmp_path, monkeypatch)


def test_a_kernel_instantiated_by_its_layer_is_not_a_part(tmp_path):
    rtl, design = _rtl(tmp_path / "rtl", ["t_conv1", "t_fc1", "t_k"], {"t_k": KERNEL, "t_conv1": CONV, "t_fc1": FC})
    got = parts.layer_parts(rtl, design)
    assert [(p.name, p.modules) for p in got] == [("conv1", ("t_conv1",)), ("fc1", ("t_fc1",))]


def test_layer_parts_refuse_a_design_without_layer_modules_or_files(tmp_path):
    rtl, design = _rtl(tmp_path / "rtl", [], {"t_fc1": FC})
    with pytest.raises(FlowError, match="no layer_modules"):
        parts.layer_parts(rtl, design)
    rtl, design = _rtl(tmp_path / "rtl2", ["t_fc1", "t_fc2"], {"t_fc1": FC})
    with pytest.raises(FlowError, match="t_fc2"):
        parts.layer_parts(rtl, design)


def test_total_sums_only_figures_every_part_has():
    got = parts.total(
        {
            "a": {"figures": {"LUT": 3, "FF": 2}, "status": "ok"},
            "b": {"figures": {"LUT": 4}, "status": "not finished: t_b xc7_nodsp"},
        }
    )
    assert got == {"figures": {"LUT": 7}, "status": "not finished"}


@pytest.mark.skipif(not have("yosys"), reason="yosys not installed")
def test_parts_cost_live_and_sum_to_the_whole(tmp_path):
    rtl, design = _rtl(tmp_path / "rtl", ["t_conv1", "t_fc1", "t_k"], {"t_k": KERNEL, "t_conv1": CONV, "t_fc1": FC})
    got = parts.cost_parts(rtl, parts.layer_parts(rtl, design), jobs=2, flows=("xc7",))
    assert all(p["status"] == "ok" for p in got.values())
    assert got["conv1"]["figures"]["FF"] > 0 and got["fc1"]["figures"]["FF"] > 0  # each layer's own register
    assert got["conv1"]["figures"]["LUT"] > got["fc1"]["figures"]["LUT"]  # its kernels' adders are inside it
    t = parts.total(got)
    assert t["status"] == "ok" and t["figures"]["FF"] == _sum(got, "FF") and t["figures"]["LUT"] == _sum(got, "LUT")


def _sum(got: dict, key: str) -> int:
    return sum(p["figures"][key] for p in got.values())


def test_report_shows_each_layer_and_the_sum_or_what_did_not_finish():
    from flow import report

    layers = {
        "conv1": {"figures": {"LUT": 10, "FF": 4}, "status": "ok"},
        "fc1": {"figures": {"LUT": 5}, "status": "not finished: t_fc1 asic"},
    }
    archs = {"shiftadd": {"layer_costs": layers, "layer_total": parts.total(layers)}, "folded": {"cost": "not run"}}
    md = "\n".join(report._layer_cost_lines(archs))
    assert "shiftadd, layer by layer" in md and "folded" not in md
    assert "| conv1 | 10 | 4 |" in md and "not finished: t_fc1 asic" in md
    assert "| **sum of the layers** | 15 | – |" in md and md.rstrip().endswith("| not finished |")
