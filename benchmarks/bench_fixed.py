"""flow.fixed.cast against the compiled ap_fixed headers on >= 100,000 random cases, and its throughput."""

from __future__ import annotations

import importlib.util
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np

SEED = 7
N_PAIRS = 280  # 10 per rounding x overflow combination of the destination
BULK_VALUES = 1_000_000


def _aptypes() -> ModuleType:
    """tests/_aptypes.py (the g++ oracle), loaded by path: tests/ is not an installed package."""
    path = Path(__file__).resolve().parents[1] / "tests" / "_aptypes.py"
    spec = importlib.util.spec_from_file_location("qflow_bench_aptypes", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path.name}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


def run(n_cases: int = 100_000) -> dict:
    """Check ``n_cases`` casts against ap_fixed; report mismatches and NumPy cast throughput."""
    from flow.fixed import FixedType, Overflow, Rounding, cast

    ap = _aptypes()
    pairs = ap.corner_pairs() + ap.random_pairs(SEED, N_PAIRS, 64)
    t0 = time.perf_counter()
    harness = ap.Harness(pairs)
    build_s = time.perf_counter() - t0

    rng = np.random.default_rng(SEED)
    per_pair = math.ceil(n_cases / len(pairs))
    raws = [ap.edge_raws(p.src, p.dst, rng, per_pair) for p in pairs]
    arrays = [np.array(r, dtype=np.int64 if p.src.fits_int64 else object) for p, r in zip(pairs, raws)]

    t0 = time.perf_counter()
    ours = [cast(a, p.src.frac_bits, p.dst) for p, a in zip(pairs, arrays)]
    cast_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    expected = harness.cast([(i, v) for i, r in enumerate(raws) for v in r])
    oracle_s = time.perf_counter() - t0

    got = [int(v) for o in ours for v in o]
    bad = [k for k, (e, g) in enumerate(zip(expected, got)) if e != g]

    # Bulk throughput on one int64 array: a typical accumulator -> activation cast.
    src = FixedType(30, 12)
    dst = FixedType(12, 3, True, Rounding.RND_CONV, Overflow.SAT)
    bulk = np.random.default_rng(SEED).integers(src.min_raw, src.max_raw, size=BULK_VALUES, dtype=np.int64)
    bulk_s = min(_timed(lambda: cast(bulk, src.frac_bits, dst)) for _ in range(5))  # best of 5: shared machines

    return {
        "cases": len(expected),
        "type_pairs": len(pairs),
        "mismatches": len(bad),
        "first_mismatches": [(str(pairs[_pair_of(k, raws)].src), str(pairs[_pair_of(k, raws)].dst)) for k in bad[:5]],
        "harness_build_seconds": round(build_s, 1),
        "harness_compiled": harness.compiled,
        "oracle_cases_per_second": round(len(expected) / oracle_s),
        "cast_cases_per_second": round(len(expected) / cast_s),
        "cast_bulk_int64_values_per_second": round(BULK_VALUES / bulk_s),
    }


def _timed(f: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


def _pair_of(case: int, raws: list[list[int]]) -> int:
    for i, r in enumerate(raws):
        if case < len(r):
            return i
        case -= len(r)
    return -1


if __name__ == "__main__":
    print(run())
