"""The dataset kinds (one registry: name -> check and build) and the entry points that dispatch on a spec's kind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from flow.data import npz, spectra, tables, trigger
from flow.data.dataset import Dataset, Kind, SpecContext
from flow.errors import FlowError

KINDS: dict[str, Kind] = {
    "spectra": Kind(spectra.check_spec, spectra.build, spectra.GENERATOR_VERSION),
    "table": Kind(tables.check_spec, tables.build, tables.TABLE_VERSION),
    "npz": Kind(npz.check_spec, npz.build, npz.NPZ_VERSION),
    "trigger": Kind(trigger.check_spec, trigger.build, trigger.GENERATOR_VERSION),
}


def _kind_of(spec: Any, ctx: SpecContext) -> tuple[str, Kind]:
    if not isinstance(spec, dict):
        raise FlowError(f"{ctx.where} must be a mapping with a 'kind' field, got {type(spec).__name__}")
    kinds = KINDS
    kind = spec.get("kind")
    if kind not in kinds:
        shown = "missing" if kind is None else repr(kind)
        raise FlowError(f"{ctx.where}.kind is {shown}; valid kinds: {', '.join(kinds)}")
    return kind, kinds[kind]


def check_dataset(spec: Any, *, card_path: Path | None = None, files: bool = True) -> dict:
    """Check a card's `dataset:` mapping, return it with defaults; ``files=False`` checks paths but not files."""
    ctx = SpecContext(card_path, files)
    return _kind_of(spec, ctx)[1].check(spec, ctx)


def load_dataset(spec: dict, *, seed: int, card_path: Path | None = None) -> Dataset:
    """Check the card's `dataset:` mapping and build its Dataset (deterministic in spec and seed)."""
    ctx = SpecContext(card_path)
    kind_name, kind = _kind_of(spec, ctx)
    checked = kind.check(spec, ctx)
    ds = kind.build(checked, seed, ctx)
    ds.meta = {"kind": kind_name, "seed": seed, "version": kind.version, **checked, **ds.meta}
    ds.meta["fingerprint"] = _digest(kind_name, kind, checked, seed)
    return ds


def dataset_fingerprint(spec: dict, seed: int, *, card_path: Path | None = None) -> str:
    """sha256 of everything that determines the data: checked spec with defaults, seed, version, file hash."""
    ctx = SpecContext(card_path)
    kind_name, kind = _kind_of(spec, ctx)
    return _digest(kind_name, kind, kind.check(spec, ctx), seed)


def _digest(kind_name: str, kind: Kind, checked: dict, seed: int) -> str:
    payload = {"kind": kind_name, "version": kind.version, "seed": int(seed), "spec": checked}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
