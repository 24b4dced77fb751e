"""Bit-exact batch inference on the IR: the specification every backend is tested against.

The graph is evaluated node by node in its (topological) order; each node's arithmetic is its kind's
``kernel`` (:mod:`flow.layers`), on raw integer mantissas ``(batch, *shape)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, from_float
from flow.ir import IR
from flow.layers import size


@dataclass
class Trace:
    """Every node's output, in node order: raw mantissas ``(batch, *shape)`` and their types."""

    raw: list[np.ndarray]
    types: list[FixedType]
    names: list[str]

    @property
    def output_raw(self) -> np.ndarray:
        """The last node's raw outputs."""
        return self.raw[-1]

    def floats(self, i: int) -> np.ndarray:
        """Node ``i``'s outputs as float64."""
        return self.types[i].to_float(self.raw[i])

    def of(self, name: str) -> np.ndarray:
        """The raw outputs of the node called ``name``."""
        return self.raw[self.names.index(name)]


def quantize_input(ir: IR, x: np.ndarray) -> np.ndarray:
    """Float inputs ``(batch, n)`` to raw input mantissas, with the input type's rounding and overflow."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    if x.ndim != 2 or x.shape[1] != ir.input.n:
        raise FlowError(f"IR {ir.name}: expected inputs of shape (batch, {ir.input.n}), got {x.shape}")
    return from_float(x, ir.input.type)


def run(ir: IR, x_raw: np.ndarray, *, exact_loop: bool = False) -> Trace:
    """Exact integer inference on raw input mantissas; ``exact_loop`` forces the slow per-product route."""
    x = _check_input(ir, x_raw)
    spec = ir.input
    values = {spec.name: x.reshape((len(x), *spec.shape))}
    types = ir.types()
    trace = Trace([], [], [])
    for node in ir.nodes:
        y = node.kernel([values[i] for i in node.inputs], [types[i] for i in node.inputs], exact_loop)
        values[node.name] = y
        trace.raw.append(y)
        trace.types.append(node.result_t)
        trace.names.append(node.name)
    return trace


TRACE_BUDGET = 50_000_000  # values a whole-network trace may hold at once (int64: 400 MB)


def batch_limit(ir: IR, budget: int | None = None) -> int:
    """How many vectors a trace of every node may hold within ``budget`` values (default ``TRACE_BUDGET``)."""
    budget = TRACE_BUDGET if budget is None else budget
    return max(1, budget // max(1, sum(size(node.shape) for node in ir.nodes) + ir.input.n))


def predict(ir: IR, x_float: np.ndarray) -> np.ndarray:
    """Float outputs ``(batch, n_outputs)`` for float inputs (in blocks that keep each trace within budget)."""
    x_raw = quantize_input(ir, x_float)
    step = batch_limit(ir)
    blocks = [run(ir, x_raw[i : i + step]).output_raw for i in range(0, len(x_raw), step)]
    raw = np.concatenate(blocks) if blocks else run(ir, x_raw).output_raw
    return ir.output_t.to_float(raw)


def classify(ir: IR, x_float: np.ndarray) -> np.ndarray:
    """The predicted class per sample (ties: lowest index, as numpy's and hls4ml's argmax)."""
    return classes(ir, run(ir, quantize_input(ir, x_float)).output_raw)


def classes(ir: IR, output_raw: np.ndarray) -> np.ndarray:
    """The class per sample of raw outputs: the argmax of logits, or the index a voting node gives."""
    if getattr(ir.output, "gives_class", False):
        return np.asarray(output_raw)[:, 0].astype(np.int64)
    return np.argmax(output_raw, axis=1)


def _check_input(ir: IR, x_raw: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x_raw))
    if x.ndim != 2 or x.shape[1] != ir.input.n:
        raise FlowError(f"IR {ir.name}: expected raw inputs of shape (batch, {ir.input.n}), got {x.shape}")
    if x.dtype.kind not in "iuO":
        raise FlowError(f"IR {ir.name}: raw inputs must be integers, got dtype {x.dtype}")
    t = ir.input.type
    if x.size and (x.min() < t.min_raw or x.max() > t.max_raw):
        raise FlowError(f"IR {ir.name}: raw inputs outside {t} ([{t.min_raw}, {t.max_raw}]); use quantize_input")
    if x.dtype == object and t.fits_int64:
        return x.astype(np.int64)
    return x if x.dtype in (np.int64, object) else x.astype(np.int64 if t.fits_int64 else object)
