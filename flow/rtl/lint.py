"""``verilator --lint-only -Wall`` on a design folder: the generated Verilog must be warning-free.

Waivers live in the Verilog as ``/* verilator lint_off RULE */`` with a comment giving the reason (see
flow/rtl/README.md for the list).
"""

from __future__ import annotations

import subprocess

from flow.errors import ToolError
from flow.rtl import Design
from flow.tools import find_tool


def lint(design: Design) -> list[str]:
    """The warnings Verilator reports on ``design`` (empty when clean)."""
    tool = find_tool("verilator")
    cmd = [str(tool.path), "--lint-only", "-Wall", "--top-module", design.top, *map(str, design.sources)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=tool.environ(), cwd=design.out_dir)
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("%")]
    if proc.returncode != 0 and not lines:
        raise ToolError(f"verilator --lint-only failed on {design.out_dir}: {proc.stderr.strip()[:500]}")
    return lines
