"""The layout of ``hls_projects/<model>/`` and atomic writes into it (layout: hls_projects/README.md)."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flow import __version__, linux, scratch
from flow.errors import FlowError

PROJECTS_DIR = Path(os.environ.get("QFLOW_PROJECTS", Path(__file__).resolve().parent.parent / "hls_projects"))
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MARKER = ".qflow-project"  # written into every project folder qflow creates; qflow writes only into marked folders
LAYOUT = ("ir.json", "train.json", "csim.json")  # what a project of a qflow without markers holds


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

    marker = property(lambda self: self.root / MARKER)

    def check_owned(self, *, may_be_absent: bool = False) -> None:
        """A one-line error unless the project folder is one qflow wrote (its marker), or absent when allowed.

        A link (even to a qflow project), a file, or a folder without the marker is refused: qflow never writes
        into, replaces or deletes what it did not create.
        """
        root = self.root
        if root.is_symlink():
            raise FlowError(
                f"{root}: is a symbolic link; qflow writes only project folders it created there "
                "(remove the link or choose another project name)"
            )
        if not root.exists():
            if may_be_absent:
                return
            raise FlowError(f"{root}: no such project; run `{self.hls_command()}` first")
        if not root.is_dir():
            raise FlowError(f"{root}: is a file, not a project folder; move it or choose another project name")
        if self.marker.is_file() and not self.marker.is_symlink():
            return
        if any((root / f).exists() for f in LAYOUT):
            raise FlowError(
                f"{root}: has no {MARKER} (written by a qflow without project markers, or a copy); qflow replaces "
                f"only folders it marked: remove it (`rm -r {root}`) and run `{self.hls_command()}` again"
            )
        raise FlowError(f"{root}: a folder qflow did not write (no {MARKER}); move it or choose another project name")

    def create(self) -> None:
        """Make the project folder, marked, unless a folder qflow wrote is already there (one line otherwise)."""
        self.check_owned(may_be_absent=True)
        if self.root.exists():
            return
        new = scratch.make(self.root.parent, f".{self.name}.", ".new")
        write_marker(new, self.name)
        try:
            rename_new(new, self.root)
        except FileExistsError:  # made meanwhile: by qflow, or refused below
            shutil.rmtree(new, ignore_errors=True)
            self.check_owned()

    def load_ir(self):
        """The project's IR; a one-line error unless it is the one its build recorded in the marker."""
        from flow.ir import IR

        ir = IR.load(self.require(self.ir_json, "hls"))
        recorded = self._marker_field("ir_sha256")
        if recorded != ir.digest():
            raise FlowError(
                f"{self.ir_json}: not the IR this project's build wrote (its {MARKER} records "
                f"{str(recorded)[:12]}, the file is {ir.digest()[:12]}); run `{self.hls_command()}` again"
            )
        return ir

    def _marker_field(self, key: str) -> object:
        try:
            data = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return None
        return data.get(key) if isinstance(data, dict) else None

    def hls_command(self) -> str:
        """The command that builds this project: the one its marker records, else both forms (card, saved model)."""
        recorded = self._marker_field("hls_command")
        if isinstance(recorded, str) and recorded:
            return recorded
        return f"make hls MODEL={self.name}` (a card) or `flow hls --keras MODEL.h5 --data DATA.npz --name {self.name}"

    def require(self, path: Path, make_target: str) -> Path:
        """``path`` or a one-line error naming the command that writes it."""
        if not path.exists():
            command = self.hls_command() if make_target == "hls" else f"make {make_target} MODEL={self.name}"
            raise FlowError(f"{path}: missing; run `{command}` first")
        return path


def write_marker(folder: Path, name: str, **fields: Any) -> None:
    """Mark ``folder`` as a project qflow wrote (``fields``: e.g. the digest of the IR it holds)."""
    write_json(Path(folder) / MARKER, {"written_by": "qflow", "qflow_version": __version__, "name": name} | fields)


def check_same_ir(path: Path | str, recorded: object, ir_digest: str, rerun: str) -> None:
    """A one-line error when a stage output records another IR than the project's ``ir.json`` (or none)."""
    if recorded == ir_digest:
        return
    if not isinstance(recorded, str) or not recorded:
        why = "records no IR digest (written by an earlier qflow)"
    else:
        why = f"came from another IR (ir_sha256 {recorded[:12]}, ir.json is {ir_digest[:12]})"
    raise FlowError(f"{path}: {why}; run `{rerun}` again")


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
        _check_npz_sizes(Path(path), shown, tail)
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise FlowError(f"{shown}: missing{tail}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split())[:120]
        raise FlowError(f"{shown}: not a readable .npz file ({reason}){tail}") from None
    except MemoryError:
        raise FlowError(f"{shown}: its arrays do not fit in memory{tail}") from None
    missing = [n for n in names if n not in arrays]
    if missing:
        raise FlowError(f"{shown}: missing {', '.join(missing)}{tail}")
    return arrays


_NPY_HEADERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _check_npz_sizes(path: Path, shown: str, tail: str) -> None:
    """A one-line error when an array header declares more data than its member holds (read before loading, which
    would try to allocate it): a corrupt or hostile file must not end in MemoryError."""
    if not zipfile.is_zipfile(path):
        return  # np.load reports it
    with zipfile.ZipFile(path) as zf:
        for member in zf.infolist():
            if not member.filename.endswith(".npy"):
                continue
            with zf.open(member) as f:
                read_header = _NPY_HEADERS.get(np.lib.format.read_magic(f))
                if read_header is None:
                    continue  # a newer format: np.load checks it
                shape, _, dtype = read_header(f)
                declared = math.prod(shape) * dtype.itemsize
                held = member.file_size - f.tell()
            if declared > held:
                raise FlowError(
                    f"{shown}: {member.filename[:-4]} declares shape {tuple(shape)} of {dtype} ({declared:,} bytes) "
                    f"but holds {held:,} bytes (a truncated or corrupt file){tail}"
                )


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
    """Build a folder in a temporary sibling; on success it replaces ``final`` in one atomic exchange, on failure
    ``final`` is untouched. Siblings left by killed processes are removed first."""
    final = Path(final)
    prefix = f".{final.name}."
    scratch.remove_dead(final.parent, prefix, ".tmp")
    tmp = scratch.make(final.parent, prefix, ".tmp")
    try:
        yield tmp
        publish_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def exchange(a: Path, b: Path) -> None:
    """Swap two paths in one atomic step (each name shows the old or the new folder at every instant)."""
    linux.renameat2(a, b, linux.RENAME_EXCHANGE)


def rename_new(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` atomically, failing (FileExistsError) if ``dst`` exists, even as an empty folder."""
    linux.renameat2(src, dst, linux.RENAME_NOREPLACE)


def publish_dir(new: Path, final: Path) -> None:
    """Make the complete folder ``new`` visible as ``final`` with one atomic rename or exchange.

    When ``final`` existed, its old content is left at ``new`` (the caller removes it); a kill at any instant
    leaves ``final`` wholly old or wholly new.
    """
    if os.path.lexists(final):
        exchange(new, final)
    else:
        rename_new(new, final)
