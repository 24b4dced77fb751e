"""Model cards: the YAML files in ``qmodels/`` that describe a quantized network (schema: qmodels/README.md)."""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flow.card_schema import QMODELS_DIR, Bits, Where, check_bits
from flow.errors import FlowError
from flow.rtl import ARCHS, CARD_DEFAULT_ARCH, settable_knobs, user_knobs
from flow.search.space import parse_space

BACKENDS = ("Vitis", "Vivado")
IO_TYPES = ("io_parallel",)
STRATEGIES = ("Latency", "Resource")
TASKS = ("classification", "regression")
# Names flow/model.py gives its own layers (the Input and the input/output quantizers): Keras needs unique names.
RESERVED_LAYER_NAMES = ("x", "input_q", "output_q", "image")


@dataclass(frozen=True)
class LayerSpec:
    """One layer of the card (its ``type`` is a key of :data:`CARD_LAYERS`)."""

    type: str
    name: str
    units: int = 0
    weight: Bits | None = None
    bias: Bits | None = None
    activation: Bits | None = None
    rate: float = 0.0
    reuse_factor: int = 1
    filters: int = 0  # conv2d
    kernel: int = 0  # conv2d: kernel height = width
    padding: str = "valid"  # conv2d: valid or same (stride 1)
    pool: int = 0  # maxpool2d: pool height = width = stride
    scale: Bits | None = None  # batchnorm: the folded per-channel scale (its shift is ``bias``)


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
    arch: str = CARD_DEFAULT_ARCH
    sample_rate_mhz: float | None = None  # a rate the design must accept samples at (e.g. 40 for a trigger)
    knobs: dict = field(default_factory=dict)  # architecture -> the knobs set by name (flow.rtl.user_knobs)


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
    # Dotted field -> the file (this card or one of its bases) that sets it, for error messages.
    origins: dict = field(default_factory=dict, repr=False, compare=False)

    def training_fingerprint(self, dataset_fingerprint: str) -> str:
        """Hash of everything that determines the trained weights (not the hardware settings)."""
        payload = {
            "task": self.task,
            "input": str(self.input),
            "layers": [_fingerprint_fields(layer) for layer in self.layers],
            "output": str(self.output),
            "training": asdict(self.training),
            "dataset": dataset_fingerprint,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def bitwidths(self) -> dict[str, str]:
        """Per-layer bitwidths in card notation, for reports."""
        out = {"input": str(self.input)}
        for layer in self.layers:
            for what in ("weight", "bias", "scale", "activation"):
                bits = getattr(layer, what)
                if bits is not None:
                    out[f"{layer.name}.{what}"] = str(bits)
        if self.output is not None:
            out["output"] = str(self.output)
        return out


# LayerSpec fields added after cards were first trained: left out of the fingerprint while unset, so models trained
# before a field existed are still reused.
_LATER_FIELDS = ("scale",)


def _fingerprint_fields(layer: LayerSpec) -> dict:
    """A layer's fields that decide its trained weights (the reuse factor does not)."""
    fields = asdict(layer) | {"reuse_factor": None}
    return {k: v for k, v in fields.items() if not (k in _LATER_FIELDS and v is None)}


_TOP_KEYS = {
    "name",
    "base",
    "description",
    "task",
    "dataset",
    "input",
    "layers",
    "output",
    "bitwidths",
    "training",
    "hardware",
    "search",
}
# ``bitwidths:`` gives each layer type's default; a layer's own field overrides it. Key -> (layer type, fields).
BITWIDTH_TYPES = {
    "conv": ("conv2d", ("weight", "bias")),
    "dense": ("dense", ("weight", "bias")),
    "activation": ("relu", ("activation",)),
    "batchnorm": ("batchnorm", ("scale", "bias")),
}
PADDINGS = ("valid", "same")


def _merge(base: dict, over: dict) -> dict:
    """Deep-merge ``over`` onto ``base``: mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _origins(data: dict, path: Path, prefix: str = "") -> dict[str, Path]:
    """Every field of one file's data, dotted into mappings (lists come whole from one file) -> ``path``."""
    out: dict[str, Path] = {}
    for key, value in data.items():
        fld = f"{prefix}{key}"
        out[fld] = path
        if isinstance(value, dict):
            out |= _origins(value, path, f"{fld}.")
    return out


def _read_text(path: Path) -> str:
    if path.is_dir():
        raise FlowError(f"{path}: is a directory, expected a .yaml file")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FlowError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise FlowError(f"{path}: cannot read ({exc.strerror})") from None


def _read_yaml(path: Path, w: Where) -> dict:
    text = _read_text(path)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "syntax"
        raise w.error(line, f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except ValueError as exc:  # PyYAML's int() of a number with more than 4300 digits
        raise w.error("syntax", f"not valid YAML ({exc})") from None
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


def load_raw(path: Path) -> dict:
    """Read a card and the chain of ``base:`` cards it extends, merged."""
    return _load_chain(path)[0]


def _load_chain(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict, dict[str, Path]]:
    """The merged data of a card and its ``base:`` chain, and the file each field comes from."""
    w = Where(path)
    if path in seen:
        raise w.error("base", "cycle of base cards")
    data = _read_yaml(path, w)
    base = data.pop("base", None)
    origins = _origins(data, path)
    if base is None:
        return data, origins
    if not isinstance(base, str):
        raise w.error("base", "must be a file name relative to this card")
    base_path = (path.parent / base).resolve()
    if not base_path.exists():
        raise w.error("base", f"{base_path.name} does not exist next to this card")
    if base_path.is_dir():
        raise w.error("base", f"{base!r} is a directory, expected a .yaml file")
    base_data, base_origins = _load_chain(base_path, seen + (path,))
    # This card's fields override its base's; so does their origin (a mapping keeps its base's other keys).
    return _merge(base_data, data), base_origins | origins


def load_card(name_or_path: str | Path) -> Card:
    """Load, merge and validate a card."""
    path = resolve_card_path(name_or_path)
    data, origins = _load_chain(path)
    return parse_card(data, path, origins)


def load_merged(path: Path) -> tuple[dict, dict[str, Path]]:
    """A card's data merged with its bases (a copy the caller may change) and the file each field comes from."""
    data, origins = _load_chain(path)
    return copy.deepcopy(data), origins


def _int(w: Where, fld: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise w.error(fld, f"{value!r} is not allowed; expected an integer {rng}")
    return value


def _float(w: Where, fld: str, value: Any, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise w.error(fld, f"{value!r} is not allowed; expected a number in [{lo}, {hi}]")
    return float(value)


def _part(w: Where, value: Any) -> str:
    # A part name goes into hls4ml's project and the vendor tool's script as is.
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise w.error("hardware.part", f"{value!r} is not allowed; expected a device name such as xcu250-figd2104-2L-e")
    return value


def _choice(w: Where, fld: str, value: Any, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise w.error(fld, f"{value!r} is not allowed; expected one of {', '.join(allowed)}")
    return value


def _knobs(w: Where, value: Any) -> dict:
    """``hardware.knobs``: per architecture, the knobs it is generated with (e.g. ``shiftadd: {solver: csd}``)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise w.error("hardware.knobs", "must map an architecture to its knobs, e.g. shiftadd: {solver: csd}")
    out = {}
    for arch, given in value.items():
        fld = f"hardware.knobs.{arch}"
        if arch not in ARCHS:
            raise w.error(fld, f"unknown architecture; expected one of {', '.join(ARCHS)}")
        if not isinstance(given, dict):
            known = ", ".join(settable_knobs(arch)) or "none"
            raise w.error(fld, f"must be a mapping of knob -> value (knobs: {known})")
        try:
            out[arch] = user_knobs(arch, given)
        except FlowError as exc:
            raise w.error(fld, str(exc)) from None
    return out


def _unknown(w: Where, fld: str, given: dict, allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed, key=str)  # key: YAML keys may be numbers too
    if any(str(key).endswith(")") for key in extra):
        raise w.error(
            fld.rstrip("."), "a bitwidth inside {...} must be quoted, e.g. {weight: '(8,1)'}, or use block style"
        )
    if extra:
        raise w.error(f"{fld}{extra[0]}", f"unknown field; allowed: {', '.join(sorted(allowed))}")


def _layer_name(w: Where, fld: str, name: Any, seen: dict[str, str]) -> str:
    """An ASCII identifier, not one of flow's own layer names and not used by an earlier layer."""
    # ASCII: TensorFlow fails on other names.
    if not isinstance(name, str) or not (name.isascii() and name.isidentifier()):
        raise w.error(fld, f"{name!r} is not allowed; expected ASCII letters, digits and _, not starting with a digit")
    if name in RESERVED_LAYER_NAMES:
        raise w.error(fld, f"{name!r} is reserved; expected a name other than {', '.join(RESERVED_LAYER_NAMES)}")
    if name in seen:
        raise w.error(fld, f"{name!r} is already the name of {seen[name]}; expected a unique name")
    seen[name] = fld.removesuffix(".name")
    return name


def _bitwidth_defaults(w: Where, given: Any) -> dict[str, dict[str, Bits]]:
    """``bitwidths:`` as layer type -> field -> Bits (the fields of :data:`BITWIDTH_TYPES`)."""
    if given is None:
        return {}
    if not isinstance(given, dict):
        raise w.error("bitwidths", f"must be a mapping of layer type to (W,I): {', '.join(BITWIDTH_TYPES)}")
    _unknown(w, "bitwidths.", given, set(BITWIDTH_TYPES))
    out: dict[str, dict[str, Bits]] = {}
    for key, value in given.items():
        layer_type, fields = BITWIDTH_TYPES[key]
        bits = check_bits(w, f"bitwidths.{key}", value, "relu" if layer_type == "relu" else "bits")
        out[layer_type] = {f: bits for f in fields}
    return out


def _bits_of(w: Where, fld: str, item: dict, key: str, kind: str, defaults: dict[str, dict[str, Bits]]) -> Bits:
    """A layer's bitwidth field: its own, else the ``bitwidths:`` default of its type, else a one-line error."""
    if key in item:
        return check_bits(w, f"{fld}.{key}", item[key], kind)
    default = defaults.get(item["type"], {}).get(key)
    if default is None:
        source = next(t for t, (lt, _) in BITWIDTH_TYPES.items() if lt == item["type"])
        raise w.error(f"{fld}.{key}", f"missing; give it here or as bitwidths.{source}, e.g. (12,2)")
    return default


Defaults = dict[str, dict[str, Bits]]


def _dense_fields(w: Where, fld: str, item: dict, defaults: Defaults) -> dict:
    if "units" not in item:
        raise w.error(f"{fld}.units", "missing; a dense layer needs units")
    return {
        "units": _int(w, f"{fld}.units", item["units"], 1, 65536),
        "weight": _bits_of(w, fld, item, "weight", "bits", defaults),
        "bias": _bits_of(w, fld, item, "bias", "bits", defaults),
        "reuse_factor": _int(w, f"{fld}.reuse_factor", item.get("reuse_factor", 1), 1),
    }


def _conv2d_fields(w: Where, fld: str, item: dict, defaults: Defaults) -> dict:
    for req in ("filters", "kernel"):
        if req not in item:
            raise w.error(f"{fld}.{req}", "missing; a conv2d layer needs filters and kernel")
    return {
        "filters": _int(w, f"{fld}.filters", item["filters"], 1, 1024),
        "kernel": _int(w, f"{fld}.kernel", item["kernel"], 1, 15),
        "padding": _choice(w, f"{fld}.padding", item.get("padding", "valid"), PADDINGS),
        "weight": _bits_of(w, fld, item, "weight", "bits", defaults),
        "bias": _bits_of(w, fld, item, "bias", "bits", defaults),
    }


def _batchnorm_fields(w: Where, fld: str, item: dict, defaults: Defaults) -> dict:
    return {
        "scale": _bits_of(w, fld, item, "scale", "bits", defaults),
        "bias": _bits_of(w, fld, item, "bias", "bits", defaults),
    }


@dataclass(frozen=True)
class CardLayerType:
    """One ``layers:`` type: the fields it takes (besides ``type`` and ``name``), its default name and its parser."""

    fields: frozenset[str]
    default_name: str
    parse: Callable[[Where, str, dict, Defaults], dict]  # -> the LayerSpec fields it sets


# The card's layer types (flow/model.py builds each in Keras; qmodels/README.md documents them).
CARD_LAYERS: dict[str, CardLayerType] = {
    "dense": CardLayerType(frozenset({"units", "weight", "bias", "reuse_factor"}), "fc", _dense_fields),
    "relu": CardLayerType(
        frozenset({"activation"}),
        "relu",
        lambda w, fld, item, d: {"activation": _bits_of(w, fld, item, "activation", "relu", d)},
    ),
    "dropout": CardLayerType(
        frozenset({"rate"}),
        "dropout",
        lambda w, fld, item, d: {"rate": _float(w, f"{fld}.rate", item.get("rate", 0.25), 0.0, 0.95)},
    ),
    "conv2d": CardLayerType(frozenset({"filters", "kernel", "padding", "weight", "bias"}), "conv", _conv2d_fields),
    "maxpool2d": CardLayerType(
        frozenset({"pool"}),
        "pool",
        lambda w, fld, item, d: {"pool": _int(w, f"{fld}.pool", item.get("pool", 2), 2, 16)},
    ),
    "flatten": CardLayerType(frozenset(), "flatten", lambda w, fld, item, d: {}),
    "batchnorm": CardLayerType(frozenset({"scale", "bias"}), "bn", _batchnorm_fields),
}


def _layers(w: Where, items: Any, defaults: Defaults | None = None) -> tuple[LayerSpec, ...]:
    defaults = defaults or {}
    kinds = ", ".join(CARD_LAYERS)
    if not isinstance(items, list) or not items:
        raise w.error("layers", f"must be a non-empty list of layers ({kinds})")
    counts = dict.fromkeys(CARD_LAYERS, 0)
    names: dict[str, str] = {}
    layers = []
    for i, item in enumerate(items):
        fld = f"layers[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            raise w.error(fld, f"each layer is a mapping with a `type` ({kinds})")
        kind = _choice(w, f"{fld}.type", item["type"], tuple(CARD_LAYERS))
        layer_type = CARD_LAYERS[kind]
        _unknown(w, f"{fld}.", item, {"type", "name", *layer_type.fields})
        counts[kind] += 1
        name = _layer_name(w, f"{fld}.name", item.get("name", layer_type.default_name + str(counts[kind])), names)
        layers.append(LayerSpec(type=kind, name=name, **layer_type.parse(w, fld, item, defaults)))
    if layers[-1].type == "relu" or not any(layer.type == "dense" for layer in layers):
        raise w.error("layers", "needs at least one dense layer and must not end in relu (the output is the logits)")
    _check_image_layers(w, layers)
    _check_batchnorm(w, layers)
    return tuple(layers)


def _check_batchnorm(w: Where, layers: list[LayerSpec]) -> None:
    """A batchnorm follows a dense or conv2d layer directly: it scales that layer's exact outputs per channel."""
    for i, layer in enumerate(layers):
        if layer.type == "batchnorm" and (i == 0 or layers[i - 1].type not in ("dense", "conv2d")):
            raise w.error(f"layers[{i}]", "a batchnorm goes right after a dense or conv2d layer")


def _check_image_layers(w: Where, layers: list[LayerSpec]) -> None:
    """Image layers (conv2d, maxpool2d) come before one flatten, which comes before every dense layer."""
    flat = [i for i, layer in enumerate(layers) if layer.type == "flatten"]
    image = [i for i, layer in enumerate(layers) if layer.type in ("conv2d", "maxpool2d")]
    dense = [i for i, layer in enumerate(layers) if layer.type == "dense"]
    if image and len(flat) != 1:
        raise w.error("layers", "a network with conv2d or maxpool2d layers needs one flatten before its dense layers")
    if flat and (not image or max(image) > flat[0] or min(dense) < flat[0]):
        raise w.error(f"layers[{flat[0]}]", "flatten goes after the conv2d/maxpool2d layers and before every dense")


def _dataset(spec: Any, path: Path | None) -> dict:
    """The ``dataset:`` mapping, checked by its kind's own rules (flow/data); data files are read when built."""
    from flow.data import check_dataset  # lazy: flow.data pulls in numpy and scipy

    check_dataset(spec, card_path=path, files=False)
    return dict(spec)


def _check_search(card: Card) -> None:
    """Validate ``search:`` with the search's own parser, so a card `flow search` rejects does not load."""
    parse_space(card)


def parse_card(data: dict, path: Path | None = None, origins: dict[str, Path] | None = None) -> Card:
    """Validate merged card data (``origins``: the file each field comes from, see :func:`load_card`)."""
    w = Where(path, origins)
    _unknown(w, "", data, _TOP_KEYS)
    for req in ("dataset", "input", "layers"):
        if req not in data:
            raise w.error(req, "missing (a card needs name, dataset, input, layers)")
    name = data.get("name", path.stem if path else None)
    if not isinstance(name, str) or not (name.isascii() and name.replace("-", "_").isidentifier()):
        raise w.error("name", f"{name!r} is not allowed; expected ASCII letters, digits, _ and -")
    # A project's copy is always card.yaml; every other card is named after its file.
    if path is not None and name != path.stem and path.name != "card.yaml":
        raise w.error("name", f"{name!r} differs from the file name {path.stem!r}")
    dataset = _dataset(data["dataset"], path)
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
    _unknown(
        w,
        "hardware.",
        hw,
        {"backend", "part", "clock_period_ns", "io_type", "strategy", "arch", "sample_rate_mhz", "knobs"},
    )
    rate = hw.get("sample_rate_mhz")
    hardware = Hardware(
        backend=_choice(w, "hardware.backend", hw.get("backend", "Vitis"), BACKENDS),
        part=_part(w, hw.get("part", Hardware.part)),
        clock_period_ns=_float(w, "hardware.clock_period_ns", hw.get("clock_period_ns", 5.0), 0.1, 1000.0),
        io_type=_choice(w, "hardware.io_type", hw.get("io_type", "io_parallel"), IO_TYPES),
        strategy=_choice(w, "hardware.strategy", hw.get("strategy", "Latency"), STRATEGIES),
        arch=_choice(w, "hardware.arch", hw.get("arch", CARD_DEFAULT_ARCH), tuple(ARCHS)),
        sample_rate_mhz=None if rate is None else _float(w, "hardware.sample_rate_mhz", rate, 0.001, 10_000.0),
        knobs=_knobs(w, hw.get("knobs")),
    )
    output = data.get("output")
    search = data.get("search", {}) or {}
    if not isinstance(search, dict):
        raise w.error("search", "must be a mapping (see qmodels/README.md)")
    card = Card(
        name=name,
        path=path,
        task=task,
        description=str(data.get("description", "")),
        dataset=dataset,
        input=check_bits(w, "input", data["input"], "bits"),
        layers=_layers(w, data["layers"], _bitwidth_defaults(w, data.get("bitwidths"))),
        output=None if output is None else check_bits(w, "output", output, "bits"),
        training=training,
        hardware=hardware,
        search=search,
        raw=data,
        origins=dict(origins or {}),
    )
    if search:
        _check_search(card)
    return card


def card_to_yaml(data: dict) -> str:
    """Serialise merged card data (for ``qmodels/generated`` and the project's copy)."""
    return yaml.safe_dump(data, sort_keys=False)
