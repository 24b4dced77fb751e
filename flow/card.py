"""Model cards: the YAML files in ``qmodels/`` that describe a quantized network (schema: qmodels/README.md)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flow.errors import FlowError
from flow.fixed import FixedType, parse_card_bits

QMODELS_DIR = Path(__file__).resolve().parent.parent / "qmodels"

BACKENDS = ("Vitis", "Vivado")
IO_TYPES = ("io_parallel",)
STRATEGIES = ("Latency", "Resource")
ARCHS = ("parallel", "folded", "da")
TASKS = ("classification", "regression")


@dataclass(frozen=True)
class Bits:
    """A card bitwidth ``(W,I)``: QKeras ``quantized_bits(W,I)`` / ``quantized_relu(W,I)``."""

    width: int
    int_bits: int

    def __str__(self) -> str:
        return f"({self.width},{self.int_bits})"

    def fixed(self, kind: str) -> FixedType:
        """The hls4ml type of an activation quantized this way (``kind`` is ``bits`` or ``relu``)."""
        return FixedType.from_card((self.width, self.int_bits), kind)


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the card: ``dense``, ``relu`` or ``dropout``."""

    type: str
    name: str
    units: int = 0
    weight: Bits | None = None
    bias: Bits | None = None
    activation: Bits | None = None
    rate: float = 0.0
    reuse_factor: int = 1


@dataclass(frozen=True)
class Training:
    """Training settings."""

    epochs: int = 50
    batch_size: int = 256
    learning_rate: float = 1e-3
    patience: int = 5
    seed: int = 1


@dataclass(frozen=True)
class Hardware:
    """Settings for hls4ml and the RTL generator."""

    backend: str = "Vitis"
    part: str = "xcu250-figd2104-2L-e"
    clock_period_ns: float = 5.0
    io_type: str = "io_parallel"
    strategy: str = "Latency"
    arch: str = "parallel"


@dataclass(frozen=True)
class Card:
    """A validated model card."""

    name: str
    path: Path | None
    task: str
    description: str
    dataset: dict
    input: Bits
    layers: tuple[LayerSpec, ...]
    output: Bits | None
    training: Training
    hardware: Hardware
    search: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict, repr=False)

    def training_fingerprint(self, dataset_fingerprint: str) -> str:
        """Hash of everything that determines the trained weights (not the hardware settings)."""
        payload = {
            "task": self.task,
            "input": str(self.input),
            "layers": [asdict(layer) | {"reuse_factor": None} for layer in self.layers],
            "output": str(self.output),
            "training": asdict(self.training),
            "dataset": dataset_fingerprint,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def bitwidths(self) -> dict[str, str]:
        """Per-layer bitwidths in card notation, for reports."""
        out = {"input": str(self.input)}
        for layer in self.layers:
            for what in ("weight", "bias", "activation"):
                bits = getattr(layer, what)
                if bits is not None:
                    out[f"{layer.name}.{what}"] = str(bits)
        if self.output is not None:
            out["output"] = str(self.output)
        return out


_TOP_KEYS = {
    "name",
    "base",
    "description",
    "task",
    "dataset",
    "input",
    "layers",
    "output",
    "training",
    "hardware",
    "search",
}
_LAYER_KEYS = {
    "dense": {"type", "name", "units", "weight", "bias", "reuse_factor"},
    "relu": {"type", "name", "activation"},
    "dropout": {"type", "name", "rate"},
}


class _Where:
    """Builds error messages that name the card file and the field."""

    def __init__(self, path: Path | None):
        self.path = path

    def error(self, fld: str, msg: str) -> FlowError:
        where = str(self.path) if self.path else "<card>"
        return FlowError(f"{where}: {fld}: {msg}")


def _merge(base: dict, over: dict) -> dict:
    """Deep-merge ``over`` onto ``base``: mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_yaml(path: Path, w: _Where) -> dict:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "syntax"
        raise w.error(line, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(data, dict):
        raise w.error("top level", "must be a mapping of fields (name, dataset, layers, ...)")
    return data


def resolve_card_path(name_or_path: str | Path) -> Path:
    """``diag_05`` -> ``qmodels/diag_05.yaml``; a path is taken as is."""
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = Path(text)
    else:
        path = QMODELS_DIR / f"{text}.yaml"
        if not path.exists():
            path = QMODELS_DIR / "generated" / f"{text}.yaml"
    if not path.exists():
        known = ", ".join(list_cards()[:8])
        raise FlowError(f"{path}: no such model card (known: {known}, ...; or give a path to a .yaml)")
    return path


def list_cards() -> list[str]:
    """Names of the shipped cards (files starting with ``_`` are bases, not models)."""
    return sorted(p.stem for p in QMODELS_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def load_raw(path: Path, _seen: tuple[Path, ...] = ()) -> dict:
    """Read a card and the chain of ``base:`` cards it extends, merged."""
    w = _Where(path)
    if path in _seen:
        raise w.error("base", "cycle of base cards")
    data = _read_yaml(path, w)
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise w.error("base", "must be a file name relative to this card")
    base_path = (path.parent / base).resolve()
    if not base_path.exists():
        raise w.error("base", f"{base_path.name} does not exist next to this card")
    return _merge(load_raw(base_path, _seen + (path,)), data)


def load_card(name_or_path: str | Path) -> Card:
    """Load, merge and validate a card."""
    path = resolve_card_path(name_or_path)
    return parse_card(load_raw(path), path)


def _bits(w: _Where, fld: str, value: Any, kind: str) -> Bits:
    try:
        width, int_bits = parse_card_bits(value)
        FixedType.from_card((width, int_bits), kind)
    except FlowError as exc:
        raise w.error(fld, str(exc)) from None
    return Bits(width, int_bits)


def _int(w: _Where, fld: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise w.error(fld, f"{value!r} is not allowed; expected an integer {rng}")
    return value


def _float(w: _Where, fld: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise w.error(fld, f"{value!r} is not allowed; expected a number in [{lo}, {hi}]")
    return float(value)


def _choice(w: _Where, fld: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise w.error(fld, f"{value!r} is not allowed; expected one of {', '.join(allowed)}")
    return value


def _unknown(w: _Where, fld: str, given: dict, allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed)
    if any(str(key).endswith(")") for key in extra):
        raise w.error(
            fld.rstrip("."), "a bitwidth inside {...} must be quoted, e.g. {weight: '(8,1)'}, or use block style"
        )
    if extra:
        raise w.error(f"{fld}{extra[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _layers(w: _Where, items: Any) -> tuple[LayerSpec, ...]:
    if not isinstance(items, list) or not items:
        raise w.error("layers", "must be a non-empty list of layers (dense, relu, dropout)")
    counts = {"dense": 0, "relu": 0, "dropout": 0}
    layers = []
    for i, item in enumerate(items):
        fld = f"layers[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            raise w.error(fld, "each layer is a mapping with a `type` (dense, relu, dropout)")
        kind = _choice(w, f"{fld}.type", item["type"], tuple(_LAYER_KEYS))
        _unknown(w, f"{fld}.", item, _LAYER_KEYS[kind])
        counts[kind] += 1
        default_name = {"dense": "fc", "relu": "relu", "dropout": "dropout"}[kind] + str(counts[kind])
        name = item.get("name", default_name)
        if not isinstance(name, str) or not name.isidentifier():
            raise w.error(f"{fld}.name", f"{name!r} is not allowed; expected an identifier")
        if kind == "dense":
            for req in ("units", "weight", "bias"):
                if req not in item:
                    raise w.error(f"{fld}.{req}", "missing; a dense layer needs units, weight, bias")
            layers.append(
                LayerSpec(
                    type=kind,
                    name=name,
                    units=_int(w, f"{fld}.units", item["units"], 1, 65536),
                    weight=_bits(w, f"{fld}.weight", item["weight"], "bits"),
                    bias=_bits(w, f"{fld}.bias", item["bias"], "bits"),
                    reuse_factor=_int(w, f"{fld}.reuse_factor", item.get("reuse_factor", 1), 1),
                )
            )
        elif kind == "relu":
            if "activation" not in item:
                raise w.error(f"{fld}.activation", "missing; a relu layer needs its bitwidth, e.g. (8,3)")
            layers.append(
                LayerSpec(type=kind, name=name, activation=_bits(w, f"{fld}.activation", item["activation"], "relu"))
            )
        else:
            layers.append(
                LayerSpec(type=kind, name=name, rate=_float(w, f"{fld}.rate", item.get("rate", 0.25), 0.0, 0.95))
            )
    names = [layer.name for layer in layers]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise w.error("layers", f"layer name {sorted(dup)[0]!r} is used twice")
    if layers[-1].type == "relu" or not any(layer.type == "dense" for layer in layers):
        raise w.error("layers", "needs at least one dense layer and must not end in relu (the output is the logits)")
    return tuple(layers)


def parse_card(data: dict, path: Path | None = None) -> Card:
    """Validate merged card data."""
    w = _Where(path)
    _unknown(w, "", data, _TOP_KEYS)
    for req in ("dataset", "input", "layers"):
        if req not in data:
            raise w.error(req, "missing (a card needs name, dataset, input, layers)")
    name = data.get("name", path.stem if path else None)
    if not isinstance(name, str) or not name.replace("-", "_").isidentifier():
        raise w.error("name", f"{name!r} is not allowed; expected letters, digits and _")
    # A project's copy is always card.yaml; every other card is named after its file.
    if path is not None and name != path.stem and path.name != "card.yaml":
        raise w.error("name", f"{name!r} differs from the file name {path.stem!r}")
    dataset = data["dataset"]
    if not isinstance(dataset, dict) or "kind" not in dataset:
        raise w.error("dataset", "must be a mapping with a `kind` (spectra, table, npz)")
    default_task = "regression" if dataset.get("kind") == "table" else "classification"
    task = _choice(w, "task", data.get("task", default_task), TASKS)

    tr = data.get("training", {}) or {}
    if not isinstance(tr, dict):
        raise w.error("training", "must be a mapping")
    _unknown(w, "training.", tr, {"epochs", "batch_size", "learning_rate", "patience", "seed"})
    training = Training(
        epochs=_int(w, "training.epochs", tr.get("epochs", 50), 1, 10000),
        batch_size=_int(w, "training.batch_size", tr.get("batch_size", 256), 1),
        learning_rate=_float(w, "training.learning_rate", tr.get("learning_rate", 1e-3), 1e-7, 1.0),
        patience=_int(w, "training.patience", tr.get("patience", 5), 0),
        seed=_int(w, "training.seed", tr.get("seed", 1), 0, 2**31 - 1),
    )
    hw = data.get("hardware", {}) or {}
    if not isinstance(hw, dict):
        raise w.error("hardware", "must be a mapping")
    _unknown(w, "hardware.", hw, {"backend", "part", "clock_period_ns", "io_type", "strategy", "arch"})
    hardware = Hardware(
        backend=_choice(w, "hardware.backend", hw.get("backend", "Vitis"), BACKENDS),
        part=str(hw.get("part", Hardware.part)),
        clock_period_ns=_float(w, "hardware.clock_period_ns", hw.get("clock_period_ns", 5.0), 0.1, 1000.0),
        io_type=_choice(w, "hardware.io_type", hw.get("io_type", "io_parallel"), IO_TYPES),
        strategy=_choice(w, "hardware.strategy", hw.get("strategy", "Latency"), STRATEGIES),
        arch=_choice(w, "hardware.arch", hw.get("arch", "parallel"), ARCHS),
    )
    output = data.get("output")
    search = data.get("search", {}) or {}
    if not isinstance(search, dict):
        raise w.error("search", "must be a mapping (see qmodels/README.md)")
    return Card(
        name=name,
        path=path,
        task=task,
        description=str(data.get("description", "")),
        dataset=dict(dataset),
        input=_bits(w, "input", data["input"], "bits"),
        layers=_layers(w, data["layers"]),
        output=None if output is None else _bits(w, "output", output, "bits"),
        training=training,
        hardware=hardware,
        search=search,
        raw=data,
    )


def card_to_yaml(data: dict) -> str:
    """Serialise merged card data (for ``qmodels/generated`` and the project's copy)."""
    return yaml.safe_dump(data, sort_keys=False)
