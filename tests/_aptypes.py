"""A g++-compiled oracle for ap_fixed conversions, built from the ap_types headers shipped inside hls4ml.

ap_fixed parameters are compile-time, so one harness instantiates a fixed list of (source, destination)
type pairs and reads cases from stdin: ``c <pair> <hi> <lo>`` casts the source bit pattern ``hi:lo`` (two
64-bit hex words) and ``d <pair> <bits>`` converts the double with those IEEE bits to the pair's destination
type; each prints the destination bits as ``<hi> <lo>``. The case templates are in ``cpp/ap_harness.h``.
Binaries are cached under ``$QFLOW_CACHE_DIR`` (default: the system temp folder) by a digest of the
generated source, the headers and the compiler version.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import os
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flow.fixed import FixedType, Overflow, Rounding

MAX_HARNESS_WIDTH = 128  # two 64-bit words per value
_MASK64 = (1 << 64) - 1
# NDEBUG: ap_private asserts on an out-of-range bit read that ap_fixed_base::operator= makes (and then ignores)
# when a rounding cast drops more bits than the source has; hls4ml's C simulation would abort there.
_FLAGS = ["-std=c++14", "-O1", "-w", "-DNDEBUG"]


@dataclass(frozen=True)
class CastPair:
    """One (source type, destination type) conversion the harness instantiates."""

    src: FixedType
    dst: FixedType


def ap_types_dir() -> Path:
    """The ap_types headers inside the installed hls4ml (found without importing hls4ml)."""
    spec = importlib.util.find_spec("hls4ml")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("hls4ml is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "templates" / "vivado" / "ap_types"


def cpp_type(t: FixedType) -> str:
    """The C++ spelling of a FixedType."""
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    return f"{kind}<{t.width},{t.int_bits},AP_{t.rounding.value},AP_{t.overflow.value}>"


HARNESS_HEADER = Path(__file__).parent / "cpp" / "ap_harness.h"  # cast_case / double_case templates


def _cache_root() -> Path:
    env = os.environ.get("QFLOW_CACHE_DIR")
    return Path(env) if env else Path(tempfile.gettempdir()) / "qflow-cache"


def _digest(texts: list[str]) -> str:
    h = hashlib.sha256("\0".join(texts).encode())
    for header in sorted(ap_types_dir().rglob("*.h")):
        h.update(header.name.encode())
        h.update(header.read_bytes())
    cxx = shutil.which("g++")
    if cxx is None:
        raise RuntimeError("g++ not found: the ap_fixed oracle needs a C++ compiler")
    h.update(subprocess.run([cxx, "--version"], check=True, capture_output=True, text=True).stdout.encode())
    return h.hexdigest()[:16]


class Harness:
    """A compiled oracle for a list of CastPairs."""

    def __init__(self, pairs: list[CastPair], cache_root: Path | None = None, jobs: int = 2) -> None:
        for p in pairs:
            if max(p.src.width, p.dst.width) > MAX_HARNESS_WIDTH:
                raise ValueError(f"harness widths are limited to {MAX_HARNESS_WIDTH} bits: {p}")
        self.pairs = list(pairs)
        self.compiled = False  # True when this call compiled (rather than reused a cached binary)
        self.binary = self._build(cache_root or _cache_root(), jobs)

    def _build(self, cache_root: Path, jobs: int) -> Path:
        # Split the switch into several translation units so a 2-core machine compiles them in parallel.
        n = len(self.pairs)
        chunks = [list(range(c, n, jobs)) for c in range(jobs)] if n >= 2 * jobs else [list(range(n))]
        units = self._units(chunks)
        folder = cache_root / f"ap_harness_{_digest([*_FLAGS, HARNESS_HEADER.read_text(), *units.values()])}"
        binary = folder / "harness"
        if binary.exists():
            return binary
        folder.mkdir(parents=True, exist_ok=True)
        # pytest-xdist workers all ask for the same harness: one compiles, the others wait and reuse it.
        with open(folder / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not binary.exists():
                self._compile(units, folder, binary)
        return binary

    def _compile(self, units: dict[str, str], folder: Path, binary: Path) -> None:
        work = Path(tempfile.mkdtemp(dir=folder))
        try:
            paths = []
            for name, text in units.items():
                paths.append(work / name)
                paths[-1].write_text(text)
            cxx = shutil.which("g++") or "g++"
            flags = [*_FLAGS, f"-I{ap_types_dir()}", f"-I{HARNESS_HEADER.parent}"]
            procs = [
                subprocess.Popen([cxx, *flags, "-c", str(u), "-o", str(u.with_suffix(".o"))], stderr=subprocess.PIPE)
                for u in paths
            ]
            for proc in procs:
                _, err = proc.communicate()
                if proc.returncode:
                    raise RuntimeError(f"g++ failed on the ap_fixed harness:\n{err.decode()[-4000:]}")
            objs = [str(u.with_suffix(".o")) for u in paths]
            subprocess.run([cxx, *objs, "-o", str(work / "harness")], check=True, capture_output=True)
            (work / "harness").replace(binary)  # atomic: concurrent sessions never see a half-written binary
            self.compiled = True
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _units(self, chunks: list[list[int]]) -> dict[str, str]:
        """One unit per chunk of pair indices with the case functions, plus main dispatching to them."""
        units: dict[str, str] = {}
        decls, cast_dispatch, double_dispatch = [], [], []
        for c, chunk in enumerate(chunks):
            lines = ['#include "ap_harness.h"']
            casts, doubles = [], []
            for i in chunk:
                p = self.pairs[i]
                s, d = cpp_type(p.src), cpp_type(p.dst)
                casts.append(f"    case {i}: cast_case<{s}, {p.src.width}, {d}, {p.dst.width}>(a, b); return true;")
                doubles.append(f"    case {i}: double_case<{d}, {p.dst.width}>(a); return true;")
            lines.append(f"bool cast_{c}(int i, u64 a, u64 b) {{\n  switch (i) {{\n" + "\n".join(casts))
            lines.append("  }\n  return false;\n}")
            lines.append(f"bool double_{c}(int i, u64 a) {{\n  switch (i) {{\n" + "\n".join(doubles))
            lines.append("  }\n  return false;\n}")
            units[f"unit_{c}.cpp"] = "\n".join(lines)
            decls.append(f"bool cast_{c}(int, u64, u64);\nbool double_{c}(int, u64);")
            cast_dispatch.append(f"cast_{c}(i, a, b)")
            double_dispatch.append(f"double_{c}(i, a)")
        units["main.cpp"] = (
            "#include <cstdio>\ntypedef unsigned long long u64;\n"
            + "\n".join(decls)
            + "\nint main() {\n  char op; int i; u64 a, b;\n"
            + '  while (scanf(" %c %d %llx", &op, &i, &a) == 3) {\n'
            + "    if (op == 'c') {\n      if (scanf(\" %llx\", &b) != 1) return 2;\n"
            + f'      if (!({" || ".join(cast_dispatch)})) printf("bad pair\\n");\n'
            + f'    }} else if (!({" || ".join(double_dispatch)})) printf("bad pair\\n");\n'
            + "  }\n  return 0;\n}\n"
        )
        return units

    def _run(self, lines: list[str]) -> list[tuple[int, int]]:
        stdin = "\n".join(lines) + "\n"
        out = subprocess.run([str(self.binary)], input=stdin, capture_output=True, text=True, check=False)
        if out.returncode:
            raise RuntimeError(f"ap_fixed harness failed: {out.stderr[-2000:]}")
        words = [tuple(int(w, 16) for w in line.split()) for line in out.stdout.splitlines()]
        if len(words) != len(lines) or any(len(w) != 2 for w in words):
            raise RuntimeError(f"ap_fixed harness answered {len(words)} lines for {len(lines)} cases")
        return words  # type: ignore[return-value]

    def cast(self, cases: list[tuple[int, int]]) -> list[int]:
        """ap_fixed results (raw ints of the destination) for ``(pair index, source raw)`` cases."""
        lines = []
        for i, raw in cases:
            bits = raw & ((1 << MAX_HARNESS_WIDTH) - 1)
            lines.append(f"c {i} {bits >> 64:x} {bits & _MASK64:x}")
        return [self._decode(self.pairs[i].dst, w) for (i, _), w in zip(cases, self._run(lines))]

    def from_double(self, cases: list[tuple[int, float]]) -> list[int]:
        """ap_fixed results (raw ints of the pair's destination) for ``(pair index, double)`` cases."""
        lines = [f"d {i} {struct.unpack('<Q', struct.pack('<d', x))[0]:x}" for i, x in cases]
        return [self._decode(self.pairs[i].dst, w) for (i, _), w in zip(cases, self._run(lines))]

    @staticmethod
    def _decode(t: FixedType, words: tuple[int, int]) -> int:
        bits = ((words[0] << 64) | words[1]) & ((1 << t.width) - 1)
        if t.signed and bits >> (t.width - 1):
            bits -= 1 << t.width
        return bits


# ---------------------------------------------------------------------------------------------------------------
# Random type pairs and values, shared by the tests and the benchmark.


def random_type(rng: np.random.Generator, max_width: int = 64) -> FixedType:
    """A random FixedType: width 1..max_width, int_bits from well below 0 to well above the width."""
    # Small widths are where corner cases live, so bias towards them.
    width = int(rng.integers(1, 17)) if rng.random() < 0.5 else int(rng.integers(1, max_width + 1))
    int_bits = int(rng.integers(-width - 4, 2 * width + 5))
    return FixedType(
        width,
        int_bits,
        signed=bool(rng.random() < 0.6),
        rounding=list(Rounding)[int(rng.integers(len(Rounding)))],
        overflow=list(Overflow)[int(rng.integers(len(Overflow)))],
    )


def random_pairs(seed: int, n: int, max_width: int = 64) -> list[CastPair]:
    """``n`` pairs covering every rounding x overflow mode of the destination, random formats otherwise."""
    rng = np.random.default_rng(seed)
    modes = [(r, o) for r in Rounding for o in Overflow]
    pairs = []
    for k in range(n):
        src = random_type(rng, max_width)
        dst = random_type(rng, max_width)
        r, o = modes[k % len(modes)]
        if rng.random() < 0.3:
            # Nearby formats: the interesting regime (few dropped bits, overflow by one bit).
            dst = FixedType(
                max(1, min(max_width, src.width + int(rng.integers(-3, 4)))),
                src.int_bits + int(rng.integers(-2, 3)),
                signed=bool(rng.random() < 0.6),
            )
        pairs.append(CastPair(src, FixedType(dst.width, dst.int_bits, dst.signed, r, o)))
    return pairs


def corner_pairs() -> list[CastPair]:
    """Hand-picked pairs for known ap_fixed corner cases."""
    sat = Rounding.RND_CONV, Overflow.SAT
    pairs = [
        CastPair(FixedType(8, 8), FixedType(1, 1, True, Rounding.TRN, Overflow.SAT_SYM)),
        CastPair(FixedType(8, 4), FixedType(4, 4, True, Rounding.RND, Overflow.SAT_SYM)),
        CastPair(FixedType(4, 4), FixedType(4, 4, True, Rounding.TRN, Overflow.SAT_SYM)),
        CastPair(FixedType(8, 4), FixedType(4, 4, False, *sat)),
        CastPair(FixedType(8, 4), FixedType(4, 2, False, Rounding.RND_INF, Overflow.SAT)),
        CastPair(FixedType(16, 4), FixedType(8, 8, False, Rounding.TRN_ZERO, Overflow.SAT_ZERO)),
        CastPair(FixedType(64, 64), FixedType(64, 0, True, Rounding.RND_CONV, Overflow.WRAP)),
        CastPair(FixedType(64, -60), FixedType(3, 2, True, Rounding.RND_ZERO, Overflow.SAT)),
        CastPair(FixedType(64, 64, False), FixedType(64, 64, True, *sat)),
        CastPair(FixedType(64, 64), FixedType(64, 64, False, Rounding.TRN, Overflow.SAT_SYM)),
        CastPair(FixedType(40, 10), FixedType(40, 50, True, Rounding.RND_MIN_INF, Overflow.SAT)),
        CastPair(FixedType(12, 2), FixedType(12, 3, True, *sat)),
        CastPair(FixedType(30, 12), FixedType(8, 3, False, *sat)),
        CastPair(FixedType(96, 40), FixedType(70, 20, True, Rounding.RND_CONV, Overflow.SAT_SYM)),
        CastPair(FixedType(100, 100, False), FixedType(64, 64, False, Rounding.RND, Overflow.WRAP)),
    ]
    return pairs


def edge_raws(src: FixedType, dst: FixedType, rng: np.random.Generator, n: int) -> list[int]:
    """Source raw values around zero, the extremes, rounding ties and the destination's overflow limits."""
    lo, hi = src.min_raw, src.max_raw
    vals = {lo, hi, 0, 1, -1, lo + 1, hi - 1}
    shift = src.frac_bits - dst.frac_bits
    # Destination limits expressed in source LSBs, and ties one dropped bit below them.
    for limit in (dst.min_raw, dst.max_raw, -dst.max_raw, 0, 1, -1, 2, -2, 3):
        base = limit << shift if shift >= 0 else limit >> -shift
        for d in (-2, -1, 0, 1, 2):
            vals.add(base + d)
            if shift > 0:
                vals.add(base + (1 << (shift - 1)) + d)
                vals.add(base - (1 << (shift - 1)) + d)
    vals = {v for v in vals if lo <= v <= hi}
    out = sorted(vals)
    while len(out) < n:
        # Uniform bit patterns plus small magnitudes.
        bits = int(rng.integers(0, 1 << 62)) | (int(rng.integers(0, 1 << 62)) << 62) | (int(rng.integers(0, 16)) << 124)
        v = bits & ((1 << src.width) - 1)
        if src.signed and v >> (src.width - 1):
            v -= 1 << src.width
        if rng.random() < 0.3:
            v >>= int(rng.integers(0, src.width + 1))
        out.append(v)
    return out
