"""Yosys synthesis as plan, then run: scripts and a copy of the sources, results cached by their digest.

A flow is a front end (read, elaborate, optimise; written as an RTLIL netlist) and one or more back ends, each
its own Yosys process reading that netlist and writing ``stat -json`` files. Flows with the same front end
share one run of it, and back ends run side by side. :data:`FLOWS` names them:

* ``xc7``: ``synth_xilinx -family xc7 -flatten -noiopad -noclkbuf`` (LUT, FF, CARRY4, MUXF7/8, DSP48E1, RAMB18/36);
  the front end is its ``begin`` and ``prepare`` steps, the back end the rest.
* ``xc7_nodsp``: the same with ``-nodsp`` (LUT-only arithmetic).
* ``xc7_nobram``: the same with ``-nobram -nolutram`` (a ROM as LUT logic; used for tables).
* ``asic``: ``synth -flatten`` once, then two mappings of that netlist: OSU018 cells (``dfflibmap``/``abc
  -liberty``), and generic gates costed as sky130 HD cells, whose ``stat -tech cmos`` gives the transistor count.
  A design's ``layer_modules`` (design.json) are kept as modules: each layer is synthesised and mapped on its own
  (ABC runs once per module), which bounds the time of a large adder graph; ``stat`` sums the hierarchy. The
  scripts are ABC's defaults with the SAT sweep bounded (:mod:`.abc`). The result's ``hierarchy`` says which.
* ``asic_timing``: the ``asic`` front end (one run for both), then a delay-oriented OSU018 mapping timed by ABC
  (:mod:`.asic_timing`).
* ``ecp5``: ``synth_ecp5`` (written as JSON), then nextpnr-ecp5 place and route on an LFE5U-85F, not a Yosys
  process (:mod:`.nextpnr`): Fmax, critical path and utilisation for the Lattice ECP5 family.
* ``ecp5_nodsp``: the same with ``synth_ecp5 -nodsp``; :func:`cost_rtl` runs it in place of ``ecp5`` when a
  design needs more MULT18X18D than the device has, and says so in the result (``dsp_fallback``).

The cache key is the SHA-256 of the Yosys version, the flow's scripts (for ``ecp5`` also nextpnr's command line and
version), the liberty contents and every source file's relative path and contents (and :data:`RESULT_SCHEMA`). A
cached result is returned without running Yosys; failures are not cached: their logs go to ``<folder>.failed``,
except a timeout, recorded in ``<folder>.timeout.json`` with its limit: the run is not started again until the
limit (``QFLOW_YOSYS_TIMEOUT``, default 1,800 s) is raised above it.
Everything is built in a temporary folder inside the cache and published by a rename, so an interrupted run (its
Yosys processes are killed) leaves nothing; Yosys dies with the process that started it (even a SIGKILLed one),
and the next run removes the run folder of a process that is gone.
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
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from flow import linux, scratch
from flow.cost import abc, asic_timing, libs, nextpnr
from flow.errors import FlowError, ToolError
from flow.project import write_json

FPGA_SYNTH = "synth_xilinx -family xc7 -flatten -noiopad -noclkbuf"
FLOWS = ("xc7", "xc7_nodsp", "xc7_nobram", "asic", "asic_timing", "ecp5", "ecp5_nodsp")
ECP5_FLOWS = ("ecp5", "ecp5_nodsp")  # ecp5_nodsp: the fallback when the design needs more DSPs than the device has
TIMING_FLOWS = ("ecp5", "asic_timing")  # the flows that give timing (the others give area)
ASIC_FRONT_FLOWS = ("asic", "asic_timing")  # the flows on the ASIC front end (hierarchy kept per layer module)
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

FRONT_NETLIST = "front.il"
FRONT_FILES = (FRONT_NETLIST, nextpnr.FRONT_JSON)  # what back ends read from the front end's folder
LIBERTY = "osu018_stdcells.lib"  # the liberty's name inside a run folder


def _read(sources: list[str], top: str) -> list[str]:
    vs = [s for s in sources if s.endswith((".v", ".sv", ".vh"))]
    quoted = " ".join(f'"{s}"' for s in vs if not s.endswith(".vh"))
    return [f"read_verilog -sv {quoted}", f"hierarchy -check -top {top}"]


def front_script(
    flow: str, sources: list[str], top: str, ports: dict | None = None, layer_modules: Iterable[str] = ()
) -> str:
    """The front end of ``flow``: read, elaborate and optimise, then write :data:`FRONT_NETLIST`.

    Flows with the same front end (every ``xc7*`` flow) share one run of it. ``ports`` (design.json's) let the
    ``ecp5`` flow register every port for timing; the ASIC flows keep each of ``layer_modules`` as its own module.
    """
    lines = _read(sources, top)
    if flow in ("xc7", "xc7_nodsp", "xc7_nobram"):
        lines.append(f"{FPGA_SYNTH} -top {top} -run :map_dsp")  # begin + prepare: identical for every variant
    elif flow in ASIC_FRONT_FLOWS:
        layer_modules = list(layer_modules)
        if layer_modules:  # synthesised and mapped one layer at a time: a flat large adder graph takes hours
            lines.append(f"setattr -mod -set keep_hierarchy 1 {' '.join(layer_modules)}")
        lines += [f"synth -flatten -top {top}", "opt_clean -purge"]
    elif flow in ECP5_FLOWS:
        lines += nextpnr.front_lines(top, ports, nodsp=flow == "ecp5_nodsp")
    else:
        raise FlowError(f"unknown synthesis flow {flow!r}; expected one of {', '.join(FLOWS)}")
    return "\n".join(lines + [f'write_rtlil "{FRONT_NETLIST}"']) + "\n"


def back_scripts(flow: str, top: str, liberty: Path | None = None) -> dict[str, str]:
    """The back ends of ``flow``, ``{name: script}``: each reads the front netlist and runs as its own process
    (``ecp5``'s is nextpnr's command line: :attr:`Plan.commands` holds what runs)."""
    read = f'read_rtlil "{FRONT_NETLIST}"'
    if flow in ("xc7", "xc7_nodsp", "xc7_nobram"):
        extra = {"xc7": "", "xc7_nodsp": " -nodsp", "xc7_nobram": " -nobram -nolutram"}[flow]
        return {"xc7": f"{read}\n{FPGA_SYNTH}{extra} -top {top} -run map_dsp:\ntee -q -o stat_xc7.json stat -json\n"}
    if flow in ECP5_FLOWS:
        return {nextpnr.BACK_END: nextpnr.command().text}
    if flow == "asic_timing":
        return {asic_timing.BACK_END: asic_timing.back_script(read, liberty) + "\n"} if liberty else {}
    if flow != "asic":
        raise FlowError(f"unknown synthesis flow {flow!r}; expected one of {', '.join(FLOWS)}")
    backs = {}
    if liberty is not None:
        backs["osu018"] = "\n".join(
            [
                read,
                f'dfflibmap -liberty "{liberty}"',
                f'abc -liberty "{liberty}" -script {abc.script_arg(abc.LIBERTY)}',
                "opt_clean -purge",
                "tee -q -o stat_osu018.json stat -json",
                f'tee -q -o stat_osu018.txt stat -liberty "{liberty}"',
            ]
        )
    # The transistor count is that of this generic-gate netlist (the one costed as sky130 HD cells).
    backs["gates"] = "\n".join(
        [
            read,
            f"dfflegalize {_LEGAL_FFS}",
            f"abc -g {_GENERIC_GATES} -script {abc.script_arg(abc.GATES)}",
            "opt_clean -purge",
            "tee -q -o stat_gates.json stat -json -tech cmos",
        ]
    )
    return {k: v + "\n" for k, v in backs.items()}


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
        count = str(block["estimated_num_transistors"])
        out["transistors"] = int(count.rstrip("+"))
        if count.endswith("+"):  # some cell type has no transistor cost: the count is a lower bound
            out["transistors_lower_bound"] = True
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

RESULT_SCHEMA = "2"  # part of every digest: change it when a result's figures are derived differently

# Back ends are queued longest first (diag_05 folded: xc7 back ends 72-79 s, each ASIC mapping ~20 s), fronts
# before any back end, so that two workers finish together.
_BACK_ORDER = {"ecp5": 0, "ecp5_nodsp": 0, "xc7_nodsp": 1, "xc7": 2, "xc7_nobram": 3, "asic": 4, "asic_timing": 5}
_FRONT_ORDER = {"asic": 0, "asic_timing": 0}  # the ASIC front end (full `synth`) is the longest


@dataclass(frozen=True)
class Plan:
    """What one flow will do: its scripts, sources (relative to ``src_dir``) and cache folder."""

    flow: str
    top: str
    src_dir: Path
    sources: tuple[str, ...]
    front: str
    backs: dict[str, str]  # back-end name -> script (:func:`back_scripts`)
    front_key: str  # plans with equal keys share one front-end run
    digest: str
    folder: Path
    yosys: str
    version: str
    commands: dict[str, nextpnr.Command] = field(default_factory=dict)  # back ends run as a command, not by Yosys
    layer_modules: tuple[str, ...] = ()  # the modules an ASIC flow maps one at a time (empty: the design flattened)

    @property
    def hierarchy(self) -> str:
        """How an ASIC flow kept the design's hierarchy, said in its result."""
        return f"per layer ({len(self.layer_modules)} modules)" if self.layer_modules else "flat"

    @property
    def result_path(self) -> Path:
        return self.folder / "result.json"


def plan(
    flow: str,
    src_dir: Path,
    sources: Iterable[str],
    top: str,
    cache: Path | None = None,
    ports: dict | None = None,
    layer_modules: Iterable[str] = (),
) -> Plan:
    """Digest the inputs of one flow; nothing runs and nothing is written yet (``ports``, ``layer_modules``: see
    :func:`front_script`)."""
    src_dir = Path(src_dir)
    layer_modules = tuple(layer_modules) if flow in ASIC_FRONT_FLOWS else ()
    sources = tuple(sources)
    for s in sources:
        if Path(s).is_absolute() or ".." in Path(s).parts:
            raise FlowError(f"{src_dir}: source {s!r} must be relative to its folder")
        if not (src_dir / s).is_file():
            raise FlowError(f"{src_dir / s}: listed in files.txt but missing")
    exe = find_yosys()
    version = yosys_version(exe)
    osu = libs.osu018_liberty() if flow in ASIC_FRONT_FLOWS else None
    liberty = Path(LIBERTY) if osu else None
    front = front_script(flow, list(sources), top, ports, layer_modules)
    backs = back_scripts(flow, top, liberty)
    commands = {nextpnr.BACK_END: nextpnr.command()} if flow in ECP5_FLOWS else {}
    src = hashlib.sha256()
    for s in sources:
        src.update(s.encode() + b"\0" + (src_dir / s).read_bytes() + b"\0")
    front_key = hashlib.sha256(f"{version}\0{front}\0{src.hexdigest()}".encode()).hexdigest()
    h = hashlib.sha256()
    scripts = [front, *(f"# back end {name}\n{text}" for name, text in backs.items())]
    for part in (RESULT_SCHEMA, version, flow, *scripts, src.hexdigest()):
        h.update(part.encode() + b"\0")
    if osu:
        h.update(osu.read_bytes())
    sky = libs.sky130_hd()
    if flow == "asic" and sky:
        h.update(json.dumps(sky.areas, sort_keys=True).encode())
    digest = h.hexdigest()
    folder = Path(cache or yosys_cache_dir()).resolve() / f"{flow}-{digest[:24]}"
    return Plan(
        flow, top, src_dir, sources, front, backs, front_key, digest, folder, exe, version, commands, layer_modules
    )


def _summarise_xc7(work: Path) -> dict:
    stat = parse_stat_json((work / "stat_xc7.json").read_text())
    return {"fpga": fpga_summary(stat["cells"]), "cells": stat["cells"]}


def _summarise_asic(work: Path) -> dict:
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
    out["asic"]["transistors"] = gates.get("transistors")
    if gates.get("transistors_lower_bound"):
        out["asic"]["transistors_lower_bound"] = True
    return out


# flow -> the figures of a finished run folder
_SUMMARISE = {
    "xc7": _summarise_xc7,
    "xc7_nodsp": _summarise_xc7,
    "xc7_nobram": _summarise_xc7,
    "asic": _summarise_asic,
    "asic_timing": asic_timing.summarise,
    "ecp5": nextpnr.summarise,
    "ecp5_nodsp": nextpnr.summarise,
}


def _summarise(p: Plan, work: Path) -> dict:
    return _SUMMARISE[p.flow](work)


_LIVE: set[int] = set()  # process groups of running Yosys processes, killed when a run is interrupted
_LIVE_LOCK = threading.Lock()


def _kill_live() -> None:
    with _LIVE_LOCK:
        for pid in _LIVE:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def _run_yosys(cmd: list[str], cwd: Path, stderr_name: str, timeout_s: float) -> tuple[int | None, float]:
    """Run Yosys in its own process group, dying with this process; (exit code or None on timeout, peak resident
    memory in MB)."""
    with open(cwd / stderr_name, "w") as err:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
            preexec_fn=linux.die_with_parent(),
        )
    with _LIVE_LOCK:
        _LIVE.add(proc.pid)
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
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = round(usage.ru_maxrss / 1024, 1)
    return (None if timed_out.is_set() else proc.returncode), peak_mb


@dataclass
class _Step:
    """One Yosys process: a script run in a folder, and how it went."""

    name: str
    folder: Path
    script: str
    yosys: str
    timeout_s: float
    argv: tuple[str, ...] = ()  # a command to run instead of Yosys (the script is then only its record)
    log: str = ""  # the command's log file (default: Yosys' yosys-<name>.log)
    ran: bool = False  # False: not run, because its front end failed
    returncode: int | None = None  # None: timed out, or Yosys could not be started
    timed_out: bool = False
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    log_tail: str = ""
    label: str = ""  # what the progress lines call it, e.g. "xc7 front end"

    @property
    def ok(self) -> bool:
        return self.ran and self.returncode == 0

    def run(self) -> None:
        from flow.log import info

        self.ran = True
        info(f"Yosys {self.label or self.name}: running")
        try:
            self._run()
        finally:
            info(f"Yosys {self.label or self.name}: {'done' if self.ok else 'FAILED'} in {self.seconds:.0f} s")

    def _run(self) -> None:
        log = self.log or f"yosys-{self.name}.log"
        t0 = time.monotonic()
        try:
            (self.folder / f"{self.name}{'.txt' if self.argv else '.ys'}").write_text(self.script)
            cmd = list(self.argv) or [self.yosys, "-q", "-l", log, "-s", f"{self.name}.ys"]
            self.returncode, self.peak_rss_mb = _run_yosys(cmd, self.folder, f"stderr-{self.name}.txt", self.timeout_s)
        except OSError as exc:  # e.g. out of memory or disk: this step failed, the others go on
            self.returncode, self.log_tail = None, f"could not run Yosys: {exc}"
            return
        finally:
            self.seconds = round(time.monotonic() - t0, 2)
        if self.returncode != 0:
            text = (self.folder / log).read_text(errors="replace") if (self.folder / log).is_file() else ""
            text += "\n" + (self.folder / f"stderr-{self.name}.txt").read_text(errors="replace")
            self.timed_out = self.returncode is None
            if self.timed_out:
                text += f"\ntimed out after {self.timeout_s:.0f} s"
            self.log_tail = "\n".join(text.strip().splitlines()[-15:])


def _schedule(tasks: list[tuple[str, tuple[str, ...], object]], jobs: int) -> None:
    """Run ``(name, needs, fn)`` tasks on ``jobs`` workers: a task starts once the ones it needs are done,
    the earliest-listed ready task first. Interrupted (Ctrl-C), it kills the running Yosys processes."""
    done: set[str] = set()
    started: set[str] = set()
    ex = ThreadPoolExecutor(max_workers=jobs)
    try:
        running: dict = {}
        while len(done) < len(tasks):
            for name, needs, fn in tasks:
                if len(running) >= jobs:
                    break
                if name not in started and all(n in done for n in needs):
                    started.add(name)
                    running[ex.submit(fn)] = name
            if not running:
                raise RuntimeError(f"no task can start: {sorted(set(n for n, _, _ in tasks) - done)}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                done.add(running.pop(f))
                f.result()
    except BaseException:
        _kill_live()
        ex.shutdown(wait=True, cancel_futures=True)
        raise
    ex.shutdown()


def _publish(work: Path, dest: Path) -> None:
    """Move a finished run folder to ``dest``; a result already there (another process's) is kept."""
    try:
        work.rename(dest)
        return
    except OSError:
        pass
    if (dest / "result.json").is_file():  # another process finished the same digest first
        shutil.rmtree(work, ignore_errors=True)
        return
    stale = dest.with_name(f"{dest.name}.stale-{os.getpid()}")  # a folder without a result: an old failed run
    try:
        dest.rename(stale)
        work.rename(dest)
    except OSError:
        shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(stale, ignore_errors=True)


def _finish(p: Plan, work: Path, front: _Step, backs: list[_Step]) -> dict:
    """The result of one plan from its steps: an ok result goes to the cache folder, a failed run's logs to
    ``<cache folder>.failed`` (never a cache hit)."""
    steps = [front, *backs]
    for f in FRONT_FILES:  # links into the front end's temporary folder
        (work / f).unlink(missing_ok=True)
    res: dict = {"flow": p.flow, "top": p.top, "digest": p.digest, "yosys": p.version, "cached": False}
    res["seconds"] = round(sum(s.seconds for s in steps), 2)  # the shared front end counts for every flow
    res["peak_rss_mb"] = max(s.peak_rss_mb for s in steps)
    res["steps"] = {s.name: {"seconds": s.seconds, "peak_rss_mb": s.peak_rss_mb} for s in steps if s.ran}
    failed = next((s for s in steps if not s.ok), None)
    if failed is None:
        try:
            res |= {"status": "ok"} | _summarise(p, work)
            if p.flow in ASIC_FRONT_FLOWS:
                res["hierarchy"] = p.hierarchy
        except (OSError, FlowError) as exc:
            reason = str(exc).replace(f"{work}{os.sep}", "")
            res |= {"status": "failed", "returncode": 0, "step": "parse", "log_tail": f"parsing Yosys output: {reason}"}
    else:
        res |= {"status": "failed", "returncode": failed.returncode, "step": failed.name}
        res["log_tail"] = failed.log_tail or "not run: the front end failed"
        if failed.timed_out:
            res["timed_out_s"] = failed.timeout_s
            placed = _placement_estimate(p, failed)
            if placed:
                res["ecp5_placed"] = placed
            write_json(_timeout_path(p), res)
    if res["status"] == "ok":
        (work / "result.json").write_text(json.dumps(res, indent=1) + "\n")
        _publish(work, p.folder)
        return res
    for f in ("yosys-front.log", "stderr-front.txt"):  # the shared front end's log, next to the rest
        if (front.folder / f).is_file() and front.folder != work:
            shutil.copyfile(front.folder / f, work / f)
    logs = p.folder.with_name(p.folder.name + ".failed")
    shutil.rmtree(logs, ignore_errors=True)
    try:
        work.rename(logs)
        res["logs"] = str(logs)
    except OSError:  # another process's failure of the same digest is there: that one says the same
        shutil.rmtree(work, ignore_errors=True)
    return res


def _placement_estimate(p: Plan, step: _Step) -> dict | None:
    """An ECP5 run stopped while routing: nextpnr's post-placement timing from its log (None otherwise)."""
    if p.flow not in ECP5_FLOWS or step.name != nextpnr.BACK_END:
        return None
    log = step.folder / (step.log or nextpnr.LOG)
    return nextpnr.placement_estimate(log.read_text(errors="replace")) if log.is_file() else None


def _cached(p: Plan, timeout_s: float) -> dict | None:
    """The plan's result from an earlier run: its published result, or a timeout at a limit >= ``timeout_s``
    (a run known to need longer is not started again until the limit is raised)."""
    for path in (p.result_path, _timeout_path(p)):
        try:
            res = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if res.get("status") == "ok" or res.get("timed_out_s", 0) >= timeout_s:
            return res | {"cached": True}
    return None


def _timeout_path(p: Plan) -> Path:
    """Beside the result folder: this plan timed out, and at which limit."""
    return p.folder.with_name(p.folder.name + ".timeout.json")


def _link_front_files(front: Path, work: Path) -> None:
    for f in FRONT_FILES:
        if (front / f).is_file():
            (work / f).unlink(missing_ok=True)
            os.link(front / f, work / f)


def _back_step(p: Plan, name: str, work: Path, timeout_s: float) -> _Step:
    if name in p.commands:
        cmd = p.commands[name]
        return _Step(name, work, cmd.text, p.yosys, timeout_s, argv=cmd.argv, log=cmd.log, label=f"{p.flow}/{name}")
    return _Step(name, work, p.backs[name], p.yosys, timeout_s, label=f"{p.flow}/{name}")


def run_all(plans: list[Plan], jobs: int | None = None, timeout_s: float | None = None) -> list[dict]:
    """Run plans (or return their cached results); one front-end run per distinct front end, then every back end
    as its own process, at most ``jobs`` Yosys processes at a time (default: one per core, at most 2).

    Never raises for a failed synthesis: each result's ``status`` says.
    """
    jobs = jobs if jobs is not None else min(2, os.cpu_count() or 1)
    if jobs < 1:
        raise FlowError(f"jobs={jobs} is not allowed; expected an integer >= 1")
    timeout_s = timeout_s or DEFAULT_TIMEOUT_S
    for root in {p.folder.parent for p in plans}:
        scratch.remove_dead(root, RUN_PREFIX)  # left by a killed run (its Yosys processes died with it)
    results: list[dict | None] = [_cached(p, timeout_s) for p in plans]
    todo = [i for i, r in enumerate(results) if r is None]
    if not todo:
        return results  # type: ignore[return-value]
    root = plans[todo[0]].folder.parent
    # Everything is built inside one temporary folder in the cache (same file system: publishing is a rename),
    # removed whatever happens; its name carries this process' id.
    tmp = scratch.make(root, RUN_PREFIX)
    try:
        _run_in(plans, todo, results, tmp, jobs, timeout_s)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results  # type: ignore[return-value]


RUN_PREFIX = ".run-"


def _run_in(
    plans: list[Plan], todo: list[int], results: list[dict | None], tmp: Path, jobs: int, timeout_s: float
) -> None:
    """The uncached plans ``todo``, built inside ``tmp``; their results into ``results``."""
    fronts: dict[str, _Step] = {}
    works: dict[int, tuple[Path, list[_Step]]] = {}
    for i in sorted(todo, key=lambda i: _FRONT_ORDER.get(plans[i].flow, 9)):
        p = plans[i]
        if p.front_key not in fronts:
            folder = Path(tempfile.mkdtemp(prefix="front-", dir=tmp))
            for s in p.sources:
                (folder / s).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p.src_dir / s, folder / s)
            fronts[p.front_key] = _Step("front", folder, p.front, p.yosys, timeout_s, label=f"{p.flow} front end")
    for i in todo:
        p = plans[i]
        work = Path(tempfile.mkdtemp(prefix=f"{p.flow}-", dir=tmp))
        if {"osu018", asic_timing.BACK_END} & p.backs.keys():
            shutil.copyfile(libs.osu018_liberty(), work / LIBERTY)
        (work / "sources.txt").write_text("\n".join(p.sources) + "\n")
        (work / "front.ys").write_text(p.front)  # with sources.txt: enough to redo the run by hand
        for f in FRONT_FILES:  # written by the front end (front.json only by ecp5's)
            (work / f).symlink_to(fronts[p.front_key].folder / f)
        works[i] = (work, [_back_step(p, name, work, timeout_s) for name in p.backs])

    def back(front: _Step, step: _Step) -> object:
        def go() -> None:
            if front.ok:
                if step.argv:  # a WebAssembly tool (WASI) follows no symlink: hard-link the front's files in
                    _link_front_files(front.folder, step.folder)
                step.run()

        return go

    tasks: list = [(f"front:{k}", (), f.run) for k, f in fronts.items()]
    for i in sorted(todo, key=lambda i: _BACK_ORDER.get(plans[i].flow, 9)):
        key = plans[i].front_key
        tasks += [(f"{i}:{s.name}", (f"front:{key}",), back(fronts[key], s)) for s in works[i][1]]
    _schedule(tasks, jobs)
    for i in todo:
        work, backs = works[i]
        results[i] = _finish(plans[i], work, fronts[plans[i].front_key], backs)


def run(p: Plan, timeout_s: float | None = None) -> dict:
    """Run one plan (or return its cached result)."""
    return run_all([p], 1, timeout_s)[0]


def read_files_txt(rtl_dir: Path) -> list[str]:
    """The compile-order source list of a generated RTL folder."""
    f = Path(rtl_dir) / "files.txt"
    if not f.is_file():
        raise FlowError(f"{f}: missing; run `make sim` first")
    return [ln.strip() for ln in f.read_text().splitlines() if ln.strip() and not ln.strip().startswith("#")]


def cost_rtl(
    rtl_dir: Path,
    flows: Iterable[str] = ("asic", "xc7", "xc7_nodsp"),
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
    layers = design.get("layer_modules", ())
    plans = [plan(f, rtl_dir, sources, top, cache, design.get("ports"), layers) for f in flows]
    # A design already known not to fit the ECP5's DSPs goes straight to the LUT-only mapping.
    nodsp = {i for i, p in enumerate(plans) if p.flow == "ecp5" and _overflow_mark(p).is_file()}
    for i in nodsp:
        plans[i] = plan("ecp5_nodsp", rtl_dir, sources, top, cache, design.get("ports"))
    results = run_all(plans, jobs, timeout_s)
    for i, (p, r) in enumerate(zip(plans, results)):
        if p.flow == "ecp5" and r.get("status") == "failed" and nextpnr.DSP_OVERFLOW in (r.get("log_tail") or ""):
            _overflow_mark(p).parent.mkdir(parents=True, exist_ok=True)
            _overflow_mark(p).write_text(r["log_tail"][-2000:])
            nodsp.add(i)
            results[i] = run(plan("ecp5_nodsp", rtl_dir, sources, top, cache, design.get("ports")), timeout_s)
    for i in nodsp:
        results[i] = dict(results[i]) | {"dsp_fallback": nextpnr.DSP_FALLBACK_NOTE}
    return dict(zip(flows, results))


def _overflow_mark(p: Plan) -> Path:
    """Beside the ``ecp5`` result folder: this netlist needs more MULT18X18D than the device has."""
    return p.folder.with_name(p.folder.name + ".dsp-overflow")
