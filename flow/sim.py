"""The ``flow sim`` stage: generate Verilog, run the cocotb testbench (``flow.tb``) in Icarus or Verilator.

:func:`simulate` launches the testbench on one design folder with ``cocotb_tools.runner`` (one build folder per
design and simulator; settings in ``tb_config.json``, results in ``tb_result.json`` next to it).
:func:`run_stage` is the whole stage for a model in ``hls_projects/<m>/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import io
import json
import logging
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import yaml

from flow import log, warm
from flow.errors import FlowError, ToolError
from flow.project import Project, check_same_ir, read_json, read_npz, write_json, write_npz
from flow.rtl import NO_CARD_ARCH, Design, generate, get_arch, rate_knobs, user_knobs
from flow.tools import Tool, find_tool

TB_PACKAGE = "flow.tb"  # the testbench ships inside the package: an installed qflow runs `flow sim` too
TB_MODULE = f"{TB_PACKAGE}.qflow_tb"
PACKAGE_PARENT = Path(__file__).resolve().parent.parent  # where the simulator's Python finds the flow package
SIMULATORS = ("icarus", "verilator")


@dataclass
class SimResult:
    """What one testbench run measured."""

    simulator: str
    simulator_version: str
    architecture: str
    vectors: int
    mismatches: int
    latency_cycles: int | None
    ii_cycles: int | None
    build_seconds: float
    run_seconds: float
    samples_per_second: float | None
    passed: bool
    junit: str
    error: str
    driver: str = "harness"
    cycles: int | None = None
    cpu_seconds: float | None = None  # the simulator process' CPU time over the run (the machine's load aside)
    build_cpu_seconds: float | None = None  # the build's processes' CPU time (compilers, make, Verilator)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _runner(sim: str, public_flat: bool = False):
    """A cocotb runner whose simulator comes from :mod:`flow.tools` (not whatever is first on PATH).

    ``public_flat``: Verilator keeps cocotb's ``--public-flat-rw`` (a design that is the top level needs it).
    """
    from cocotb_tools import runner as cr

    if sim == "icarus":
        tools = [find_tool("iverilog"), find_tool("vvp")]
        base = cr.Icarus
    elif sim == "verilator":
        tools = [find_tool("verilator")]
        base = cr.Verilator
    else:
        raise FlowError(f"unknown simulator {sim!r} (choose from: {', '.join(SIMULATORS)})")

    class _Runner(base):  # type: ignore[misc, valid-type]
        def _simulator_in_path(self) -> None:
            return

        def _simulator_in_path_build_only(self) -> None:
            self.executable = str(tools[0].path)

        def _build_command(self):
            cmds = super()._build_command()
            if sim == "verilator":
                # Only the harness' tb_*/h_* variables are public (metacomments): --public-flat-rw on the whole
                # design makes Verilator re-evaluate all of its logic on every evaluation.
                cmds[0] = [a for a in cmds[0] if a != "--public-flat-rw" or public_flat]
                # The PyPI package's verilated.mk lacks GCC's "-include" for precompiled headers, which split
                # (parallel) builds of larger designs need.
                cmds[-1] = [*cmds[-1], "CFG_CXXFLAGS_PCH_I=-include", *VERILATOR_MAKE]
                restore = _restore_runtime_command(tools[0], self.build_dir)
                if restore:
                    cmds.insert(1, restore)
            return cmds

        def _set_env_common(self) -> None:
            super()._set_env_common()
            for tool in tools:
                self.env.update(tool.env)
                self.env["PATH"] = os.pathsep.join([str(tool.path.parent), self.env["PATH"]])
            self.env["PYTHONPATH"] = os.pathsep.join([str(PACKAGE_PARENT), self.env.get("PYTHONPATH", "")])

    return _Runner(), tools[0]


# Verilator's runtime objects do not depend on the design: compiled once (~25 s of CPU), then copied in.
_RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_threads", "verilated_dpi")


def _runtime_cache(tool: Tool) -> Path:
    root = Path(os.environ.get("QFLOW_CACHE") or Path.home() / ".cache" / "qflow")
    return root / f"verilator-{tool.version}-runtime"


def _restore_runtime_command(tool: Tool, build_dir: Path) -> list[str]:
    """A ``cp`` of the cached runtime objects into the build (run after Verilator rewrites Vtop.mk, which they
    depend on in make), or nothing when the cache is empty."""
    cache = _runtime_cache(tool)
    files = [cache / f"{o}{ext}" for o in _RUNTIME_OBJECTS for ext in (".o", ".d")]
    if not all(f.exists() for f in files):
        return []
    return ["cp", *map(str, files), str(build_dir)]


def _save_runtime(tool: Tool, build_dir: Path) -> None:
    cache = _runtime_cache(tool)
    if cache.exists() or not all((build_dir / f"{o}.o").exists() for o in _RUNTIME_OBJECTS):
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.", dir=cache.parent))
    for o in _RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (build_dir / f"{o}{ext}").exists():
                shutil.copyfile(build_dir / f"{o}{ext}", tmp / f"{o}{ext}")
    try:
        tmp.rename(cache)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)


HARNESS = Path(str(importlib.resources.files(TB_PACKAGE) / "qflow_harness.v"))
HARNESS_TOP = "qflow_tb_harness"
BANK_BITS = 65536  # bits per harness bank port (Verilator's default --max-num-width)
# The harness' clock cycles between two wake-ups of the testbench: each wake-up costs Python ~1 ms (diag-sized
# folded: 16,384 gave ~10 % fewer samples per CPU second than this).
BURST_CYCLES = 131072
# Verilator: an optimised model, X handled the fast way (every design resets what it reads), C++ split into
# files so make compiles them in parallel; no --timing (the harness' clock takes no simulated time), and
# enough evaluation rounds in one time step for a burst of the harness' clock (3 rounds a cycle).
VERILATOR_FAST = [
    *("-Wno-fatal", "-O3", "--x-assign", "fast", "--x-initial", "fast", "--output-split", "20000"),
    *("--converge-limit", str(4 * BURST_CYCLES)),
]
# ... and its functions split too: g++'s RTL combiner is superlinear in a function's size, and a large flat
# design (the jet-sized shiftadd adder graph) is otherwise a few 12,000-line functions, 90 % of its -O2 time
# spent combining (1,000 and 200 statements compile equally fast; 100 is slower: benchmarks/bench_sim.py).
VERILATOR_SPLIT_FUNCS = ["--output-split-cfuncs", "1000"]
# The C++ compiler's optimisation of the model: verilated.mk's -Os runs the diag-sized design at half the speed
# of -O2 (-O3 is no faster and compiles longer).
VERILATOR_MAKE = ["OPT_FAST=-O2"]


@dataclass(frozen=True)
class Driver:
    """A way to drive a design: the cocotb test module, and whether the design runs inside the HDL harness."""

    module: str
    in_harness: bool


DRIVERS = {
    # Per-cycle work in HDL (flow/tb/qflow_harness.v, its own zero-time clock); Python fills and drains banks.
    "harness": Driver(TB_MODULE, True),
    # Python drives the design's ports every clock with a cocotb clock: the old path, kept to compare against.
    "clock": Driver(f"{TB_PACKAGE}.qflow_tb_clock", False),
}
DEFAULT_DRIVER = "harness"


@dataclass(frozen=True)
class Harness:
    """How ``flow/tb/qflow_harness.v`` wraps a design: its parameters and defines (set at build time)."""

    parameters: dict[str, int]
    defines: dict[str, str]

    @classmethod
    def for_design(cls, design: Design) -> Harness:
        """Bank sizes and widths from the design's ports (``in_last`` present: streaming input)."""
        ports = design.ports
        din, dout = ports["in_data"], ports["out_data"]
        beats = int(din.get("beats", 1))
        stride = -(-beats * din["width"] // 8) * 8
        cls_w = ports["out_class"]["width"]
        entry = -(-(64 + cls_w + dout["width"]) // 8) * 8
        in_flight = (design.latency_cycles_expected or 0) + 8
        params = {
            "BEAT_W": din["width"],
            "BEATS": beats,
            "STRIDE": stride,
            "OUT_W": dout["width"],
            "CLS_W": cls_w,
            "E_W": entry,
            "K_IN": max(1, min(4096, BANK_BITS // stride)),
            "K_OUT": max(1, min(4096, BANK_BITS // entry)),
            "FIFO_AW": max(4, in_flight.bit_length()),
            "BURST": BURST_CYCLES,
        }
        defines = {"QFLOW_DUT": design.top, **({"QFLOW_STREAM": "1"} if "in_last" in ports else {})}
        return cls(params, defines)


def _digest(design: Design, harness: Harness, build_args: list[str]) -> str:
    """The build's cache key: the design's sources, the harness and everything passed to the simulator."""
    h = hashlib.sha256()
    for path in [*design.sources, HARNESS]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    h.update(json.dumps([harness.parameters, harness.defines, build_args], sort_keys=True).encode())
    return h.hexdigest()


def _quiet_run(fn, log_path: Path, **kwargs):
    """Run a cocotb runner step with its output in ``log_path``; a ToolError quoting the log's tail on failure."""
    # cocotb's runners log every command under their class' qualified name (ours is a subclass).
    runner = getattr(fn, "__self__", None)
    if runner is not None:
        logging.getLogger(type(runner).__qualname__).setLevel(logging.WARNING)
    log_path.unlink(missing_ok=True)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return fn(log_file=log_path, **kwargs)
    except (RuntimeError, SystemExit) as exc:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-15:] if log_path.exists() else []
        if fn.__name__ == "build":
            raise ToolError(f"simulator build failed ({exc}); log {log_path}:\n" + "\n".join(tail)) from None
        return None


def _get_driver(name: str) -> Driver:
    if name not in DRIVERS:
        raise FlowError(f"unknown testbench driver {name!r} (choose from: {', '.join(DRIVERS)})")
    return DRIVERS[name]


def simulate(
    design: Design,
    vectors: Path,
    sim: str,
    work_dir: Path,
    *,
    n: int | None = None,
    seed: int = 1,
    gap_prob: float = 0.2,
    max_gap: int = 3,
    ready_prob: float = 0.7,
    timeout_cycles: int | None = None,
    driver: str = DEFAULT_DRIVER,
    verilator_args: list[str] | None = None,
) -> SimResult:
    """Run the testbench on ``design`` with ``vectors`` (npz) in ``sim``; build once per design in ``work_dir``.

    ``verilator_args``: Verilator's options (default ``VERILATOR_FAST`` and ``VERILATOR_SPLIT_FUNCS``).
    """
    drive = _get_driver(driver)
    runner, tool = _runner(sim, public_flat=not drive.in_harness)
    work_dir = Path(work_dir).resolve()
    tag = sim if driver == DEFAULT_DRIVER else f"{sim}_{driver}"  # file names: one set per simulator and driver
    build_dir = work_dir / f"build_{tag}"
    stamp = build_dir / "qflow_sources.sha256"
    harness = Harness.for_design(design)
    ports = design.ports
    if drive.in_harness:
        top, sources = HARNESS_TOP, [*design.sources, HARNESS]
        parameters, defines = harness.parameters, harness.defines
        widest = harness.parameters["K_IN"] * harness.parameters["STRIDE"]
    else:
        top, sources, parameters, defines = design.top, list(design.sources), {}, {}
        widest = max(ports["in_data"]["width"], ports["out_data"]["width"])
    if verilator_args is None:
        verilator_args = [*VERILATOR_FAST, *VERILATOR_SPLIT_FUNCS]
    build_args = [*verilator_args, "--max-num-width", str(max(widest, BANK_BITS))] if sim == "verilator" else []
    digest = _digest(design, harness, [driver, *build_args, *(VERILATOR_MAKE if sim == "verilator" else [])])
    if build_dir.exists() and (not stamp.exists() or stamp.read_text() != digest):
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    data = read_npz(vectors, ("inputs",))
    total = int(data["inputs"].shape[0])
    n = total if n is None else min(n, total)
    if n < 1:
        raise FlowError(f"{vectors}: no vectors")
    t0 = time.perf_counter()
    cpu0 = _children_cpu_seconds()
    if not stamp.exists():
        _quiet_run(
            runner.build,
            build_dir / "build.log",
            sources=sources,
            hdl_toplevel=top,
            build_dir=build_dir,
            timescale=("1ns", "1ps"),
            build_args=build_args,
            parameters=parameters,
            defines=defines,
        )
        stamp.write_text(digest)
        if sim == "verilator":
            _save_runtime(tool, build_dir)
    build_seconds = time.perf_counter() - t0
    build_cpu_seconds = _children_cpu_seconds() - cpu0
    latency = design.latency_cycles_expected or 0
    cfg = {
        "vectors": str(Path(vectors).resolve()),
        "n": n,
        "seed": seed,
        "gap_prob": gap_prob,
        "max_gap": max_gap,
        "ready_prob": ready_prob,
        "n_in": ports["in_data"].get("sample_elements", ports["in_data"]["elements"]),
        "in_width": ports["in_data"]["element_width"],
        "in_beat": ports["in_data"]["elements"],
        "beats": harness.parameters["BEATS"],
        "stride": harness.parameters["STRIDE"],
        "entry_width": harness.parameters["E_W"],
        "k_in": harness.parameters["K_IN"],
        "k_out": harness.parameters["K_OUT"],
        "burst_cycles": BURST_CYCLES,
        "class_width": ports["out_class"]["width"],
        "n_out": ports["out_data"]["elements"],
        "out_width": ports["out_data"]["element_width"],
        "out_signed": not ports["out_data"]["type"].startswith("u"),
        "latency_expected": latency,
        "timeout_cycles": timeout_cycles or max(10_000, 20 * (latency + design.ii_cycles)),
        "result": str(work_dir / f"tb_result_{tag}.json"),
    }
    cfg_path = work_dir / f"tb_config_{tag}.json"
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    result_path = Path(cfg["result"])
    result_path.unlink(missing_ok=True)
    junit = work_dir / f"results_{tag}.xml"
    sim_log = work_dir / f"sim_{tag}.log"
    t1 = time.perf_counter()
    _quiet_run(
        runner.test,
        sim_log,
        test_module=drive.module,
        hdl_toplevel=top,
        hdl_toplevel_lang="verilog",
        build_dir=build_dir,
        test_dir=work_dir,
        results_xml=str(junit),
        extra_env={"QFLOW_TB_CONFIG": str(cfg_path)},
        seed=seed,
    )
    run_seconds = time.perf_counter() - t1
    if not result_path.exists():
        tail = sim_log.read_text(errors="replace").strip().splitlines()[-15:]
        raise ToolError(f"{sim}: the testbench wrote no result; log {sim_log}:\n" + "\n".join(tail))
    res = json.loads(result_path.read_text())
    return SimResult(
        simulator=sim,
        simulator_version=tool.version,
        architecture=design.arch,
        vectors=n,
        mismatches=res["mismatches"],
        latency_cycles=res["latency_cycles"],
        ii_cycles=res["ii_cycles"],
        build_seconds=round(build_seconds, 3),
        build_cpu_seconds=round(build_cpu_seconds, 3),
        run_seconds=round(run_seconds, 3),
        samples_per_second=res["samples_per_second"],
        passed=not res["error"] and res["mismatches"] == 0,
        junit=str(junit),
        error=res["error"],
        driver=driver,
        cycles=res.get("cycles"),
        cpu_seconds=res.get("cpu_seconds"),
    )


def _children_cpu_seconds() -> float:
    """User + system CPU time of this process' finished children (the build's tools)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def parse_reuse(items: list[str] | None) -> dict[str, int]:
    """``["fc1=1023", ...]`` to a dict; a FlowError on bad syntax."""
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value.strip().isdigit():
            raise FlowError(f"--reuse {item!r}: expected LAYER=R, e.g. fc1=1023")
        out[name.strip()] = int(value)
    return out


def select_vectors(data: dict, n: int) -> np.ndarray:
    """Indices of ``n`` vectors, a deterministic mix: corners first (up to 10 %), then test and random alternating."""
    total = int(np.asarray(data["inputs"]).shape[0])
    if "kind" not in data:
        return np.arange(min(n, total))
    kind = np.asarray(data["kind"]).astype(str)
    corner = np.flatnonzero(kind == "corner")[: max(1, n // 10)]
    pools = [np.flatnonzero(kind == k) for k in ("test", "random")]
    pools.append(np.flatnonzero(~np.isin(kind, ["corner", "test", "random"])))
    picked = list(corner[:n])
    pos = [0, 0, 0]
    while len(picked) < n and any(p < len(pool) for p, pool in zip(pos, pools)):
        for k, pool in enumerate(pools):
            if len(picked) < n and pos[k] < len(pool):
                picked.append(int(pool[pos[k]]))
                pos[k] += 1
    return np.sort(np.asarray(picked, dtype=np.int64))


def _project_card(project: Project) -> dict:
    """The project's copy of its card as data (empty without a card: a user's model)."""
    card = yaml.safe_load(project.card.read_text()) if project.card.is_file() else {}
    return card if isinstance(card, dict) else {}


def _card_rate(card: dict, ir) -> tuple[float, float | None]:
    """The clock period (as hls4ml applied it) and the sample rate the card asks for."""
    from flow.timing import card_clock

    clock = card_clock(card, ir.hardware)
    return clock.period_ns, clock.rate_mhz


def _card_knobs(card: dict, arch: str, where: Path) -> dict:
    """The knobs the card sets for ``arch`` (``hardware.knobs.<arch>``); ``where`` names the card in errors."""
    hw = card.get("hardware")
    given = (hw.get("knobs") or {}).get(arch) if isinstance(hw, dict) else None
    if not given:
        return {}
    try:
        return user_knobs(arch, given)
    except FlowError as exc:
        raise FlowError(f"{where}: hardware.knobs.{arch}: {exc}") from None


def _check_verified(project: Project, digest: str) -> None:
    """The RTL is tested only against a reference that `verify` proved equal to the C simulation, for this IR."""
    rerun = f"make verify MODEL={project.name}"
    summary = read_json(project.require(project.verify_json, "verify"))
    summary = summary if isinstance(summary, dict) else {}
    check_same_ir(project.verify_json, summary.get("ir_sha256"), digest, rerun)
    if summary.get("passed") is not True:
        raise FlowError(
            f"{project.verify_json}: verify failed for this IR ({summary.get('mismatches')} mismatches); the RTL is "
            f"simulated only against a verified reference: fix the cause and run `{rerun}`"
        )


def _simulated(project: Project, sim_json: Path, key: str, inputs: str) -> SimResult | None:
    """The recorded passed run ``key`` of exactly these inputs, if its design folder is still there."""
    try:
        record = read_json(sim_json).get(key) if sim_json.is_file() else None
    except (FlowError, AttributeError):
        return None
    arch = key.split("/")[0]
    if not isinstance(record, dict) or record.get(warm.FIELD) != inputs or record.get("passed") is not True:
        return None
    design_json = project.rtl / arch / "design.json"
    if not design_json.is_file() or warm.file_digest(design_json) != record.get("design_sha256"):
        return None  # the folder was generated again since (other knobs), or removed
    names = {f.name for f in fields(SimResult)}
    return SimResult(**{k: v for k, v in record.items() if k in names} | {"junit": str(project.root / record["junit"])})


def run_stage(
    model: str,
    sim: str = "verilator",
    arch: str = NO_CARD_ARCH,
    n: int = 2000,
    reuse: dict[str, int] | None = None,
    projects_dir: Path | None = None,
    seed: int = 1,
    in_beat: int | None = None,
    force: bool = False,
    driver: str = DEFAULT_DRIVER,
    knob_args: dict | None = None,
) -> SimResult:
    """``flow sim``: Verilog into ``rtl/<arch>/``, the testbench on ``n`` vectors, the result into ``sim.json``.

    Knobs, later ones winning: the card's reuse factors and rate, its ``hardware.knobs.<arch>``, ``knob_args``.

    A passed run of the same inputs (:mod:`flow.warm`) whose design folder is still there is not redone.
    """
    if sim not in SIMULATORS:
        raise FlowError(f"unknown simulator {sim!r} (choose from: {', '.join(SIMULATORS)})")
    _get_driver(driver)
    project = Project.of(model, projects_dir)
    project.check_owned()
    ir = project.load_ir()
    digest = ir.digest()
    _check_verified(project, digest)
    vectors_path = project.require(project.vectors, "verify")
    data = read_npz(vectors_path, ("inputs", "outputs"))
    check_same_ir(vectors_path, str(data.get("ir_sha256", "")), digest, f"make verify MODEL={model}")
    knobs = get_arch(arch).card_knobs(ir.reuse_factors(), reuse)
    card = _project_card(project)
    knobs |= rate_knobs(arch, ir, *_card_rate(card, ir))
    knobs |= _card_knobs(card, arch, project.card) | user_knobs(arch, knob_args or {})
    if in_beat is not None:
        knobs["in_beat"] = in_beat  # the generator says which architectures take it
    sim_json = project.root / "sim.json"
    key = f"{arch}/{sim}"
    inputs = warm.inputs_digest(
        ir=digest,
        arch=arch,
        knobs=knobs,
        sim=sim,
        n=n,
        seed=seed,
        vectors=warm.file_digest(vectors_path),
        driver=driver,
    )
    done = _simulated(project, sim_json, key, inputs)
    if done is not None and not force:
        warm.say_up_to_date(model, f"sim {key}", inputs)
        return done
    design = generate(ir, arch, project.rtl / arch, **knobs)
    log.info(f"{model}: {arch} Verilog in {design.out_dir} (top {design.top}, {design.knobs})")
    work = project.root / "sim" / arch
    work.mkdir(parents=True, exist_ok=True)
    idx = select_vectors(data, n)
    subset = work / "vectors.npz"
    rows = len(data["inputs"])
    write_npz(subset, **{k: v[idx] for k, v in data.items() if getattr(v, "ndim", 0) >= 1 and len(v) == rows})
    log.info(f"{model}: {sim} on {len(idx)} vectors (progress in {work / f'sim_{sim}.log'})")
    result = simulate(design, subset, sim, work, seed=seed, driver=driver)
    record = result.to_dict()
    record["junit"] = str(Path(result.junit).relative_to(project.root))
    record["ir_sha256"] = digest
    record[warm.FIELD] = inputs
    record["design_sha256"] = warm.file_digest(design.out_dir / "design.json")
    existing = read_json(sim_json) if sim_json.exists() else {}
    # Entries of another IR describe hardware that is no longer this project's.
    existing = {k: v for k, v in existing.items() if isinstance(v, dict) and v.get("ir_sha256") == digest}
    existing[key] = record
    write_json(sim_json, existing)
    return result
