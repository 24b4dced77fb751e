"""Cost (Yosys) parsers on committed real outputs, live synthesis of tiny designs, table formulas, the report."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _tools import have, use_own_cache

from flow.cost import libs, tables, yosys
from flow.errors import FlowError

DATA = Path(__file__).parent / "data" / "yosys"


needs_yosys = pytest.mark.skipif(not have("yosys"), reason="yosys not installed")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """Yosys results go to a fresh cache per test; the fetched libraries stay where `make setup` put them."""
    use_own_cache(tmp_path, monkeypatch)


# ---------------------------------------------------------------------------------------------- parsers


def test_stat_json_register_is_8_ffs():
    stat = yosys.parse_stat_json((DATA / "reg8_stat_xc7.json").read_text())
    fpga = yosys.fpga_summary(stat["cells"])
    assert fpga["FF"] == 8 and fpga["LUT"] == 0 and fpga["CARRY4"] == 0
    assert fpga["FF"] != 7  # a wrong count is told apart


def test_stat_json_adder():
    fpga = yosys.fpga_summary(yosys.parse_stat_json((DATA / "add8_stat_xc7.json").read_text())["cells"])
    assert (fpga["LUT"], fpga["FF"], fpga["CARRY4"], fpga["DSP48E1"]) == (8, 9, 3, 0)


def test_stat_json_transistors():
    assert yosys.parse_stat_json((DATA / "add8_stat_cmos.json").read_text())["transistors"] == 480
    assert yosys.parse_stat_json((DATA / "reg8_stat_cmos.json").read_text())["transistors"] == 128


def test_stat_json_transistor_lower_bound():
    text = (DATA / "add8_stat_cmos.json").read_text().replace('"480"', '"480+"')
    stat = yosys.parse_stat_json(text)
    assert stat["transistors"] == 480 and stat["transistors_lower_bound"] is True
    assert "transistors_lower_bound" not in yosys.parse_stat_json((DATA / "add8_stat_cmos.json").read_text())


def test_stat_json_broken_is_tool_error():
    with pytest.raises(FlowError):
        yosys.parse_stat_json('{"modules": ')
    with pytest.raises(FlowError):
        yosys.parse_stat_json('{"modules": {}}')


def test_fpga_summary_counts_every_lut_and_ff_kind():
    cells = {
        "LUT1": 1,
        "LUT2": 2,
        "LUT6": 3,
        "FDRE": 4,
        "FDSE": 1,
        "FDCE": 1,
        "FDPE": 1,
        "RAMB36E1": 2,
        "RAMB18E1": 1,
        "MUXF7": 5,
        "DSP48E1": 2,
        "RAM64X1D": 3,
        "SRLC32E": 1,
    }
    f = yosys.fpga_summary(cells)
    assert (f["LUT"], f["FF"], f["RAMB36"], f["RAMB18"], f["MUXF7"], f["DSP48E1"], f["LUTRAM"], f["SRL"]) == (
        6,
        7,
        2,
        1,
        5,
        2,
        3,
        1,
    )


TINY_LIB = """
/* comment with cell (FAKE) { area : 99; } */
library(tiny) {
  cell (NAND2X1) {
    area : 24;
    pin(A) { direction : input; capacitance : 0.01; }
    pin(Y) { direction : output; function : "!(A&B)"; timing() { area : 1000; } }
  }
  cell ("INVX1") { pin(A) { direction : input; } area : 16.5; }
  cell (DFFPOSX1) { area : 96; ff(DS0000,P0000) { next_state : "D"; } }
}
"""


def test_liberty_areas_and_hand_computed_area():
    areas = libs.parse_liberty_areas(TINY_LIB)
    assert areas == {"NAND2X1": 24.0, "INVX1": 16.5, "DFFPOSX1": 96.0}
    lib = libs.CellLibrary("tiny", areas, "NAND2X1")
    r = yosys.asic_area({"NAND2X1": 10, "INVX1": 4, "DFFPOSX1": 3, "MYSTERY": 2}, lib)
    assert r["area_um2"] == 10 * 24 + 4 * 16.5 + 3 * 96  # 594
    assert r["area_um2"] != 594 + 2 * 24  # an unknown cell adds nothing silently ...
    assert r["unknown_cells"] == ["MYSTERY"]  # ... it is listed
    assert r["nand2_eq"] == round(594 / 24, 1)


def test_liberty_without_areas_is_an_error():
    with pytest.raises(FlowError):
        libs.parse_liberty_areas("library(x) { cell (A) { pin(Y) { direction : output; } } }")


def test_lef_sizes():
    lef = "MACRO sky130_fd_sc_hd__nand2_1\n  CLASS CORE ;\n  SIZE  1.380000 BY  2.720000 ;\n"
    lef += "END sky130_fd_sc_hd__nand2_1\n"
    assert libs.parse_lef_sizes(lef) == {"sky130_fd_sc_hd__nand2_1": (1.38, 2.72)}


@pytest.mark.skipif(libs.osu018() is None, reason="OSU018 not fetched (python -m flow.cost.libs fetch)")
def test_osu018_area_matches_yosys_stat_liberty():
    """Our Σ count × area equals Yosys's own `stat -liberty` figure on committed real outputs."""
    lib = libs.osu018()
    for top in ("add8", "reg8"):
        cells = yosys.parse_stat_json((DATA / f"{top}_stat_osu018.json").read_text())["cells"]
        ours = yosys.asic_area(cells, lib)["area_um2"]
        theirs = yosys.parse_stat_text_area((DATA / f"{top}_stat_osu018.txt").read_text())
        assert ours == pytest.approx(theirs) and not yosys.asic_area(cells, lib)["unknown_cells"]
    assert yosys.parse_stat_text_area((DATA / "reg8_stat_osu018.txt").read_text()) == 768.0  # 8 × DFFPOSX1 (96)


# ---------------------------------------------------------------------------------------------- live synthesis


def _rtl(folder: Path, verilog: str, top: str, extra: dict[str, str] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "design.v").write_text(verilog)
    for name, text in (extra or {}).items():
        (folder / name).write_text(text)
    (folder / "files.txt").write_text("design.v\n")
    (folder / "design.json").write_text(json.dumps({"top": top, "arch": "test"}))
    return folder


@needs_yosys
def test_live_register_and_cache(tmp_path):
    rtl = _rtl(tmp_path / "rtl", (DATA / "reg8.v").read_text(), "reg8")
    res = yosys.cost_rtl(rtl, flows=("xc7", "asic"))
    assert res["xc7"]["status"] == "ok" and res["xc7"]["fpga"]["FF"] == 8
    assert res["xc7"]["yosys"].startswith("Yosys")
    assert res["asic"]["asic"]["transistors"] == 128  # 8 $_DFF_P_ × 16
    if libs.osu018():
        assert res["asic"]["asic"]["osu018"]["area_um2"] == 768.0
    again = yosys.cost_rtl(rtl, flows=("xc7", "asic"))
    assert all(r["cached"] for r in again.values())
    (rtl / "design.v").write_text((DATA / "reg8.v").read_text().replace("q <= d", "q <= ~d"))
    changed = yosys.cost_rtl(rtl, flows=("xc7",))
    assert not changed["xc7"]["cached"] and changed["xc7"]["digest"] != res["xc7"]["digest"]


@needs_yosys
def test_flows_share_one_front_end_and_match_a_single_process(tmp_path, monkeypatch):
    rtl = _rtl(tmp_path / "rtl", (DATA / "add8.v").read_text(), "add8")
    calls: list[str] = []
    real = yosys._Step.run
    monkeypatch.setattr(yosys._Step, "run", lambda self: (calls.append(self.name), real(self))[1])
    res = yosys.cost_rtl(rtl, flows=("xc7", "xc7_nodsp"), cache=tmp_path / "cache")
    assert sorted(calls) == ["front", "xc7", "xc7"]  # one front end for both flows
    # The same flow as one Yosys process, for comparison: splitting must not change the netlist.
    whole = tmp_path / "whole"
    whole.mkdir()
    (whole / "add8.v").write_text((DATA / "add8.v").read_text())
    script = f"read_verilog -sv add8.v\nhierarchy -check -top add8\n{yosys.FPGA_SYNTH} -nodsp -top add8\n"
    (whole / "s.ys").write_text(script + "tee -q -o stat.json stat -json\n")
    subprocess.run([yosys.find_yosys(), "-q", "-s", "s.ys"], cwd=whole, check=True)
    assert res["xc7_nodsp"]["cells"] == yosys.parse_stat_json((whole / "stat.json").read_text())["cells"]


def test_asic_front_end_keeps_each_layer_module():
    """Only the ASIC flows keep the layer modules (each is mapped on its own); the FPGA flows stay flat."""
    asic = yosys.front_script("asic", ["t.v"], "t", None, ["t_fc1", "t_fc2"])
    assert "setattr -mod -set keep_hierarchy 1 t_fc1 t_fc2\nsynth -flatten -top t" in asic
    assert "keep_hierarchy" not in yosys.front_script("asic", ["t.v"], "t")
    assert "keep_hierarchy" not in yosys.front_script("xc7", ["t.v"], "t", None, ["t_fc1"])


@needs_yosys
def test_rom_image_next_to_the_sources_is_found(tmp_path):
    rom = (
        "module r(input clk, input [1:0] a, output reg [3:0] q);\n reg [3:0] m [0:3];\n"
        ' initial $readmemh("w.mem", m);\n always @(posedge clk) q <= m[a];\nendmodule\n'
    )
    rtl = _rtl(tmp_path / "rtl", rom, "r", {"w.mem": "1\n2\n4\n8\n"})
    res = yosys.cost_rtl(rtl, flows=("asic",))
    assert res["asic"]["status"] == "ok"
    assert res["asic"]["asic"]["transistors"] > 0


@needs_yosys
def test_failed_synthesis_is_failed_not_zero(tmp_path):
    rtl = _rtl(tmp_path / "rtl", "module broken(input a, output b);\n assign b = a +;\nendmodule\n", "broken")
    res = yosys.cost_rtl(rtl, flows=("xc7", "asic"))
    for r in res.values():
        assert r["status"] == "failed" and r["step"] == "front"
        assert "fpga" not in r and "asic" not in r  # no figures at all, never zeros
        assert "syntax error" in r["log_tail"].lower() or "error" in r["log_tail"].lower()
    from flow.report import arch_figures

    assert arch_figures({"cost": res}) == {}
    assert not any(r.get("cached") for r in yosys.cost_rtl(rtl, flows=("xc7",)).values())  # failures not cached


@needs_yosys
def test_failed_run_keeps_logs_aside_and_never_touches_a_result(tmp_path):
    rtl = _rtl(tmp_path / "rtl", "module broken(input a, output b);\n assign b = a +;\nendmodule\n", "broken")
    p = yosys.plan("xc7", rtl, ["design.v"], "broken")
    res = yosys.run(p)
    assert res["status"] == "failed" and not p.folder.exists()  # nothing a later run could read as a result
    logs = Path(res["logs"])
    assert logs.name == p.folder.name + ".failed" and (logs / "yosys-front.log").is_file()
    # Two processes with one digest: a finished result already in place is kept, the late copy dropped.
    good, late = tmp_path / "good", tmp_path / "late"
    for d, text in ((good, '{"status": "ok"}'), (late, '{"status": "late"}')):
        d.mkdir()
        (d / "result.json").write_text(text)
    yosys._publish(late, good)
    assert json.loads((good / "result.json").read_text()) == {"status": "ok"} and not late.exists()
    # An old folder without a result (left by an earlier version) is replaced.
    (good / "result.json").unlink()
    late.mkdir()
    (late / "result.json").write_text('{"status": "late"}')
    yosys._publish(late, good)
    assert json.loads((good / "result.json").read_text()) == {"status": "late"}


@needs_yosys
def test_a_step_that_cannot_start_fails_alone(tmp_path, monkeypatch):
    rtl = _rtl(tmp_path / "rtl", (DATA / "reg8.v").read_text(), "reg8")
    real = yosys._run_yosys

    def fake(cmd, cwd, stderr_name, timeout_s):
        if "gates.ys" in cmd:
            raise OSError(12, "Cannot allocate memory")
        return real(cmd, cwd, stderr_name, timeout_s)

    monkeypatch.setattr(yosys, "_run_yosys", fake)
    res = yosys.cost_rtl(rtl, flows=("xc7", "asic"))
    assert res["xc7"]["status"] == "ok"
    assert res["asic"]["status"] == "failed" and res["asic"]["step"] == "gates"
    assert "Cannot allocate memory" in res["asic"]["log_tail"] and "asic" not in res["asic"]
    assert [d.name for d in yosys.yosys_cache_dir().iterdir() if d.name.startswith(".run-")] == []


@needs_yosys
def test_a_timeout_is_remembered_until_the_limit_is_raised(tmp_path, monkeypatch):
    """A run that timed out is not started again at the same or a lower limit; a higher limit runs it again."""
    rtl = _rtl(tmp_path / "rtl", (DATA / "reg8.v").read_text(), "reg8")
    started: list[float] = []

    def timing_out(cmd, cwd, stderr_name, timeout_s):
        started.append(timeout_s)
        (cwd / stderr_name).write_text("")
        return None, 0.0  # as the watchdog reports a kill at the limit

    monkeypatch.setattr(yosys, "_run_yosys", timing_out)
    first = yosys.cost_rtl(rtl, flows=("xc7",), timeout_s=50)["xc7"]
    assert first["status"] == "failed" and first["timed_out_s"] == 50 and "timed out after 50 s" in first["log_tail"]
    again = yosys.cost_rtl(rtl, flows=("xc7",), timeout_s=40)["xc7"]
    assert again["cached"] and again["timed_out_s"] == 50 and started == [50]
    raised = yosys.cost_rtl(rtl, flows=("xc7",), timeout_s=200)["xc7"]
    assert not raised["cached"] and raised["timed_out_s"] == 200 and started == [50, 200]


@needs_yosys
def test_relative_cache_path_and_bad_jobs(tmp_path, monkeypatch):
    rtl = _rtl(tmp_path / "rtl", (DATA / "reg8.v").read_text(), "reg8")
    monkeypatch.chdir(tmp_path)
    res = yosys.cost_rtl(rtl, flows=("xc7",), cache=Path("relcache"))
    assert res["xc7"]["status"] == "ok" and res["xc7"]["fpga"]["FF"] == 8
    with pytest.raises(FlowError, match="jobs"):
        yosys.cost_rtl(rtl, flows=("xc7_nodsp",), jobs=0)


def test_missing_source_or_top_is_a_user_error(tmp_path):
    rtl = _rtl(tmp_path / "rtl", "module m; endmodule\n", "m")
    (rtl / "files.txt").write_text("design.v\nmissing.v\n")
    with pytest.raises(FlowError, match="missing"):
        yosys.cost_rtl(rtl)
    (rtl / "design.json").write_text("{}")
    with pytest.raises(FlowError, match="top"):
        yosys.cost_rtl(rtl)


# ---------------------------------------------------------------------------------------------- tables


def test_table_formulas_256x256x12():
    f = tables.table_formulas(256 * 256, 12)
    assert f["bits"] == 786_432
    assert f["bram36_min"] == 22  # ceil(786432 / 36864) = ceil(21.33)
    assert f["bram36_aspect"] == 24  # 32K×1 × 2 deep × 12 wide
    assert f["lutrom_lut6"] == 1024 * 12
    assert f["sram_macro"]["macros"] == 12
    assert f["sram_macro"]["area_um2"] == pytest.approx(12 * 87_700 + 10.7 * 786_432)
    assert f["sram_macro"]["area_um2"] != pytest.approx(87_700 + 10.7 * 786_432)  # one macro would be wrong


def test_table_formulas_match_design_notes_openram_points():
    # 8 KB = 65,536 bits: one macro, measured 788,097 µm²; the formula is within 0.2 %.
    assert tables.sram_macro(65_536)["area_um2"] == pytest.approx(788_097, rel=2e-3)
    assert tables.bram36_count(1024, 36) == {"bram36_min": 1, "bram36_aspect": 1}
    assert tables.bram36_count(4096, 9)["bram36_aspect"] == 1
    with pytest.raises(FlowError):
        tables.table_formulas(0, 12)


def test_table_values_builtin_and_csv(tmp_path):
    v, note = tables.table_values({"kind": "table", "table": "charge", "shape": [16, 8], "bits": 12})
    assert v.shape == (16, 8) and v.min() >= 0 and v.max() <= 4095 and "charge" in note
    (tmp_path / "t.csv").write_text("1,2,3\n4,5,6\n")
    v, note = tables.table_values({"kind": "table", "path": "t.csv", "bits": 4}, root=tmp_path)
    assert v.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_write_rom(tmp_path):
    folder, depth, width = tables.write_rom(np.array([[1, 2], [3, 15]]), tmp_path)
    assert (depth, width) == (4, 4)
    assert (folder / "table.mem").read_text().split() == ["1", "2", "3", "f"]
    assert "input [1:0] addr" in (folder / "table_rom.v").read_text()
    with pytest.raises(FlowError):
        tables.write_rom(np.array([-1, 2]), tmp_path)


@needs_yosys
def test_small_table_rom_synthesis():
    vals = tables.table_values({"kind": "table", "table": "charge", "shape": [16, 16], "bits": 12})[0]
    res = tables.synth_table(vals, 12, flows=("xc7", "asic"))
    assert res["xc7"]["status"] == "ok" and res["asic"]["status"] == "ok"
    assert res["asic"]["asic"]["transistors"] > 0
    fp = res["xc7"]["fpga"]
    assert fp["LUT"] + fp["RAMB18"] + fp["RAMB36"] > 0


def test_table_too_large_uses_formulas(monkeypatch):
    monkeypatch.setattr(tables, "MAX_SYNTH_BITS", 100)
    t = tables.table_cost({"kind": "table", "table": "discharge", "shape": [16, 16], "bits": 12})
    assert t["synth"]["status"] == "too large" and t["bits"] == 16 * 16 * 12


# ---------------------------------------------------------------------------------------------- report


def _fake_project(root: Path, with_rtl: bool) -> Path:
    from flow.project import write_json, write_marker

    p = root / "lut_fake"
    p.mkdir(parents=True)
    write_marker(p, "lut_fake")  # a project as qflow writes it (no ir.json: nothing to trace back to an IR)
    (p / "card.yaml").write_text(
        "name: lut_fake\ndescription: a fake table model\ntask: regression\n"
        "dataset: {kind: table, table: charge, shape: [16, 16], bits: 12}\n"
    )
    write_json(
        p / "train.json",
        {
            "model": "lut_fake",
            "task": "regression",
            "primary_metric": "rmse",
            "float": {"metrics": {"rmse": 1.5, "r2": 0.999}},
            "qkeras": {"metrics": {"rmse": 1.9, "r2": 0.998}},
            "n_params": 337,
            "bitwidths": {"input": "(9,0)", "fc1.weight": "(10,2)"},
        },
    )
    write_json(
        p / "csim.json",
        {
            "metrics": {"rmse": 2.0},
            "qkeras_vs_csim": {"argmax_agreement": None, "max_abs_diff": 0.0},
            "synthesis": {"status": "not run"},
        },
    )
    if with_rtl:
        _rtl(p / "rtl" / "parallel", (DATA / "add8.v").read_text(), "add8")
        write_json(
            p / "sim.json",
            {"parallel/icarus": {"latency_cycles": 1, "ii_cycles": 1, "mismatches": 0, "passed": True, "vectors": 100}},
        )
    return p


def test_report_without_synthesis_says_not_run(tmp_path):
    from flow import report

    _fake_project(tmp_path, with_rtl=False)
    out = report.build_report("lut_fake", projects_dir=tmp_path, synth=False)
    md = (out / "report.md").read_text()
    d = json.loads((out / "report.json").read_text())
    assert "not run" in md
    assert d["verify"] == "not run" and d["archs"] == "not run" and d["layers"] == "not run"
    assert "| csim | 2 |" in md.replace("2.0", "2")
    assert d["table"]["bits"] == 16 * 16 * 12 and d["table"]["synth"]["status"] == "skipped"
    assert "(10,2)" in md and "The table this network replaces" in md
    assert not list(tmp_path.glob("lut_fake/.report*"))  # the atomic write left nothing behind


@needs_yosys
def test_report_with_rtl_costs_and_compares(tmp_path):
    from flow import report

    _fake_project(tmp_path, with_rtl=True)
    out = report.build_report("lut_fake", projects_dir=tmp_path, synth=True, timing=False)  # timed in test_timing
    d = json.loads((out / "report.json").read_text())
    f = report.arch_figures(d["archs"]["parallel"])
    # stat -tech cmos of the generic gates in add8_stat_gates.json: 9 DFF×16, 5 XOR + 5 XNOR ×12, 3 AND + 4 ANDNOT
    # + 1 OR + 1 ORNOT + 3 AOI3 + 4 OAI3 ×6, 5 NAND + 4 NOR ×4 = 144 + 120 + 96 + 36 = 396
    assert f["FF"] == 9 and f["LUT"] == 8 and f["transistors"] == 396
    assert d["archs"]["parallel"]["sim"]["icarus"]["passed"] is True
    md = (out / "report.md").read_text()
    assert "passed (100 vectors, 0 mismatches)" in md
    rows = {r["measure"]: r for r in d["table_vs_network"]}
    assert rows["FPGA LUT (as LUT-ROM)"]["table"] == 4 * 12  # ceil(256/64) × 12
    assert (out / "metric_vs_lut.png").is_file()
    summary = report.build_summary(tmp_path)
    assert "lut_fake" in summary.read_text()


def test_compare_table_picks_the_smaller():
    from flow.report import compare_table

    d = {
        "table": {"bram36_aspect": 24, "lutrom_lut6": 12288, "sram_macro": {"area_um2": 9e6}, "synth": {}},
        "archs": {
            "parallel": {
                "cost": {
                    "xc7": {"status": "ok", "fpga": {"LUT": 900, "RAMB36": 0, "RAMB18": 0}},
                    "xc7_nodsp": {"status": "ok", "fpga": {"LUT": 1200, "FF": 0, "CARRY4": 0}},
                }
            }
        },
    }
    rows = {r["measure"]: r for r in compare_table(d)}
    lut = rows["FPGA LUT (as LUT-ROM)"]
    assert lut["smaller"] == "network" and lut["factor"] == pytest.approx(12288 / 1200, abs=0.01)
    assert lut["smaller"] != "table"
    assert "sky130 um2 (SRAM macro)" not in rows  # no network figure in that unit: no comparison made


def test_csynth_xml_parser():
    from flow.report import parse_csynth_xml

    xml = (
        "<profile><PerformanceEstimates><SummaryOfOverallLatency><Best-caseLatency>12</Best-caseLatency>"
        "</SummaryOfOverallLatency></PerformanceEstimates><AreaEstimates><Resources><BRAM_18K>2</BRAM_18K>"
        "<DSP>40</DSP><FF>1000</FF><LUT>3000</LUT></Resources></AreaEstimates></profile>"
    )
    r = parse_csynth_xml(xml)
    assert r["resources"] == {"BRAM_18K": 2, "DSP": 40, "FF": 1000, "LUT": 3000}
    assert r["latency"]["Best-caseLatency"] == "12"


def test_cli_report_needs_a_model(tmp_path, monkeypatch):
    import argparse

    from flow.cli import report as cli

    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    with pytest.raises(FlowError):
        cli.run(p.parse_args([]))
    monkeypatch.setattr("flow.project.PROJECTS_DIR", tmp_path)
    with pytest.raises(FlowError, match="no such project"):
        cli.run(p.parse_args(["nope", "--no-synth"]))


def test_no_absolute_paths_in_committed_data():
    for f in DATA.iterdir():
        text = f.read_text(errors="replace")
        for top in ("work", "root", "tmp", "home"):
            assert f"/{top}/" not in text, f.name


_LONG_YOSYS_CHILD = """
import sys
from pathlib import Path
from flow.cost import yosys
real = yosys._run_yosys
def waiting(cmd, cwd, stderr_name, timeout_s):
    # The real launcher, but a Yosys that reads its commands from stdin (never closed): it runs until killed.
    (Path(sys.argv[2]) / "started").write_text(str(cwd))
    return real([cmd[0], "-Q"], cwd, stderr_name, timeout_s)
yosys._run_yosys = waiting
yosys.cost_rtl(Path(sys.argv[1]), flows=("xc7",))
"""


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@needs_yosys
def test_killed_report_leaves_no_yosys_and_its_run_folder_is_removed_later(tmp_path):
    """kill -9 of the python that started a long Yosys: Yosys dies with it; the next run removes its folder."""
    import signal
    import sys
    import time

    rtl = _rtl(tmp_path / "rtl", (DATA / "reg8.v").read_text(), "reg8")
    other = _rtl(tmp_path / "other", (DATA / "reg8.v").read_text().replace("q <= d", "q <= ~d"), "reg8")
    child = subprocess.Popen(
        [sys.executable, "-c", _LONG_YOSYS_CHILD, str(other), str(tmp_path)],
        stdin=subprocess.PIPE,  # kept open by this process: the child's Yosys would wait on it forever
        cwd=Path(__file__).parent.parent,
    )
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists() or not _children(child.pid):
            assert child.poll() is None and time.monotonic() < deadline, "Yosys did not start"
            time.sleep(0.1)
        yosys_pid = _children(child.pid)[0]
        assert "yosys" in Path(f"/proc/{yosys_pid}/cmdline").read_bytes().decode()
        run_folder = Path((tmp_path / "started").read_text()).parent
        assert run_folder.name.startswith(f".run-{child.pid}-")
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 10
        while _alive(yosys_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(yosys_pid), "Yosys outlived the process that started it"
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
    assert run_folder.is_dir()  # nothing could remove it at the kill ...
    yosys.cost_rtl(rtl, flows=("xc7",))  # ... a later run does
    assert not run_folder.exists()
