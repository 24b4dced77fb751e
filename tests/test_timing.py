"""Timing: nextpnr and ABC parsers on committed real outputs, the ns figures, failures, a small live run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _tools import have, use_own_cache

from flow import timing
from flow.card import load_card
from flow.cost import asic_timing, libs, nextpnr, yosys
from flow.errors import FlowError, ToolError

DATA = Path(__file__).parent / "data" / "timing"


needs_yosys = pytest.mark.skipif(not have("yosys"), reason="yosys not installed")
needs_pnr = pytest.mark.skipif(not (have("yosys") and have("nextpnr-ecp5")), reason="yosys/nextpnr-ecp5 missing")
needs_osu = pytest.mark.skipif(libs.osu018() is None, reason="OSU018 not fetched (python -m flow.cost.libs fetch)")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Results go to a fresh cache per test; the fetched libraries stay where `make setup` put them."""
    use_own_cache(tmp_path, monkeypatch)


def _rtl(folder: Path, source: Path, top: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "design.v").write_text(source.read_text())
    (folder / "files.txt").write_text("design.v\n")
    (folder / "design.json").write_text(json.dumps({"top": top, "arch": "test"}))
    return folder


# ---------------------------------------------------------------------------------------------- nextpnr


def test_nextpnr_report_registered_adder():
    r = nextpnr.parse_report((DATA / "radd8_nextpnr.json").read_text())
    assert r["fmax_mhz"] == 351.0 and r["clock"] == "clk" and r["clocks"]["clk"]["target_mhz"] == 200
    assert r["cells"] == {"TRELLIS_COMB": 16, "TRELLIS_FF": 25}  # 8 + 8 input registers + 9 sum bits
    p = r["critical_path"]
    assert p["delay_ns"] == pytest.approx(1000 / 351.0, abs=0.005)  # the path that sets Fmax
    assert p["delay_ns"] == pytest.approx(p["logic_ns"] + p["routing_ns"], abs=0.002)
    assert p["start"].endswith(".Q") and p["end"].endswith(".DI")


def test_nextpnr_report_dot_product_uses_dsps():
    r = nextpnr.parse_report((DATA / "dot4_nextpnr.json").read_text())
    assert r["fmax_mhz"] == 91.52 and r["fmax_mhz"] != 200  # the achieved figure, not the target
    assert r["cells"] == {"MULT18X18D": 4, "TRELLIS_COMB": 223, "TRELLIS_FF": 50}
    assert r["available"]["MULT18X18D"] == 156


def test_nextpnr_report_without_clocked_path_has_no_fmax():
    d = json.loads((DATA / "radd8_nextpnr.json").read_text())
    d["fmax"], d["critical_paths"] = {}, []
    r = nextpnr.parse_report(json.dumps(d))
    assert r["fmax_mhz"] is None and "no register-to-register" in r["note"] and "critical_path" not in r
    assert timing.design_timing({"ecp5": {"status": "ok", "ecp5": r}}, 2, 1, timing.CardClock(5.0))["ecp5"] == {
        "status": "no Fmax",
        "note": r["note"],
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"fmax": ',
        "[]",
        '{"utilization": {}}',
        '{"fmax": {"clk": {"achieved": 0, "constraint": 200}}, "utilization": {}}',
    ],
)
def test_nextpnr_report_broken_is_tool_error(text):
    with pytest.raises(ToolError):
        nextpnr.parse_report(text)


def test_nextpnr_missing_report_is_tool_error(tmp_path):
    with pytest.raises(ToolError, match="nextpnr.json"):
        nextpnr.summarise(tmp_path)


def test_io_wrapper_registers_every_port_but_the_clock():
    ports = {"clk": {"dir": "in", "width": 1}, "a": {"dir": "in", "width": 8}, "s": {"dir": "out", "width": 9}}
    v = nextpnr.io_wrapper("radd8", ports)
    assert "reg [7:0] a_r;" in v and "output reg [8:0] s" in v and "a_r <= a; s <= s_w;" in v
    assert "radd8 u_design(.clk(clk), .a(a_r), .s(s_w));" in v and "clk_r" not in v
    assert nextpnr.io_wrapper("radd8", {"a": {"dir": "in", "width": 8}}) is None  # no clock: timed as it is
    assert nextpnr.front_lines("radd8", None) == ["synth_ecp5 -top radd8", 'write_json "front.json"']


# ---------------------------------------------------------------------------------------------- ABC


def test_abc_stime_registered_adder():
    t = asic_timing.parse_abc_stime((DATA / "radd8_abc.log").read_text())
    assert t["delay_ps"] == 1076.96 and t["gates"] == 40 and t["abc_runs"] == 1
    assert t["start"] == "\\ra [0]" and t["path_cells"][-1] == "XNOR2X1" and len(t["path_cells"]) == 8


def test_abc_stime_takes_the_worst_run():
    small = (DATA / "radd8_abc.log").read_text()
    big = (DATA / "dot4_abc.log").read_text()
    t = asic_timing.parse_abc_stime(small + big)
    assert t["abc_runs"] == 2 and t["delay_ps"] == 4040.16 and t["delay_ps"] != 1076.96
    assert t["start"] == "\\r0 [3]"  # the worst run's path, not the first run's
    assert t["module"] == "dot4"  # one ABC run per module (a design kept per layer): the worst run's module


def test_abc_log_without_timing_is_tool_error():
    log = "\n".join(ln for ln in (DATA / "radd8_abc.log").read_text().splitlines() if "Delay =" not in ln)
    with pytest.raises(ToolError, match="stime"):
        asic_timing.parse_abc_stime(log)


def test_committed_timing_data_has_no_machine_paths():
    for f in DATA.iterdir():
        text = f.read_text(errors="replace")
        for top in ("work", "root", "tmp", "home"):
            assert f"/{top}/" not in text, f.name


# ---------------------------------------------------------------------------------------------- ns figures


def test_latency_and_ii_in_ns_and_the_card_checks():
    card = timing.CardClock(5.0, rate_mhz=40.0)
    assert card.max_ii_ns == 25.0
    slow = timing.at_clock(1000 / 91.52, 5, 1, card)  # misses 5 ns: runs at its own 10.93 ns
    assert slow["card_clock_met"] is False and slow["run_period_ns"] == pytest.approx(10.927, abs=1e-3)
    assert slow["latency_ns"] == pytest.approx(5 * 10.927, abs=0.01) and slow["rate_met"] is True
    assert timing.at_clock(1000 / 91.52, 5, 3, card)["rate_met"] is False  # 3 × 10.93 ns > 25 ns
    fast = timing.at_clock(2.849, 44, 19, card)  # meets 5 ns: runs at the card's clock
    assert fast["card_clock_met"] is True and fast["run_ii_ns"] == 19 * 5.0 and fast["rate_met"] is False
    assert fast["ii_ns"] == pytest.approx(19 * 2.849, abs=0.01) and fast["max_sample_rate_mhz"] == pytest.approx(
        1000 / (19 * 2.849), abs=1e-3
    )
    assert "rate_met" not in timing.at_clock(2.849, 44, 19, timing.CardClock(5.0))  # no rate asked: none checked


def test_failed_flows_give_no_figures():
    cost = {"ecp5": {"status": "failed", "step": "nextpnr"}, "asic_timing": {"status": "failed", "step": "front"}}
    t = timing.design_timing(cost, 5, 1, timing.CardClock(5.0))
    assert t["ecp5"] == {"status": "failed"} and t["asic"] == {"status": "failed"}
    assert timing.design_timing(None, 5, 1, timing.CardClock(5.0))["ecp5"] == {"status": "not run"}
    md = "\n".join(timing.render_md({"timing": {"card": {"period_ns": 5.0}, "archs": {"parallel": t}}}))
    assert "**failed**" in md and " 0 " not in md


def test_missing_nextpnr_drops_only_the_ecp5_flow(monkeypatch):
    monkeypatch.setenv("QFLOW_NEXTPNR_ECP5", "/nonexistent/nextpnr")
    assert timing.available_flows() == ("asic_timing",)


def test_cycles_measured_before_expected():
    entry = {"sim": {"icarus": {"latency_cycles": 6, "ii_cycles": 1}}, "design": {"latency_cycles_expected": 5}}
    assert timing.cycles(entry) == (6, 1, "measured (icarus)")
    assert timing.cycles({"design": {"latency_cycles_expected": 5, "ii_cycles": 1}})[:2] == (5, 1)
    assert timing.cycles({}) == (None, None, "unknown")


def test_cycles_at_the_card_clock_and_the_sample_rate():
    d = {
        "archs": {
            "shiftadd": {"sim": {"verilator": {"latency_cycles": 14, "ii_cycles": 5}}},
            "linebuffer": {"design": {"latency_cycles_expected": 680, "ii_cycles": 2668}},
            "slow": {"design": {"latency_cycles_expected": 14, "ii_cycles": 6}},  # one cycle too many for 40 MHz
            "unknown": {},
        }
    }
    cc = timing.card_cycles(d, {"hardware": {"clock_period_ns": 5.0, "sample_rate_mhz": 40, "arch": "shiftadd"}})
    fast, small, slow = (cc["archs"][a] for a in ("shiftadd", "linebuffer", "slow"))
    assert fast["ii_ns"] == 25.0 and fast["latency_ns"] == 70.0 and fast["rate_met"] is True
    assert fast["cycles_from"] == "measured (verilator)" and fast["max_sample_rate_mhz"] == 40.0
    assert small["ii_ns"] == 13340.0 and small["rate_met"] is False
    assert slow["ii_ns"] == 30.0 and slow["rate_met"] is False
    assert "latency_ns" not in cc["archs"]["unknown"] and cc["card_arch"] == "shiftadd"
    md = "\n".join(timing.render_cycles_md(cc))
    assert "| linebuffer | 680 | 3,400 | 2,668 | 13,340 |" in md and "e+0" not in md
    assert "| shiftadd | 14 | 70 | 5 | 25 | 40 | yes |" in md and "| slow | 14 | 70 | 6 | 30 |" in md and "**no**" in md
    assert "rate_met" not in timing.card_cycles(d, {"hardware": {"clock_period_ns": 5.0}})["archs"]["shiftadd"]
    assert "No design" in "\n".join(timing.render_cycles_md({"archs": {}}))


CARD = """\
name: {name}
dataset: {{kind: table, table: charge}}
input: (9,0)
layers:
  - type: dense
    units: 1
    weight: (8,1)
    bias: (8,1)
"""


def _card(tmp_path: Path, name: str, extra: str = "") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(CARD.format(name=name) + extra)
    return path


def test_card_sample_rate_field(tmp_path):
    assert load_card(_card(tmp_path, "r", "hardware: {sample_rate_mhz: 40}\n")).hardware.sample_rate_mhz == 40.0
    assert load_card(_card(tmp_path, "n")).hardware.sample_rate_mhz is None
    with pytest.raises(FlowError, match=r"hardware\.sample_rate_mhz.*expected a number"):
        load_card(_card(tmp_path, "b", "hardware: {sample_rate_mhz: fast}\n"))
    assert timing.card_clock({"hardware": {"clock_period_ns": 25, "sample_rate_mhz": 40}}).max_ii_ns == 25.0
    assert timing.card_clock({}).source.endswith("(card default)")


# ---------------------------------------------------------------------------------------------- live runs


@needs_yosys
def test_nextpnr_that_fails_is_a_failed_run(tmp_path, monkeypatch):
    fake = tmp_path / "fake-nextpnr"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "fake (Version nextpnr-0.11.1)"; exit 0; fi\n'
        'echo "ERROR: netlist is broken" >&2\nexit 1\n'
    )
    fake.chmod(0o755)
    monkeypatch.setenv("QFLOW_NEXTPNR_ECP5", str(fake))
    rtl = _rtl(tmp_path / "rtl", DATA / "radd8.v", "radd8")
    res = yosys.cost_rtl(rtl, flows=("ecp5",))["ecp5"]
    assert res["status"] == "failed" and res["step"] == "nextpnr" and res["returncode"] == 1
    assert "ecp5" not in res and "netlist is broken" in res["log_tail"]  # no figures at all, never zero MHz
    assert not yosys.cost_rtl(rtl, flows=("ecp5",))["ecp5"].get("cached")  # failures are not cached


MUL = "module mul(input clk, input [8:0] a, b, output reg [17:0] p);\n always @(posedge clk) p <= a * b;\nendmodule\n"


@needs_yosys
def test_a_design_without_enough_dsps_is_placed_with_lut_multipliers(tmp_path, monkeypatch):
    """nextpnr out of MULT18X18D: the ecp5 result is the `synth_ecp5 -nodsp` run, said so; known next time."""
    calls = tmp_path / "calls"
    fake = tmp_path / "fake-nextpnr"
    fake.write_text(
        '#!/bin/sh\nif [ "$1" = --version ]; then echo "fake (Version nextpnr-0.11.1)"; exit 0; fi\n'
        f"echo run >> {calls}\n"
        # a netlist with a MULT18X18D cell (not only its blackbox definition) does not fit
        """if grep -q '"type": "MULT18X18D"' front.json; then """
        f"echo \"ERROR: Unable to place cell 'm', {nextpnr.DSP_OVERFLOW}\" >&2; exit 1; fi\n"
        f"cp {DATA / 'radd8_nextpnr.json'} nextpnr.json\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("QFLOW_NEXTPNR_ECP5", str(fake))
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "mul.v").write_text(MUL)
    (rtl / "files.txt").write_text("mul.v\n")
    (rtl / "design.json").write_text('{"top": "mul"}')
    res = yosys.cost_rtl(rtl, flows=("ecp5",))["ecp5"]
    assert res["status"] == "ok" and res["flow"] == "ecp5_nodsp" and "MULT18X18D" in res["dsp_fallback"]
    assert calls.read_text().count("run") == 2  # with DSPs (failed), then without
    again = yosys.cost_rtl(rtl, flows=("ecp5",))["ecp5"]
    assert again["cached"] and again["dsp_fallback"] and calls.read_text().count("run") == 2
    t = timing.design_timing({"ecp5": again}, 2, 1, timing.CardClock(5.0))
    assert t["ecp5"]["dsp_fallback"] == again["dsp_fallback"]


@needs_yosys
def test_broken_verilog_fails_both_timing_flows(tmp_path):
    rtl = tmp_path / "rtl"
    rtl.mkdir()
    (rtl / "design.v").write_text("module broken(input a, output b);\n assign b = a +;\nendmodule\n")
    (rtl / "files.txt").write_text("design.v\n")
    (rtl / "design.json").write_text('{"top": "broken"}')
    res = yosys.cost_rtl(rtl, flows=yosys.TIMING_FLOWS)
    assert {r["status"] for r in res.values()} == {"failed"} and all(r["step"] == "front" for r in res.values())
    t = timing.design_timing(res, 2, 1, timing.CardClock(5.0))
    assert "period_ns" not in t["ecp5"] and "period_ns" not in t["asic"]


@needs_yosys
@needs_osu
def test_asic_timing_live_matches_committed_log(tmp_path, monkeypatch):
    rtl = _rtl(tmp_path / "rtl", DATA / "radd8.v", "radd8")
    calls: list[str] = []
    real = yosys._Step.run
    monkeypatch.setattr(yosys._Step, "run", lambda self: (calls.append(self.name), real(self))[1])
    res = yosys.cost_rtl(rtl, flows=("asic", "asic_timing"))
    assert sorted(calls) == ["front", "gates", "osu018", "osu018_timing"]  # one `synth` front end for both flows
    t = res["asic_timing"]["asic_timing"]
    assert t["delay_ps"] == asic_timing.parse_abc_stime((DATA / "radd8_abc.log").read_text())["delay_ps"]
    assert t["area_um2"] > 0 and res["asic_timing"]["steps"].keys() == {"front", "osu018_timing"}


@pytest.mark.slow
@needs_pnr
def test_place_and_route_live_and_cached(tmp_path):
    """A registered 8-bit adder placed and routed (~10 s of nextpnr): the committed report's figures, then cached."""
    rtl = _rtl(tmp_path / "rtl", DATA / "radd8.v", "radd8")
    res = yosys.cost_rtl(rtl, flows=("ecp5",))["ecp5"]
    assert res["status"] == "ok", res.get("log_tail")
    committed = nextpnr.parse_report((DATA / "radd8_nextpnr.json").read_text())
    assert res["ecp5"]["fmax_mhz"] == committed["fmax_mhz"] and res["ecp5"]["cells"] == committed["cells"]
    assert yosys.cost_rtl(rtl, flows=("ecp5",))["ecp5"]["cached"] is True


@pytest.mark.slow
@needs_pnr
@needs_osu
def test_report_times_each_architecture_and_the_table(tmp_path):
    """`flow report` on a fake table model: ECP5 and ASIC timing of its RTL and of a 16×16 table ROM, in ns."""
    from flow import report
    from flow.project import write_marker

    p = tmp_path / "lut_fake"
    p.mkdir()
    write_marker(p, "lut_fake")  # a project as qflow writes it
    (p / "card.yaml").write_text(
        "name: lut_fake\ntask: regression\ndataset: {kind: table, table: charge, shape: [16, 16], bits: 12}\n"
        "hardware: {clock_period_ns: 5, sample_rate_mhz: 40}\n"
    )
    rtl = _rtl(p / "rtl" / "parallel", DATA / "radd8.v", "radd8")
    ports = {"clk": {"dir": "in", "width": 1}, "a": {"dir": "in", "width": 8}, "b": {"dir": "in", "width": 8}}
    ports["s"] = {"dir": "out", "width": 9}
    design = {"top": "radd8", "latency_cycles_expected": 2, "ii_cycles": 1, "ports": ports}
    (rtl / "design.json").write_text(json.dumps(design))
    out = report.build_report("lut_fake", projects_dir=tmp_path, synth=True)
    d = json.loads((out / "report.json").read_text())
    t = d["timing"]
    assert t["card"] == {"period_ns": 5.0, "rate_mhz": 40.0, "source": "hardware.clock_period_ns"}
    par = t["archs"]["parallel"]
    e = par["ecp5"]
    assert e["cells"]["TRELLIS_FF"] == 25 + 8 + 8 + 9  # the design's and the port wrapper's registers
    assert e["card_clock_met"] is (e["period_ns"] <= 5.0) and e["rate_met"] is True  # II 1: ≤ 25 ns at any clock
    assert e["latency_ns"] == pytest.approx(2 * e["period_ns"], abs=0.01) and e["fmax_mhz"] > 100
    assert par["asic"]["delay_ps"] == 1076.96 and par["cycles_from"] == "expected (design.json)"
    for fam in ("ecp5", "asic"):  # the table ROM is timed too, with real figures
        assert t["table"][fam]["period_ns"] > 0 and t["table"][fam]["latency_ns"] > 0
    md = (out / "report.md").read_text()
    assert "## Timing" in md and "LFE5U-85F" in md and "OSU018" in md and "table ROM" in md
    assert "40 MHz" in md and f"| parallel | {e['fmax_mhz']:.4g} |" in md


PLACED_LOG = """Info: Device utilisation:
Info: \t          TRELLIS_FF:     416/  83640     0%
Info: \t        TRELLIS_COMB:   19763/  83640    23%
Info: \t        TRELLIS_RAMW:       0/  10455     0%
Info: SA placement time 323.60s

Info: Max frequency for clock 'clk': 24.79 MHz (FAIL at 200.00 MHz)

Info: Routing globals...
Info: Routing 52180 arcs.
"""


def test_placement_estimate_only_once_placement_has_ended():
    """The estimate is read from the timing analysis before routing; a log still placing gives none."""
    est = nextpnr.placement_estimate(PLACED_LOG)
    assert est["fmax_mhz"] == 24.79 and est["cells"] == {"TRELLIS_FF": 416, "TRELLIS_COMB": 19763}
    assert nextpnr.placement_estimate(PLACED_LOG.split("Info: Routing")[0]) is None
    assert nextpnr.placement_estimate(PLACED_LOG.replace("Max frequency", "Max freq")) is None


@needs_yosys
def test_routing_stopped_at_the_limit_keeps_the_placement_estimate(tmp_path, monkeypatch):
    """A nextpnr run killed while routing: failed and remembered, with its post-placement Fmax, which the report
    shows marked as placed, not routed; a run killed while placing has no figure."""
    fake = tmp_path / "fake-nextpnr"
    fake.write_text('#!/bin/sh\nif [ "$1" = --version ]; then echo "fake (Version nextpnr-0.11.1)"; exit 0; fi\n')
    fake.chmod(0o755)
    monkeypatch.setenv("QFLOW_NEXTPNR_ECP5", str(fake))
    real_run, log = yosys._run_yosys, {"text": PLACED_LOG}

    def killed_while_routing(cmd, cwd, stderr_name, timeout_s):
        if cmd[0] != str(fake):
            return real_run(cmd, cwd, stderr_name, timeout_s)  # the Yosys front end, for real
        (cwd / nextpnr.LOG).write_text(log["text"])
        (cwd / stderr_name).write_text("")
        return None, 0.0  # as the watchdog reports a kill at the limit

    monkeypatch.setattr(yosys, "_run_yosys", killed_while_routing)
    rtl = _rtl(tmp_path / "rtl", DATA / "radd8.v", "radd8")
    res = yosys.cost_rtl(rtl, flows=("ecp5",), timeout_s=20)["ecp5"]
    assert res["status"] == "failed" and res["timed_out_s"] == 20 and res["ecp5_placed"]["fmax_mhz"] == 24.79
    assert yosys.cost_rtl(rtl, flows=("ecp5",), timeout_s=20)["ecp5"]["ecp5_placed"]["fmax_mhz"] == 24.79  # cached
    t = timing.design_timing({"ecp5": res}, 5, 1, timing.CardClock(5.0))
    assert t["ecp5"]["fmax_mhz"] == 24.79 and "routing stopped at the 20 s limit" in t["ecp5"]["estimate"]
    md = "\n".join(timing.render_md({"timing": {"card": {"period_ns": 5.0}, "archs": {"shiftadd": t}}}))
    assert "24.79 (placed, not routed)" in md and "Placed, not routed" in md
    log["text"] = PLACED_LOG.split("Info: Routing")[0]
    fresh = yosys.cost_rtl(rtl, flows=("ecp5",), timeout_s=25)["ecp5"]
    assert fresh["status"] == "failed" and "ecp5_placed" not in fresh
    assert timing.design_timing({"ecp5": fresh}, 5, 1, timing.CardClock(5.0))["ecp5"] == {"status": "failed"}


def test_the_cost_section_says_routing_stopped_not_synthesis_failed():
    """A run stopped while routing is named for what it is in the report's cost section; a real failure too."""
    from flow import report

    placed = {"status": "failed", "timed_out_s": 1500.0, "ecp5_placed": nextpnr.placement_estimate(PLACED_LOG)}
    broken = {"status": "failed", "log_tail": "ERROR: netlist is broken\n\n"}
    d = {"model": "m", "created": "now", "archs": {"shiftadd": {"cost": {"ecp5": placed, "xc7": broken}, "sim": {}}}}
    md = report.render_md(d)
    assert "shiftadd / ecp5: **routing stopped at the 1500 s limit**" in md
    assert "shiftadd / xc7: **synthesis failed** — ERROR: netlist is broken" in md
