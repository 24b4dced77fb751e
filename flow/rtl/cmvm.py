"""Which CMVM solver builds a layer's adder graph: da4ml's within a time budget, else qflow's own (``csd.py``).

da4ml runs in a child process (``python -m flow.rtl.da4ml_cmvm``) that is killed at the budget. Its answer, a
timeout included, is cached by the weights, the input range, the budget and da4ml's version in
``$QFLOW_CACHE/cmvm``, so a design is generated the same way by ``sim``, ``report`` and the benchmarks. Every
graph is checked to implement the weights exactly before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.project import write_json
from flow.rtl import csd
from flow.rtl.adder_graph import Adder, AdderGraph, Term

SOLVERS = ("auto", "da4ml", "csd")
DEFAULT_BUDGET_S = 120.0
WARMUP_S = 600.0  # import and numba compilation of the child, before the budget starts
CACHE_SCHEMA = "2"  # 2: per-input ranges


def check_solver(solver: str, budget_s: float) -> None:
    """A FlowError unless ``solver`` and ``budget_s`` are valid knob values."""
    if solver not in SOLVERS:
        raise FlowError(f"solver must be one of {', '.join(SOLVERS)}, got {solver!r}")
    if not isinstance(budget_s, (int, float)) or isinstance(budget_s, bool) or budget_s <= 0:
        raise FlowError(f"solver_budget_s must be a number of seconds > 0, got {budget_s!r}")


def solve(
    weights: np.ndarray,
    in_t: FixedType,
    solver: str = "auto",
    budget_s: float = DEFAULT_BUDGET_S,
    x_ranges: list[tuple[int, int]] | None = None,
) -> AdderGraph:
    """The adder graph of ``x @ weights`` for inputs of type ``in_t`` (raw mantissas), each input within its
    ``x_ranges`` entry when given (da4ml balances its adders by these ranges)."""
    w = np.asarray(weights, dtype=np.int64)
    note = None
    if solver in ("auto", "da4ml"):
        ranges = x_ranges or [(in_t.min_raw, in_t.max_raw)] * w.shape[0]
        graph, note = _da4ml(w, [lo for lo, _ in ranges], [hi for _, hi in ranges], budget_s, solver == "da4ml")
        if graph is not None:
            return graph
        if solver == "da4ml":
            raise FlowError(f"da4ml's CMVM solver: {note}")
    t0 = time.perf_counter()
    graph = csd.solve(w)
    graph.details["solve_s"] = round(time.perf_counter() - t0, 3)
    if note:
        graph.details["da4ml"] = note
    graph.check(w)
    return graph


def _cache_path(w: np.ndarray, lo: list[int], hi: list[int], budget_s: float) -> Path:
    from flow.cost.libs import cache_dir

    h = hashlib.sha256()
    for part in (CACHE_SCHEMA, metadata.version("da4ml"), repr(w.shape), str(lo), str(hi), repr(float(budget_s))):
        h.update(part.encode() + b"\0")
    h.update(np.ascontiguousarray(w).tobytes())
    return cache_dir() / "cmvm" / f"{h.hexdigest()[:32]}.json"


def _da4ml(
    w: np.ndarray, lo: list[int], hi: list[int], budget_s: float, retry_failed: bool = False
) -> tuple[AdderGraph | None, str | None]:
    """da4ml's graph (cached), or None and why not.

    Every answer is cached, a child that could not start too: ``auto`` then builds the layer the same way on
    every run (sim, report and benchmarks cost one design) instead of waiting for the child again each time.
    ``retry_failed`` (``solver: da4ml``) starts the child again after such a failure.
    """
    if w.size == 0 or not w.any():
        return None, "all weights are zero"
    if np.abs(w).max() >= 1 << 24:
        return None, "weights wider than 24 bits (da4ml takes float32 kernels)"
    path = _cache_path(w, lo, hi, budget_s)
    rec = json.loads(path.read_text()) if path.is_file() else None
    if rec is None or (retry_failed and rec.get("status") == "failed"):
        from flow.log import info

        info(
            f"da4ml CMVM solver on a {w.shape[0]} x {w.shape[1]} layer (budget {budget_s:g} s after its numba "
            "compilation, minutes on a new environment; the answer is cached)"
        )
        rec = _run_child(w, lo, hi, budget_s)
        info(f"da4ml CMVM solver: {rec.get('status')} ({rec.get('note') or str(rec.get('seconds')) + ' s'})")
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, rec)
    if rec.get("status") != "ok":
        return None, rec.get("note", "failed")
    graph = from_da4ml(w.shape[0], rec["stages"])
    graph.details["solve_s"] = rec["seconds"]
    try:
        graph.check(w)
    except FlowError as exc:
        return None, str(exc)
    return graph, None


def _run_child(w: np.ndarray, lo: list[int], hi: list[int], budget_s: float) -> dict:
    """Run da4ml's solver in a child process, killed at ``budget_s`` (counted after numba's compilation)."""
    request = json.dumps({"weights": w.tolist(), "lo": lo, "hi": hi})
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}  # the machine is shared: one core for the solver
    cmd = [sys.executable, "-m", "flow.rtl.da4ml_cmvm"]
    with subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as proc:
        try:
            watchdog = threading.Timer(WARMUP_S, proc.kill)
            watchdog.start()
            ready = proc.stdout.readline().strip() == "ready"  # the import and numba's compilation
            watchdog.cancel()
            if not ready:
                proc.kill()
                tail = (proc.stderr.read().strip().splitlines() or ["no output"])[-1][:300]
                return {"status": "failed", "note": f"could not start: {tail}"}
            t0 = time.perf_counter()
            out, err = proc.communicate(request, timeout=budget_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"status": "timeout", "note": f"did not finish within the {budget_s:g} s budget"}
    seconds = round(time.perf_counter() - t0, 2)
    if proc.returncode:
        tail = (err.strip().splitlines() or ["no output"])[-1][:300]
        return {"status": "failed", "note": f"exited with {proc.returncode}: {tail}", "seconds": seconds}
    return {"status": "ok", "seconds": seconds, "stages": json.loads(out)["stages"]}


def from_da4ml(n_in: int, stages: list[dict]) -> AdderGraph:
    """An adder graph from da4ml's cascaded solution (as written by ``flow.rtl.da4ml_cmvm``).

    Each stage is a list of ops (input copy, ``a +- b << s``), input shifts, output indices, shifts and signs; the
    outputs of one stage are the inputs of the next.
    """
    adders: list[Adder] = []
    current: list[Term | None] = [Term(k) for k in range(n_in)]
    for st in stages:
        buf: list[Term | None] = []
        for opcode, id0, id1, data in st["ops"]:
            if opcode == -1:
                t = current[id0]
                s = st["inp_shifts"][id0]
                buf.append(None if t is None else Term(t.node, t.shift + s, t.neg))
            elif opcode in (0, 1):
                a, b = buf[id0], buf[id1]
                if b is not None:
                    b = Term(b.node, b.shift + data, b.neg != (opcode == 1))
                if a is None or b is None:
                    buf.append(a if b is None else b)
                    continue
                buf.append(_add(adders, n_in, a, b))
            else:
                raise FlowError(f"da4ml solution has an operation this converter does not know (opcode {opcode})")
        outs: list[Term | None] = []
        for idx, s, neg in zip(st["out_idxs"], st["out_shifts"], st["out_negs"]):
            t = buf[idx] if idx >= 0 else None
            outs.append(None if t is None else Term(t.node, t.shift + s, t.neg != bool(neg)))
        current = outs
    return AdderGraph(n_in, adders, current, "da4ml")


def _add(adders: list[Adder], n_in: int, a: Term, b: Term) -> Term:
    """Append ``a + b`` (a common sign kept outside the adder)."""
    neg = a.neg and b.neg
    adders.append(Adder(Term(a.node, a.shift, a.neg and not neg), Term(b.node, b.shift, b.neg and not neg)))
    return Term(n_in + len(adders) - 1, 0, neg)
