"""A design's cost part by part: each part's Verilog modules synthesised as their own tops, the figures summed.

The ensemble report costs its feature stage, members and voter this way; the single-network report
(``flow report --per-layer``) costs each layer module of a design (``design.json`` ``layer_modules``), so a
design whose whole-design front end does not finish within the time limit still gets a cost. A part's figures
leave out the top's glue (its pipeline handshake and argmax), which no layer module holds.

:func:`time_parts` times every layer module (a convolution's kernel too) as its own top, for a design too large
for the whole-design timing flows: each layer registers its output and reads registers, so the design's critical
path is its worst module's (the top's glue, e.g. the stall fanning out to every register, is left out).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flow.cost import nextpnr, yosys
from flow.cost.figures import arch_figures
from flow.errors import FlowError

PART_FLOWS = ("xc7", "asic")  # each part on its own: xc7 LUT/FF/DSP/BRAM and OSU018 µm²
FIGURES = ("LUT", "FF", "DSP48E1", "BRAM", "osu018_um2")  # the columns of the cost tables
TIMING_PART_FLOWS = ("asic_timing", "ecp5")  # each module on its own: OSU018 delay, ECP5 place and route
ECP5_LUT4 = 83_640  # TRELLIS_COMB of the LFE5U-85F: a module of more xc7 LUTs cannot fit it (a LUT6 >= a LUT4)


@dataclass(frozen=True)
class Part:
    """A part of a design: its name and the Verilog modules synthesised as its own tops."""

    name: str
    modules: tuple[str, ...]
    keep: tuple[str, ...] = ()  # modules it instantiates that the ASIC flows keep and map once (its kernels)


def _instantiates(text: str, module: str) -> bool:
    """Whether Verilog ``text`` instantiates ``module`` (``name #(...) inst (`` or ``name inst (``)."""
    return re.search(rf"^\s*{re.escape(module)}\s+(#\s*\(|[A-Za-z_]\w*\s*\()", text, re.MULTILINE) is not None


def layer_parts(rtl: Path, design: dict) -> list[Part]:
    """One part per layer module that no other layer module instantiates (a convolution's kernel module is
    costed inside the layer that instantiates it), in ``layer_modules`` order."""
    modules = list(design.get("layer_modules") or ())
    if not modules:
        raise FlowError(f"{rtl}/design.json: no layer_modules to cost one by one; run `make sim` again")
    texts = {m: (rtl / f"{m}.v").read_text() if (rtl / f"{m}.v").is_file() else "" for m in modules}
    missing = [m for m, t in texts.items() if not t]
    if missing:
        raise FlowError(f"{rtl}: no Verilog file for layer module(s) {', '.join(missing)}; run `make sim` again")
    inner = {m for m in modules for other in modules if other != m and _instantiates(texts[other], m)}
    top = design.get("top", "")
    return [
        Part(m.removeprefix(f"{top}_"), (m,), tuple(k for k in sorted(inner) if _instantiates(texts[m], k)))
        for m in modules
        if m not in inner
    ]


def module_ports(text: str, module: str) -> dict[str, dict]:
    """design.json-style ports (``{name: {"dir", "width"}}``) of ``module`` in generated Verilog ``text`` (an
    ANSI header: ``input wire [W-1:0] x``); empty when the module is not there."""
    head = re.search(rf"^module\s+{re.escape(module)}\s*(?:#\s*\(.*?\)\s*)?\((.*?)\);", text, re.S | re.M)
    if head is None:
        return {}
    decls = re.sub(r"/\*.*?\*/|//[^\n]*", "", head.group(1), flags=re.S)
    ports = {}
    for d, hi, lo, name in re.findall(r"\b(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):(\d+)\]\s*)?(\w+)", decls):
        ports[name] = {"dir": "in" if d == "input" else "out", "width": int(hi or 0) - int(lo or 0) + 1}
    return ports


def run_modules(
    rtl: Path, wanted: dict[str, tuple[str, ...]], jobs: int | None, keep: dict[str, tuple[str, ...]] | None = None
) -> dict[str, dict[str, dict]]:
    """Each module of ``wanted`` as its own top through its flows, in one batch: ``{module: {flow: result}}``
    (an ECP5 flow's module wrapped in registers on every port, so that its paths from and to them are timed; the
    ASIC flows keep a module's ``keep`` submodules and map each once, as the whole-design flow keeps layers)."""
    sources = yosys.read_files_txt(rtl)
    keep = keep or {}
    pairs = [(m, f) for m, flows in wanted.items() for f in flows]
    ports = {m: module_ports((rtl / f"{m}.v").read_text(), m) for m, f in pairs if f in yosys.ECP5_FLOWS}
    plans = [yosys.plan(f, rtl, sources, m, ports=ports.get(m), layer_modules=keep.get(m, ())) for m, f in pairs]
    out: dict[str, dict[str, dict]] = {m: {} for m in wanted}
    for (m, f), r in zip(pairs, yosys.run_all(plans, jobs)):
        out[m][f] = r
    return out


def cost_parts(
    rtl: Path, part_list: list[Part], jobs: int | None, flows: tuple[str, ...] = PART_FLOWS
) -> dict[str, dict]:
    """Each part's figures summed over its modules (``status``: ok, or what did not finish)."""
    wanted = {m: flows for p in part_list for m in p.modules}
    return _part_costs(part_list, run_modules(rtl, wanted, jobs, {m: p.keep for p in part_list for m in p.modules}))


def _part_costs(part_list: list[Part], by_module: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Each part's figures from its modules' results (``{module: {flow: result}}``)."""
    out = {}
    for p in part_list:
        figs = [arch_figures({"cost": by_module[m]}) for m in p.modules]
        bad = sorted({f"{m} {f}" for m in p.modules for f, r in by_module[m].items() if r.get("status") != "ok"})
        out[p.name] = {"modules": list(p.modules), "status": "ok" if not bad else f"not finished: {', '.join(bad)}"}
        out[p.name]["figures"] = {k: sum(f.get(k, 0) for f in figs) for k in _keys(figs)}
        out[p.name]["seconds"] = {f"{m}/{f}": r.get("seconds") for m in p.modules for f, r in by_module[m].items()}
    return out


def _keys(figs: list[dict]) -> list[str]:
    """The figure names any of ``figs`` has, in first-seen order."""
    return list(dict.fromkeys(k for f in figs for k in f))


def total(parts: dict[str, dict]) -> dict:
    """The parts' figures summed (a figure only where every part has it), and whether every part finished."""
    figs = [p["figures"] for p in parts.values()]
    keys = [k for k in _keys(figs) if all(k in f for f in figs)]
    return {
        "figures": {k: sum(f[k] for f in figs) for k in keys},
        "status": "ok" if all(p["status"] == "ok" for p in parts.values()) else "not finished",
    }


def timing_modules(rtl: Path, design: dict) -> dict[str, str | None]:
    """Every layer module, in ``layer_modules`` order, and the layer part it sits inside (None: a part itself; a
    convolution's kernel: its layer, whose path holds the kernel's, so the kernel alone gives a lower bound)."""
    own = {p.modules[0]: p.name for p in layer_parts(rtl, design)}
    texts = {m: (rtl / f"{m}.v").read_text() for m in design["layer_modules"]}
    return {
        m: None if m in own else next((own[o] for o in own if _instantiates(texts[o], m)), None)
        for m in design["layer_modules"]
    }


def cost_and_time_parts(
    rtl: Path, design: dict, jobs: int | None, timing_flows: tuple[str, ...]
) -> tuple[dict[str, dict], dict[str, dict]]:
    """(:func:`cost_parts` of the layer parts, each layer module timed as its own top: ``{module: {"inside",
    flow: result}}``). A layer's ASIC area and delay share one front end; then ECP5, skipped for a layer whose
    xc7 mapping has more LUTs than the device's LUT4s or did not finish (synth_ecp5 would outlast the limit)."""
    part_list = layer_parts(rtl, design)
    inside = timing_modules(rtl, design)
    asic = tuple(f for f in timing_flows if f not in yosys.ECP5_FLOWS)
    keep = {m: p.keep for p in part_list for m in p.modules}
    wanted = {m: (PART_FLOWS if where is None else ()) + asic for m, where in inside.items()}
    by_module = run_modules(rtl, wanted, jobs, keep)
    costs = _part_costs(part_list, {m: {f: by_module[m][f] for f in PART_FLOWS} for p in part_list for m in p.modules})
    luts = {p.modules[0]: (by_module[p.modules[0]]["xc7"].get("fpga") or {}).get("LUT") for p in part_list}
    skip = {m for m, n in luts.items() if n is None or n > ECP5_LUT4}
    ecp5 = tuple(f for f in timing_flows if f in yosys.ECP5_FLOWS)
    placed = run_modules(rtl, {m: ecp5 for m in inside if m not in skip}, jobs) if ecp5 else {}
    convs = [c for c in ((design.get("details") or {}).get("cmvm") or {}).values() if isinstance(c, dict)]
    timing = {}
    for m, where in inside.items():
        timing[m] = {"inside": where} | {f: by_module[m][f] for f in asic} | placed.get(m, {})
        if ecp5 and m in skip:
            why = f"{luts[m]:,} xc7 LUTs > the {nextpnr.DEVICE}'s {ECP5_LUT4:,} LUT4s" if luts[m] else "xc7 unfinished"
            timing[m][ecp5[0]] = {"status": f"not run: {why}"}
        if keep.get(m):  # which ends of its kept kernels are registers of the layer (the timing bound needs it)
            ends = [c for c in convs if c.get("kernel") in keep[m]]
            timing[m]["kernel_ends_registered"] = {
                side: bool(ends) and all(c.get(f"kernel_{side}_registered") for c in ends)
                for side in ("input", "output")
            }
    return costs, timing
