"""The intermediate representation: the single source of truth for the reference and the RTL.

A small graph: named graph inputs, nodes in topological order (each naming its inputs), named outputs.
Schema (``ir.json``, version 2)::

    {
      "version": 2,
      "name": "diag_05",
      "task": "classification" | "regression",
      "class_names": ["Am-241", ...] | null,
      "inputs": [{"name": "input_1", "shape": [1023], "type": "fixed<12,4,RND_CONV,SAT>"}],
      "nodes": [
        {"kind": "dense", "name": "fc1", "inputs": ["input_1"], "shape": [40], "n_in": 1023, "n_out": 40,
         "weight_t": "fixed<8,1>", "weights": [[...n_out ints...] x n_in],
         "bias_t": "fixed<8,1>", "biases": [...n_out ints...],
         "accum_t": "fixed<30,12>", "result_t": "fixed<30,12>"},
        {"kind": "relu", "name": "relu1", "inputs": ["fc1"], "shape": [40], "result_t": "ufixed<8,3,RND_CONV,SAT>"},
        {"kind": "cast", "name": "out_q", "inputs": ["..."], "shape": [18], "result_t": "fixed<12,5,RND_CONV,SAT>"},
        {"kind": "clamp", "name": "table_word", "inputs": ["..."], "shape": [1],
         "result_t": "ufixed<12,0,RND_CONV,SAT>", "lo": 0, "hi": 4095}
      ],
      "outputs": ["out_q"],
      "hardware": {"backend": "Vitis", "part": "xcu250-figd2104-2L-e", "io_type": "io_parallel",
                   "clock_period_ns": 5.0, "strategy": "resource",
                   "layers": {"fc1": {"reuse_factor": 1023, "strategy": "resource"}, ...}} | null,
      "table": {"name": "charge", "shape": [256, 256], "bits": 12, ...} (table models only: flow.data.TableInfo)
    }

``shape`` is a node's output tensor (a tuple: ``[40]``, later ``[12, 12, 4]``); each kind's shape rule
(:mod:`flow.layers`) must give it from the input shapes. ``hardware`` is what hls4ml applied when it converted the
model (read back from its model, not the card): per layer the reuse factor and strategy, the I/O type and the
clock period; null for an IR not made by hls4ml. Every number in ``weights``/``biases`` is a raw integer mantissa
of its type: the value is ``raw * 2**-type.frac_bits``. A node's input type is the ``result_t`` of the node (or
the ``type`` of the graph input) it names. The kinds and their semantics (identical to hls4ml's ``io_parallel``
layers) are in :mod:`flow.layers`:

* ``dense``: each product ``x * w`` is exact, then cast to ``accum_t``; the accumulator starts at
  ``(accum_t) bias`` and sums the products; the output is ``(result_t) acc``.
* ``relu``: ``(result_t) max(x, 0)``.
* ``cast``: ``(result_t) x`` (a linear quantizer).
* ``clamp``: ``min(max((result_t) x, lo), hi)`` with ``lo``/``hi`` raw mantissas of ``result_t``: a table
  model's output stage (round to the table's word, clamp to the table's range). hls4ml has no such layer: it
  follows the network and is checked against the reference by the RTL testbench only.

* ``log1p``, ``diagonal_difference``, ``vote``: an ensemble's feature stage and voter (``count_width``; ``diagonal``;
  ``method``, ``n_classes`` and for soft voting ``softmax`` types); semantics in their modules. A node of one of
  these kinds checks its input types (``check_input_types``) when the IR is validated.

Version 1 (a flat list of ``layers`` with ``n`` only) is refused with a one-line "rebuild" message.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path

from flow.errors import FlowError
from flow.fixed import FixedType
from flow.layers import (
    KINDS,
    CastLayer,
    ClampLayer,
    DenseLayer,
    Layer,
    LayerKind,
    ReluLayer,
    Shape,
    layer_from_dict,
    size,
)
from flow.layers.base import as_shape

IR_VERSION = 2

__all__ = [
    "HLS_KINDS",
    "IR",
    "IR_VERSION",
    "KINDS",
    "AppliedHardware",
    "CastLayer",
    "ClampLayer",
    "DenseLayer",
    "InputSpec",
    "Layer",
    "LayerHardware",
    "LayerKind",
    "ReluLayer",
    "Task",
]


class Task(str, Enum):
    """What the network's output means."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


# The kinds hls4ml's C simulation computes; the others are post-processing checked on the RTL only.
HLS_KINDS = frozenset(kind for kind, cls in KINDS.items() if cls.in_hls)


@dataclass(frozen=True)
class InputSpec:
    """A graph input: a tensor of ``shape`` values of one fixed-point type."""

    shape: Shape
    type: FixedType
    name: str = "input"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", as_shape(self.shape, f"input {self.name}"))

    @property
    def n(self) -> int:
        return size(self.shape)

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "type": str(self.type)}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(tuple(d["shape"]), FixedType.parse(d["type"]), d["name"])


@dataclass(frozen=True)
class LayerHardware:
    """What hls4ml applied to one layer."""

    reuse_factor: int
    strategy: str


@dataclass(frozen=True)
class AppliedHardware:
    """The hardware settings hls4ml applied at conversion (read back from its model)."""

    backend: str
    part: str
    io_type: str
    clock_period_ns: float
    strategy: str
    layers: dict[str, LayerHardware] = field(default_factory=dict)

    def reuse_factors(self) -> dict[str, int]:
        """Layer name -> the reuse factor hls4ml used."""
        return {name: hw.reuse_factor for name, hw in self.layers.items()}

    def to_dict(self) -> dict:
        return {
            "backend": self.backend,
            "part": self.part,
            "io_type": self.io_type,
            "clock_period_ns": self.clock_period_ns,
            "strategy": self.strategy,
            "layers": {n: {"reuse_factor": h.reuse_factor, "strategy": h.strategy} for n, h in self.layers.items()},
        }

    @classmethod
    def from_dict(cls, d: dict) -> AppliedHardware:
        layers = {n: LayerHardware(int(h["reuse_factor"]), str(h["strategy"])) for n, h in d["layers"].items()}
        return cls(d["backend"], d["part"], d["io_type"], float(d["clock_period_ns"]), d["strategy"], layers)


@dataclass(frozen=True, eq=False)
class IR:
    """A whole network: graph inputs, nodes in topological order, outputs (default: the last node)."""

    name: str
    task: Task
    inputs: list[InputSpec]
    nodes: list[Layer]
    class_names: list[str] | None = None
    outputs: list[str] = field(default_factory=list)
    hardware: AppliedHardware | None = None
    table: dict | None = None  # the table a regressor replaces (TableInfo.to_dict): documents the bit mapping
    version: int = IR_VERSION

    def __post_init__(self) -> None:
        # A node constructed without inputs takes the previous node (the first: the only graph input).
        nodes, prev = [], self.inputs[0].name if len(self.inputs) == 1 else None
        for node in self.nodes:
            if not node.inputs:
                if prev is None:
                    raise FlowError(f"IR {self.name}: node {node.name} names no inputs")
                node = replace(node, inputs=(prev,))
            nodes.append(node)
            prev = node.name
        object.__setattr__(self, "inputs", list(self.inputs))
        object.__setattr__(self, "nodes", nodes)
        if not self.outputs and nodes:
            object.__setattr__(self, "outputs", [nodes[-1].name])

    # ----------------------------------------------------------------------------------------------- access

    @property
    def layers(self) -> list[Layer]:
        """The nodes in topological order (the name version 1 used)."""
        return self.nodes

    @property
    def input(self) -> InputSpec:
        """The graph input of a single-input IR."""
        if len(self.inputs) != 1:
            raise FlowError(f"IR {self.name} has {len(self.inputs)} inputs; this step takes one")
        return self.inputs[0]

    @property
    def output(self) -> Layer:
        """The output node of a single-output IR."""
        if len(self.outputs) != 1:
            raise FlowError(f"IR {self.name} has {len(self.outputs)} outputs; this step takes one")
        return self.node(self.outputs[0])

    @property
    def n_outputs(self) -> int:
        return size(self.output.shape)

    @property
    def output_t(self) -> FixedType:
        return self.output.result_t

    def node(self, name: str) -> Layer:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise FlowError(f"IR {self.name}: no node named {name!r}")

    def types(self) -> dict[str, FixedType]:
        """Tensor name (graph input or node) -> its fixed-point type."""
        return {i.name: i.type for i in self.inputs} | {n.name: n.result_t for n in self.nodes}

    def shapes(self) -> dict[str, Shape]:
        """Tensor name (graph input or node) -> its shape."""
        return {i.name: i.shape for i in self.inputs} | {n.name: n.shape for n in self.nodes}

    def input_types(self) -> list[FixedType]:
        """The type of each node's (first) input, in node order."""
        types = self.types()
        return [types[node.inputs[0]] for node in self.nodes]

    def reuse_factors(self) -> dict[str, int]:
        """The reuse factor hls4ml applied to each dense node (none for an IR not made by hls4ml)."""
        applied = self.hardware.reuse_factors() if self.hardware else {}
        return {n.name: applied[n.name] for n in self.nodes if n.kind is LayerKind.DENSE and n.name in applied}

    def chain(self, needs: str = "this step") -> list[Layer]:
        """The nodes of a chain-shaped graph in order; a one-line FlowError naming ``needs`` for any other graph."""
        prev = self.input.name if len(self.inputs) == 1 else None
        for node in self.nodes:
            if node.inputs != (prev,):
                raise FlowError(
                    f"IR {self.name}: node {node.name} takes {', '.join(node.inputs)}, not only the node before it; "
                    f"{needs} needs a chain of layers"
                )
            prev = node.name
        if self.outputs != [prev]:
            raise FlowError(f"IR {self.name}: outputs {', '.join(self.outputs)}; {needs} needs the last node's only")
        return self.nodes

    # ---------------------------------------------------------------------------------------- derived IRs

    def hls_layers(self) -> IR:
        """The IR without its trailing post-processing nodes: what hls4ml's model computes (``HLS_KINDS``)."""
        n = len(self.nodes)
        while n and not self.nodes[n - 1].in_hls:
            n -= 1
        kept = self.nodes[:n]
        names = {node.name for node in kept}
        outputs = [o for o in self.outputs if o in names] or [node.name for node in kept[-1:]]
        return IR(self.name, self.task, self.inputs, kept, self.class_names, outputs, self.hardware)

    def with_output_stage(self, layers: list[Layer], table: dict | None = None) -> IR:
        """This single-output IR followed by post-processing ``layers`` (a table's clamp): ``TableInfo.clamp_layer``."""
        prev, staged = self.output.name, []
        for layer in layers:
            layer = layer if layer.inputs else replace(layer, inputs=(prev,))
            staged.append(layer)
            prev = layer.name
        ir = IR(
            self.name, self.task, self.inputs, [*self.nodes, *staged], self.class_names, [prev], self.hardware, table
        )
        ir.validate()
        return ir

    # ------------------------------------------------------------------------------------------ checking

    def validate(self) -> None:
        """Check names, that every node's inputs come before it, the shape rules and that raw values fit."""
        shapes: dict[str, Shape] = {}
        types = self.types()
        for spec in self.inputs:
            if spec.name in shapes:
                raise FlowError(f"IR {self.name}: two graph inputs named {spec.name}")
            shapes[spec.name] = spec.shape
        for node in self.nodes:
            if node.name in shapes:
                raise FlowError(f"IR {self.name}: the name {node.name} is used twice")
            missing = [i for i in node.inputs if i not in shapes]
            if missing:
                raise FlowError(f"IR {self.name}: node {node.name} takes {', '.join(missing)}, not defined before it")
            try:
                shapes[node.name] = node.out_shape([shapes[i] for i in node.inputs])
                node.validate()
                # Kinds whose inputs must have particular types (log1p: counts) check them here.
                check_types = getattr(node, "check_input_types", None)
                if check_types is not None:
                    check_types([types[i] for i in node.inputs])
            except FlowError as exc:
                raise FlowError(f"IR {self.name}: {exc}") from None
        unknown = [o for o in self.outputs if o not in shapes]
        if not self.outputs or unknown:
            raise FlowError(f"IR {self.name}: outputs {self.outputs} must name nodes")

    # ------------------------------------------------------------------------------------ serialisation

    def to_dict(self) -> dict:
        """The JSON-ready form (schema in this module's docstring)."""
        out = {
            "version": self.version,
            "name": self.name,
            "task": self.task.value,
            "class_names": self.class_names,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "nodes": [node.to_dict() for node in self.nodes],
            "outputs": list(self.outputs),
            "hardware": None if self.hardware is None else self.hardware.to_dict(),
        }
        if self.table is not None:
            out["table"] = self.table
        return out

    @classmethod
    def from_dict(cls, d: dict) -> IR:
        """Inverse of :meth:`to_dict`; another version is a one-line "rebuild" FlowError."""
        version = d.get("version")
        if version != IR_VERSION:
            age = "an older" if isinstance(version, int) and version < IR_VERSION else "another"
            model = d.get("name") or "<name>"
            raise FlowError(f"ir.json version {version} is from {age} qflow; rebuild with `make hls MODEL={model}`")
        hw = d.get("hardware")
        ir = cls(
            name=d["name"],
            task=Task(d["task"]),
            inputs=[InputSpec.from_dict(i) for i in d["inputs"]],
            nodes=[layer_from_dict(n) for n in d["nodes"]],
            class_names=d.get("class_names"),
            outputs=list(d["outputs"]),
            hardware=None if hw is None else AppliedHardware.from_dict(hw),
            table=d.get("table"),
        )
        ir.validate()
        for node, nd in zip(ir.nodes, d["nodes"]):
            if list(node.shape) != list(nd["shape"]):
                raise FlowError(
                    f"IR {ir.name}: node {node.name} declares shape {nd['shape']}, its rule gives {list(node.shape)}"
                )
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
