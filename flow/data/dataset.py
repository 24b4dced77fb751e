"""The Dataset every model card trains on, what a dataset kind is, and the field checks the kinds share."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from flow.errors import FlowError

if TYPE_CHECKING:
    from flow.data.tables import TableInfo

TASKS = ("classification", "regression")
REQUIRED = object()  # marks a field with no default in a kind's field table


@dataclass
class Dataset:
    """Train/val/test arrays: X float32 (n, n_features); y int64 class ids or float32 (n, n_outputs)."""

    name: str
    task: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    class_names: list[str] | None = None
    table: TableInfo | None = None
    meta: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        """Width of one input vector."""
        return int(self.X_train.shape[1])

    @property
    def n_outputs(self) -> int:
        """Number of classes (classification) or of regression targets."""
        if self.task == "regression":
            return int(self.y_train.shape[1])
        if self.class_names is not None:
            return len(self.class_names)
        return int(max(y.max(initial=-1) for y in (self.y_train, self.y_val, self.y_test))) + 1


@dataclass(frozen=True)
class Kind:
    """One dataset kind: check a spec (filling defaults), then build the arrays from the checked spec."""

    check: Callable[[dict, SpecContext], dict]
    build: Callable[[dict, int, SpecContext], Dataset]
    version: int  # bump when the same spec and seed would give different numbers


@dataclass(frozen=True)
class SpecContext:
    """Where a spec came from: names the card in error messages and anchors relative paths."""

    card_path: Path | None = None
    # False when a card is only loaded: later stages load the project's copy (hls_projects/<m>/card.yaml),
    # from whose folder a relative data path does not resolve, and hashing a big file on every load is slow.
    # The file is then checked and hashed when the data is built.
    files: bool = True

    @property
    def where(self) -> str:
        """Prefix of error messages about the spec, e.g. 'qmodels/diag_05.yaml: dataset' (the card as given)."""
        return f"{self.card_path}: dataset" if self.card_path is not None else "dataset"

    def resolve(self, path: str) -> Path:
        """A path from the card: relative to the card's folder, or to the cwd when there is no card."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        return (self.card_path.parent if self.card_path is not None else Path.cwd()) / p


def file_sha256(path: Path) -> str:
    """Content hash of a user's data file (part of the fingerprint, so editing the file retrains)."""
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---- field checks shared by the kinds: each returns the clean value or raises one FlowError line ----


def check_fields(spec: dict, allowed: dict[str, Any], ctx: SpecContext, kind: str) -> dict:
    """Reject unknown keys and missing required ones; return the spec with defaults filled in."""
    for key in spec:
        if key != "kind" and key not in allowed:
            raise FlowError(
                f"{ctx.where}.{key} is not a field of kind '{kind}'; allowed: {', '.join(['kind', *allowed])}"
            )
    out = {}
    for key, default in allowed.items():
        if key in spec and spec[key] is not None:
            out[key] = spec[key]
        elif default is REQUIRED:
            raise FlowError(f"{ctx.where}.{key} is required for kind '{kind}'")
        else:
            out[key] = default
    return out


def check_int(value: Any, name: str, ctx: SpecContext, lo: int, hi: int) -> int:
    """An integer in lo..hi (bools are not integers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= value <= hi:
        raise FlowError(f"{ctx.where}.{name} is {value!r}, expected an integer in {lo}..{hi}")
    return int(value)


def check_float(value: Any, name: str, ctx: SpecContext, lo: float, hi: float) -> float:
    """A real number in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not lo <= value <= hi:
        raise FlowError(f"{ctx.where}.{name} is {value!r}, expected a number in [{lo}, {hi}]")
    return float(value)


def check_bool(value: Any, name: str, ctx: SpecContext) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        raise FlowError(f"{ctx.where}.{name} is {value!r}, expected true or false")
    return value


def check_choice(value: Any, name: str, ctx: SpecContext, choices: Sequence[str]) -> str:
    """One of a fixed set of strings."""
    if value not in choices:
        raise FlowError(f"{ctx.where}.{name} is {value!r}, expected one of: {', '.join(choices)}")
    return value


def check_range(value: Any, name: str, ctx: SpecContext, lo: float, hi: float) -> list[float]:
    """A [low, high] pair with lo <= low <= high <= hi."""
    ok = isinstance(value, (list, tuple)) and len(value) == 2
    ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if not ok or not lo <= value[0] <= value[1] <= hi:
        raise FlowError(f"{ctx.where}.{name} is {value!r}, expected [low, high] with {lo} <= low <= high <= {hi}")
    return [float(value[0]), float(value[1])]


def check_knobs(
    out: dict, ranges: dict[str, tuple[float, float]], scalars: dict[str, tuple[float, float]], ctx: SpecContext
) -> None:
    """Check a generator's [low, high] knobs (``ranges``) and float knobs (``scalars``) in ``out``, in place."""
    for name, (lo, hi) in ranges.items():
        out[name] = check_range(out[name], name, ctx, lo, hi)
    for name, (lo, hi) in scalars.items():
        out[name] = check_float(out[name], name, ctx, lo, hi)


def check_path(value: Any, name: str, ctx: SpecContext, suffixes: Sequence[str]) -> Path:
    """An existing file (unless ``ctx.files`` is False) with one of the given suffixes; relative to the card."""
    if not isinstance(value, str) or not value:
        raise FlowError(f"{ctx.where}.{name} is {value!r}, expected a file path ({'/'.join(suffixes)})")
    path = ctx.resolve(value)
    if path.suffix.lower() not in suffixes:
        raise FlowError(f"{ctx.where}.{name} is {value!r}, expected a {' or '.join(suffixes)} file")
    if ctx.files and not path.is_file():
        raise FlowError(f"{value}: file not found (from {ctx.where}.{name}; relative paths start at the card's folder)")
    return path


def check_file(value: Any, name: str, ctx: SpecContext, suffixes: Sequence[str]) -> str | None:
    """:func:`check_path`, then the file's sha256 (None when ``ctx.files`` is False: nothing was read)."""
    path = check_path(value, name, ctx, suffixes)
    return file_sha256(path) if ctx.files else None
