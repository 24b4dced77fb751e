"""A design's cost part by part: each part's Verilog modules synthesised as their own tops, the figures summed.

The ensemble report costs its feature stage, members and voter this way; the single-network report
(``flow report --per-layer``) costs each layer module of a design (``design.json`` ``layer_modules``), so a
design whose whole-design front end does not finish within the time limit still gets a cost. A part's figures
leave out the top's glue (its pipeline handshake and argmax), which no layer module holds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from flow.cost import yosys
from flow.cost.figures import arch_figures
from flow.errors import FlowError

PART_FLOWS = ("xc7", "asic")  # each part on its own: xc7 LUT/FF/DSP/BRAM and OSU018 µm²
FIGURES = ("LUT", "FF", "DSP48E1", "BRAM", "osu018_um2")  # the columns of the cost tables


@dataclass(frozen=True)
class Part:
    """A part of a design: its name and the Verilog modules synthesised as its own tops."""

    name: str
    modules: tuple[str, ...]


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
    return [Part(m.removeprefix(f"{top}_"), (m,)) for m in modules if m not in inner]


def cost_parts(
    rtl: Path, part_list: list[Part], jobs: int | None, flows: tuple[str, ...] = PART_FLOWS
) -> dict[str, dict]:
    """Each part's figures summed over its modules (``status``: ok, or what did not finish)."""
    sources = yosys.read_files_txt(rtl)
    modules = [m for p in part_list for m in p.modules]
    plans = [yosys.plan(f, rtl, sources, m) for m in modules for f in flows]
    results = iter(yosys.run_all(plans, jobs))
    by_module = {m: {f: next(results) for f in flows} for m in modules}
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
