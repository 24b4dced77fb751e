"""Scratch folders named by the process that owns them, so a later run can remove those of killed processes."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def make(parent: Path, prefix: str, suffix: str = "") -> Path:
    """A new folder ``<prefix><pid>-<random><suffix>`` in ``parent``."""
    parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", suffix=suffix, dir=parent))


def owner_pid(folder: Path, prefix: str) -> int | None:
    """The pid in a scratch folder's name, or None when the name is not one :func:`make` writes."""
    pid, sep, _ = folder.name.removeprefix(prefix).partition("-")
    return int(pid) if folder.name.startswith(prefix) and sep and pid.isdigit() else None


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (another user's process counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def remove_dead(parent: Path, prefix: str, suffix: str = "") -> list[Path]:
    """Remove the scratch folders in ``parent`` whose owning process is gone; returns them.

    Only real folders whose name :func:`make` could have written are touched; links are never followed.
    """
    removed = []
    for folder in Path(parent).glob(f"{prefix}*{suffix}"):
        pid = owner_pid(folder, prefix)
        if pid is None or folder.is_symlink() or not folder.is_dir() or alive(pid):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed
