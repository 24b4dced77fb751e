"""The ``dense`` kind: a fully connected layer with integer weights, hls4ml's ``io_parallel`` Dense.

Each product ``x * w`` is exact, then cast to ``accum_t``; the accumulator starts at ``(accum_t) bias`` and sums
the products in input order; the output is ``(result_t) acc`` (only there do ``result_t``'s modes apply).

The kernel takes the fast route (one exact matmul, then casts) only when that provably gives the same bits as
the loop:

* products are exact in ``accum_t`` (its fraction bits cover input + weight fraction bits), and
* ``accum_t`` wraps (a sum wrapped once equals the sum wrapped at every step: modular arithmetic), or a bound
  on every partial sum shows its saturation can never trigger.

The matmul is float64 BLAS when every partial sum is an integer below 2**53 (then exact in any order), int64
below 2**62, Python ints otherwise. Everything else goes through :func:`_accumulate_loop`, which is the
specification written out: per-product cast, accumulation in input order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType, Overflow, Rounding, cast
from flow.layers.base import LayerKind, Shape, common_dict, one_input, register

_FLOAT_EXACT = 2.0**53
_INT64_SAFE = 2.0**62
# Relative slack on float64 bounds: summing n terms in float64 errs by at most n * 2**-53 relatively.
_BOUND_SLACK = 1 + 1e-9
_MATMUL_ROWS = 1024
_LOOP_CHUNK_ELEMENTS = 4_000_000  # per-product casts are done on (chunk, n_in, n_out) blocks of this size


@register
@dataclass(frozen=True, eq=False)
class DenseLayer:
    """A fully connected layer with integer weights ``(n_in, n_out)`` and biases ``(n_out,)``; 1-D in and out."""

    name: str
    weight_t: FixedType
    weights: np.ndarray
    bias_t: FixedType
    biases: np.ndarray
    accum_t: FixedType
    result_t: FixedType
    inputs: tuple[str, ...] = field(default=(), kw_only=True)  # () in a constructor: the previous node
    kind: ClassVar[LayerKind] = LayerKind.DENSE
    in_hls: ClassVar[bool] = True

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[1])

    @property
    def shape(self) -> Shape:
        return (self.n_out,)

    def out_shape(self, in_shapes: list[Shape]) -> Shape:
        """Shape rule: a 1-D input of ``n_in`` values gives ``(n_out,)``."""
        got = one_input(self, in_shapes)
        if got != (self.n_in,):
            raise FlowError(f"layer {self.name} expects {self.n_in} inputs (shape [{self.n_in}]), gets {list(got)}")
        return self.shape

    def validate(self) -> None:
        """Weights and biases are raw mantissas of their types, biases one per output."""
        if self.weights.ndim != 2:
            raise FlowError(f"layer {self.name} has weights of shape {self.weights.shape}; expected (n_in, n_out)")
        if self.biases.shape != (self.n_out,):
            raise FlowError(f"layer {self.name} has {self.biases.shape} biases")
        for what, raw, t in (("weights", self.weights, self.weight_t), ("biases", self.biases, self.bias_t)):
            if raw.size and (raw.min() < t.min_raw or raw.max() > t.max_raw):
                raise FlowError(f"{self.name} {what} do not fit {t}")

    def to_dict(self) -> dict:
        """This node in ``ir.json``."""
        return common_dict(self) | {
            "n_in": self.n_in,
            "n_out": self.n_out,
            "weight_t": str(self.weight_t),
            "weights": self.weights.astype(np.int64).tolist(),
            "bias_t": str(self.bias_t),
            "biases": self.biases.astype(np.int64).tolist(),
            "accum_t": str(self.accum_t),
            "result_t": str(self.result_t),
        }

    @classmethod
    def from_dict(cls, d: dict) -> DenseLayer:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=d["name"],
            weight_t=FixedType.parse(d["weight_t"]),
            weights=np.asarray(d["weights"], dtype=np.int64).reshape(d["n_in"], d["n_out"]),
            bias_t=FixedType.parse(d["bias_t"]),
            biases=np.asarray(d["biases"], dtype=np.int64),
            accum_t=FixedType.parse(d["accum_t"]),
            result_t=FixedType.parse(d["result_t"]),
            inputs=tuple(d["inputs"]),
        )

    def kernel(self, xs: list[np.ndarray], in_types: list[FixedType], exact_loop: bool = False) -> np.ndarray:
        """Raw outputs ``(batch, n_out)`` for raw inputs ``xs[0]`` of type ``in_types[0]``; ``exact_loop`` forces the
        per-product route."""
        return _dense(self, xs[0], in_types[0], exact_loop)


def _type_abs_max(t: FixedType) -> float:
    """The largest raw magnitude of type ``t``: a bound on layer inputs that needs no pass over the data."""
    return float(max(-t.min_raw, t.max_raw))


def _dense(layer: DenseLayer, x: np.ndarray, in_t: FixedType, exact_loop: bool) -> np.ndarray:
    acc_t = layer.accum_t
    prod_frac = in_t.frac_bits + layer.weight_t.frac_bits
    bias = cast(layer.biases, layer.bias_t.frac_bits, acc_t)
    w = cast(layer.weights, layer.weight_t.frac_bits, _wrapping(layer.weight_t))  # int64 when it fits
    products_exact = acc_t.frac_bits >= prod_frac
    if exact_loop:
        acc = _accumulate_loop(x, w, bias, prod_frac, acc_t)
    elif products_exact and (acc_t.overflow is Overflow.WRAP or _never_overflows(x, w, bias, prod_frac, acc_t)):
        acc = _sum_then_cast(x, w, bias, prod_frac, acc_t, _type_abs_max(in_t))
    elif acc_t.overflow is Overflow.WRAP:
        acc = _cast_products_then_sum(x, w, bias, prod_frac, acc_t)
    else:
        acc = _accumulate_loop(x, w, bias, prod_frac, acc_t)
    return cast(acc, acc_t.frac_bits, layer.result_t)


def _wrapping(t: FixedType) -> FixedType:
    """``t`` with TRN/WRAP: the same bits wherever no rounding or overflow happens."""
    return dataclasses.replace(t, rounding=Rounding.TRN, overflow=Overflow.WRAP)


def _add(a: np.ndarray, b: np.ndarray, t: FixedType) -> np.ndarray:
    """``a + b`` exactly, for values of type ``t`` (int64 while the sum cannot overflow it)."""
    if a.dtype == np.int64 and b.dtype == np.int64 and t.width <= 62:
        return a + b
    return a.astype(object) + b.astype(object)


def _abs_max(a: np.ndarray) -> float:
    return float(max(abs(a.min()), abs(a.max()))) if a.size else 0.0


def _exact_matmul(x: np.ndarray, w: np.ndarray, x_abs_max: float | None = None) -> np.ndarray:
    """``x @ w`` exactly, on the fastest exact route (``x_abs_max``: a known bound on ``|x|``)."""
    w_col = float(np.abs(w.astype(np.float64)).sum(axis=0).max(initial=0.0))
    bound = (_abs_max(x) if x_abs_max is None else x_abs_max) * w_col * _BOUND_SLACK
    if x_abs_max is not None and bound >= _FLOAT_EXACT:
        bound = _abs_max(x) * w_col * _BOUND_SLACK  # the data may be tighter than its type
    if x.dtype == np.int64 and w.dtype == np.int64:
        if bound < _FLOAT_EXACT:
            # Every partial sum, in whatever order BLAS adds, is an integer below 2**53: exact in float64.
            wf = w.astype(np.float64)
            out = np.empty((x.shape[0], w.shape[1]), dtype=np.int64)
            for start in range(0, x.shape[0], _MATMUL_ROWS):  # blocks keep the float copy of x in cache
                rows = slice(start, start + _MATMUL_ROWS)
                out[rows] = x[rows].astype(np.float64) @ wf
            return out
        if bound < _INT64_SAFE:
            return x @ w
    return x.astype(object) @ w.astype(object)


def _never_overflows(x: np.ndarray, w: np.ndarray, bias: np.ndarray, prod_frac: int, acc_t: FixedType) -> bool:
    """Whether every partial sum ``bias + x_0 w_0 + ... + x_i w_i`` fits ``accum_t`` (so saturation is idle)."""
    if not x.size:
        return True
    x_lo, x_hi = float(x.min()), float(x.max())
    wf = w.astype(np.float64)
    ends = np.stack([x_lo * wf, x_hi * wf])
    scale = 2.0 ** (acc_t.frac_bits - prod_frac)
    b = bias.astype(np.float64)
    upper = (b + np.maximum(ends.max(axis=0), 0).sum(axis=0) * scale) * _BOUND_SLACK + 1
    lower = (b + np.minimum(ends.min(axis=0), 0).sum(axis=0) * scale) * _BOUND_SLACK - 1
    lo = -acc_t.max_raw if (acc_t.overflow is Overflow.SAT_SYM and acc_t.signed and acc_t.width > 1) else acc_t.min_raw
    # Scaling the limits toward zero keeps the comparison conservative despite float rounding of 2**W - 1.
    return bool(upper.max() < float(acc_t.max_raw) * (1 - 1e-12) and lower.min() > float(lo) * (1 - 1e-12))


def _sum_then_cast(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, prod_frac: int, acc_t: FixedType, x_abs_max: float
) -> np.ndarray:
    """Exact products summed first, then one (wrapping) cast: valid when products are exact in ``accum_t``."""
    wrap_t = _wrapping(acc_t)
    products = cast(_exact_matmul(x, w, x_abs_max), prod_frac, wrap_t)
    return cast(_add(bias[None, :], products, acc_t), acc_t.frac_bits, wrap_t)


def _cast_products_then_sum(
    x: np.ndarray, w: np.ndarray, bias: np.ndarray, prod_frac: int, acc_t: FixedType
) -> np.ndarray:
    """Each product rounded into a wrapping ``accum_t``, then summed modulo 2**W (order does not matter)."""
    n_in, n_out = w.shape
    chunk = max(1, _LOOP_CHUNK_ELEMENTS // max(1, n_in * n_out))
    out = []
    modular = acc_t.fits_int64  # sums modulo 2**64 reduce correctly modulo 2**W for W <= 64
    for start in range(0, x.shape[0], chunk):
        p = cast(_products(x[start : start + chunk], w), prod_frac, acc_t)
        if modular:
            s = p.view(np.uint64).sum(axis=1, dtype=np.uint64) + bias.astype(np.int64).view(np.uint64)
            out.append(cast(s.view(np.int64), acc_t.frac_bits, acc_t))
        else:
            out.append(cast(p.sum(axis=1) + bias.astype(object), acc_t.frac_bits, acc_t))
    return np.concatenate(out) if out else np.zeros((0, n_out), dtype=bias.dtype)


def _products(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """All exact products ``x[b, i] * w[i, j]`` as ``(batch, n_in, n_out)``."""
    if x.dtype == np.int64 and w.dtype == np.int64 and _abs_max(x) * _abs_max(w) < _INT64_SAFE:
        return x[:, :, None] * w[None, :, :]
    return x.astype(object)[:, :, None] * w.astype(object)[None, :, :]


def _accumulate_loop(x: np.ndarray, w: np.ndarray, bias: np.ndarray, prod_frac: int, acc_t: FixedType) -> np.ndarray:
    """The specification, as hls4ml's Latency loops: ``acc = (accum_t) bias; acc += (accum_t)(x_i * w_i)``."""
    batch, n_out = x.shape[0], w.shape[1]
    acc = np.broadcast_to(bias, (batch, n_out)).copy()
    small = x.dtype == np.int64 and w.dtype == np.int64 and _abs_max(x) * _abs_max(w) < _INT64_SAFE
    xs = x if small else x.astype(object)
    ws = w if small else w.astype(object)
    for i in range(w.shape[0]):
        product = cast(xs[:, i : i + 1] * ws[i][None, :], prod_frac, acc_t)
        # ap_fixed's `acc += p` is `acc = acc + p`: the exact sum assigned back with accum_t's overflow mode.
        acc = cast(_add(acc, product, acc_t), acc_t.frac_bits, acc_t)
    return acc
