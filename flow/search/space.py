"""The search space of a card's ``search:`` section (schema: qmodels/README.md, "Bitwidth search").

A :class:`SearchSpace` holds one categorical parameter per searched quantity (``input``, ``fc1.weight``,
``relu1.activation``, ``fc1.units``, ``dropout1.rate``, ...). :func:`variant_data` turns chosen values back into
card data, which :func:`flow.card.parse_card` validates exactly like a user's card (``flow.search.study.variant``).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flow.card_schema import Where, check_bits
from flow.errors import FlowError
from flow.fixed import parse_card_bits
from flow.search.metrics import Metric, get_metric

if TYPE_CHECKING:
    from flow.card import Card  # the card module checks a card's search: section with this one

SAMPLERS = ("tpe", "nsga2", "random")
# threshold: at after_epochs, stop a trial far worse than the default; hyperband: optuna's HyperbandPruner
PRUNE_METHODS = ("threshold", "hyperband")
_KEYS = {
    "metric",
    "trials",
    "epochs_per_trial",
    "float_epochs",
    "seed",
    "sampler",
    "prune",
    "bits",
    "per_layer",
    "units",
    "filters",
    "dropout",
    "norm",
    "arch",
}
# Per-type keys of `bits` -> (the card layer type, its field). A layer's own key is `<layer>.<field>`.
_QUANTITIES = {
    "weight": ("dense", "weight"),
    "bias": ("dense", "bias"),
    "activation": ("relu", "activation"),
    "conv_weight": ("conv2d", "weight"),
    "conv_bias": ("conv2d", "bias"),
    "bn_scale": ("batchnorm", "scale"),
    "bn_bias": ("batchnorm", "bias"),
}
NORMS = ("batchnorm", "dropout")  # what sits in a card's batchnorm slots (`norm:`)
NORM_DROPOUT_RATE = 0.2  # the rate of the dropout that replaces a batchnorm


@dataclass(frozen=True)
class Param:
    """One searched quantity: its optuna name, where it goes in the card and its choices."""

    name: str  # e.g. "fc1.weight", "weight" (shared, per_layer: false), "input", "fc1.units"
    targets: tuple[tuple[int | None, str], ...]  # (layer index or None for top level, field)
    choices: tuple  # strings "(W,I)" for bitwidths, ints for units, floats for rates
    default: Any


@dataclass(frozen=True)
class SearchSpace:
    """A validated ``search:`` section."""

    params: tuple[Param, ...]
    metric: Metric
    metric_options: dict
    trials: int
    epochs_per_trial: int
    float_epochs: int
    seed: int
    sampler: str
    prune_after: int
    prune_factor: float
    prune_method: str = "threshold"  # or "hyperband": optuna's HyperbandPruner on the validation loss per epoch
    raw: dict = field(repr=False, default_factory=dict)

    @property
    def defaults(self) -> dict[str, Any]:
        """The card's own configuration as parameter values (enqueued as trial 0)."""
        return {p.name: p.default for p in self.params}

    @property
    def n_configs(self) -> int:
        n = 1
        for p in self.params:
            n *= len(p.choices)
        return n

    def digest(self, card: Card, dataset_fp: str) -> str:
        """Identity of the search (space, metric, epochs, card settings): a resumed study must match it."""
        payload = {
            "params": [(p.name, p.targets, p.choices, p.default) for p in self.params],
            "metric": self.metric.name,
            "metric_options": self.metric_options,
            "epochs_per_trial": self.epochs_per_trial,
            "float_epochs": self.float_epochs,
            "seed": self.seed,
            "sampler": self.sampler,
            "prune": [
                self.prune_after,
                self.prune_factor,
                *([self.prune_method] if self.prune_method != "threshold" else []),
            ],
            "training_fingerprint": card.training_fingerprint(dataset_fp),
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _canon_bits(w: Where, fld: str, value: Any, kind: str) -> str:
    return str(check_bits(w, fld, value, kind))


def _choices(w: Where, fld: str, value: Any) -> list:
    if not isinstance(value, list) or not value:
        raise w.error(fld, "must be a non-empty list of choices")
    return value


def _sorted_choices(values: list, default: Any, key=None) -> tuple:
    """Unique choices plus the card's default (so trial 0 can be the card itself), in a stable order."""
    out = list(dict.fromkeys([*values, default]))
    return tuple(sorted(out, key=key)) if key else tuple(out)


def _bits_key(text: str) -> tuple[int, int]:
    return parse_card_bits(text)


def parse_space(card: Card) -> SearchSpace:
    """Validate ``card.search``; errors are one line naming the card file and the field."""
    w = Where(card.path, card.origins)
    s = card.search
    if not s:
        raise w.error("search", "missing; add a `search:` section (bits, metric, trials; see qmodels/README.md)")
    extra = sorted(set(s) - _KEYS)
    if extra:
        raise w.error(f"search.{extra[0]}", f"unknown field; allowed: {', '.join(sorted(_KEYS))}")

    metric_spec = s.get("metric", "accuracy" if card.task == "classification" else "rmse")
    options: dict = {}
    if isinstance(metric_spec, dict):
        options = {k: v for k, v in metric_spec.items() if k != "name"}
        metric_spec = metric_spec.get("name")
    try:
        metric = get_metric(metric_spec)
    except FlowError as exc:
        raise w.error("search.metric", str(exc)) from None
    if card.task not in metric.tasks:
        raise w.error(
            "search.metric", f"{metric.name!r} is for {'/'.join(metric.tasks)}; this card's task is {card.task}"
        )
    for key, val in options.items():
        if key not in metric.options:
            allowed = ", ".join(["name", *metric.options]) or "name"
            raise w.error(f"search.metric.{key}", f"unknown option of {metric.name}; allowed: {allowed}")
        if isinstance(val, bool) or not isinstance(val, (int, float)):
            raise w.error(f"search.metric.{key}", f"{val!r} is not allowed; expected a number")
    if "fpr" in options and not 0 < options["fpr"] < 1:
        raise w.error("search.metric.fpr", f"{options['fpr']!r} is not allowed; expected a number in (0, 1)")

    def _int(fld: str, default: int, lo: int, hi: int) -> int:
        v = s.get(fld, default)
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise w.error(f"search.{fld}", f"{v!r} is not allowed; expected an integer {lo}..{hi}")
        return v

    trials = _int("trials", 20, 1, 100000)
    epochs = _int("epochs_per_trial", min(10, card.training.epochs), 1, 10000)
    float_epochs = _int("float_epochs", card.training.epochs, 0, 10000)
    seed = _int("seed", card.training.seed, 0, 2**31 - 1)
    sampler = s.get("sampler", "tpe")
    if sampler not in SAMPLERS:
        raise w.error("search.sampler", f"{sampler!r} is not allowed; expected one of {', '.join(SAMPLERS)}")
    prune = s.get("prune", {}) or {}
    if not isinstance(prune, dict) or set(prune) - {"after_epochs", "factor", "method"}:
        raise w.error("search.prune", "must be a mapping with method, after_epochs and/or factor")
    method = prune.get("method", "threshold")
    if method not in PRUNE_METHODS:
        raise w.error("search.prune.method", f"{method!r} is not allowed; expected one of {', '.join(PRUNE_METHODS)}")
    # hyperband: after_epochs is its first rung (min_resource), factor its integer reduction factor
    hyperband = method == "hyperband"
    prune_after = prune.get("after_epochs", max(1, epochs // 2))
    if isinstance(prune_after, bool) or not isinstance(prune_after, int) or prune_after < 1:
        raise w.error("search.prune.after_epochs", f"{prune_after!r} is not allowed; expected an integer >= 1")
    factor = prune.get("factor", 3 if hyperband else 3.0)
    if hyperband and (isinstance(factor, bool) or not isinstance(factor, int) or factor < 2):
        raise w.error("search.prune.factor", f"{factor!r} is not allowed with hyperband; expected an integer >= 2")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 1:
        raise w.error("search.prune.factor", f"{factor!r} is not allowed; expected a number > 1")
    per_layer = s.get("per_layer", True)
    if not isinstance(per_layer, bool):
        raise w.error("search.per_layer", f"{per_layer!r} is not allowed; expected true or false")

    params = _bit_params(w, card, s.get("bits", {}) or {}, per_layer)
    params += _arch_params(w, card, s)
    if not params:
        raise w.error("search.bits", "nothing to search: give choices for input, weight, bias, activation, ...")
    return SearchSpace(
        params=tuple(params),
        metric=metric,
        metric_options=options,
        trials=trials,
        epochs_per_trial=epochs,
        float_epochs=float_epochs,
        seed=seed,
        sampler=sampler,
        prune_after=prune_after,
        prune_factor=float(factor),
        prune_method=method,
        raw=copy.deepcopy(s),
    )


def _bit_params(w: Where, card: Card, bits: Any, per_layer: bool) -> list[Param]:
    if not isinstance(bits, dict):
        raise w.error("search.bits", "must be a mapping: input, output, weight, bias, activation or <layer>.<field>")
    by_name = {layer.name: (i, layer) for i, layer in enumerate(card.layers)}
    per_type: dict[str, list] = {}
    own: dict[tuple[int, str], list] = {}
    params: list[Param] = []
    for key, value in bits.items():
        fld = f"search.bits.{key}"
        if key in ("input", "output"):
            if key == "output" and card.output is None:
                raise w.error(fld, "the card has no output quantizer to search")
            default = str(card.input if key == "input" else card.output)
            choices = [_canon_bits(w, fld, v, "bits") for v in _choices(w, fld, value)]
            params.append(Param(key, ((None, key),), _sorted_choices(choices, default, _bits_key), default))
        elif key in _QUANTITIES:
            kind = "relu" if key == "activation" else "bits"
            per_type[key] = [_canon_bits(w, fld, v, kind) for v in _choices(w, fld, value)]
        elif isinstance(key, str) and "." in key:
            lname, what = key.split(".", 1)
            if lname not in by_name:
                raise w.error(fld, f"no layer named {lname!r}; layers: {', '.join(by_name)}")
            i, layer = by_name[lname]
            fields = [f for t, f in _QUANTITIES.values() if t == layer.type]
            if what not in fields:
                raise w.error(
                    fld, f"a {layer.type} layer has no bitwidth {what!r}; searchable: {', '.join(fields) or 'none'}"
                )
            kind = "relu" if what == "activation" else "bits"
            own[(i, what)] = [_canon_bits(w, fld, v, kind) for v in _choices(w, fld, value)]
        else:
            raise w.error(
                fld, f"unknown key; allowed: input, output, {', '.join(_QUANTITIES)}, <layer>.<field> (its bitwidths)"
            )
    for key, choices in per_type.items():
        ltype, what = _QUANTITIES[key]
        layers = [(i, layer) for i, layer in enumerate(card.layers) if layer.type == ltype and (i, what) not in own]
        if not per_layer and layers:
            defaults = {str(getattr(layer, what)) for _, layer in layers}
            if len(defaults) > 1:
                raise w.error(
                    "search.per_layer",
                    f"false needs every layer's default {key} to be equal; found {', '.join(sorted(defaults))}",
                )
            default = defaults.pop()
            targets = tuple((i, what) for i, _ in layers)
            params.append(Param(key, targets, _sorted_choices(choices, default, _bits_key), default))
        else:
            for i, _layer in layers:
                own[(i, what)] = choices
    for (i, what), choices in sorted(own.items()):
        layer = card.layers[i]
        default = str(getattr(layer, what))
        params.append(
            Param(f"{layer.name}.{what}", ((i, what),), _sorted_choices(choices, default, _bits_key), default)
        )
    return params


def _arch_params(w: Where, card: Card, s: dict) -> list[Param]:
    params: list[Param] = []
    dense = [i for i, layer in enumerate(card.layers) if layer.type == "dense"]
    sections = (("units", "dense", "units"), ("filters", "conv2d", "filters"), ("dropout", "dropout", "rate"))
    for section, ltype, fld_name in sections:
        items = s.get(section, {}) or {}
        if not isinstance(items, dict):
            raise w.error(f"search.{section}", f"must be a mapping of {ltype} layer name -> list of choices")
        for lname, value in items.items():
            fld = f"search.{section}.{lname}"
            idx = next((i for i, layer in enumerate(card.layers) if layer.name == lname and layer.type == ltype), None)
            if idx is None:
                names = [layer.name for layer in card.layers if layer.type == ltype]
                raise w.error(fld, f"no {ltype} layer named {lname!r}; {ltype} layers: {', '.join(names) or 'none'}")
            if section == "units" and idx == dense[-1]:
                raise w.error(fld, "the last dense layer's units are the number of outputs; they cannot be searched")
            choices = _choices(w, fld, value)
            hi = 1024 if section == "filters" else 65536
            for v in choices:
                ok = (
                    isinstance(v, int) and 1 <= v <= hi
                    if section != "dropout"
                    else isinstance(v, (int, float)) and 0 <= v <= 0.95
                )
                if isinstance(v, bool) or not ok:
                    expect = f"integers 1..{hi}" if section != "dropout" else "numbers in [0, 0.95]"
                    raise w.error(fld, f"{v!r} is not allowed; expected {expect}")
            default = getattr(card.layers[idx], fld_name)
            choices = [float(v) for v in choices] if section == "dropout" else choices
            params.append(
                Param(f"{lname}.{fld_name}", ((idx, fld_name),), _sorted_choices(choices, default, float), default)
            )
    if "arch" in s:
        from flow.rtl import ARCHS  # lazy: flow.card imports this module

        choices = _choices(w, "search.arch", s["arch"])
        for v in choices:
            if v not in ARCHS:
                raise w.error("search.arch", f"{v!r} is not allowed; expected one of {', '.join(ARCHS)}")
        default = card.hardware.arch
        params.append(
            Param("arch", ((None, "hardware.arch"),), _sorted_choices(choices, default, list(ARCHS).index), default)
        )
    if "norm" in s:
        slots = tuple((i, "type") for i, layer in enumerate(card.layers) if layer.type == "batchnorm")
        if not slots:
            raise w.error("search.norm", "the card has no batchnorm layer whose place a dropout could take")
        choices = _choices(w, "search.norm", s["norm"])
        for v in choices:
            if v not in NORMS:
                raise w.error("search.norm", f"{v!r} is not allowed; expected {' or '.join(NORMS)}")
        params.append(Param("norm", slots, _sorted_choices(choices, "batchnorm", NORMS.index), "batchnorm"))
    return params


def variant_data(card: Card, space: SearchSpace, values: dict[str, Any], *, epochs: int | None = None) -> dict:
    """Card data (``card.raw`` with ``values`` applied), ``training.epochs`` set to ``epochs`` if given."""
    data = copy.deepcopy(card.raw)
    data.pop("base", None)
    data.pop("search", None)
    norm = None
    for p in space.params:
        value = values.get(p.name, p.default)
        for index, fld in p.targets:
            if index is None and "." in fld:  # a nested field: hardware.arch
                section, key = fld.split(".", 1)
                data[section] = dict(data.get(section) or {}) | {key: value}
            elif index is None:
                data[fld] = value
            elif fld == "type":
                norm = (p.targets, value)
            else:
                data["layers"][index][fld] = value
    if norm is not None and norm[1] == "dropout":  # last: the batchnorm's own bitwidths go with it
        for index, _ in norm[0]:
            data["layers"][index] = {"type": "dropout", "name": card.layers[index].name, "rate": NORM_DROPOUT_RATE}
    _fit_reuse_factors(card, data)
    if epochs is not None:
        data["training"] = dict(data.get("training") or {}) | {"epochs": epochs}
    return data


def _fit_reuse_factors(card: Card, data: dict) -> None:
    """A layer whose input count changed with ``units`` keeps its folding: R = n_in stays R = n_in."""
    old_n = new_n = None
    for spec, layer in zip(card.layers, data["layers"]):
        if spec.type != "dense":
            continue
        r = layer.get("reuse_factor", 1)
        if old_n is not None and new_n != old_n and r > 1:
            layer["reuse_factor"] = max(1, round(r * new_n / old_n))
            if layer["reuse_factor"] > new_n and layer["reuse_factor"] % new_n:
                layer["reuse_factor"] = new_n  # hls4ml and the folded RTL need R <= n_in or a multiple of it
        old_n, new_n = spec.units, layer.get("units", spec.units)
