"""Warm runs and search scale-out, each measured side by side in one run.

- ``hls``: a second ``flow hls diag_05`` with nothing changed (only checks digests) against ``flow hls diag_05
  --force`` (what every warm run did before: convert again and rebuild the C simulation, model reused). Builds
  the project first when it is absent or out of date (not timed).
- ``search``: ``flow search lut_charge --trials 20 --fresh`` with ``--workers 1`` and ``--workers 2`` in a
  temporary projects folder; both must end with 20 complete or pruned trials. ``built``: after ``flow hls`` of
  the model (not timed; README's order), so both start from the built float baseline; ``fresh``: in an empty
  projects folder, so each first trains that float model itself (one process: it cannot be shared out).
  ``QFLOW_BENCH_SEARCH_FROM`` (``built,fresh``) chooses which.
``QFLOW_BENCH_WARM_MODEL`` and ``QFLOW_BENCH_SEARCH_MODEL`` / ``QFLOW_BENCH_SEARCH_TRIALS`` change the models.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WARM_MODEL = os.environ.get("QFLOW_BENCH_WARM_MODEL", "diag_05")
SEARCH_MODEL = os.environ.get("QFLOW_BENCH_SEARCH_MODEL", "lut_charge")
SEARCH_TRIALS = int(os.environ.get("QFLOW_BENCH_SEARCH_TRIALS", 20))
SEARCH_FROM = tuple(os.environ.get("QFLOW_BENCH_SEARCH_FROM", "built,fresh").split(","))


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
    """Seconds of the same search with one and two worker processes, from a built project and from none."""
    out: dict = {"model": SEARCH_MODEL, "trials": SEARCH_TRIALS}
    for start in SEARCH_FROM:
        with tempfile.TemporaryDirectory(prefix="qflow-bench-search-") as tmp:
            env = {"QFLOW_PROJECTS": tmp}
            if start == "built":
                out["hls_s"] = _flow("hls", SEARCH_MODEL, env=env)
            for n in (1, 2):
                shutil.rmtree(Path(tmp) / SEARCH_MODEL / "search", ignore_errors=True)  # nothing from the other run
                out[f"{start}_workers_{n}_s"] = _flow(
                    "search", SEARCH_MODEL, "--trials", str(SEARCH_TRIALS), "--fresh", "--workers", str(n), env=env
                )
                summary = json.loads((Path(tmp) / SEARCH_MODEL / "search" / "pareto.json").read_text())
                t = summary["trials"]
                out[f"{start}_workers_{n}_trials"] = t["complete"] + t["pruned"]
            out[f"{start}_ratio_2_to_1"] = round(out[f"{start}_workers_2_s"] / out[f"{start}_workers_1_s"], 3)
    return out


def run() -> dict:
    """Both measurements."""
    return {"hls": warm_hls(), "search": search_scaling()}
