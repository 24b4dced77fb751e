"""The layout of ``hls_projects/<model>/`` and atomic writes into it (layout: hls_projects/README.md)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flow.errors import FlowError

PROJECTS_DIR = Path(os.environ.get("QFLOW_PROJECTS", Path(__file__).resolve().parent.parent / "hls_projects"))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_name(name: str) -> str:
    """A project name, or a one-line error: it becomes a folder under the projects folder, never a path."""
    if not _NAME.fullmatch(str(name)) or ".." in str(name):
        raise FlowError(
            f"project name {name!r} is not allowed; expected letters, digits, '_', '-' and '.' (a name, not a path)"
        )
    return str(name)


@dataclass(frozen=True)
class Project:
    """Paths of one model's generated outputs; each stage reads only what earlier stages wrote."""

    name: str
    root: Path

    @classmethod
    def of(cls, name: str, projects_dir: Path | None = None) -> Project:
        parent = Path(projects_dir or PROJECTS_DIR)
        if parent.exists() and not parent.is_dir():
            raise FlowError(f"{parent}: the projects folder (QFLOW_PROJECTS) is a file; expected a folder")
        return cls(name, parent / check_name(name))

    card = property(lambda self: self.root / "card.yaml")
    data = property(lambda self: self.root / "data.npz")
    keras = property(lambda self: self.root / "model.h5")
    train_json = property(lambda self: self.root / "train.json")
    hls = property(lambda self: self.root / "hls")
    csim_json = property(lambda self: self.root / "csim.json")
    ir_json = property(lambda self: self.root / "ir.json")
    verify_json = property(lambda self: self.root / "verify.json")
    vectors = property(lambda self: self.root / "vectors.npz")
    rtl = property(lambda self: self.root / "rtl")
    report = property(lambda self: self.root / "report")
    search = property(lambda self: self.root / "search")

    def require(self, path: Path, make_target: str) -> Path:
        """``path`` or a one-line error naming the target that writes it."""
        if not path.exists():
            raise FlowError(f"{path}: missing; run `make {make_target} MODEL={self.name}` first")
        return path


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    """Read JSON, with a one-line error when it is missing or broken."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FlowError(f"{path}: missing") from None
    except json.JSONDecodeError as exc:
        raise FlowError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_npz(
    path: Path,
    names: tuple[str, ...] = (),
    *,
    shown: str | None = None,
    hint: str = "run the stage that writes it again",
) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (no pickles), with a one-line error naming ``shown`` (default: the path) when it
    is missing, broken or lacks ``names``."""
    shown = shown or str(path)
    tail = f"; {hint}" if hint else ""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise FlowError(f"{shown}: missing{tail}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise FlowError(f"{shown}: not a readable .npz file ({reason}){tail}") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise FlowError(f"{shown}: missing {', '.join(missing)}{tail}")
    return arrays


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write an ``.npz`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


@contextlib.contextmanager
def atomic_dir(final: Path) -> Iterator[Path]:
    """Build a folder in a temporary sibling; on success it replaces ``final``, on failure ``final`` is untouched."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)
