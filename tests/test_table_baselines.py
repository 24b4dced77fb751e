"""Interpolated-table baseline: exact arithmetic (against a rational oracle), its Verilog in Icarus, the grid selector,
the equal-error comparison and the break-even crossing; each fed a known-wrong answer that must fail."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from _tools import have, use_own_cache

from flow import break_even, interp, interp_rtl, table_baselines
from flow.cost import yosys
from flow.data.tables import builtin_table
from flow.errors import FlowError

needs_iverilog = pytest.mark.skipif(not have("iverilog"), reason="iverilog not installed")
needs_yosys = pytest.mark.skipif(not have("yosys"), reason="yosys not installed")


def _oracle(table: np.ndarray, grid: interp.Grid) -> np.ndarray:
    """(Bi)linear interpolation in exact rationals, rounded half up: independent of flow.interp's integer code."""
    t = np.asarray(table)
    out = np.zeros(t.shape, dtype=np.int64)
    for a in itertools.product(*(range(s) for s in t.shape)):
        weights = []
        for k, ak in enumerate(a):
            step = 1 << grid.frac_bits[k]
            if step == 1:  # not interpolated: the entry itself
                weights.append(((ak, Fraction(1)),))
                continue
            lo = ak // step * step
            hi = min(lo + step, t.shape[k] - 1)  # the node past the end samples the last entry
            frac = Fraction(ak - lo, step)
            weights.append(((min(lo, t.shape[k] - 1), 1 - frac), (hi, frac)))
        v = Fraction(0)
        for combo in itertools.product(*weights):
            w = Fraction(1)
            for _, wk in combo:
                w *= wk
            v += w * int(t[tuple(n for n, _ in combo)])
        out[a] = math.floor(v + Fraction(1, 2))
    return out


def _mismatches(words: np.ndarray, want: np.ndarray) -> int:
    return int((np.asarray(words) != np.asarray(want)).sum())


@pytest.mark.parametrize(
    ("shape", "frac_bits"),
    [
        ((8, 8), (1, 1)),
        ((8, 8), (2, 3)),
        ((6, 5), (2, 1)),
        ((8, 6), (0, 2)),
        ((5, 8), (2, 0)),
        ((12,), (2,)),
        ((7,), (3,)),
    ],
)
def test_interpolation_equals_rational_oracle(shape, frac_bits):
    """Every address, 1-D and 2-D, power-of-two and not: the integer model is the exact value rounded half up."""
    rng = np.random.default_rng(sum(shape))
    table = rng.integers(0, 4096, size=shape)
    grid = interp.Grid(shape, frac_bits)
    words = interp.interpolate(table, grid)
    want = _oracle(table, grid)
    assert _mismatches(words, want) == 0
    assert words.min() >= table.min() and words.max() <= table.max()  # convex: no clamp needed
    wrong = words.copy()
    wrong.flat[3] += 1  # an interpolator off by one LSB at one address
    assert _mismatches(wrong, want) == 1


def test_grid_rejects_impossible_fraction_bits():
    with pytest.raises(FlowError, match="cannot have 4 fraction bits"):
        interp.Grid((8, 8), (1, 4))
    with pytest.raises(FlowError, match="that is the full table"):
        interp.Grid((8, 8), (0, 0))
    with pytest.raises(FlowError, match="1-D or 2-D"):
        interp.Grid((4, 4, 4), (1, 1, 1))


@pytest.mark.slow  # an Icarus build and run per shape; the off-by-one test below keeps the check honest
@needs_iverilog
@pytest.mark.parametrize(
    ("shape", "frac_bits"), [((16, 12), (2, 3)), ((6, 5), (1, 2)), ((8, 12), (0, 2)), ((6, 8), (3, 0)), ((16,), (2,))]
)
def test_verilog_equals_model_on_every_address(shape, frac_bits):
    table = builtin_table("charge", (16, 16), 12)[: shape[0], : shape[1]] if len(shape) == 2 else None
    if table is None:
        table = builtin_table("discharge", (16, 16), 12)[:, 7]
    chk = interp_rtl.check_rtl(table, interp.Grid(shape, frac_bits), 12)
    assert chk.passed and chk.addresses == chk.of == int(np.prod(shape))


@needs_iverilog
def test_verilog_check_of_a_large_table_samples(monkeypatch):
    """Above MAX_CHECKED addresses: the edges and a seeded sample, and a wrong datapath still fails."""
    monkeypatch.setattr(interp_rtl, "MAX_CHECKED", 100)
    table = builtin_table("charge", (16, 16), 12)
    chk = interp_rtl.check_rtl(table, interp.Grid((16, 16), (2, 2)), 12)
    assert chk.passed and chk.addresses == 100 and chk.of == 256


@needs_iverilog
def test_verilog_check_catches_an_off_by_one_datapath(tmp_path):
    """A datapath whose output is one LSB high: the Icarus check fails and names the first address."""
    table = builtin_table("charge", (8, 8), 12)
    grid = interp.Grid((8, 8), (2, 2))
    interp_rtl.write_interp(table, grid, 12, tmp_path)
    text = (tmp_path / f"{interp_rtl.DATAPATH}.v").read_text()
    wrong = text.replace(">> 4;", ">> 4) + 1'b1;").replace("y <= (vp", "y <= ((vp")
    assert wrong != text
    chk = interp_rtl.check_rtl(table, grid, 12, verilog=wrong)
    assert not chk.passed and chk.mismatches == 64
    assert chk.first["actual"] == chk.first["expected"] + 1


def test_selection_is_the_smallest_grid_that_meets_the_target():
    """Brute force over every grid: none with fewer stored bits meets the target; a too-coarse grid does not."""
    table = builtin_table("charge", (32, 32), 12)
    target = interp.ErrorStats(150, 30.0, (0, 0))
    sel = interp.select_grid(table, target, 12)
    assert sel.grid is not None and sel.error.meets(target)
    for g in interp.candidates(table.shape, 12):
        err = interp.grid_error(table, g)
        if g.nodes < sel.grid.nodes:
            assert not err.meets(target), g  # the selector would have missed a smaller grid
    coarse = interp.Grid((32, 32), (5, 5))  # 2 x 2 nodes: far too coarse
    assert not interp.grid_error(table, coarse).meets(target)
    assert sel.coarser is not None and not sel.coarser[1].meets(target)
    assert sel.rejected == interp.candidates(table.shape, 12).index(sel.grid)


def test_both_bounds_count():
    """A grid within the max error but not the RMSE (or the reverse) is not chosen."""
    e = interp.ErrorStats(10, 3.0, (0, 0))
    assert not interp.ErrorStats(11, 1.0, (0, 0)).meets(e)
    assert not interp.ErrorStats(5, 3.01, (0, 0)).meets(e)
    assert interp.ErrorStats(10, 3.0, (1, 1)).meets(e)


def test_no_grid_meets_an_exact_target():
    table = builtin_table("charge", (8, 8), 12)
    sel = interp.select_grid(table, interp.ErrorStats(0, 0.0, (0, 0)), 12)
    assert sel.grid is None and sel.rejected == len(interp.candidates((8, 8), 12))


def test_quick_reject_never_drops_a_grid_that_meets_the_target(monkeypatch):
    """The strided max-error screen is a lower bound: with it and without it the same grid is chosen."""
    table = builtin_table("discharge", (2048, 8), 12)
    target = interp.ErrorStats(30, 6.0, (0, 0))
    with_screen = interp.select_grid(table, target, 12)
    monkeypatch.setattr(interp, "_quick_reject", lambda *a: False)
    assert interp.select_grid(table, target, 12).grid == with_screen.grid


def _cand(name, value):
    return {"name": name, "value": value, "note": ""}


def test_smallest_names_the_minimum_and_the_factor_to_the_next():
    r = table_baselines.smallest([_cand("full table", 900), _cand("network (a)", 300), _cand("interp", 450)])
    assert r["smallest"] == "network (a)" and r["next"] == "interp" and r["factor"] == 1.5
    assert r["smallest"] != "full table"
    r = table_baselines.smallest([_cand("network (a)", 0), _cand("full table", 24)])
    assert r["factor"] is None


def _fake_report():
    """A report dict: one architecture's figures, the full table's and a costed interpolated table's."""
    ok = {"status": "ok"}
    xc7 = {**ok, "fpga": {"LUT": 500, "FF": 10, "CARRY4": 0, "DSP48E1": 2, "RAMB36": 0, "RAMB18": 0}}
    return {
        "archs": {
            "shiftadd": {
                "cost": {
                    "xc7": xc7,
                    "xc7_nodsp": {**ok, "fpga": {"LUT": 900, "FF": 10, "CARRY4": 0}},
                    "asic": {
                        **ok,
                        "asic": {
                            "osu018": {"area_um2": 5e5, "nand2_eq": 1},
                            "sky130_hd": {"area_um2": 1e5, "nand2_eq": 1},
                        },
                    },
                }
            }
        },
        "table": {
            "width": 12,
            "lutrom_lut6": 12288,
            "bram36_aspect": 24,
            "sram_macro": {"area_um2": 9.5e6},
            "synth": {"asic": {**ok, "asic": {"osu018": {"area_um2": 7.7e5}}}},
        },
        "interp_table": {
            "target": {"max_abs_lsb": 50, "rmse_lsb": 7.0, "worst_address": [0, 0]},
            "grid": {"label": "33x17 nodes (step 8x16)"},
            "cost": {
                "lutrom_lut6": 4 * 5 * 12,
                "bram36_aspect": 4,
                "sram_macro": {"macros": 4, "area_um2": 4 * 90_000.0},
                "banks": [{}] * 4,
                "synth": {
                    "full": {"asic": {**ok, "asic": {"osu018": {"area_um2": 2e5}}}},
                    "datapath": {
                        "xc7": xc7,
                        "xc7_nodsp": {**ok, "fpga": {"LUT": 300}},
                        "asic": {**ok, "asic": {"sky130_hd": {"area_um2": 2e4}}},
                    },
                },
            },
        },
    }


def test_equal_error_compares_network_interpolated_and_full_table():
    d = _fake_report()
    ee = table_baselines.equal_error(d)
    rows = {r["measure"]: r for r in ee["rows"]}
    interp_name = "interpolated table (33x17 nodes (step 8x16))"
    assert rows["LUT-only"]["smallest"] == interp_name  # 240 + 300 LUT against the network's 900
    assert rows["LUT-only"]["factor"] == pytest.approx(900 / 540, abs=0.01)
    assert rows["µm² as logic"]["smallest"] == interp_name and rows["µm² as logic"]["factor"] == 2.5
    assert rows["µm² as macro"]["smallest"] == "network (shiftadd)"  # 1e5 against 3.8e5 for 4 macros + datapath
    assert rows["BRAM"]["smallest"] == "network (shiftadd)" and rows["BRAM"]["factor"] is None
    assert "At equal error" in ee["line"] and "LUT-only: interpolated table" in ee["line"]
    assert rows["µm² as logic"]["network_misses_by"] == {"name": "network (shiftadd)", "factor": 2.5}
    assert "network_misses_by" not in rows["µm² as macro"]
    d["interp_table"]["rtl_check"] = {"passed": False}  # a wrong interpolator is no candidate
    rows = {r["measure"]: r for r in table_baselines.equal_error(d)["rows"]}
    assert all(c["kind"] != "interp" for r in rows.values() for c in r["candidates"])
    # A wrong figure changes the answer: the selector reads the numbers, not the names.
    d["archs"]["shiftadd"]["cost"]["xc7_nodsp"]["fpga"]["LUT"] = 100
    rows = {r["measure"]: r for r in table_baselines.equal_error(d)["rows"]}
    assert rows["LUT-only"]["smallest"] == "network (shiftadd)"
    md = "\n".join(table_baselines.render_md({**_fake_report(), "interp_table": None}))
    assert md == ""


def test_reference_lines_cover_every_table_form():
    d = _fake_report()
    d["interp_table"]["error"] = {"rmse_lsb": 5.0}
    refs = table_baselines.reference_lines(d)
    labels = [r["label"] for r in refs["um2"]]
    assert "full table, ROM logic" in labels and "full table, SRAM (sky130)" in labels
    assert any(lab.startswith("interpolated 33x17, ROM logic") for lab in labels)
    assert {r["axis"] for r in refs["LUT"]} == {"x", "y"}


def test_crossing_is_from_the_first_width_where_the_network_stays_smaller():
    bits = [6, 7, 8, 9, 10]
    assert break_even.crossing(bits, 1000, [100, 400, 1600, 6400, 25600]) == 8
    assert break_even.crossing(bits, 10, [100, 400, 1600, 6400, 25600]) == 6
    assert break_even.crossing(bits, 1e9, [100, 400, 1600, 6400, 25600]) is None
    assert break_even.crossing(bits, 1000, [100, 2000, 500, 6400, None]) == 9  # smaller again at 8: not from 7


def test_break_even_sweep_without_synthesis(monkeypatch):
    """Two tiny widths, formulas only: grids chosen again per width, the network constant, crossings named."""
    monkeypatch.setattr(break_even, "SWEEP_BITS", (3, 4))
    d = _fake_report()
    d["table_accuracy"] = {"max_abs_error_lsb": 60, "metrics_lsb": {"rmse": 20.0}, "worst_entry": {"address": [0, 0]}}
    be = break_even.sweep(d, "charge", 12, 4, synth=False, jobs=None)
    assert be["address_bits"] == [3, 4] and len(be["points"]) == 2
    assert be["points"][1]["full"]["lutrom_lut6"] == 4 * 12  # 256 entries: ceil(256/64) x 12
    lut = be["panels"][0]
    assert lut["series"][-1]["label"] == "network (shiftadd)" and lut["series"][-1]["values"] == [900, 900]
    assert {c["form"] for c in be["crossings"]} >= {"full table, LUT-ROM (formula)"}
    text = "\n".join(break_even.render_md({"break_even": be}))
    assert "## Break-even against the address width" in text and "2×3" in text


@pytest.mark.slow
@needs_yosys
def test_interpolator_costs_through_the_yosys_flows(tmp_path, monkeypatch):
    """A tiny interpolator: the whole design (ROM logic) and its datapath alone, every flow ok."""
    use_own_cache(tmp_path, monkeypatch)
    table = builtin_table("charge", (8, 8), 12)
    c = table_baselines.cost_interp(table, interp.Grid((8, 8), (2, 2)), 12, flows=(("asic",), ("xc7_nodsp",)))
    assert c["synth"]["full"]["asic"]["status"] == "ok" and c["synth"]["datapath"]["xc7_nodsp"]["status"] == "ok"
    f = table_baselines.interp_figures(c)
    assert f["LUT-only"][0] > c["lutrom_lut6"] and f["µm² as logic"][0] > 0
    assert yosys.yosys_cache_dir().is_dir()


def test_break_even_says_why_it_did_not_run():
    acc = {"max_abs_error_lsb": 60, "metrics_lsb": {"rmse": 20.0}, "worst_entry": {"address": [0, 0]}}
    d = {"table_accuracy": acc}
    break_even.add_to_report(d, {"kind": "table", "path": "t.csv"}, synth=True, jobs=None)
    assert "CSV table has no function to resample" in d["break_even"]["note"]
    break_even.add_to_report(d, {"kind": "table", "table": "charge"}, synth=False, jobs=None)
    assert d["break_even"]["note"].startswith("not run")
    assert "not run" in "\n".join(break_even.render_md(d))
    d = {}
    break_even.add_to_report(d, {"kind": "table", "table": "charge"}, synth=True, jobs=None)
    assert "break_even" not in d  # no network error yet: nothing to break even against
