"""da4ml's own Verilog for an IR: the peer design the area benchmark compares ``shiftadd`` against.

The IR is rebuilt exactly through da4ml's trace API (its CMVM solver for each dense layer, its quantizers for
every cast, RND_CONV built from its own operations: da4ml has only TRN and RND), traced into one combinational
logic, checked bit-exact against :mod:`flow.reference` on the given vectors (da4ml's own interpreter) and only
then written as Verilog with :class:`da4ml.codegen.VerilogModel`. The folder gets ``files.txt`` and
``design.json`` like a :func:`flow.rtl.generate` folder, so :func:`flow.cost.yosys.cost_rtl` costs it the same way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flow import reference
from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding
from flow.ir import IR, CastLayer, ClampLayer, DenseLayer, ReluLayer
from flow.project import atomic_dir, write_json
from flow.rtl.common import aligned_biases, top_name

_ROUND = {Rounding.TRN: "TRN", Rounding.RND: "RND"}  # RND_CONV is built in _rnd_conv; the rest are not supported
_OVERFLOW = {Overflow.WRAP: "WRAP", Overflow.SAT: "SAT", Overflow.SAT_SYM: "SAT_SYM"}


@dataclass(frozen=True)
class PeerDesign:
    """A written da4ml design folder and what building it measured."""

    out_dir: Path
    top: str
    latency_cycles: int
    adders_cost: float  # da4ml's own cost estimate (LUT-like units)
    trace_s: float
    vectors_checked: int


def _kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (keep_negative, integer bits without the sign, fraction bits) of ``t``."""
    return int(t.signed), t.int_bits - int(t.signed), t.frac_bits


def _rnd_conv(v, frac_bits: int):
    """``v`` rounded half to even at ``frac_bits`` from da4ml's operations (it has only TRN and RND).

    Adding ``2**-(f+1) - 2**-f_in`` rounds ties down; adding back one input LSB when the kept LSB is odd rounds
    those ties up, to the even neighbour; then truncate.
    """
    k, i, f_in = (int(x) for x in v.kif)
    if f_in <= frac_bits:
        return v
    kept_lsb = v.quantize(0, 1 - frac_bits, frac_bits, "WRAP", "TRN")  # 0 or 2**-frac_bits
    u = v + (2.0 ** -(frac_bits + 1) - 2.0**-f_in) + kept_lsb * 2.0 ** (frac_bits - f_in)
    ku, iu, _ = (int(x) for x in u.kif)
    return u.quantize(ku, iu, frac_bits, "WRAP", "TRN")


def _cast(v, t: FixedType):
    """``(t) v`` with ``t``'s rounding, then its overflow, as ap_fixed does."""
    k, i, f = _kif(t)
    ovf = Overflow.SAT if t.overflow is Overflow.SAT_SYM and not t.signed else t.overflow
    if ovf not in _OVERFLOW or (t.rounding not in _ROUND and t.rounding is not Rounding.RND_CONV):
        raise FlowError(f"da4ml peer: cast to {t} is not supported (rounding TRN, RND, RND_CONV; overflow WRAP, SAT)")
    if t.rounding is Rounding.RND_CONV:
        v = _rnd_conv(v, f)
        return v.quantize(k, i, f, _OVERFLOW[ovf], "TRN")
    return v.quantize(k, i, f, _OVERFLOW[ovf], _ROUND[t.rounding])


def _dense(x: list, layer: DenseLayer) -> list:
    """``(accum_t) bias + sum(x * w)`` wrapped to ``accum_t`` (its CMVM solver), then ``(result_t)``."""
    from da4ml.trace import FixedVariableArray

    acc_t = layer.accum_t
    w = np.asarray(layer.weights, dtype=np.float64) * 2.0**-layer.weight_t.frac_bits
    b = np.asarray(aligned_biases(layer), dtype=np.float64) * 2.0**-acc_t.frac_bits
    y = FixedVariableArray(np.array(x, dtype=object)) @ w
    k, i, f = _kif(acc_t)
    out = []
    for j in range(layer.n_out):
        acc = (y[j] + float(b[j])).quantize(k, i, f, "WRAP", "TRN")  # exact products: only the wrap applies
        out.append(_cast(acc, layer.result_t))
    return out


def _clamp(x: list, layer: ClampLayer) -> list:
    """The table output stage: cast, then ``min(max(., lo), hi)``."""
    t = layer.result_t
    lo, hi = layer.lo * 2.0**-t.frac_bits, layer.hi * 2.0**-t.frac_bits
    out = []
    for v in x:
        c = _cast(v, t)
        if layer.lo > t.min_raw:
            c = c.max_of(lo)
        if layer.hi < t.max_raw:
            c = c.min_of(hi)
        out.append(c)
    return out


# Layer kind -> its trace (list of da4ml variables in, list out).
_TRACERS = {
    DenseLayer: _dense,
    ReluLayer: lambda x, layer: [_cast(v.relu(), layer.result_t) for v in x],
    CastLayer: lambda x, layer: [_cast(v, layer.result_t) for v in x],
    ClampLayer: _clamp,
}


def trace(ir: IR):
    """da4ml's combinational logic (``CombLogic``) computing ``ir`` on raw-grid inputs."""
    from da4ml.trace import FixedVariableArrayInput, comb_trace

    inp = FixedVariableArrayInput((ir.input.n,))
    x = list(inp.quantize(*_kif(ir.input.type))._vars)
    for layer in ir.layers:
        tracer = _TRACERS.get(type(layer))
        if tracer is None:
            raise FlowError(f"da4ml peer: layer kind {layer.kind.value} is not supported")
        x = tracer(x, layer)
    return comb_trace(inp, np.array(x, dtype=object))


def check(ir: IR, comb, inputs_raw: np.ndarray) -> int:
    """Integer equality of da4ml's logic (its interpreter) with the reference on every output; a FlowError names
    the first differing vector. Returns the number of vectors checked."""
    x = np.asarray(inputs_raw, dtype=np.int64)
    want = np.asarray(reference.run(ir, x).raw[-1], dtype=np.int64)
    got_value = comb.predict(x.astype(np.float64) * 2.0**-ir.input.type.frac_bits, n_threads=1)
    got_value = np.asarray(got_value, dtype=np.float64).reshape(want.shape)
    got = got_value * 2.0**ir.output_t.frac_bits
    if not np.array_equal(got, np.rint(got)) or not np.array_equal(got.astype(np.int64), want):
        bad = int(np.argwhere((got != want).any(axis=1))[0][0])
        raise FlowError(f"da4ml peer of {ir.name}: vector {bad} gives {got[bad].tolist()}, want {want[bad].tolist()}")
    return len(x)


def generate(ir: IR, out_dir: Path, inputs_raw: np.ndarray, latency_cutoff: float = -1) -> PeerDesign:
    """Trace, check against the reference on ``inputs_raw``, and write da4ml's Verilog into ``out_dir``.

    ``latency_cutoff`` > 0 pipelines it with da4ml's own pipeliner (registers every that many adder delays).
    """
    from da4ml.codegen import VerilogModel

    t0 = time.perf_counter()
    comb = trace(ir)
    trace_s = time.perf_counter() - t0
    checked = check(ir, comb, inputs_raw)
    top = top_name(ir)
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:
        model = VerilogModel(comb, top, tmp / "prj", latency_cutoff=latency_cutoff, print_latency=False)
        model.write()
        src = tmp / "prj" / "src"
        main = sorted(p for p in src.glob("*.v") if not p.name.endswith("_wrapper.v"))
        text = "".join(p.read_text() for p in main)
        # only the static blocks the design instantiates (its lookup-table block reads a ROM image it may lack)
        files = [str(p.relative_to(tmp)) for p in sorted((src / "static").glob("*.v")) if p.stem in text]
        files += [str(p.relative_to(tmp)) for p in main]
        latency = len(model._pipe.solutions) if model._pipe is not None else 0  # one register per stage
        (tmp / "files.txt").write_text("".join(f"{f}\n" for f in files))
        write_json(tmp / "design.json", {"top": top, "arch": "da4ml", "latency_cycles_expected": latency})
    return PeerDesign(out_dir, top, latency, float(comb.cost), round(trace_s, 1), checked)
