"""ASIC critical-path delay: a delay-oriented ABC mapping to the OSU018 liberty and ABC's own timing (``stime``).

The ``asic_timing`` flow of :mod:`flow.cost.yosys` shares the ``asic`` front end (``synth -flatten``, layer modules
kept); its back end maps the flip-flops with ``dfflibmap`` and the logic with ``abc -liberty L -constr C -D 1``, whose
script ends in ``buffer; upsize; dnsize; stime -p`` (gate sizing towards the least delay, then ABC's timing report).
The figure is ABC's estimate of the longest combinational path between registers and ports within one module (the
worst module is named; each layer module registers its data output, so a datapath stays in one module, while a
handshake path through several modules is timed in parts), in the liberty's delay tables with the load and driver
below and no wires (OSU018 has no wire-load model): it excludes the flip-flops' clock-to-Q and setup times, so the
clock it suggests is an upper bound. It is not a sign-off static timing analysis.
"""

from __future__ import annotations

import re
from pathlib import Path

from flow.cost import abc, libs
from flow.errors import ToolError

BACK_END = "osu018_timing"
LOG = f"yosys-{BACK_END}.log"
STAT = f"stat_{BACK_END}.json"
DRIVING_CELL = "BUFX2"
LOAD_FF = 10.0  # every output and register input is loaded like a DFFPOSX1 D pin (8.8 fF), rounded up
TARGET_PS = 1  # "-D": map for the least delay ABC finds, not for area at a given clock

_STIME = re.compile(
    r"ABC:\s+WireLoad = .*?Gates =\s*(\d+).*?Area =\s*([\d.]+).*?Delay =\s*([\d.]+)\s*ps", flags=re.S | re.M
)
_POINTS = re.compile(r"ABC:\s+Start-point = \S+ \((.*?)\)\.\s+End-point = \S+ \((.*?)\)\.")
_MODULE = re.compile(r"Extracting gate netlist of module `\\?([^']+)'")
_PATH_CELL = re.compile(r"ABC:\s+Path\s+\d+\s+--\s+\d+\s*:\s*\d+\s+\d+\s+(\S+)\s+A =")


def constr_text() -> str:
    """ABC's timing constraints: the cell driving every input and the load on every output."""
    return f"set_driving_cell {DRIVING_CELL}\nset_load {LOAD_FF}\n"


def back_script(read: str, liberty: Path) -> str:
    """The Yosys back end: read the front netlist, map flip-flops and logic for delay, let ABC time it."""
    return "\n".join(
        [
            read,
            "write_file abc.constr <<EOT",
            constr_text().rstrip("\n"),
            "EOT",
            f'dfflibmap -liberty "{liberty}"',
            f'abc -liberty "{liberty}" -constr abc.constr -D {TARGET_PS} -script {abc.script_arg(abc.LIBERTY_TIMED)}',
            "opt_clean -purge",
            f"tee -q -o {STAT} stat -json",
        ]
    )


def parse_abc_stime(log: str) -> dict:
    """ABC's ``stime -p`` figures from a Yosys log: the longest delay over every ABC run (one per module), its
    module, gates and path.

    A log with no ``stime`` line (ABC did not run or did not time) raises :class:`ToolError`: no figure is read as 0.
    """
    found = list(_STIME.finditer(log))
    runs = [(int(m.group(1)), float(m.group(2)), float(m.group(3))) for m in found]
    if not runs:
        raise ToolError("no ABC timing (stime) line in the Yosys log")
    worst = max(range(len(runs)), key=lambda i: runs[i][2])
    # ABC maps one module per run (a design kept per layer has several): name the worst run's module.
    modules = [m for m in _MODULE.finditer(log) if m.start() < found[worst].start()]
    # Each stime report is followed by its path and its start and end points: take the worst run's.
    blocks = re.split(r"(?=ABC:\s+WireLoad = )", log)[1:]
    block = blocks[worst] if worst < len(blocks) else ""
    points = _POINTS.search(block)
    cells = _PATH_CELL.findall(block)
    out = {
        "delay_ps": runs[worst][2],
        "gates": runs[worst][0],
        "abc_runs": len(runs),
        "path_cells": [c for c in cells if c != "pi"],
    }
    named = [[m for m in _MODULE.finditer(log) if m.start() < f.start()] for f in found]
    if all(named):  # each module's own longest path (a path through a kept submodule is timed in parts)
        by_module: dict[str, float] = {}
        for mods, (_, _, delay) in zip(named, runs):
            name = mods[-1].group(1)
            by_module[name] = max(by_module.get(name, 0.0), delay)
        out["module_delay_ps"] = by_module
    if points:
        out["start"], out["end"] = points.group(1), points.group(2)
    if modules:
        out["module"] = modules[-1].group(1)
    return out


def summarise(work: Path) -> dict:
    """The ``asic_timing`` result of a finished back end folder."""
    if libs.osu018_liberty() is None:
        return {"asic_timing": {"status": "no library", "hint": "python -m flow.cost.libs fetch"}}
    log = Path(work) / LOG
    if not log.is_file():
        raise ToolError(f"Yosys wrote no {LOG}")
    t = parse_abc_stime(log.read_text(errors="replace"))
    osu = libs.osu018()
    if osu is not None:  # the area this delay-oriented mapping costs, next to the area-oriented one of `asic`
        from flow.cost.yosys import asic_area, parse_stat_json  # (yosys imports this module)

        cells = parse_stat_json((Path(work) / STAT).read_text())["cells"]
        t["area_um2"] = asic_area(cells, osu)["area_um2"]
    t |= {
        "library": "osu018",
        "method": f"abc -liberty -constr -D {TARGET_PS}; stime -p (ABC's estimate, no wires, without clock-to-Q/setup)",
        "driving_cell": DRIVING_CELL,
        "load_ff": LOAD_FF,
    }
    return {"asic_timing": t}
