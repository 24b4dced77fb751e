"""hls4ml C-simulation libraries, cached by the digest of the sources they are compiled from.

hls4ml compiles the whole firmware with ``g++ -O3`` every time a model is compiled or traced (10-25 s for the
smallest card). The library depends only on the written sources, the build script and the compiler, so a second
`flow verify` of one IR, a forced `flow hls` and the tests reuse it. Entries live in ``<cache>/csim/`` (see
:func:`flow.cost.libs.cache_dir`) and are written whole (temporary file, then rename).

hls4ml's ``build_lib.sh`` bakes the project's absolute ``firmware/weights`` path into the library, which reads the
weight files from there on its first call (and calls ``exit(1)`` when they are gone). qflow builds with the relative
path instead, and every call runs inside ``firmware/`` (:func:`in_firmware`; hls4ml's ``trace()`` does so itself),
so one library serves any copy of the same sources.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from flow import warm
from flow.cost.libs import cache_dir
from flow.errors import FlowError

_WEIGHTS_LINE = re.compile(r"^WEIGHTS_DIR=.*$", re.M)

SKIP_SUFFIXES = (".so", ".o", ".txt")  # built objects; weight .txt files are read only with LOAD_WEIGHTS_FROM_TXT


def source_digest(output_dir: Path) -> str:
    """sha256 of what ``build_lib.sh`` compiles: firmware sources, the bridge, the script, and the compiler."""
    h = hashlib.sha256(warm.tool_versions().get("g++", "no g++").encode())
    # The script names the library after a random per-model stamp; the stamp does not change what is built.
    script = build_script(output_dir).splitlines()
    h.update("\n".join(line for line in script if not line.startswith("LIB_STAMP=")).encode())
    files = [output_dir / "myproject_bridge.cpp", *sorted((output_dir / "firmware").rglob("*"))]
    for f in files:
        if f.is_file() and f.suffix not in SKIP_SUFFIXES:
            h.update(f"{f.relative_to(output_dir)}".encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def build_script(output_dir: Path) -> str:
    """hls4ml's ``build_lib.sh`` with the weights read from ``weights/`` relative to the working directory."""
    script = (output_dir / "build_lib.sh").read_text()
    if not _WEIGHTS_LINE.search(script):
        raise FlowError(f"{output_dir / 'build_lib.sh'}: no WEIGHTS_DIR line; this hls4ml version is not supported")
    return _WEIGHTS_LINE.sub("WEIGHTS_DIR='\"weights\"'", script)


def _build(output_dir: Path) -> None:
    """Run the build script (as hls4ml's backend does, with the relative weights path)."""
    r = subprocess.run(
        ["bash", "-s"], input=build_script(output_dir), cwd=output_dir, text=True, capture_output=True, check=False
    )
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).strip().splitlines()[-1:] or ["no output"]
        raise FlowError(f"{output_dir}: the C simulation did not compile: {tail[0]}")


@contextlib.contextmanager
def in_firmware(hls_model) -> Iterator[None]:
    """Run a call of the C simulation from ``firmware/``, where its relative weights path points."""
    with contextlib.chdir(Path(hls_model.config.get_output_dir()) / "firmware"):
        yield


def _library_path(hls_model) -> Path:
    cfg = hls_model.config
    return Path(cfg.get_output_dir()) / "firmware" / f"{cfg.get_project_name()}-{cfg.get_config_value('Stamp')}.so"


def _load(hls_model, lib: Path) -> None:
    """Link ``lib`` as the model's C simulation, releasing the one it had (as hls4ml's own compile does)."""
    old = hls_model._top_function_lib
    if old is not None:
        ctypes.CDLL("libdl.so.2").dlclose(ctypes.c_void_p(old._handle))
    hls_model._top_function_lib = ctypes.cdll.LoadLibrary(str(lib))


def _copy_whole(src: Path, dst: Path) -> None:
    """Copy to a temporary file beside ``dst``, then rename: never a half-written library, never a loaded one
    overwritten in place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
    os.close(fd)
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def compile_cached(hls_model) -> bool:
    """Write the project and link its C simulation, compiling only sources not seen before; True when reused."""
    hls_model.write()
    output_dir = Path(hls_model.config.get_output_dir())
    cached = cache_dir() / "csim" / f"{source_digest(output_dir)}.so"
    lib = _library_path(hls_model)
    if cached.is_file():
        _copy_whole(cached, lib)
        _load(hls_model, lib)
        return True
    _build(output_dir)
    _copy_whole(lib, cached)
    _load(hls_model, lib)
    return False


def use_cache(hls_model) -> None:
    """Make the model's own ``compile()`` (which ``trace()`` calls before every trace) go through the cache."""
    hls_model.compile = lambda: compile_cached(hls_model)
