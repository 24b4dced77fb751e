"""Break-even of a built-in table model: the same function resampled at 2 × 6 … 2 × 12 address bits, each table form
against the network, and the address width from which the network is the smaller.

At each width the full table is costed by the formulas of :mod:`flow.cost.tables` (LUT-ROM, block RAM, SRAM
macro; a ROM of millions of words is not synthesised), the interpolated table by :mod:`flow.table_baselines`
(its grid chosen again for that table at the network's error; Yosys runs of its small ROM banks and datapath,
cached by content). The network is the one the report costs, trained at the card's resolution: its cost is taken
as constant (a wider address only widens the first layer's input by one bit per axis and bit, not re-synthesised
here) and its error target is the one it reaches on the card's table. CSV tables have no function to resample.
"""

from __future__ import annotations

from typing import Any

from flow import interp
from flow.cost import tables
from flow.data.tables import BUILTIN_TABLES, builtin_table
from flow.log import info
from flow.table_baselines import cost_interp, interp_figures, target_of

SWEEP_BITS = tuple(range(6, 13))  # address bits per axis
SWEEP_FLOWS = (("asic",), ("asic", "xc7_nodsp"))  # interpolator: ROM logic; datapath for the memory forms

# (panel title, unit, the network's figure key in flow.cost.figures.arch_figures)
PANELS = [
    ("FPGA, LUT-only", "LUT6", "LUT_nodsp"),
    ("ASIC, sky130 HD", "µm²", "sky130_hd_um2"),
]


def _point(table_name: str, bits: int, width: int, target: interp.ErrorStats, synth: bool, jobs: int | None) -> dict:
    """Every table form at ``bits`` address bits per axis."""
    side = 1 << bits
    values = builtin_table(table_name, (side, side), width)
    full = tables.table_formulas(values.size, width)
    sel = interp.select_grid(values, target, width)
    p: dict[str, Any] = {
        "address_bits": bits,
        "full": {"lutrom_lut6": full["lutrom_lut6"], "bram36": full["bram36_aspect"], **full["sram_macro"]},
        "interp": sel.to_dict(width),
    }
    if sel.grid is not None:
        c = cost_interp(values, sel.grid, width, synth, jobs, SWEEP_FLOWS)
        figs = interp_figures(c)
        full_asic = ((c.get("synth") or {}).get("full") or {}).get("asic") or {}
        rom_sky = ((full_asic.get("asic") or {}).get("sky130_hd") or {}).get("area_um2")
        p["interp"].update(
            {
                "lut_only": (figs.get("LUT-only") or (None,))[0],
                "macro_um2": (figs.get("µm² as macro") or (None,))[0],
                "rom_logic_sky130_um2": rom_sky,
                "bram36": c["bram36_aspect"],
            }
        )
    return p


def network_best(d: dict) -> dict[str, tuple[str, float]]:
    """The smallest architecture per network figure key of the panels."""
    from flow.cost.figures import arch_figures

    archs = d.get("archs") if isinstance(d.get("archs"), dict) else {}
    out = {}
    for _, _, key in PANELS:
        have = [(a, arch_figures(e).get(key)) for a, e in archs.items()]
        have = [(a, v) for a, v in have if v]
        if have:
            out[key] = min(have, key=lambda x: x[1])
    return out


def crossing(bits: list[int], network: float, table: list[float | None]) -> int | None:
    """The smallest address width from which the network is smaller than the table form at every wider point."""
    pts = [(b, v) for b, v in zip(bits, table) if v]
    first = None
    for b, v in reversed(pts):
        if network < v:
            first = b
        else:
            break
    return first


def sweep(d: dict, table_name: str, width: int, card_bits: int | None, synth: bool, jobs: int | None) -> dict:
    """The sweep, its panels (series per table form and the network) and the crossing points."""
    target = target_of(d["table_accuracy"])
    points = []
    for b in SWEEP_BITS:
        info(f"break-even: {table_name} at 2x{b} address bits")
        points.append(_point(table_name, b, width, target, synth, jobs))
    bits = [p["address_bits"] for p in points]
    net = network_best(d)
    full_rom = _card_rom_sky130(d)
    series_of = {
        "LUT_nodsp": [
            ("full table, LUT-ROM (formula)", "table", [p["full"]["lutrom_lut6"] for p in points]),
            ("interpolated, LUT-ROM + datapath", "interp", [p["interp"].get("lut_only") for p in points]),
        ],
        "sky130_hd_um2": [
            ("full table, SRAM macros (formula)", "table", [p["full"]["area_um2"] for p in points]),
            (
                "full table, ROM logic (Yosys, card's table)",
                "table",
                [full_rom if b == card_bits else None for b in bits],
            ),
            ("interpolated, SRAM macros + datapath", "interp", [p["interp"].get("macro_um2") for p in points]),
            ("interpolated, ROM logic (Yosys)", "interp", [p["interp"].get("rom_logic_sky130_um2") for p in points]),
        ],
    }
    panels, crossings = [], []
    for title, unit, key in PANELS:
        series = [{"label": lab, "kind": kind, "values": vals} for lab, kind, vals in series_of[key]]
        if key in net:
            arch, v = net[key]
            series.append({"label": f"network ({arch})", "kind": "network", "values": [v] * len(bits)})
            for s in series[:-1]:
                crossings.append(
                    {"panel": title, "form": s["label"], "network": arch, "from_bits": crossing(bits, v, s["values"])}
                )
        panels.append({"title": title, "unit": unit, "series": series})
    return {
        "table": table_name,
        "address_bits": bits,
        "card_address_bits": card_bits,
        "target": target.to_dict(),
        "points": points,
        "panels": panels,
        "crossings": crossings,
    }


def _card_rom_sky130(d: dict) -> float | None:
    asic = (((d.get("table") or {}).get("synth") or {}).get("asic")) or {}
    if asic.get("status") != "ok":
        return None
    return (asic["asic"].get("sky130_hd") or {}).get("area_um2")


def add_to_report(d: dict, dataset: dict, synth: bool, jobs: int | None) -> None:
    """``d["break_even"]`` for a built-in table model with a measured network error (else a note why not)."""
    if not d.get("table_accuracy"):
        return
    name = dataset.get("table")
    if name not in BUILTIN_TABLES:
        d["break_even"] = {"note": "a CSV table has no function to resample: no break-even sweep"}
        return
    if not synth:
        d["break_even"] = {
            "note": "not run: it needs the Yosys costs (`flow report` without --no-synth/--no-table-synth)"
        }
        return
    shape = tuple(dataset.get("shape", tables.DEFAULT_SHAPE))
    card_bits = shape[0].bit_length() - 1 if shape[0] == shape[1] and shape[0] & (shape[0] - 1) == 0 else None
    width = int(dataset.get("bits", tables.DEFAULT_WIDTH))
    d["break_even"] = sweep(d, name, width, card_bits, synth, jobs)


def render_md(d: dict) -> list[str]:
    """The report section: crossing points and the sweep's figures."""
    be = d.get("break_even")
    if not isinstance(be, dict):
        return []
    L = ["## Break-even against the address width", ""]
    if "note" in be:
        return L + [be["note"] + ".", ""]
    t = be["target"]
    L += [
        f"The {be['table']} function resampled at 2×{be['address_bits'][0]} … 2×{be['address_bits'][-1]} address "
        f"bits; the interpolated table's grid is chosen again at each width for max |error| ≤ {t['max_abs_lsb']} "
        f"and RMSE ≤ {t['rmse_lsb']:.3g} LSB (the network's on the card's table); the network's cost is the "
        "report's (constant; its first layer would widen by one input bit per extra address bit, not "
        "re-synthesised). Full-table forms by formula (`flow/cost/tables.py`), ROM logic only where synthesised. "
        "Plot: `break_even.png`.",
        "",
    ]
    for c in be["crossings"]:
        where = (
            f"smaller from 2×{c['from_bits']} address bits on"
            if c["from_bits"] is not None
            else f"not smaller at any width up to 2×{be['address_bits'][-1]}"
        )
        if c["from_bits"] == be["address_bits"][0]:
            where = f"smaller at every width from 2×{c['from_bits']}"
        L.append(f"- {c['panel']}: network ({c['network']}) against {c['form']}: {where}")
    L += ["", "| address bits | " + " | ".join(f"2×{b}" for b in be["address_bits"]) + " |"]
    L += ["|---|" + "---|" * len(be["address_bits"])]
    rows = [
        ("interpolated grid", [(p["interp"].get("grid") or {}).get("label", "none") for p in be["points"]]),
    ]
    for panel in be["panels"]:
        for s in panel["series"]:
            rows.append((f"{panel['title']}: {s['label']} ({panel['unit']})", [_num(v) for v in s["values"]]))
    L += [f"| {name} | " + " | ".join(map(str, vals)) + " |" for name, vals in rows]
    return L + [""]


def _num(v: float | None) -> str:
    return "–" if not v else f"{v:,.0f}"
