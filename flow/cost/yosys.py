"""Yosys synthesis as plan, then run: a script and a copy of the sources in a folder named by their digest.

A flow is one Yosys process writing ``stat -json`` files; :data:`FLOWS` names them:

* ``xc7``: ``synth_xilinx -family xc7 -flatten -noiopad -noclkbuf`` (LUT, FF, CARRY4, MUXF7/8, DSP48E1, RAMB18/36).
* ``xc7_nodsp``: the same with ``-nodsp`` (LUT-only arithmetic).
* ``xc7_nobram``: the same with ``-nobram -nolutram`` (a ROM as LUT logic; used for tables).
* ``asic``: ``synth -flatten`` once, then three mappings of that netlist: OSU018 cells (``dfflibmap``/``abc
  -liberty``), generic gates costed as sky130 HD cells, and ``abc -g cmos2; stat -tech cmos`` (transistors).

The cache key is the SHA-256 of the Yosys version, the flow's script, the liberty contents and every source
file's relative path and contents. A cached result is returned without running Yosys; failures are not cached.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from flow.cost import libs
from flow.errors import FlowError, ToolError

FPGA_SYNTH = "synth_xilinx -family xc7 -flatten -noiopad -noclkbuf"
FLOWS = ("xc7", "xc7_nodsp", "xc7_nobram", "asic")
DEFAULT_TIMEOUT_S = float(os.environ.get("QFLOW_YOSYS_TIMEOUT", 1800))
_GENERIC_GATES = "AND,NAND,OR,NOR,XOR,XNOR,ANDNOT,ORNOT,MUX,AOI3,OAI3,AOI4,OAI4"
_LEGAL_FFS = "-cell $_DFF_P_ 01 -cell $_DFF_PN0_ 01 -cell $_DFF_PN1_ 01"

FF_CELLS = ("FDRE", "FDSE", "FDCE", "FDPE")
LUT_CELLS = tuple(f"LUT{i}" for i in range(1, 7))


def find_yosys() -> str:
    """The Yosys executable (:func:`flow.tools.find_tool`; ``$QFLOW_YOSYS`` overrides)."""
    from flow.tools import find_tool

    return str(find_tool("yosys").path)


@lru_cache(maxsize=4)
def yosys_version(exe: str | None = None) -> str:
    """The first line of ``yosys -V``, e.g. ``Yosys 0.23 (git sha1 7ce5011c24b)``."""
    exe = exe or find_yosys()
    r = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=60)
    if r.returncode:
        raise ToolError(f"{exe} -V failed: {r.stderr.strip()[-200:]}")
    return r.stdout.strip().splitlines()[0]


def yosys_cache_dir() -> Path:
    return libs.cache_dir() / "yosys"


# ---------------------------------------------------------------------------------------------- scripts


def _read(sources: list[str], top: str) -> list[str]:
    vs = [s for s in sources if s.endswith((".v", ".sv", ".vh"))]
    quoted = " ".join(f'"{s}"' for s in vs if not s.endswith(".vh"))
    return [f"read_verilog -sv {quoted}", f"hierarchy -check -top {top}"]


def flow_script(flow: str, sources: list[str], top: str, liberty: Path | None = None) -> str:
    """The Yosys script of ``flow`` (run in the folder holding ``sources``); writes ``<part>.json`` files."""
    lines = _read(sources, top)
    if flow in ("xc7", "xc7_nodsp", "xc7_nobram"):
        extra = {"xc7": "", "xc7_nodsp": " -nodsp", "xc7_nobram": " -nobram -nolutram"}[flow]
        lines += [f"{FPGA_SYNTH}{extra} -top {top}", "tee -q -o stat_xc7.json stat -json"]
    elif flow == "asic":
        lines += [f"synth -flatten -top {top}", "opt_clean -purge", "design -save generic"]
        if liberty is not None:
            lines += [
                f'dfflibmap -liberty "{liberty}"',
                f'abc -liberty "{liberty}"',
                "opt_clean -purge",
                "tee -q -o stat_osu018.json stat -json",
                f'tee -q -o stat_osu018.txt stat -liberty "{liberty}"',
                "design -load generic",
            ]
        lines += [
            f"dfflegalize {_LEGAL_FFS}",
            f"abc -g {_GENERIC_GATES}",
            "opt_clean -purge",
            "tee -q -o stat_gates.json stat -json",
            "design -load generic",
            f"dfflegalize {_LEGAL_FFS}",
            "abc -g cmos2",
            "opt_clean -purge",
            "tee -q -o stat_cmos.json stat -json -tech cmos",
        ]
    else:
        raise FlowError(f"unknown synthesis flow {flow!r}; expected one of {', '.join(FLOWS)}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- parse


def parse_stat_json(text: str) -> dict:
    """Cell counts from ``stat -json`` (the ``design`` totals, else the single module)."""
    try:
        d = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolError(f"yosys stat -json output is not JSON ({exc.msg})") from None
    block = d.get("design")
    if block is None:
        mods = d.get("modules") or {}
        if len(mods) != 1:
            raise ToolError("yosys stat -json: no design totals and not exactly one module")
        block = next(iter(mods.values()))
    out = {
        "num_cells": int(block.get("num_cells", 0)),
        "cells": {k: int(v) for k, v in (block.get("num_cells_by_type") or {}).items()},
        "num_memory_bits": int(block.get("num_memory_bits", 0)),
    }
    if "estimated_num_transistors" in block:
        out["transistors"] = int(block["estimated_num_transistors"])
    return out


def parse_stat_text_area(text: str) -> float | None:
    """The ``Chip area for module`` (or top) figure from ``stat -liberty`` text, for cross-checks."""
    area = None
    for line in text.splitlines():
        if "Chip area" in line:
            area = float(line.rsplit(":", 1)[1])
    return area


def fpga_summary(cells: dict[str, int]) -> dict[str, int]:
    """Xilinx 7-series resource counts from cell counts."""
    g = cells.get
    return {
        "LUT": sum(g(c, 0) for c in LUT_CELLS),
        "FF": sum(g(c, 0) for c in FF_CELLS),
        "CARRY4": g("CARRY4", 0),
        "MUXF7": g("MUXF7", 0),
        "MUXF8": g("MUXF8", 0),
        "DSP48E1": g("DSP48E1", 0),
        "RAMB18": g("RAMB18E1", 0),
        "RAMB36": g("RAMB36E1", 0),
        "LUTRAM": sum(v for k, v in cells.items() if k.startswith("RAM") and not k.startswith("RAMB")),
        "SRL": sum(v for k, v in cells.items() if k.startswith("SRL")),
    }


def asic_area(cells: dict[str, int], lib: libs.CellLibrary) -> dict:
    """Area = Σ count × cell area, NAND2-equivalents, and any cell the library has no area for."""
    unknown = sorted(c for c in cells if c not in lib.areas)
    area = sum(n * lib.areas[c] for c, n in cells.items() if c in lib.areas)
    return {
        "library": lib.name,
        "area_um2": round(area, 3),
        "nand2_eq": round(area / lib.nand2_area, 1),
        "nand2_area_um2": lib.nand2_area,
        "cells": sum(cells.values()),
        "unknown_cells": unknown,
    }


# ---------------------------------------------------------------------------------------------- plan, run


@dataclass(frozen=True)
class Plan:
    """What one Yosys run will do: its script, sources (relative path → absolute path) and cache folder."""

    flow: str
    top: str
    src_dir: Path
    sources: tuple[str, ...]
    script: str
    digest: str
    folder: Path
    yosys: str
    version: str

    @property
    def result_path(self) -> Path:
        return self.folder / "result.json"


def plan(flow: str, src_dir: Path, sources: Iterable[str], top: str, cache: Path | None = None) -> Plan:
    """Digest the inputs of one flow; nothing runs and nothing is written yet."""
    src_dir = Path(src_dir)
    sources = tuple(sources)
    for s in sources:
        if Path(s).is_absolute() or ".." in Path(s).parts:
            raise FlowError(f"{src_dir}: source {s!r} must be relative to its folder")
        if not (src_dir / s).is_file():
            raise FlowError(f"{src_dir / s}: listed in files.txt but missing")
    exe = find_yosys()
    version = yosys_version(exe)
    osu = libs.osu018_liberty() if flow == "asic" else None
    script = flow_script(flow, list(sources), top, Path("osu018_stdcells.lib") if osu else None)
    h = hashlib.sha256()
    for part in (version, flow, script):
        h.update(part.encode() + b"\0")
    if osu:
        h.update(osu.read_bytes())
    sky = libs.sky130_hd()
    if flow == "asic" and sky:
        h.update(json.dumps(sky.areas, sort_keys=True).encode())
    for s in sources:
        h.update(s.encode() + b"\0" + (src_dir / s).read_bytes() + b"\0")
    digest = h.hexdigest()
    folder = Path(cache or yosys_cache_dir()) / f"{flow}-{digest[:24]}"
    return Plan(flow, top, src_dir, sources, script, digest, folder, exe, version)


def _summarise(p: Plan, work: Path) -> dict:
    if p.flow.startswith("xc7"):
        stat = parse_stat_json((work / "stat_xc7.json").read_text())
        return {"fpga": fpga_summary(stat["cells"]), "cells": stat["cells"]}
    out: dict = {"asic": {}, "cells": {}}
    osu = libs.osu018()
    if (work / "stat_osu018.json").is_file() and osu is not None:
        stat = parse_stat_json((work / "stat_osu018.json").read_text())
        out["asic"]["osu018"] = asic_area(stat["cells"], osu)
        out["cells"]["osu018"] = stat["cells"]
    else:
        out["asic"]["osu018"] = {"status": "no library", "hint": "python -m flow.cost.libs fetch"}
    gates = parse_stat_json((work / "stat_gates.json").read_text())
    out["cells"]["gates"] = gates["cells"]
    sky = libs.sky130_hd()
    out["asic"]["sky130_hd"] = (
        asic_area(gates["cells"], sky) if sky else {"status": "no library", "hint": "python -m flow.cost.libs fetch"}
    )
    cmos = parse_stat_json((work / "stat_cmos.json").read_text())
    out["asic"]["transistors"] = cmos.get("transistors")
    out["cells"]["cmos"] = cmos["cells"]
    return out


def _run_yosys(cmd: list[str], cwd: Path, timeout_s: float) -> tuple[int | None, float]:
    """Run Yosys in its own process group; (exit code or None on timeout, peak resident memory in MB)."""
    with open(cwd / "stderr.txt", "w") as err:
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    timer = threading.Timer(timeout_s, kill)
    timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = round(usage.ru_maxrss / 1024, 1)
    return (None if timed_out.is_set() else proc.returncode), peak_mb


def run(p: Plan, timeout_s: float | None = None, use_cache: bool = True) -> dict:
    """Run the plan (or return its cached result). Never raises for a failed synthesis: ``status`` says."""
    if use_cache and p.result_path.is_file():
        res = json.loads(p.result_path.read_text())
        res["cached"] = True
        return res
    p.folder.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{p.folder.name}.", dir=p.folder.parent))
    for s in p.sources:
        (work / s).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p.src_dir / s, work / s)
    osu = libs.osu018_liberty()
    if p.flow == "asic" and osu:
        shutil.copyfile(osu, work / "osu018_stdcells.lib")
    (work / "synth.ys").write_text(p.script)
    (work / "sources.txt").write_text("\n".join(p.sources) + "\n")
    base = {"flow": p.flow, "top": p.top, "digest": p.digest, "yosys": p.version, "cached": False}
    t0 = time.monotonic()
    rc, peak_mb = _run_yosys([p.yosys, "-q", "-l", "yosys.log", "-s", "synth.ys"], work, timeout_s or DEFAULT_TIMEOUT_S)
    err = (work / "stderr.txt").read_text(errors="replace")
    if rc is None:
        err += f"\ntimed out after {timeout_s or DEFAULT_TIMEOUT_S:.0f} s"
    seconds = round(time.monotonic() - t0, 2)
    log = (work / "yosys.log").read_text(errors="replace") if (work / "yosys.log").is_file() else ""
    base.update(seconds=seconds, peak_rss_mb=peak_mb)
    if rc != 0:
        tail = "\n".join((log + "\n" + (err or "")).strip().splitlines()[-15:])
        res = base | {"status": "failed", "returncode": rc, "log_tail": tail}
        shutil.rmtree(p.folder, ignore_errors=True)
        if p.folder.exists():
            shutil.rmtree(work, ignore_errors=True)
        else:
            work.rename(p.folder)  # keep the failed run to look at; no result.json, so it is not a cache hit
        return res
    try:
        res = base | {"status": "ok"} | _summarise(p, work)
    except (OSError, FlowError) as exc:
        res = base | {"status": "failed", "returncode": rc, "log_tail": f"parsing Yosys output: {exc}"}
        shutil.rmtree(work, ignore_errors=True)
        return res
    (work / "result.json").write_text(json.dumps(res, indent=1) + "\n")
    if p.folder.exists():
        shutil.rmtree(p.folder, ignore_errors=True)
    try:
        work.rename(p.folder)
    except OSError:  # another process finished the same digest first
        shutil.rmtree(work, ignore_errors=True)
    return res


def run_all(plans: list[Plan], jobs: int | None = None, timeout_s: float | None = None) -> list[dict]:
    """Run plans in parallel Yosys processes (default: one per core, at most 2)."""
    jobs = jobs or min(2, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as ex:
        return list(ex.map(lambda p: run(p, timeout_s), plans))


def read_files_txt(rtl_dir: Path) -> list[str]:
    """The compile-order source list of a generated RTL folder."""
    f = Path(rtl_dir) / "files.txt"
    if not f.is_file():
        raise FlowError(f"{f}: missing; run `make sim` first")
    return [ln.strip() for ln in f.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]


def cost_rtl(
    rtl_dir: Path,
    flows: Iterable[str] = ("asic", "xc7", "xc7_nodsp"),  # the longest first: 2 processes finish together
    jobs: int | None = None,
    timeout_s: float | None = None,
    cache: Path | None = None,
) -> dict:
    """Cost one generated RTL folder (``files.txt``, ``design.json``) with each flow; ``{flow: result}``."""
    rtl_dir = Path(rtl_dir)
    design_path = rtl_dir / "design.json"
    design = json.loads(design_path.read_text()) if design_path.is_file() else {}
    top = design.get("top")
    if not top:
        raise FlowError(f'{design_path}: missing or has no "top"')
    sources = read_files_txt(rtl_dir)
    listed = set(sources)
    sources += sorted(  # ROM images read by $readmemh, in case files.txt does not list them
        str(f.relative_to(rtl_dir))
        for ext in ("*.mem", "*.hex")
        for f in rtl_dir.rglob(ext)
        if str(f.relative_to(rtl_dir)) not in listed
    )
    flows = tuple(flows)
    plans = [plan(f, rtl_dir, sources, top, cache) for f in flows]
    return dict(zip(flows, run_all(plans, jobs, timeout_s)))
