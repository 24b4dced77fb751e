"""A design costed part by part: which layer modules are parts, their Yosys figures and the sum."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tools import have, use_own_cache

from flow.cost import libs, parts
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
    assert [(p.name, p.modules, p.keep) for p in got] == [("conv1", ("t_conv1",), ("t_k",)), ("fc1", ("t_fc1",), ())]


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


HEADER = """module t_conv2 (
    input wire clk,
    input wire en, /* verilator lint_off UNUSEDSIGNAL */ // Reason: x is read only in its range's bits
    input wire [1:0] ph,
    input wire [143:0] x,
    output reg [31:0] y
); /* verilator lint_on UNUSEDSIGNAL */
endmodule
"""


def test_module_ports_read_a_generated_header_with_its_waivers():
    got = parts.module_ports(HEADER, "t_conv2")
    assert got == {
        "clk": {"dir": "in", "width": 1},
        "en": {"dir": "in", "width": 1},
        "ph": {"dir": "in", "width": 2},
        "x": {"dir": "in", "width": 144},
        "y": {"dir": "out", "width": 32},
    }
    assert parts.module_ports(HEADER, "t_conv") == {}  # another module's name: no ports


def test_every_layer_module_is_timed_and_a_kernel_knows_its_layer(tmp_path):
    rtl, design = _rtl(tmp_path / "rtl", ["t_conv1", "t_fc1", "t_k"], {"t_k": KERNEL, "t_conv1": CONV, "t_fc1": FC})
    assert parts.timing_modules(rtl, design) == {"t_conv1": None, "t_fc1": None, "t_k": "conv1"}


def _timed(ps: float) -> dict:
    return {"status": "ok", "asic_timing": {"delay_ps": ps}}


def _placed(mhz: float) -> dict:
    return {"status": "ok", "ecp5": {"fmax_mhz": mhz}}


def test_the_worst_module_sets_the_design_clock_and_a_slow_one_misses_the_card():
    from flow import timing

    card = timing.CardClock(5.0, rate_mhz=40.0)
    per_module = {
        "t_conv1": {"inside": None, "asic_timing": _timed(4000.0), "ecp5": _placed(250.0)},
        "t_fc1": {"inside": None, "asic_timing": _timed(7500.0), "ecp5": {"status": "not run: too large"}},
        "t_k": {"inside": "conv1", "asic_timing": _timed(3000.0), "ecp5": _placed(300.0)},
    }
    t = timing.modules_timing(per_module, 14, 5, card)
    a = t["asic"]
    assert a["worst_module"] == "t_fc1" and a["period_ns"] == 7.5 and "lower_bound" not in a
    assert a["card_clock_met"] is False and a["rate_met"] is False  # 5 × 7.5 ns > 25 ns
    e = t["ecp5"]  # fc1 did not fit: the ECP5 figure is only a lower bound, so "met" is unknown, not yes
    assert e["worst_module"] == "t_conv1" and e["lower_bound"] is True and e["untimed_modules"] == ["t_fc1"]
    assert e["card_clock_met"] is None and e["rate_met"] is None
    fast = {m: r | {"asic_timing": _timed(2000.0)} for m, r in per_module.items()}
    f = timing.modules_timing(fast, 14, 5, card)["asic"]
    assert f["card_clock_met"] is True and f["rate_met"] is True and f["run_ii_ns"] == 25.0
    slow_kernel = per_module | {"t_conv1": per_module["t_conv1"] | {"ecp5": {"status": "failed"}}}
    slow_kernel["t_k"] = slow_kernel["t_k"] | {"ecp5": _placed(100.0)}  # its layer untimed: a certain miss
    k = timing.modules_timing(slow_kernel, 14, 5, card)["ecp5"]
    assert k["worst_module"] == "t_k" and k["lower_bound"] is True and k["card_clock_met"] is False
    md = "\n".join(timing.render_md({"timing": {"card": card.__dict__, "archs": {"shiftadd": t}}}))
    assert "| shiftadd (worst module `t_fc1`) | 133.3 | 7.5 | **no** |" in md
    assert "| shiftadd (worst module `t_conv1`) | ≤ 250 | ≥ 4 | unknown |" in md
    assert "| `t_k` | kernel of conv1 | 3 | yes | 300 | yes | – |" in md
    assert "shiftadd (OSU018 delay): critical path 7.5 ns in `t_fc1`; the card's 5 ns clock met: **no**" in md
    assert "critical path at least 4 ns in `t_conv1`, t_fc1 not timed" in md


@pytest.mark.skipif(not (have("yosys") and libs.osu018() is not None), reason="yosys or OSU018 missing")
def test_cost_and_time_live_every_module_and_each_module_of_a_layer(tmp_path, monkeypatch):
    rtl, design = _rtl(tmp_path / "rtl", ["t_conv1", "t_fc1", "t_k"], {"t_k": KERNEL, "t_conv1": CONV, "t_fc1": FC})
    monkeypatch.setattr(parts, "ECP5_LUT4", 0)  # every layer too large for the device: only the kernel is placed
    costs, timed = parts.cost_and_time_parts(rtl, design, 2, ("asic_timing", "ecp5"))
    assert set(costs) == {"conv1", "fc1"} and all(c["status"] == "ok" for c in costs.values())
    delay = {m: t["asic_timing"]["asic_timing"]["delay_ps"] for m, t in timed.items()}
    per = timed["t_conv1"]["asic_timing"]["asic_timing"]["module_delay_ps"]  # its kernel kept, mapped once
    assert set(per) == {"t_conv1", "t_k"} and delay["t_k"] > 0 and delay["t_conv1"] == max(per.values())
    assert costs["conv1"]["figures"]["osu018_um2"] > costs["fc1"]["figures"]["osu018_um2"]  # both kernel instances
    assert timed["t_conv1"]["ecp5"]["status"].startswith("not run: ") and "LUT4s" in timed["t_conv1"]["ecp5"]["status"]
    if have("nextpnr-ecp5"):
        assert timed["t_k"]["ecp5"]["status"] == "ok"  # a combinational kernel, its ports registered by the wrapper


def test_a_layer_timed_in_parts_is_bounded_and_met_only_below_its_upper_bound():
    """A layer whose kernel is kept: its path lies between max(own, kernel) and 2 × own + kernel."""
    from flow import timing

    card = timing.CardClock(5.0, rate_mhz=40.0)

    def layer(own_ps: float, kernel_ps: float) -> dict:
        res = _timed(max(own_ps, kernel_ps))
        res["asic_timing"]["module_delay_ps"] = {"t_conv1": own_ps, "t_k": kernel_ps}
        return {"inside": None, "asic_timing": res}

    def design(conv1: dict) -> dict:
        per = {
            "t_conv1": conv1,
            "t_k": {
                "inside": "conv1",
                "asic_timing": _timed(conv1["asic_timing"]["asic_timing"]["module_delay_ps"]["t_k"]),
            },
        }
        return timing.modules_timing(per, 14, 5, card)

    t = design(layer(1000.0, 2500.0))  # at most 4.5 ns: met
    row = t["modules"]["t_conv1"]["asic"]
    assert row["period_ns"] == 4.5 and row["lower_ns"] == 2.5 and row["card_clock_met"] is True
    assert t["asic"]["card_clock_met"] is True and t["asic"]["rate_met"] is True and t["asic"]["upper_bound"] is True
    u = design(layer(1500.0, 3000.0))["asic"]  # between 3 and 6 ns: unknown, never "met"
    assert u["period_ns"] == 6.0 and u["card_clock_met"] is None and u["rate_met"] is None
    m = design(layer(1000.0, 5500.0))["asic"]  # the kernel alone is over 5 ns: missed
    assert m["card_clock_met"] is False and m["rate_met"] is False  # II 5 × more than 5.5 ns > 25 ns
    ends = {"input": False, "output": True}
    r = design(layer(1500.0, 3000.0) | {"kernel_ends_registered": ends})  # output registered: own + kernel
    assert r["modules"]["t_conv1"]["asic"]["period_ns"] == 4.5 and r["asic"]["card_clock_met"] is True
    both = {"input": True, "output": True}
    b = design(layer(1500.0, 4800.0) | {"kernel_ends_registered": both})["modules"]["t_conv1"]["asic"]
    assert b["period_ns"] == b["lower_ns"] == 4.8 and b["upper_bound"] is False  # every path in one module
