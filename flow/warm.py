"""Nothing redone when nothing changed: each stage's inputs as one digest, recorded with its outputs.

- `flow hls`: the card as the project keeps it (or the user's model file and input bits), the dataset's
  fingerprint (which hashes a user's data file), the seed and whether vendor synthesis was asked for; recorded
  in the project's marker.
- `flow verify`: the IR, the trained model, the test set, the vector count and seed; recorded in verify.json.
- `flow sim`: the IR, the architecture and its knobs, the simulator, the vectors and the seed; recorded in that
  run's sim.json entry, with the digest of the design it simulated.

Every digest also covers the versions of the tools (Python, TensorFlow, QKeras, hls4ml, da4ml, NumPy, cocotb,
Verilator, g++) and qflow's own source. The checks read only small files, never TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

from flow.errors import FlowError
from flow.log import info
from flow.project import MARKER, Project, read_json

HLS_FIELD = "hls_inputs_sha256"  # the marker field
FIELD = "inputs_sha256"  # the field of a later stage's summary (verify.json)
TOOL_PACKAGES = ("tensorflow", "qkeras", "hls4ml", "da4ml", "numpy", "keras", "cocotb", "verilator")
CODE_ROOTS = (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent / "tb")  # flow/, tb/


@cache
def tool_versions() -> dict[str, str]:
    """The versions of everything that trains, converts and compiles the C simulation."""
    out = {"python": platform.python_version()}
    for pkg in TOOL_PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    gxx = shutil.which("g++")
    if gxx:
        r = subprocess.run([gxx, "--version"], capture_output=True, text=True, timeout=60)
        out["g++"] = (r.stdout.splitlines() or ["?"])[0]
    return out


@cache
def code_digest() -> str:
    """sha256 of qflow's own source (Python, fixed Verilog, the testbench): a changed qflow redoes the work."""
    h = hashlib.sha256()
    for root in (r for r in CODE_ROOTS if r.is_dir()):
        for f in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".v", ".h") and p.is_file()):
            h.update(f"{root.name}/{f.relative_to(root)}".encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def file_digest(path: Path) -> str:
    """sha256 of one file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def inputs_digest(**inputs: object) -> str:
    """The digest of one stage run's ``inputs``, with the tool versions and qflow's source."""
    payload = {"inputs": inputs, "tools": tool_versions(), "code": code_digest()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def hls_digest(source_fields: dict, data_fingerprint: str, *, synth: bool) -> str:
    """The digest of one `flow hls` run's inputs (``source_fields``: the card copy, or the user model's)."""
    return inputs_digest(source=source_fields, data=data_fingerprint, synth=bool(synth))


def hls_up_to_date(project: Project, inputs_sha256: str, outputs: tuple[str, ...]) -> bool:
    """Whether ``project`` was built from exactly these inputs and still holds every output of that build."""
    marker = project.root / MARKER
    if project.root.is_symlink() or not marker.is_file():
        return False
    try:
        recorded = read_json(marker)
        if recorded.get(HLS_FIELD) != inputs_sha256:
            return False
        if not all((project.root / name).exists() for name in outputs):
            return False
        project.load_ir()  # refuses an ir.json that is not the one this build wrote
    except (FlowError, OSError, ValueError):  # anything unreadable or foreign means: build again
        return False
    say_up_to_date(project.name, "hls", inputs_sha256)
    return True


def say_up_to_date(name: str, stage: str, inputs_sha256: str) -> None:
    """The one line a stage prints when it has nothing to redo."""
    info(f"{name}: {stage} up to date (inputs {inputs_sha256[:12]} unchanged); nothing to redo (--force redoes it)")
