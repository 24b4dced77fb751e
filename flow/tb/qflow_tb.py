"""The cocotb testbench for every qflow design (runs inside the simulator; launched by ``flow.sim.simulate``).

Settings come from the JSON named by ``QFLOW_TB_CONFIG`` (written by :func:`flow.sim.simulate`)::

    {"vectors": "vectors.npz", "n": 300, "seed": 1, "gap_prob": 0.2, "max_gap": 3, "ready_prob": 0.7,
     "in_width": 12, "out_width": 12, "out_signed": true, "n_in": 4, "n_out": 3, "in_beat": 4, "beats": 1,
     "stride": 48, "entry_width": 112, "k_in": 16, "k_out": 16, "class_width": 2,
     "latency_expected": 5, "timeout_cycles": 10000, "result": "tb_result.json"}

The vectors file holds ``inputs`` (n, n_in) and ``outputs`` (n, n_out) raw mantissas, optionally ``classes`` (n,)
and ``kind`` (n,). The design runs inside ``flow/tb/qflow_harness.v``, which does all per-cycle work (its own
clock, reset, driver with random idle gaps, random back-pressure, monitor, the drain after the last result) and
stops its clock while it waits for this side; this side never waits on a clock edge: a feeder writes whole banks
of samples when the harness has used one, a collector reads whole banks of results when the harness has filled
one (value-change triggers), and every result is checked here, bit-exactly and in order. Results (mismatches,
latency, II, wall time, the first failure in words) go to ``result``; the test fails on any mismatch, lost or
extra output.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from cocotb.triggers import First, RisingEdge, Timer, ValueChange

from flow.tb.packing import pack_rows, unpack_bits, unpack_rows

UNRESOLVED_AS_0 = str.maketrans("xXzZuUwW-lLhH", "0" * 11 + "11")  # weak values as their level, the rest as 0
# The harness runs its cycles in zero simulated time, so a timer fires only when nothing else can happen: at
# the end of a burst (let the next one start), or when both sides wait for each other (a bug, after a few).
IDLE_NS = 1
STALLED_AFTER = 4


def load_config() -> dict:
    """The settings written by the launcher."""
    return json.loads(Path(os.environ["QFLOW_TB_CONFIG"]).read_text())


def load_vectors(cfg: dict) -> tuple[int, np.ndarray, np.ndarray, np.ndarray | None, list[str]]:
    """The run's first ``n`` vectors: (n, inputs, expected outputs, expected classes or None, each vector's kind)."""
    data = np.load(cfg["vectors"])
    n = int(cfg["n"])
    inputs = np.asarray(data["inputs"], dtype=np.int64)[:n]
    expected = np.asarray(data["outputs"], dtype=np.int64)[:n]
    classes = np.asarray(data["classes"], dtype=np.int64)[:n] if "classes" in data.files else None
    kinds = [str(k) for k in data["kind"][:n]] if "kind" in data.files else ["?"] * n
    return n, inputs, expected, classes, kinds


def describe_failure(k: int, kind: str, x: np.ndarray, want: np.ndarray, got: np.ndarray, what: str) -> str:
    """A readable message for the first mismatching vector."""
    j = int(np.flatnonzero(want != got)[0])

    def show(a: np.ndarray) -> str:
        vals = a.tolist()
        return str(vals) if len(vals) <= 16 else f"{vals[:16]}... ({len(vals)} values)"

    return (
        f"vector {k} ({kind}): {what} {j} is {int(got[j])}, expected {int(want[j])} (raw); "
        f"inputs {show(x)}; expected {show(want)}; actual {show(got)}"
    )


def most_common(a: np.ndarray) -> int | None:
    """The most frequent value (the smallest on ties): the steady-state spacing of input handshakes."""
    if not a.size:
        return None
    vals, counts = np.unique(a, return_counts=True)
    return int(vals[np.argmax(counts)])


@dataclass
class Outcome:
    """What one run saw: the vectors, what came out, and when (cycles)."""

    inputs: np.ndarray
    kinds: list
    expected: np.ndarray
    classes: np.ndarray | None
    actual: np.ndarray  # one row per received output
    got_classes: np.ndarray | None
    extra: int  # outputs after the last expected one
    latency_cycles: np.ndarray
    accept_gaps_cycles: np.ndarray
    cycles: int


def record_result(cfg: dict, o: Outcome, wall: float, c0: float, error: str | None) -> None:
    """Compare every output bit for bit, write the run's result file, and fail the test on the first mismatch."""
    n, got = len(o.expected), len(o.actual)
    bad = np.flatnonzero((o.actual != o.expected[:got]).any(axis=1)) if got else np.array([], dtype=np.int64)
    mismatches = int(bad.size)
    if not error and bad.size:
        k = int(bad[0])
        error = describe_failure(k, o.kinds[k], o.inputs[k], o.expected[k], o.actual[k], "output")
    class_mismatches = 0
    if o.got_classes is not None:
        bad_c = np.flatnonzero(o.got_classes != o.classes[: len(o.got_classes)])
        class_mismatches = int(bad_c.size)
        if not error and bad_c.size:
            k = int(bad_c[0])
            error = describe_failure(
                k, o.kinds[k], o.inputs[k], o.classes[k : k + 1], o.got_classes[k : k + 1], "out_class (argmax), index"
            )
    if not error and o.extra:
        error = f"{o.extra} extra output(s) after the last expected one (duplicated or spurious)"
    lat, acc = o.latency_cycles, o.accept_gaps_cycles
    result = {
        "vectors": n,
        "received": got,
        "mismatches": mismatches + class_mismatches + o.extra + (n - got),
        "output_mismatches": mismatches,
        "class_mismatches": class_mismatches,
        "extra_outputs": o.extra,
        "latency_cycles": int(lat.min()) if lat.size else None,
        "latency_cycles_max": int(lat.max()) if lat.size else None,
        "ii_cycles": most_common(acc),
        "ii_cycles_min": int(acc.min()) if acc.size else None,
        "cycles": o.cycles,
        "wall_seconds": wall,
        "samples_per_second": n / wall if wall > 0 else None,
        "error": error,
        "cpu_seconds": time.process_time() - c0,
    }
    Path(cfg["result"]).write_text(json.dumps(result, indent=2) + "\n")
    assert not error, error


def input_banks(inputs: np.ndarray, cfg: dict) -> list[tuple[int, int]]:
    """(port value, sample count) per input bank: sample i of a bank at bits [i*stride +: stride], zero-padded."""
    n, n_in = inputs.shape
    padded = np.zeros((n, int(cfg["beats"]) * int(cfg["in_beat"])), dtype=np.int64)
    padded[:, :n_in] = inputs
    nbytes = int(cfg["stride"]) // 8
    words = [w.to_bytes(nbytes, "little") for w in pack_rows(padded, int(cfg["in_width"]))]
    k = int(cfg["k_in"])
    return [(int.from_bytes(b"".join(words[s : s + k]), "little"), len(words[s : s + k])) for s in range(0, n, k)]


def split_entries(value: int, count: int, cfg: dict) -> tuple[np.ndarray, ...]:
    """An output bank's value to (outputs (count, n_out), classes, cycle shown, cycle its sample was taken)."""
    n_out, width = int(cfg["n_out"]), int(cfg["out_width"])
    ew, ow, cw = int(cfg["entry_width"]), n_out * width, int(cfg["class_width"])
    nbytes = ew // 8
    raw = np.frombuffer(value.to_bytes(max(nbytes * count, (value.bit_length() + 7) // 8), "little"), np.uint8)
    rows = raw[: nbytes * count].reshape(count, nbytes)
    if width > 62:  # beyond int64 arithmetic: Python ints
        data = unpack_rows([int.from_bytes(r.tobytes(), "little") for r in rows], n_out, width, bool(cfg["out_signed"]))
    else:
        data = unpack_bits(np.unpackbits(rows, axis=1, bitorder="little"), n_out, width, bool(cfg["out_signed"]))
    bits = np.unpackbits(rows, axis=1, bitorder="little")[:, ow : ow + cw + 64].astype(np.int64)

    def field(lo: int, w: int) -> np.ndarray:
        return (bits[:, lo : lo + w] << np.arange(w, dtype=np.int64)).sum(axis=1)

    return data, field(0, cw), field(cw, 32), field(cw + 32, 32)


def put_bank(dut, banks: list[tuple[int, int]], k: int) -> None:
    """Write input bank ``k`` into harness bank ``k % 2`` and hand it over."""
    value, count = banks[k]
    data, n_port = (dut.tb_in0, dut.tb_in_n0) if k % 2 == 0 else (dut.tb_in1, dut.tb_in_n1)
    data.value = value
    n_port.value = count
    dut.tb_in_filled.value = k + 1


async def feed(dut, banks: list[tuple[int, int]], filled: int) -> None:
    """Write the input banks from ``filled`` on whenever the harness has one free (it holds two)."""
    while filled < len(banks):
        if filled - int(dut.h_in_used.value) < 2:
            put_bank(dut, banks, filled)
            filled += 1
        else:
            await ValueChange(dut.h_in_used)


@cocotb.test()
async def run_vectors(dut) -> None:
    """Drive every vector, check every output bit-exactly and in order, measure latency and II."""
    cfg = load_config()
    n, inputs, expected, classes, kinds = load_vectors(cfg)
    banks = input_banks(inputs, cfg)
    timeout = int(cfg.get("timeout_cycles", 100_000))
    burst = int(cfg["burst_cycles"])

    await Timer(1, unit="ns")  # after the harness' initial block
    dut.tb_seed.value = int(cfg.get("seed", 1)) & 0xFFFFFFFF
    dut.tb_gap_thresh.value = round(float(cfg.get("gap_prob", 0.0)) * 65536)
    dut.tb_max_gap.value = max(1, min(255, int(cfg.get("max_gap", 1))))
    dut.tb_ready_thresh.value = round(float(cfg.get("ready_prob", 1.0)) * 65536)
    dut.tb_total.value = n
    dut.tb_timeout.value = timeout
    dut.tb_drain.value = int(cfg.get("latency_expected") or 0) + 16  # look for extra outputs for a while
    dut.tb_out_ack.value = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    first = min(2, len(banks))
    for k in range(first):
        put_bank(dut, banks, k)
    dut.tb_go.value = 1  # the clock starts; writes land oldest first, so after the banks
    feeder = cocotb.start_soon(feed(dut, banks, first))

    out_rows: list[np.ndarray] = []
    out_classes: list[np.ndarray] = []
    shown: list[np.ndarray] = []
    taken: list[np.ndarray] = []
    banks_out = [(dut.h_out0, dut.h_out_n0), (dut.h_out1, dut.h_out_n1)]
    acked = got = 0
    idle = 0
    error = ""
    progress_every = max(1, n // 10)
    while not error:
        if int(dut.h_out_done.value) > acked:
            value_port, n_port = banks_out[acked % 2]
            count = int(n_port.value)
            text = str(value_port.value)
            try:
                value = int(text, 2)
            except ValueError:  # 4-state simulators: undefined bits in a result
                value = int(text.translate(UNRESOLVED_AS_0), 2)
                error = error or f"undefined (X/Z) bits among results {got} .. {got + count - 1}"
            d, c, s, t = split_entries(value, count, cfg)
            before = got
            got += len(d)
            out_rows.append(d)
            out_classes.append(c)
            shown.append(s)
            taken.append(t)
            acked += 1
            dut.tb_out_ack.value = acked
            if got // progress_every > before // progress_every:  # long runs show they are alive
                dut._log.info(f"{got} of {n} outputs received ({time.perf_counter() - t0:.0f} s)")
        elif int(dut.h_timeout.value):
            error = f"timeout: no output for {timeout} cycles; {got} of {n} outputs received"
        elif int(dut.h_finished.value):  # every result and the drain after them
            break
        else:
            fired = await First(
                ValueChange(dut.h_out_done),
                RisingEdge(dut.h_timeout),
                RisingEdge(dut.h_finished),
                Timer(IDLE_NS, unit="ns"),
            )
            if not isinstance(fired, Timer):
                idle = 0
                continue
            cycle = int(dut.h_cycle.value)
            if cycle - int(dut.tb_burst_at.value) >= burst:
                dut.tb_burst_at.value = cycle  # the next burst
                idle = 0
            else:
                idle += 1
                if idle >= STALLED_AFTER:
                    error = f"testbench harness stalled at cycle {cycle}: {got} of {n} outputs received (a bug)"
    wall = time.perf_counter() - t0
    feeder.cancel()
    extra = int(dut.h_extra.value)
    cycles = int(dut.h_cycle.value)
    if int(dut.h_overflow.value) and not error:
        error = "testbench harness: more samples in flight than its FIFO holds (raise FIFO_AW)"

    actual = np.concatenate(out_rows) if out_rows else np.zeros((0, int(cfg["n_out"])), dtype=np.int64)
    got_classes = np.concatenate(out_classes) if classes is not None and got else None
    taken_at = np.concatenate(taken) if taken else np.zeros(0, dtype=np.int64)
    lat = (np.concatenate(shown) - taken_at) if shown else taken_at
    record_result(
        cfg,
        Outcome(inputs, kinds, expected, classes, actual, got_classes, extra, lat, np.diff(taken_at), cycles),
        wall,
        c0,
        error,
    )
