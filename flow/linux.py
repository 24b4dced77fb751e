"""The Linux system calls qflow needs that Python does not wrap: atomic rename variants and the parent-death
signal. One libc handle, loaded once."""

from __future__ import annotations

import ctypes
import errno
import os
import signal
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from flow.errors import FlowError

_AT_FDCWD = -100
RENAME_NOREPLACE, RENAME_EXCHANGE = 1, 2  # renameat2(2) flags, linux/fs.h
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@lru_cache(maxsize=1)
def libc() -> ctypes.CDLL:
    """The C library, with errno kept for each call."""
    return ctypes.CDLL(None, use_errno=True)


def renameat2(src: Path, dst: Path, flags: int) -> None:
    """``renameat2(2)``; an OSError of the right subclass on failure, a one-line FlowError where the file system
    (or the C library) lacks the operation."""
    fn = getattr(libc(), "renameat2", None)
    if fn is None:
        raise FlowError("the atomic folder switch needs Linux renameat2 (glibc >= 2.28)")
    if fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise FlowError(
                f"{Path(dst).parent}: this file system cannot swap two folders atomically (renameat2); "
                "set QFLOW_PROJECTS to a folder on ext4, xfs, btrfs or tmpfs"
            )
        raise OSError(code, os.strerror(code), str(src), None, str(dst))


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn``: the child gets SIGKILL when the thread that started it dies, even by SIGKILL, so no tool
    outlives a killed qflow. (The starting thread must wait for the child, as ``subprocess`` callers do.)"""
    lib, parent = libc(), os.getpid()  # resolved before the fork: the child makes two system calls only

    def preexec() -> None:
        lib.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before the request took effect
            os._exit(1)

    return preexec
