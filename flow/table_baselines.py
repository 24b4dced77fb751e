"""The baselines a hardware engineer would build instead of the network, and which is smallest at equal error.

The interpolated table (:mod:`flow.interp`, grid chosen as the smallest whose whole-table max |error| and RMSE
are no worse than the network's, its Verilog checked equal to the NumPy model in Icarus on every address) is
costed the same ways as the full table (:mod:`flow.cost.tables`): as synthesised ROM logic (Yosys ``asic`` of the
whole ``interp_table``: banks and datapath), as LUT-ROM and block RAM (the table formulas per bank, plus the
datapath's Yosys ``xc7`` / ``xc7_nodsp`` LUTs and DSPs) and as SRAM macros (the OpenRAM formula per bank: each bank
is read every cycle, so each is a macro, plus the datapath's sky130 µm²).

:func:`equal_error` then compares, per measure, every network architecture, the interpolated table and the full
table (exact, so it meets any error) and names the smallest and by what factor it beats the next.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from flow import interp, interp_rtl
from flow.cost import tables, yosys
from flow.errors import FlowError
from flow.log import info

FULL_FLOWS = ("asic", "xc7")  # the whole interpolator (the table ROM's own flows): ROM logic
DATAPATH_FLOWS = ("asic", "xc7", "xc7_nodsp")  # what the memory forms add to their banks

# (measure, unit): the verdict's measures, in its order (each candidate's figures: *_figures below).
MEASURES = [
    ("LUT-only", "LUT6"),
    ("with DSPs", "LUT6"),
    ("BRAM", "RAMB36"),
    ("µm² as logic", "OSU018 µm²"),
    ("µm² as macro", "sky130 µm²"),
]


def target_of(accuracy: dict) -> interp.ErrorStats:
    """The network's error over the whole table (``table_accuracy``), as the target the baselines must meet."""
    w = accuracy["worst_entry"]["address"]
    return interp.ErrorStats(int(accuracy["max_abs_error_lsb"]), float(accuracy["metrics_lsb"]["rmse"]), tuple(w))


def cost_interp(
    table: np.ndarray,
    grid: interp.Grid,
    width: int,
    synth: bool = True,
    jobs: int | None = None,
    flows: tuple[tuple[str, ...], tuple[str, ...]] = (FULL_FLOWS, DATAPATH_FLOWS),
) -> dict[str, Any]:
    """Every form's cost of the interpolated table (formulas per bank; Yosys of the whole design and its datapath)."""
    with tempfile.TemporaryDirectory(prefix="qflow-interp-") as tmp:
        w = interp_rtl.write_interp(table, grid, width, Path(tmp))
        banks = w["banks"]
        forms = [tables.table_formulas(b["depth"], width) for b in banks]
        out: dict[str, Any] = {
            "banks": banks,
            "latency_cycles": interp_rtl.latency_cycles(grid),
            "datapath": interp_rtl.datapath_bits(grid, width),
            "lutrom_lut6": sum(f["lutrom_lut6"] for f in forms),
            "bram36_aspect": sum(f["bram36_aspect"] for f in forms),
            "sram_macro": {
                "macros": sum(f["sram_macro"]["macros"] for f in forms),
                "area_um2": round(sum(f["sram_macro"]["area_um2"] for f in forms), 1),
            },
        }
        if not synth:
            out["synth"] = {"status": "skipped"}
            return out
        dports = {"clk": {"dir": "in", "width": 1}}
        full = [yosys.plan(f, Path(tmp), w["sources"], interp_rtl.TOP, None, w["ports"]) for f in flows[0]]
        dp = [yosys.plan(f, Path(tmp), w["datapath_sources"], interp_rtl.DATAPATH, None, dports) for f in flows[1]]
        res = yosys.run_all(full + dp, jobs)  # one schedule: the whole design and the datapath side by side
        out["synth"] = {
            "full": dict(zip(flows[0], res[: len(full)])),
            "datapath": dict(zip(flows[1], res[len(full) :])),
        }
    return out


def _ok(r: Any) -> dict | None:
    return r if isinstance(r, dict) and r.get("status") == "ok" else None


def interp_figures(c: dict) -> dict[str, Any]:
    """Per measure, the interpolated table's figure (None where not costed) and a short note of what it sums."""
    s = c.get("synth") or {}
    full, dp = s.get("full") or {}, s.get("datapath") or {}
    nodsp, xc7, asic = _ok(dp.get("xc7_nodsp")), _ok(dp.get("xc7")), _ok(dp.get("asic"))
    fasic = _ok(full.get("asic"))
    f: dict[str, Any] = {}
    if nodsp:
        f["LUT-only"] = (c["lutrom_lut6"] + nodsp["fpga"]["LUT"], f"LUT-ROM {c['lutrom_lut6']} + datapath")
    if xc7:
        dsp = xc7["fpga"]["DSP48E1"]
        note = f"LUT-ROM {c['lutrom_lut6']} + datapath" + (f", + {dsp} DSP48E1" if dsp else "")
        f["with DSPs"] = (c["lutrom_lut6"] + xc7["fpga"]["LUT"], note)
        f["BRAM"] = (c["bram36_aspect"], f"{len(c['banks'])} banks + {xc7['fpga']['LUT']} LUT datapath")
    if fasic and "area_um2" in fasic["asic"].get("osu018", {}):
        f["µm² as logic"] = (fasic["asic"]["osu018"]["area_um2"], "Yosys, banks and datapath")
    if asic and "area_um2" in asic["asic"].get("sky130_hd", {}):
        dp_um2 = asic["asic"]["sky130_hd"]["area_um2"]
        f["µm² as macro"] = (
            round(c["sram_macro"]["area_um2"] + dp_um2, 1),
            f"{c['sram_macro']['macros']} macros + datapath {dp_um2:,.0f} µm²",
        )
    return f


def full_table_figures(t: dict) -> dict[str, Any]:
    """Per measure, the full table's figure (the report's ``table`` entry)."""
    asic = _ok(((t.get("synth") or {}).get("asic")))
    f: dict[str, Any] = {
        "LUT-only": (t.get("lutrom_lut6"), "LUT-ROM formula"),
        "with DSPs": (t.get("lutrom_lut6"), "LUT-ROM formula"),
        "BRAM": (t.get("bram36_aspect"), "formula (aspect ratio)"),
        "µm² as macro": ((t.get("sram_macro") or {}).get("area_um2"), "SRAM macro formula"),
    }
    if asic and "area_um2" in asic["asic"].get("osu018", {}):
        f["µm² as logic"] = (asic["asic"]["osu018"]["area_um2"], "Yosys ROM logic")
    return {k: v for k, v in f.items() if v[0] is not None}


def network_figures(figs: dict) -> dict[str, Any]:
    """Per measure, one architecture's figure (``flow.cost.figures.arch_figures``)."""
    pick = {
        "LUT-only": ("LUT_nodsp", ""),
        "with DSPs": ("LUT", "DSP48E1"),
        "BRAM": ("RAMB36", ""),
        "µm² as logic": ("osu018_um2", ""),
        "µm² as macro": ("sky130_hd_um2", ""),  # a network is logic: its sky130 area stands against the macros
    }
    out = {}
    for m, (key, extra) in pick.items():
        if key == "RAMB36" and "LUT" in figs:
            out[m] = (figs.get("RAMB36", 0) + figs.get("RAMB18", 0) / 2, f"+ {figs['LUT']} LUT")
        elif figs.get(key) is not None:
            out[m] = (figs[key], f"+ {figs[extra]} DSP48E1" if extra and figs.get(extra) else "")
    return out


def smallest(cands: list[dict]) -> dict:
    """The smallest candidate and the factor by which the runner-up is larger (None when the smallest is 0)."""
    if not cands:
        raise FlowError("no candidate to compare")
    ranked = sorted(cands, key=lambda c: (c["value"], c["name"]))
    best = ranked[0]
    nxt = ranked[1] if len(ranked) > 1 else None
    factor = None
    if nxt and best["value"] > 0:
        factor = round(nxt["value"] / best["value"], 2)
    return {
        "smallest": best["name"],
        "kind": best.get("kind"),
        "value": best["value"],
        "next": nxt and nxt["name"],
        "factor": factor,
    }


def equal_error(d: dict) -> dict | None:
    """Per measure: network (each architecture), interpolated table, full table; the smallest and by what factor."""
    from flow.cost.figures import arch_figures

    base = d.get("interp_table")
    if not isinstance(base, dict) or "target" not in base:
        return None
    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    # (name, kind, figures); an interpolator whose Verilog failed its check is not a candidate
    per = [(f"network ({a})", "network", network_figures(arch_figures(e))) for a, e in archs.items()]
    if base.get("cost") and (base.get("rtl_check") or {}).get("passed", True):
        per.append((f"interpolated table ({base['grid']['label']})", "interp", interp_figures(base["cost"])))
    per.append(("full table", "table", full_table_figures(d.get("table") or {})))
    rows = []
    for measure, unit in MEASURES:
        cands = [
            {"name": n, "kind": k, "value": f[measure][0], "note": f[measure][1]} for n, k, f in per if measure in f
        ]
        nets = [c for c in cands if c["kind"] == "network"]
        if len(cands) < 2 or not nets:
            continue
        row = {"measure": measure, "unit": unit, "candidates": cands, **smallest(cands)}
        net = min(nets, key=lambda c: c["value"])
        if row["kind"] != "network" and row["value"] > 0:
            row["network_misses_by"] = {"name": net["name"], "factor": round(net["value"] / row["value"], 2)}
        rows.append(row)
    t = base["target"]
    head = f"max |error| ≤ {t['max_abs_lsb']} LSB and RMSE ≤ {t['rmse_lsb']:.3g} LSB (the network's)"
    parts = [_row_text(r) for r in rows]
    line = f"**At equal error** ({head}): " + ("; ".join(parts) if parts else "no costs yet (run `make sim`)") + "."
    return {"target": t, "rows": rows, "line": line}


def _row_text(r: dict) -> str:
    if r["factor"] is None:
        return f"{r['measure']}: {r['smallest']} (uses none)"
    text = f"{r['measure']}: {r['smallest']}, {r['factor']}× smaller than {r['next']}"
    miss = r.get("network_misses_by")
    if miss and miss["name"] != r["next"]:
        text += f" (the best network, {miss['name']}, is {miss['factor']}× the smallest)"
    return text


def baseline(
    table: np.ndarray, width: int, accuracy: dict, synth: bool = True, jobs: int | None = None, check: bool = True
) -> dict:
    """The interpolated table at the network's error: selection, Icarus check on every address, costs."""
    target = target_of(accuracy)
    sel = interp.select_grid(table, target, width)
    out: dict[str, Any] = sel.to_dict(width)
    out["arithmetic"] = "flow.interp: exact (bi)linear multiply-adds on node words, rounded half up once"
    if sel.grid is None:
        out["note"] = "no reduced grid meets the network's error: the full table is the baseline"
        return out
    if check:
        n = min(table.size, interp_rtl.MAX_CHECKED)
        info(f"interpolated table {sel.grid.label()}: Icarus against the NumPy model on {n:,} addresses")
        out["rtl_check"] = interp_rtl.check_rtl(table, sel.grid, width).to_dict()
    if synth:
        info("interpolated table: Yosys cost (ROM logic; datapath for the memory forms)")
    out["cost"] = cost_interp(table, sel.grid, width, synth, jobs)
    return out


def add_to_report(d: dict, proj: Any, dataset: dict, synth: bool, jobs: int | None) -> None:
    """``d["interp_table"]`` and ``d["equal_error"]`` for a table model with a measured network error."""
    acc = d.get("table_accuracy")
    if not acc:
        return
    values, _ = tables.table_values(dataset, proj.root)
    width = int((d.get("table") or {}).get("width") or dataset.get("bits") or tables.DEFAULT_WIDTH)
    d["interp_table"] = baseline(values, width, acc, synth=synth, jobs=jobs)
    d["equal_error"] = equal_error(d)


def render_md(d: dict) -> list[str]:
    """The report section: the interpolated table, its check, its costs, and the equal-error comparison."""
    b = d.get("interp_table")
    if not isinstance(b, dict):
        return []
    t = b["target"]
    L = ["## The baselines at equal error: interpolated table, full table", ""]
    L += [
        f"Target: the network's error over the whole table, max |error| {t['max_abs_lsb']} LSB, RMSE "
        f"{t['rmse_lsb']:.4g} LSB. Interpolated table: nodes every 2^k entries per axis, (bi)linear between them "
        "in exact integer arithmetic rounded half up once (`flow/interp.py`); the grid is the one with the fewest "
        f"stored bits whose max |error| and RMSE both meet the target ({b['grids_rejected']} smaller grids did not).",
        "",
    ]
    if not b.get("grid"):
        return L + [b.get("note", ""), ""]
    g, e = b["grid"], b["error"]
    L += [
        f"Chosen: {g['label']} × {d.get('table', {}).get('width', '?')} bits = {b['node_bits']:,} bits; "
        f"max |error| {e['max_abs_lsb']} LSB at address {tuple(e['worst_address'])}, RMSE {e['rmse_lsb']:.4g} LSB.",
        "",
    ]
    lr = b.get("largest_rejected")
    if lr:
        le = lr["error"]
        L += [
            f"The largest grid rejected, {lr['grid']['label']}: max |error| {le['max_abs_lsb']} LSB, RMSE "
            f"{le['rmse_lsb']:.4g} LSB.",
            "",
        ]
    chk = b.get("rtl_check")
    if chk:
        verdict = "0 mismatches" if chk["passed"] else f"**{chk['mismatches']:,} mismatches**, first {chk['first']}"
        which = "every address" if chk["addresses"] == chk.get("of") else f"{chk['addresses']:,} of {chk['of']:,}"
        L += [f"Its Verilog (`interp_table`) against the NumPy model in Icarus, {which}: {verdict}.", ""]
    c = b.get("cost") or {}
    if c:
        dp = c["datapath"]
        ops = ", ".join(f"{a}×{m}" for a, m in dp["operands"])
        L += [
            f"Hardware: {len(c['banks'])} ROM banks by node-index parity (depths "
            f"{', '.join(str(x['depth']) for x in c['banks'])}: every sample reads each bank once), "
            f"{dp['multipliers']} signed multiplier{'s' if dp['multipliers'] > 1 else ''} ({ops} bits), "
            f"latency {c['latency_cycles']} cycles, II 1.",
            "",
        ]
    L += _synth_lines(c)
    ee = d.get("equal_error")
    if ee and ee["rows"]:
        rows = []
        for r in ee["rows"]:
            for cnd in sorted(r["candidates"], key=lambda x: x["value"]):
                mark = " **(smallest)**" if cnd["name"] == r["smallest"] else ""
                ratio = cnd["value"] / r["value"] if r["value"] else math.inf
                rows.append(
                    [r["measure"], cnd["name"] + mark, f"{cnd['value']:,.0f} {r['unit']}", cnd["note"], _ratio(ratio)]
                )
        L += ["| measure | implementation | cost | what | × smallest |", "|---|---|---|---|---|"]
        L += ["| " + " | ".join(map(str, r)) + " |" for r in rows] + [""]
        L += [ee["line"], ""]
    return L


def _synth_lines(c: dict) -> list[str]:
    """What each Yosys run of the interpolator gave (the whole design; the datapath alone)."""
    s = c.get("synth") or {}
    if s.get("status") == "skipped" or not s:
        return ["Yosys: not run (`--no-synth` / `--no-table-synth`).", ""] if c else []
    parts = []
    for part, runs in (("whole design", s.get("full") or {}), ("datapath", s.get("datapath") or {})):
        for flow, r in runs.items():
            if not _ok(r):
                parts.append(f"{part} {flow}: **{(r or {}).get('status')}**")
            elif "fpga" in r:
                fp = r["fpga"]
                ram = f", {fp['RAMB36']} RAMB36, {fp['RAMB18']} RAMB18" if fp.get("RAMB36") or fp.get("RAMB18") else ""
                parts.append(f"{part} {flow}: {fp['LUT']:,} LUT, {fp['FF']} FF, {fp['DSP48E1']} DSP48E1{ram}")
            else:
                a = r["asic"]
                um2 = ", ".join(
                    f"{lib} {a[lib]['area_um2']:,.0f} µm²"
                    for lib in ("osu018", "sky130_hd")
                    if "area_um2" in a.get(lib, {})
                )
                parts.append(f"{part} asic: {um2}")
    return ["Yosys (the same flows as the network's): " + "; ".join(parts) + ".", ""]


def _ratio(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:.2f}"


def reference_lines(d: dict) -> dict[str, list[dict]]:
    """Every table form as a reference line of ``metric_vs_lut.png`` / ``metric_vs_area.png`` (``flow.plots``)."""
    refs: dict[str, list[dict]] = {"LUT": [], "um2": []}
    full = full_table_figures(d.get("table") or {})
    if "with DSPs" in full:
        refs["LUT"].append({"axis": "x", "value": full["with DSPs"][0], "label": "full table, LUT-ROM"})
    if "µm² as logic" in full:
        refs["um2"].append({"axis": "x", "value": full["µm² as logic"][0], "label": "full table, ROM logic"})
    if "µm² as macro" in full:
        refs["um2"].append({"axis": "x", "value": full["µm² as macro"][0], "label": "full table, SRAM (sky130)"})
    b = d.get("interp_table") or {}
    if b.get("grid"):
        f = interp_figures(b.get("cost") or {})
        g = b["grid"]["label"].split(" ")[0]
        if "with DSPs" in f:
            refs["LUT"].append({"axis": "x", "value": f["with DSPs"][0], "label": f"interpolated {g}, LUT-ROM + dp"})
        if "µm² as logic" in f:
            refs["um2"].append({"axis": "x", "value": f["µm² as logic"][0], "label": f"interpolated {g}, ROM logic"})
        if "µm² as macro" in f:
            refs["um2"].append(
                {"axis": "x", "value": f["µm² as macro"][0], "label": f"interpolated {g}, SRAM (sky130)"}
            )
        rmse = b["error"]["rmse_lsb"]
        for k in refs:
            refs[k].append({"axis": "y", "value": rmse, "label": f"interpolated {g}: RMSE {rmse:.3g} LSB"})
            refs[k].append({"axis": "y", "value": 0.0, "label": "full table: exact"})
    return {k: v for k, v in refs.items() if v}


def plots(d: dict, proj: Any, folder: Path) -> list[str]:
    """``table_error.png`` (table, network − table, interpolated − table) and ``break_even.png``."""
    from flow import plots as P
    from flow.data.tables import addresses
    from flow.table_report import hardware_words

    made = []
    hw = hardware_words(proj) if d.get("table_accuracy") else None
    if hw is not None:
        _, info_, X, truth, words = hw
        shape = tuple(info_.shape)
        idx = np.ravel_multi_index(tuple(addresses(X, shape).T), shape)
        grid_t = np.zeros(int(np.prod(shape)), dtype=np.int64)
        grid_t[idx] = truth
        net = np.zeros_like(grid_t)
        net[idx] = words - truth
        errors = {"network": net.reshape(shape)}
        b = d.get("interp_table") or {}
        if b.get("grid"):
            g = interp.Grid(tuple(b["grid"]["shape"]), tuple(b["grid"]["frac_bits"]))
            t = grid_t.reshape(shape)
            errors[f"interpolated {b['grid']['label'].split(' ')[0]}"] = interp.interpolate(t, g) - t
        P.table_error_plot(
            grid_t.reshape(shape), errors, folder / "table_error.png", f"{d['model']}: error over the table"
        )
        made.append("table_error.png")
    be = d.get("break_even")
    if isinstance(be, dict) and be.get("panels"):
        P.break_even_plot(be, folder / "break_even.png", f"{d['model']}: table forms and network against address bits")
        made.append("break_even.png")
    return made
