"""The reference against QKeras itself: the trained model is the specification.

Each Keras layer is fed the reference's own input to it (exact grid values, so errors cannot cascade) and its
float32 output is compared with the reference's output of the IR layers it became. The allowed difference comes
from the types and the data, per element:

* a QDense computes ``x @ Wq + bq`` in float32: at most ``gamma(n_in + 1) * (|x| @ |W| + |b|)`` (``gamma(n) =
  n u / (1 - n u)``, ``u = 2**-24``) plus the straight-through estimator's rounding of ``Wq = w + (wq - w)``
  (``2**-23 (|w| + |wq|)`` per weight) and the float32 rounding of its inputs;
* a BatchNormalization (statistics folded, flow/batchnorm.py) computes ``x * s + b`` in float32: at most
  ``4 u (|x| |s| + |b|)`` (a few roundings, ``rsqrt`` included) plus the float32 rounding of its input times ``|s|``;
* a quantizer rounds exactly, so it may differ by one LSB of its type only where its exact input lies within that
  error of a rounding tie, plus its own straight-through rounding (``2**-23 (|x| + |xq|)``).

Anything beyond is a failure naming the first layer that differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flow import reference
from flow.errors import FlowError
from flow.fixed import FixedType
from flow.ir import IR, LayerKind
from flow.metrics import agreement
from flow.quantizers import QLayer, check_model

_U = 2.0**-24  # float32 unit roundoff
_STE = 2.0**-23  # x + (xq - x) in float32: two roundings
_WEIGHTED = {"QDense": LayerKind.DENSE, "QConv2D": LayerKind.CONV2D}  # Keras class -> the IR kind it becomes
_SCALED = {"BatchNormalization": LayerKind.BATCHNORM}  # Keras class -> the IR kind of its per-channel x * s + b
_EXACT = {"MaxPooling2D", "Flatten"}  # no arithmetic: QKeras gives the reference's values exactly


@dataclass
class LayerCheck:
    """One Keras layer against the IR layers it became."""

    keras_layer: str
    ir_layers: list[str]
    lsb: float  # of the compared IR type
    max_diff_lsb: float
    bound_lsb: float  # the largest per-element allowance met on this data
    violations: int
    first_vector: int | None = None


@dataclass
class QKerasCheck:
    """Outcome over every compared layer, plus the end-to-end difference (information)."""

    vectors: int
    layers: list[LayerCheck] = field(default_factory=list)
    end_to_end: dict[str, float] = field(default_factory=dict)
    problem: str | None = None  # a failure not tied to one layer

    @property
    def first_failure(self) -> LayerCheck | None:
        return next((c for c in self.layers if c.violations), None)

    @property
    def passed(self) -> bool:
        return self.problem is None and self.first_failure is None

    def message(self) -> str:
        """One line: PASS figures or the first differing layer."""
        bad = self.first_failure
        if self.problem:
            return f"QKeras vs reference: {self.problem}"
        if bad is not None:
            return (
                f"QKeras vs reference: layer {bad.keras_layer} (IR {'+'.join(bad.ir_layers)}) differs on "
                f"{bad.violations} values (first at test vector {bad.first_vector}): up to {bad.max_diff_lsb:.4g} LSB "
                f"where float32 rounding allows {bad.bound_lsb:.4g}; the hardware would not compute the trained model"
            )
        worst = max((c.max_diff_lsb for c in self.layers), default=0.0)
        return (
            f"QKeras vs reference: every layer within float32 rounding on {self.vectors} test vectors "
            f"(max {worst:.3g} LSB per layer; end to end max |diff| {self.end_to_end.get('max_abs_diff', 0):.4g})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "vectors": self.vectors,
            "bound": "per element: float32 rounding of each layer's arithmetic (flow/qkeras_check.py); "
            "one LSB only where the exact value is that close to a rounding tie",
            "problem": self.problem,
            "layers": [c.__dict__ for c in self.layers],
            "end_to_end": self.end_to_end,
        }


def _ir_group(q: QLayer, layers: list, pos: int, is_input_quantizer: bool) -> list[int]:
    """The IR layers (indices from ``pos``) a Keras layer became: a QDense is a dense layer plus its activation,
    unless hls4ml folded that activation into the dense layer's result type."""
    if q.class_name in _WEIGHTED:
        split = q.output_t is not None and pos + 1 < len(layers) and layers[pos + 1].name == q.hls_name
        return [pos, pos + 1] if split else [pos]
    if q.class_name in _EXACT or q.class_name in _SCALED:
        return [pos]
    if q.output_t is not None and not is_input_quantizer:
        return [pos]
    return []


def _float32_error(x: np.ndarray) -> np.ndarray:
    return np.abs(x.astype(np.float32).astype(np.float64) - x)


def _tie_flip(v: np.ndarray, err: np.ndarray, t: FixedType) -> np.ndarray:
    """Where an error ``err`` on the exact value ``v`` may move it across a rounding tie of ``t``."""
    scaled = np.ldexp(v, t.frac_bits)
    dist = np.abs(scaled - (np.floor(scaled) + 0.5))
    return dist <= np.ldexp(err, t.frac_bits) * (1 + 1e-6)


def check(keras_model, ir: IR, x_raw: np.ndarray, trace: reference.Trace | None = None) -> QKerasCheck:
    """Compare every Keras layer of ``keras_model`` with the reference on raw inputs ``x_raw``."""
    import tensorflow as tf

    trace = trace or reference.run(ir, x_raw)
    layers = ir.chain("the QKeras check")  # the Keras models qflow takes are chains
    result = QKerasCheck(vectors=int(len(x_raw)))
    checked = check_model(keras_model, keras_model.name)
    input_q = next((q for q in checked if q.class_name not in ("InputLayer", "Dropout")), None)
    x_float = ir.input.type.to_float(x_raw)
    value = x_float
    pos = 0
    for q, layer in zip(checked, keras_model.layers):
        group = _ir_group(q, layers, pos, q is input_q and q.class_name == "QActivation")
        if not group:
            continue
        kind = layers[group[0]].kind if group[-1] < len(layers) else None
        # A weighted or scaling layer must meet its kind, any other layer none of theirs.
        expected = _WEIGHTED.get(q.class_name) or _SCALED.get(q.class_name)
        if kind is None or (kind is not expected if expected else kind in {*_WEIGHTED.values(), *_SCALED.values()}):
            result.problem = f"layer {q.name} ({q.class_name}) has no counterpart in the IR: hls4ml changed the network"
            return result
        pos = group[-1] + 1
        fed = value.reshape((len(value), *layer.input_shape[1:]))  # image layers take (batch, h, w, c)
        got = np.asarray(layer(tf.constant(fed, dtype=tf.float32), training=False), dtype=np.float64)
        got = got.reshape(len(value), -1)
        ref_t = trace.types[group[-1]]
        ref = trace.floats(group[-1]).reshape(len(value), -1)
        if q.class_name in _EXACT:
            allowed = _float32_error(ref)
        elif q.class_name in _WEIGHTED:
            node, n = layers[group[0]], len(value)
            # A convolution is a dense layer per output pixel: the same bound on every pixel's window.
            dense = node.as_dense() if node.kind is LayerKind.CONV2D else node
            rows = node.windows(value).reshape(-1, dense.n_in) if node.kind is LayerKind.CONV2D else value
            value = rows
            w = dense.weight_t.to_float(dense.weights)
            b = dense.bias_t.to_float(dense.biases)
            kernel = np.abs(np.asarray(layer.kernel, dtype=np.float64)).reshape(w.shape)
            bias = np.abs(np.asarray(layer.bias, dtype=np.float64)) if layer.use_bias else np.zeros_like(b)
            ax = np.abs(value)
            gamma = (dense.n_in + 1) * _U / (1 - (dense.n_in + 1) * _U)
            err = (
                gamma * (ax @ np.abs(w) + np.abs(b))
                + ax @ (_STE * (kernel + np.abs(w)))
                + _STE * (bias + np.abs(b))
                + _float32_error(value) @ np.abs(w)
            )
            if q.output_t is not None:
                exact_in = (value @ w + b).reshape(n, -1)  # the accumulator (float64: exact while below 2**53)
                err = err.reshape(n, -1)
                allowed = _tie_flip(exact_in, err, ref_t) * ref_t.lsb + _STE * (np.abs(exact_in) + np.abs(ref))
            else:
                allowed = err.reshape(n, -1)
        elif q.class_name in _SCALED:
            node, n = layers[group[0]], len(value)
            s = np.abs(node.scale_t.to_float(node.scale))
            b = np.abs(node.bias_t.to_float(node.bias))
            v = value.reshape(n, -1, node.channels)
            allowed = (4 * _U * (np.abs(v) * s + b) + _float32_error(v) * s).reshape(n, -1)
        else:
            err = _float32_error(value)
            allowed = _tie_flip(value, err, ref_t) * ref_t.lsb + _STE * (np.abs(value) + np.abs(ref))
        diff = np.abs(got - ref)
        bad = diff > allowed * (1 + 1e-6) + 1e-300
        rows = np.flatnonzero(bad.any(axis=1))
        result.layers.append(
            LayerCheck(
                keras_layer=q.name,
                ir_layers=[layers[i].name for i in group],
                lsb=ref_t.lsb,
                max_diff_lsb=float(diff.max(initial=0.0) / ref_t.lsb),
                bound_lsb=float(allowed.max(initial=0.0) / ref_t.lsb),
                violations=int(bad.sum()),
                first_vector=int(rows[0]) if rows.size else None,
            )
        )
        value = ref  # the next layer is fed the reference's exact values
    if pos != len(layers):
        result.problem = f"the IR has {len(layers) - pos} layers after the Keras model's last: hls4ml changed it"
        return result
    q_out = np.asarray(keras_model.predict(x_float, verbose=0, batch_size=4096), dtype=np.float64)
    ref_out = ir.output_t.to_float(trace.raw[-1])
    result.end_to_end = {
        **agreement(ir.task.value, q_out, ref_out),
        "max_abs_diff_lsb": float(np.abs(q_out - ref_out).max(initial=0.0) / ir.output_t.lsb),
    }
    return result


def require(result: QKerasCheck) -> None:
    """Raise the one-line failure."""
    if not result.passed:
        raise FlowError(result.message())
