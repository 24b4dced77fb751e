"""Lookup tables to replace by a small network: the built-in charge/discharge curves and users' CSV tables.

Inputs are the table coordinates normalised to [0, 1): entry (i, j) of an R x C grid is x = (i/R, j/C), so
with power-of-two sides the inputs are exactly the address bits read as a binary fraction. Targets are the
table values divided by 2**bits (12-bit words -> y in [0, 1)), which trains far better than raw 0..4095 and is a
plain shift in hardware. `TableInfo.table_metrics` and `to_words` take values in these dataset units; metrics
come out in table units (LSBs of the word).

The network's output goes through the table's output stage, an IR `clamp` layer (`TableInfo.clamp_layer`): round
to the table word (`word_t`, RND_CONV) and clamp to the table's range. The metrics apply exactly that
(`to_words`), so a reported figure is what the RTL computes.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flow.data.dataset import (
    Dataset,
    SpecContext,
    check_bool,
    check_choice,
    check_fields,
    check_file,
    check_int,
)
from flow.errors import FlowError
from flow.fixed import FixedType, from_float

TABLE_VERSION = 1  # bump when a built-in table's values change
BUILTIN_TABLES = ("charge", "discharge")
FORMATS = ("auto", "grid", "rows")


@dataclass(frozen=True)
class TableInfo:
    """What the network replaces: shape, word width, value range and the saturation levels."""

    name: str
    shape: tuple[int, ...]
    bits: int
    value_min: int
    value_max: int
    saturation_low: int  # the clamp's lower bound (the table's minimum value)
    saturation_high: int  # the clamp's upper bound (the table's maximum value)
    n_saturated: int  # entries at either level (left out of training when omit_saturated)

    @property
    def value_scale(self) -> float:
        """Dataset units -> table units: y = value / value_scale."""
        return float(2**self.bits)

    @property
    def word_t(self) -> FixedType:
        """The table word in dataset units: raw mantissa = table value (``bits`` fraction bits, no integer bit)."""
        return FixedType.parse(f"ufixed<{self.bits},0,RND_CONV,SAT>")

    def clamp_layer(self, n: int = 1):
        """The IR layer of the table's output stage: round to the word, clamp to [saturation_low, saturation_high]."""
        from flow.ir import ClampLayer

        return ClampLayer("table_word", n, self.word_t, self.saturation_low, self.saturation_high)

    def to_table_units(self, y: np.ndarray) -> np.ndarray:
        """Model outputs or targets (dataset units) as table values (float64)."""
        return np.asarray(y, dtype=np.float64) * self.value_scale

    def to_words(self, y_pred: np.ndarray) -> np.ndarray:
        """Outputs (dataset units) through the output stage, as table words in dataset units: what the RTL outputs.

        The same arithmetic as the IR's clamp layer (flow.layers.clamp.clamp); exact for outputs that are values of a
        fixed-point type up to 53 bits wide (every network output), idempotent on words.
        """
        words = from_float(np.asarray(y_pred, dtype=np.float64), self.word_t)
        words = np.clip(words, self.saturation_low, self.saturation_high)
        return self.word_t.to_float(words)

    def table_metrics(self, y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
        """MSE, RMSE, MAE, max |error| (table units, i.e. LSBs) and R² of predictions (dataset units in)."""
        t = self.to_table_units(y_true).ravel()
        p = self.to_table_units(y_pred).ravel()
        if t.shape != p.shape:
            raise ValueError(f"y_true has {t.size} values, y_pred {p.size}")
        err = p - t
        mse = float(np.mean(err**2))
        ss_tot = float(np.sum((t - t.mean()) ** 2))
        r2 = 1.0 - float(np.sum(err**2)) / ss_tot if ss_tot > 0 else float("nan")
        return {
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
            "mae": float(np.mean(np.abs(err))),
            "max_abs_error": float(np.max(np.abs(err))) if err.size else 0.0,
            "r2": r2,
        }

    def to_dict(self) -> dict:
        """JSON-ready form (kept in the IR: the RTL header and the report describe the table from it)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.__dict__.items()}

    @classmethod
    def from_dict(cls, d: dict) -> TableInfo:
        """Inverse of :meth:`to_dict`."""
        return cls(**{**d, "shape": tuple(d["shape"])})


def addresses(X: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Table addresses ``(n, axes)`` of dataset inputs (x = address / side, as :func:`read_csv_table` makes them)."""
    return np.rint(np.asarray(X, dtype=np.float64) * np.asarray(shape, dtype=np.float64)).astype(np.int64)


def input_mapping(shape: tuple[int, ...], input_t: FixedType) -> list[dict]:
    """How each table address axis reaches ``in_data``: the raw input is ``addr << shift`` when exact.

    An axis of R entries needs ``frac_bits >= log2 R`` input fraction bits (a card input ``(W, 0)`` has W-1):
    otherwise neighbouring addresses share an input value and the network cannot tell them apart.
    """
    out = []
    for k, side in enumerate(shape):
        raw = from_float(np.arange(side) / side, input_t).astype(np.int64)
        addr_bits = max(1, int(side - 1).bit_length())
        shift = input_t.frac_bits - addr_bits
        exact_shift = side == 2**addr_bits and shift >= 0 and bool(np.all(raw == np.arange(side) << shift))
        out.append(
            {
                "axis": k,
                "entries": int(side),
                "address_bits": addr_bits,
                "distinct_inputs": int(np.unique(raw).size),
                "shift": shift if exact_shift else None,
                "lsb": k * input_t.width + (shift if exact_shift else 0),
                "text": (
                    f"address a{k}[{addr_bits - 1}:0] -> in_data[{k * input_t.width + shift + addr_bits - 1}:"
                    f"{k * input_t.width + shift}] (input {k} = a{k} << {shift}, other bits 0)"
                    if exact_shift
                    else f"address a{k} (0..{side - 1}) -> input {k} = round(a{k} * 2^{input_t.frac_bits} / {side}) "
                    f"in in_data[{k * input_t.width + input_t.width - 1}:{k * input_t.width}]"
                    f"{'' if np.unique(raw).size == side else f'; only {np.unique(raw).size} distinct values'}"
                ),
            }
        )
    return out


def assumed_bits_note(spec: dict, info: TableInfo) -> str | None:
    """A line saying which word width a card without ``bits`` was taken to have (None when it gives one)."""
    if "bits" in spec:
        return None
    need = max(1, int(info.value_max).bit_length())
    hint = f"; its largest value {info.value_max} fits {need} bits: set dataset.bits: {need}"
    hint = hint if need < info.bits else ""
    return f"dataset.bits not given: assumed {info.bits}-bit table words (0..{2**info.bits - 1}){hint}"


def builtin_table(name: str, shape: tuple[int, int] = (256, 256), bits: int = 12) -> np.ndarray:
    """A built-in table (int64 grid): smooth battery-like curves that saturate at 0 and at 2**bits - 1."""
    u = (np.arange(shape[0]) / shape[0])[:, None]  # x0: state of charge (charge) / depth of discharge
    v = (np.arange(shape[1]) / shape[1])[None, :]  # x1: charge rate / load current
    if name == "charge":
        # Charge accepted rises exponentially with a rate set by x1; nothing below a 6 % threshold.
        f = 1.12 * (1.0 - np.exp(-3.5 * (u - 0.06) * (0.4 + v)))
    elif name == "discharge":
        # Voltage-like: flat top at light use, a knee that comes earlier under heavy load, cut-off at 0.
        f = 1.08 - 0.3 * u - 0.2 * v - 0.9 * u ** (4 - 2 * v) * (0.6 + 0.8 * v)
    else:
        raise ValueError(f"unknown built-in table {name!r}")
    top = 2**bits - 1
    return np.rint(np.clip(f, 0.0, 1.0) * top).astype(np.int64)


# ---- CSV tables ----


def _parse_csv(path: Path, shown: str) -> tuple[list[str] | None, np.ndarray]:
    """Optional header and the numbers of a CSV file; every row must be complete and numeric."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except UnicodeDecodeError:
        raise FlowError(f"{shown}: not UTF-8 text (expected a CSV table of numbers)") from None
    if not rows:
        raise FlowError(f"{shown}: the file is empty")
    header = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    if not rows:
        raise FlowError(f"{shown}: no data rows after the header")
    width = len(rows[0])
    values = np.empty((len(rows), width))
    first = 2 if header else 1
    for r, row in enumerate(rows):
        if len(row) != width:
            raise FlowError(f"{shown}: line {r + first} has {len(row)} columns, expected {width} like the first")
        try:
            values[r] = [float(c) for c in row]
        except ValueError:
            raise FlowError(f"{shown}: line {r + first} is not all numbers: {','.join(row)[:60]}") from None
    return header, values


def _check_values(values: np.ndarray, bits: int, shown: str, where: str) -> np.ndarray:
    """Table words: finite integers in 0..2**bits - 1."""
    bad = ~np.isfinite(values) | (values != np.rint(values)) | (values < 0) | (values > 2**bits - 1)
    if bad.any():
        at = int(np.flatnonzero(bad.ravel())[0])
        raise FlowError(
            f"{shown}: value {_number(values.ravel()[at])} at {where} {at}: table values must be integers in "
            f"0..{2**bits - 1} (dataset.bits: {bits}; raise it if the table has wider words)"
        )
    return values.astype(np.int64)


def _number(v: float) -> str:
    return str(int(v)) if np.isfinite(v) and v == np.rint(v) else repr(float(v))


def read_csv_table(path: Path, shown: str, fmt: str, bits: int) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """A CSV table as (X in [0,1), values int64, shape).

    Formats: `grid` is a matrix of values without header (row i, column j is entry (i, j)); `rows` has one entry
    per line, `x0,x1,...,y`, where the x are non-negative integer addresses, normalised as x/(max x + 1); a
    header line (any non-numeric first line) is allowed in both and makes `auto` pick `rows`.
    """
    header, data = _parse_csv(path, shown)
    if fmt == "auto":
        fmt = "rows" if header is not None else "grid"
    if fmt == "grid":
        if data.shape[0] < 2 or data.shape[1] < 2:
            raise FlowError(f"{shown}: a grid table needs at least 2 x 2 values, got {data.shape[0]} x {data.shape[1]}")
        values = _check_values(data, bits, shown, "flat index").ravel()
        shape = data.shape
        ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        X = np.stack([ii.ravel() / shape[0], jj.ravel() / shape[1]], axis=1)
        return X.astype(np.float32), values, shape
    if data.shape[1] < 2:
        raise FlowError(f"{shown}: a rows table needs columns x0,...,y (at least 2), got {data.shape[1]}")
    addr, y = data[:, :-1], data[:, -1]
    bad = (addr != np.rint(addr)) | (addr < 0)
    if bad.any():
        r = int(np.flatnonzero(bad.any(axis=1))[0])
        raise FlowError(f"{shown}: row {r + 1} has an input that is not a non-negative integer address")
    addr = addr.astype(np.int64)
    _, first, counts = np.unique(addr, axis=0, return_index=True, return_counts=True)
    if (counts > 1).any():
        r = int(np.sort(first[counts > 1])[0])
        raise FlowError(f"{shown}: row {r + 1} repeats the address {tuple(addr[r])} of another row")
    shape = tuple(int(m) + 1 for m in addr.max(axis=0))
    X = addr / np.array(shape, dtype=np.float64)
    return X.astype(np.float32), _check_values(y, bits, shown, "row"), shape


# ---- the `table` dataset kind ----

FIELDS = {
    "table": None,  # a built-in table name, or
    "path": None,  # a CSV file (see read_csv_table)
    "format": "auto",
    "omit_saturated": True,
    "shape": [256, 256],  # built-in tables only
    "bits": 12,
}


def check_spec(spec: dict, ctx: SpecContext) -> dict:
    """Validate a `kind: table` mapping and fill in the defaults."""
    out = check_fields(spec, FIELDS, ctx, "table")
    if (out["table"] is None) == (out["path"] is None):
        raise FlowError(f"{ctx.where}: give exactly one of table ({'|'.join(BUILTIN_TABLES)}) or path (a CSV file)")
    out["omit_saturated"] = check_bool(out["omit_saturated"], "omit_saturated", ctx)
    out["bits"] = check_int(out["bits"], "bits", ctx, 1, 32)
    out["format"] = check_choice(out["format"], "format", ctx, FORMATS)
    shape = out["shape"]
    if not (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(isinstance(s, int) for s in shape)):
        raise FlowError(f"{ctx.where}.shape is {shape!r}, expected [rows, columns]")
    out["shape"] = [check_int(s, "shape", ctx, 2, 4096) for s in shape]
    if out["table"] is not None:
        out["table"] = check_choice(out["table"], "table", ctx, BUILTIN_TABLES)
        if "format" in spec:
            raise FlowError(f"{ctx.where}.format applies to CSV tables (path) only")
    else:
        if "shape" in spec:
            raise FlowError(f"{ctx.where}.shape applies to built-in tables only; a CSV table has its own shape")
        out["file_sha256"] = check_file(out["path"], "path", ctx, (".csv",))
    return out


def build(checked: dict, seed: int, ctx: SpecContext) -> Dataset:
    """Every entry is data: train on the (unsaturated) entries, test on the whole table."""
    bits = checked["bits"]
    if checked["table"] is not None:
        name = checked["table"]
        shape = tuple(checked["shape"])
        grid = builtin_table(name, shape, bits)
        ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        X = np.stack([ii.ravel() / shape[0], jj.ravel() / shape[1]], axis=1).astype(np.float32)
        values = grid.ravel()
    else:
        path = ctx.resolve(checked["path"])
        name = path.stem
        X, values, shape = read_csv_table(path, checked["path"], checked["format"], bits)
    lo, hi = int(values.min()), int(values.max())
    saturated = (values == lo) | (values == hi)
    info = TableInfo(name, tuple(shape), bits, lo, hi, lo, hi, int(saturated.sum()))
    keep = ~saturated if checked["omit_saturated"] else np.ones(values.size, dtype=bool)
    if not keep.any():
        raise FlowError(f"{checked['path'] or name}: every entry is at the min or max value: nothing to train on")
    y = (values / info.value_scale).astype(np.float32)[:, None]
    # No held-out split (the table is all the model will ever see): validation is the training set itself.
    return Dataset(
        name=f"table_{name}",
        task="regression",
        X_train=X[keep],
        y_train=y[keep],
        X_val=X[keep].copy(),
        y_val=y[keep].copy(),
        X_test=X,
        y_test=y,
        table=info,
        meta={"n_entries": int(values.size), "n_train": int(keep.sum()), "n_saturated": info.n_saturated},
    )
