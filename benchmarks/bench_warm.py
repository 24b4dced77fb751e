"""Warm runs and search scale-out, each measured side by side in one run.

- ``hls``: a second ``flow hls diag_05`` with nothing changed (only checks digests) against ``flow hls diag_05
  --force`` (what every warm run did before: convert again and rebuild the C simulation, model reused). Builds
  the project first when it is absent or out of date (not timed).
- ``search``: ``flow search lut_charge --trials 20 --fresh`` with ``--workers 1`` and ``--workers 2`` in a
  temporary projects folder; both must end with 20 complete or pruned trials.
``QFLOW_BENCH_WARM_MODEL`` and ``QFLOW_BENCH_SEARCH_MODEL`` / ``QFLOW_BENCH_SEARCH_TRIALS`` change the models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARM_MODEL = os.environ.get("QFLOW_BENCH_WARM_MODEL", "diag_05")
SEARCH_MODEL = os.environ.get("QFLOW_BENCH_SEARCH_MODEL", "lut_charge")
SEARCH_TRIALS = int(os.environ.get("QFLOW_BENCH_SEARCH_TRIALS", 20))


def _flow(*args: str, env: dict | None = None) -> float:
    """Run ``flow -q …``; its wall time in seconds (a failure stops the benchmark)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "flow", "-q", *args], check=True, env={**os.environ, **(env or {})})
    return round(time.perf_counter() - t0, 2)


def warm_hls() -> dict:
    """Seconds of a warm `flow hls` that only checks, and of one that converts again."""
    _flow("hls", WARM_MODEL)  # builds it when needed; afterwards it is up to date
    checked = _flow("hls", WARM_MODEL)
    forced = _flow("hls", WARM_MODEL, "--force")
    again = _flow("hls", WARM_MODEL)
    return {
        "model": WARM_MODEL,
        "warm_check_s": min(checked, again),
        "forced_s": forced,
        "speedup": round(forced / min(checked, again), 1),
    }


def search_scaling() -> dict:
    """Seconds of the same search with one and two worker processes."""
    out: dict = {"model": SEARCH_MODEL, "trials": SEARCH_TRIALS}
    for n in (1, 2):
        with tempfile.TemporaryDirectory(prefix="qflow-bench-search-") as tmp:
            env = {"QFLOW_PROJECTS": tmp}
            out[f"workers_{n}_s"] = _flow(
                "search", SEARCH_MODEL, "--trials", str(SEARCH_TRIALS), "--fresh", "--workers", str(n), env=env
            )
            summary = json.loads((Path(tmp) / SEARCH_MODEL / "search" / "pareto.json").read_text())
            t = summary["trials"]
            out[f"workers_{n}_trials"] = t["complete"] + t["pruned"]
    out["ratio_2_to_1"] = round(out["workers_2_s"] / out["workers_1_s"], 3)
    return out


def run() -> dict:
    """Both measurements."""
    return {"hls": warm_hls(), "search": search_scaling()}
