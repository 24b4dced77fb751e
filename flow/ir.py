"""The intermediate representation: the single source of truth for the reference and the RTL.

Schema (``ir.json``, version 1)::

    {
      "version": 1,
      "name": "diag_05",
      "task": "classification" | "regression",
      "class_names": ["Am-241", ...] | null,
      "input": {"n": 1023, "type": "fixed<12,4,RND_CONV,SAT>"},
      "layers": [
        {"kind": "dense", "name": "fc1", "n_in": 1023, "n_out": 40,
         "weight_t": "fixed<8,1>", "weights": [[...n_out ints...] x n_in],
         "bias_t": "fixed<8,1>", "biases": [...n_out ints...],
         "accum_t": "fixed<30,12>", "result_t": "fixed<30,12>"},
        {"kind": "relu", "name": "relu1", "n": 40, "result_t": "ufixed<8,3,RND_CONV,SAT>"},
        {"kind": "cast", "name": "out_q", "n": 18, "result_t": "fixed<12,5,RND_CONV,SAT>"},
        {"kind": "clamp", "name": "table_word", "n": 1, "result_t": "ufixed<12,0,RND_CONV,SAT>",
         "lo": 0, "hi": 4095}
      ],
      "table": {"name": "charge", "shape": [256, 256], "bits": 12, ...} (table models only: flow.data.TableInfo)
    }

Every number in ``weights``/``biases`` is a raw integer mantissa of its type: the value is
``raw * 2**-type.frac_bits``. Semantics, identical to hls4ml's ``io_parallel`` Dense and ReLU:

* ``dense``: each product ``x * w`` is exact, then cast to ``accum_t``; the accumulator starts at
  ``(accum_t) bias`` and sums the products; the output is ``(result_t) acc``.
* ``relu``: ``(result_t) max(x, 0)``.
* ``cast``: ``(result_t) x`` (a linear quantizer).
* ``clamp``: ``min(max((result_t) x, lo), hi)`` with ``lo``/``hi`` raw mantissas of ``result_t``: a table
  model's output stage (round to the table's word, clamp to the table's range). hls4ml has no such layer: it
  follows the network (``HLS_KINDS``) and is checked against the reference by the RTL testbench only.

A layer's input type is the previous layer's ``result_t`` (the first layer's is ``input.type``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Union

import numpy as np

from flow.errors import FlowError
from flow.fixed import FixedType

IR_VERSION = 1


class Task(str, Enum):
    """What the network's output means."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class LayerKind(str, Enum):
    """The layer kinds the reference and the RTL implement."""

    DENSE = "dense"
    RELU = "relu"
    CAST = "cast"
    CLAMP = "clamp"


# The kinds hls4ml's C simulation computes; later kinds are post-processing checked on the RTL only.
HLS_KINDS = frozenset({LayerKind.DENSE, LayerKind.RELU, LayerKind.CAST})


@dataclass(frozen=True)
class InputSpec:
    """The network input: ``n`` values of one fixed-point type."""

    n: int
    type: FixedType


@dataclass(frozen=True, eq=False)
class DenseLayer:
    """A fully connected layer with integer weights ``(n_in, n_out)`` and biases ``(n_out,)``."""

    name: str
    weight_t: FixedType
    weights: np.ndarray
    bias_t: FixedType
    biases: np.ndarray
    accum_t: FixedType
    result_t: FixedType
    kind: LayerKind = field(default=LayerKind.DENSE, init=False)

    @property
    def n_in(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_out(self) -> int:
        return int(self.weights.shape[1])


class _Elementwise:
    """An elementwise layer: ``n`` values in, ``n`` out."""

    n: int

    @property
    def n_in(self) -> int:
        return self.n

    @property
    def n_out(self) -> int:
        return self.n


@dataclass(frozen=True)
class ReluLayer(_Elementwise):
    """Elementwise ``max(x, 0)`` cast to ``result_t``."""

    name: str
    n: int
    result_t: FixedType
    kind: LayerKind = field(default=LayerKind.RELU, init=False)


@dataclass(frozen=True)
class CastLayer(_Elementwise):
    """Elementwise cast to ``result_t`` (a linear quantizer)."""

    name: str
    n: int
    result_t: FixedType
    kind: LayerKind = field(default=LayerKind.CAST, init=False)


@dataclass(frozen=True)
class ClampLayer(_Elementwise):
    """Elementwise cast to ``result_t``, then clamped to the raw range ``[lo, hi]`` (a table's output stage)."""

    name: str
    n: int
    result_t: FixedType
    lo: int
    hi: int
    kind: LayerKind = field(default=LayerKind.CLAMP, init=False)


Layer = Union[DenseLayer, ReluLayer, CastLayer, ClampLayer]


@dataclass(frozen=True, eq=False)
class IR:
    """A whole network: input spec and an ordered list of layers."""

    name: str
    task: Task
    input: InputSpec
    layers: list[Layer]
    class_names: list[str] | None = None
    version: int = IR_VERSION
    table: dict | None = None  # the table a regressor replaces (TableInfo.to_dict): documents the bit mapping

    @property
    def n_outputs(self) -> int:
        return self.layers[-1].n_out

    @property
    def output_t(self) -> FixedType:
        return self.layers[-1].result_t

    def hls_layers(self) -> IR:
        """The IR without its post-processing layers: what hls4ml's model computes (``HLS_KINDS``)."""
        n = len(self.layers)
        while n and self.layers[n - 1].kind not in HLS_KINDS:
            n -= 1
        return IR(self.name, self.task, self.input, self.layers[:n], self.class_names, self.version)

    def with_output_stage(self, layers: list[Layer], table: dict | None = None) -> IR:
        """This IR followed by post-processing ``layers`` (a table's clamp), e.g. ``TableInfo.clamp_layer``."""
        ir = IR(self.name, self.task, self.input, [*self.layers, *layers], self.class_names, self.version, table)
        ir.validate()
        return ir

    def input_types(self) -> list[FixedType]:
        """The input type of each layer, in order."""
        types = [self.input.type]
        for layer in self.layers[:-1]:
            types.append(layer.result_t)
        return types

    def validate(self) -> None:
        """Check that shapes chain and raw values fit their types."""
        n = self.input.n
        for layer in self.layers:
            if layer.n_in != n:
                raise FlowError(f"IR {self.name}: layer {layer.name} expects {layer.n_in} inputs, gets {n}")
            if isinstance(layer, DenseLayer):
                if layer.biases.shape != (layer.n_out,):
                    raise FlowError(f"IR {self.name}: layer {layer.name} has {layer.biases.shape} biases")
                for what, raw, t in (
                    ("weights", layer.weights, layer.weight_t),
                    ("biases", layer.biases, layer.bias_t),
                ):
                    if raw.size and (raw.min() < t.min_raw or raw.max() > t.max_raw):
                        raise FlowError(f"IR {self.name}: {layer.name} {what} do not fit {t}")
            if isinstance(layer, ClampLayer):
                t = layer.result_t
                if not t.min_raw <= layer.lo <= layer.hi <= t.max_raw:
                    raise FlowError(f"IR {self.name}: {layer.name} range [{layer.lo}, {layer.hi}] does not fit {t}")
            n = layer.n_out

    def to_dict(self) -> dict:
        """The JSON-ready form (schema in this module's docstring)."""
        layers = []
        for layer in self.layers:
            d: dict = {"kind": layer.kind.value, "name": layer.name}
            if isinstance(layer, DenseLayer):
                d.update(
                    n_in=layer.n_in,
                    n_out=layer.n_out,
                    weight_t=str(layer.weight_t),
                    weights=layer.weights.astype(np.int64).tolist(),
                    bias_t=str(layer.bias_t),
                    biases=layer.biases.astype(np.int64).tolist(),
                    accum_t=str(layer.accum_t),
                    result_t=str(layer.result_t),
                )
            else:
                d.update(n=layer.n, result_t=str(layer.result_t))
            if isinstance(layer, ClampLayer):
                d.update(lo=int(layer.lo), hi=int(layer.hi))
            layers.append(d)
        out = {
            "version": self.version,
            "name": self.name,
            "task": self.task.value,
            "class_names": self.class_names,
            "input": {"n": self.input.n, "type": str(self.input.type)},
            "layers": layers,
        }
        if self.table is not None:
            out["table"] = self.table
        return out

    @classmethod
    def from_dict(cls, d: dict) -> IR:
        """Inverse of :meth:`to_dict`."""
        if d.get("version") != IR_VERSION:
            raise FlowError(f"IR version {d.get('version')} is not supported (expected {IR_VERSION})")
        layers: list[Layer] = []
        for ld in d["layers"]:
            kind = LayerKind(ld["kind"])
            rt = FixedType.parse(ld["result_t"])
            if kind is LayerKind.DENSE:
                w = np.asarray(ld["weights"], dtype=np.int64).reshape(ld["n_in"], ld["n_out"])
                layers.append(
                    DenseLayer(
                        name=ld["name"],
                        weight_t=FixedType.parse(ld["weight_t"]),
                        weights=w,
                        bias_t=FixedType.parse(ld["bias_t"]),
                        biases=np.asarray(ld["biases"], dtype=np.int64),
                        accum_t=FixedType.parse(ld["accum_t"]),
                        result_t=rt,
                    )
                )
            elif kind is LayerKind.RELU:
                layers.append(ReluLayer(name=ld["name"], n=ld["n"], result_t=rt))
            elif kind is LayerKind.CLAMP:
                layers.append(ClampLayer(name=ld["name"], n=ld["n"], result_t=rt, lo=int(ld["lo"]), hi=int(ld["hi"])))
            else:
                layers.append(CastLayer(name=ld["name"], n=ld["n"], result_t=rt))
        ir = cls(
            name=d["name"],
            task=Task(d["task"]),
            input=InputSpec(n=d["input"]["n"], type=FixedType.parse(d["input"]["type"])),
            layers=layers,
            class_names=d.get("class_names"),
            table=d.get("table"),
        )
        ir.validate()
        return ir

    def digest(self) -> str:
        """sha256 of the canonical JSON: every stage output records the IR it came from by this digest."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def save(self, path: Path) -> None:
        """Write ``ir.json`` atomically."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), separators=(",", ":")))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> IR:
        """Read ``ir.json``."""
        path = Path(path)
        if not path.exists():
            raise FlowError(f"{path}: no IR here; run `make hls` first")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise FlowError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); run `make hls` again") from None
        if not isinstance(data, dict) or data.get("version") is None:
            raise FlowError(f"{path}: not an IR file (no version); run `make hls` again")
        try:
            return cls.from_dict(data)
        except FlowError as exc:
            raise FlowError(f"{path}: {exc}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise FlowError(f"{path}: not a valid IR ({type(exc).__name__}: {exc}); run `make hls` again") from None
