"""The per-clock cocotb testbench (``flow sim --driver clock``): the design itself is the simulator's top level.

The reference point for :mod:`flow.tb.qflow_tb` (the default, whose per-cycle work runs in HDL): the same
settings (``QFLOW_TB_CONFIG``), vectors, checks and result file, but one coroutine does the work of a driver
(inputs with random idle gaps, beats with ``in_last`` for streaming designs), a back-pressure source (random
``out_ready``), a monitor and an in-order checker, one clock cycle per loop, with a cocotb clock. Its random
draws come from Python's generator, so its gaps and stalls differ from the harness' for the same seed.
"""

from __future__ import annotations

import random
import time

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import First, ReadOnly, RisingEdge, Timer
from cocotb.utils import get_sim_time

from flow.tb.packing import pack_rows, unpack_rows
from flow.tb.qflow_tb import Outcome, load_config, load_vectors, record_result


def reader(handle):
    """A fast function reading ``handle`` as an unsigned int (1-bit ports give Logic, wider ones LogicArray)."""
    if len(handle) == 1:
        return lambda: int(handle.value)
    return lambda: handle.value.to_unsigned()


def beat_words(inputs: np.ndarray, cfg: dict) -> list[list[int]]:
    """Each sample's ``in_data`` values, one per beat (inputs past the last are zeros)."""
    n, n_in = inputs.shape
    beats, per_beat = int(cfg["beats"]), int(cfg["in_beat"])
    padded = np.zeros((n, beats * per_beat), dtype=np.int64)
    padded[:, :n_in] = inputs
    words = pack_rows(padded.reshape(n * beats, per_beat), int(cfg["in_width"]))
    return [words[k * beats : (k + 1) * beats] for k in range(n)]


@cocotb.test()
async def run_vectors(dut) -> None:
    """Drive every vector, check every output bit-exactly and in order, measure latency and II."""
    cfg = load_config()
    n, inputs, expected, classes, kinds = load_vectors(cfg)
    packed = beat_words(inputs, cfg)
    beats = int(cfg["beats"])
    rng = random.Random(int(cfg.get("seed", 1)))
    gap_prob, max_gap = float(cfg.get("gap_prob", 0.0)), int(cfg.get("max_gap", 0))
    ready_prob = float(cfg.get("ready_prob", 1.0))
    timeout = int(cfg.get("timeout_cycles", 100_000))

    clk, in_valid, in_ready, in_data = dut.clk, dut.in_valid, dut.in_ready, dut.in_data
    out_valid, out_ready, out_data, out_class = dut.out_valid, dut.out_ready, dut.out_data, dut.out_class
    read_data, read_class = reader(out_data), reader(out_class)
    in_last = dut.in_last if beats > 1 else None
    cocotb.start_soon(Clock(clk, 10, unit="ns").start())
    in_valid.value = 0
    out_ready.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(clk)
    dut.rst.value = 0

    sent = got = 0
    beat = 0
    cycle = 0
    gap = 0
    idle = 0
    appear = -1
    accept_cycle = np.zeros(n, dtype=np.int64)
    output_cycle = np.zeros(n, dtype=np.int64)
    out_words: list[int] = []
    out_classes: list[int] = []
    extra = 0
    drain = int(cfg.get("latency_expected") or 0) + 16
    error = ""
    t_first = get_sim_time("ns")  # a rising edge: cycle k starts at t_first + 10 k
    t_cycle = t_first
    t0 = time.perf_counter()
    c0 = time.process_time()
    progress_every = max(1, n // 10)
    while True:
        # Drive this cycle's inputs (just after the rising edge).
        offer = False
        if sent < n:
            if gap == 0 and rng.random() < gap_prob:
                gap = rng.randint(1, max(1, max_gap))
            if gap:
                gap -= 1
            else:
                offer = True
        in_valid.value = int(offer)
        if offer:
            in_data.value = packed[sent][beat]
            if in_last is not None:
                in_last.value = int(beat == beats - 1)
        ready = got >= n or rng.random() < ready_prob
        out_ready.value = int(ready)
        await ReadOnly()
        # Sample the handshakes that happen at the coming edge.
        if offer and in_ready.value:
            if beat == beats - 1:  # latency counts from the last beat
                accept_cycle[sent] = cycle
                sent += 1
                beat = 0
            else:
                beat += 1
        shown = bool(out_valid.value)
        if shown and appear < 0:
            appear = cycle  # latency counts to the first cycle a result is shown, not to its handshake
        if ready and shown:
            if got < n:
                out_words.append(read_data())
                out_classes.append(read_class())
                output_cycle[got] = appear
                got += 1
                idle = 0
                if got % progress_every == 0:  # long simulations show they are alive in the log
                    dut._log.info(f"{got} of {n} outputs received ({time.perf_counter() - t0:.0f} s)")
            else:
                extra += 1
            appear = -1
        else:
            idle += 1
        # Blocked: the offer waits for in_ready, or everything was sent (in_valid is already low).
        blocked = (offer and not in_ready.value) or (not offer and sent >= n)
        if blocked and not shown and got < n:
            # Nothing can happen until in_ready or out_valid rises (both registered, or combinational from
            # registers and our constant out_ready): skip the idle cycles of a busy folded design.
            await First(RisingEdge(in_ready), RisingEdge(out_valid), Timer(10 * (timeout + 1), unit="ns"))
            now = get_sim_time("ns")
            idle += int(now - t_cycle) // 10 - 1
            cycle = int(now - t_first) // 10
        else:
            await RisingEdge(clk)
            cycle += 1
        t_cycle = t_first + 10 * cycle
        if got >= n:
            drain -= 1
            if drain <= 0:
                break
        elif idle > timeout:
            error = f"timeout: no output for {timeout} cycles; {got} of {n} outputs received, {sent} inputs taken"
            break
    wall = time.perf_counter() - t0

    actual = unpack_rows(out_words, int(cfg["n_out"]), int(cfg["out_width"]), bool(cfg["out_signed"]))
    got_classes = np.asarray(out_classes, dtype=np.int64) if classes is not None and got else None
    lat, gaps = output_cycle[:got] - accept_cycle[:got], np.diff(accept_cycle[:sent])
    outcome = Outcome(inputs, kinds, expected, classes, actual, got_classes, extra, lat, gaps, cycle)
    record_result(cfg, outcome, wall, c0, error)
