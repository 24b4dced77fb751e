"""A user's own data: an .npz file with X_train, y_train, X_test, y_test and optionally X_val, y_val."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from flow.data.dataset import (
    TASKS,
    Dataset,
    SpecContext,
    check_choice,
    check_fields,
    check_file,
    check_float,
)
from flow.errors import FlowError
from flow.project import read_npz

NPZ_VERSION = 1  # bump when the same file and spec would load differently
REQUIRED_ARRAYS = ("X_train", "y_train", "X_test", "y_test")
OPTIONAL_ARRAYS = ("X_val", "y_val")
MAX_INFERRED_CLASSES = 100  # integer-valued float targets with more distinct values are taken as regression

FIELDS = {
    "path": None,  # required; checked by check_file
    "task": None,  # classification | regression; inferred from y_train when absent
    "val_fraction": 0.1,  # share of train held out for validation when the file has no X_val/y_val
    "class_names": None,
}


def check_spec(spec: dict, ctx: SpecContext) -> dict:
    """Validate a `kind: npz` mapping, fill in the defaults and hash the file."""
    out = check_fields(spec, FIELDS, ctx, "npz")
    if out["path"] is None:
        raise FlowError(f"{ctx.where}.path is required for kind 'npz' (an .npz file with {', '.join(REQUIRED_ARRAYS)})")
    if out["task"] is not None:
        out["task"] = check_choice(out["task"], "task", ctx, TASKS)
    out["val_fraction"] = check_float(out["val_fraction"], "val_fraction", ctx, 0.01, 0.5)
    names = out["class_names"]
    if names is not None and not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
        raise FlowError(f"{ctx.where}.class_names is {names!r}, expected a list of strings")
    out["file_sha256"] = check_file(out["path"], "path", ctx, (".npz",))
    return out


def _read_arrays(path: Path, shown: str) -> dict[str, np.ndarray]:
    """All arrays of the file (no pickles), with missing and unexpected keys reported."""
    arrays = read_npz(path, shown=shown, hint="")
    allowed = ", ".join((*REQUIRED_ARRAYS, *OPTIONAL_ARRAYS))
    missing = [k for k in REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise FlowError(f"{shown}: missing {', '.join(missing)}; the file must hold {allowed} (X_val, y_val optional)")
    extra = [k for k in arrays if k not in REQUIRED_ARRAYS + OPTIONAL_ARRAYS]
    if extra:
        raise FlowError(f"{shown}: unexpected array {', '.join(extra)}; allowed: {allowed}")
    if ("X_val" in arrays) != ("y_val" in arrays):
        have, lack = ("X_val", "y_val") if "X_val" in arrays else ("y_val", "X_val")
        raise FlowError(f"{shown}: has {have} but not {lack}; give both or neither")
    return arrays


def _first_bad_row(a: np.ndarray) -> tuple[str, int] | None:
    """('NaN' | 'inf', row) of the first non-finite entry, or None."""
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1)
    if not bad.any():
        return None
    row = int(np.flatnonzero(bad)[0])
    return ("NaN" if np.isnan(a[row]).any() else "inf"), row


def _check_X(name: str, a: np.ndarray, shown: str) -> np.ndarray:
    """A 2-D, real, finite, non-empty feature matrix as float32."""
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] == 0:
        raise FlowError(f"{shown}: {name} has shape {a.shape}, expected (n, n_features) with n, n_features > 0")
    if a.dtype.kind not in "biuf":
        raise FlowError(f"{shown}: {name} has dtype {a.dtype}, expected a real number type")
    if (bad := _first_bad_row(a.astype(np.float64))) is not None:
        raise FlowError(f"{shown}: {name} contains {bad[0]} at row {bad[1]}")
    return a.astype(np.float32)


def _infer_task(y: np.ndarray) -> str:
    """Integer-valued 1-D targets with few distinct values are classes; everything else is regression."""
    if y.ndim != 1 or y.dtype.kind not in "biuf":
        return "regression"
    if y.dtype.kind in "biu":
        return "classification"
    yf = y[np.isfinite(y)]
    if np.all(yf == np.rint(yf)) and np.all(yf >= 0) and np.unique(yf).size <= MAX_INFERRED_CLASSES:
        return "classification"
    return "regression"


def _check_y(name: str, a: np.ndarray, task: str, n_rows: int, shown: str) -> np.ndarray:
    """Targets: 1-D non-negative integer class ids, or 1-D/2-D finite floats; as many rows as X."""
    if a.dtype.kind not in "biuf":
        raise FlowError(f"{shown}: {name} has dtype {a.dtype}, expected numbers")
    if task == "classification":
        if a.ndim != 1:
            raise FlowError(f"{shown}: {name} has shape {a.shape}, expected (n,) class ids for classification")
        af = a.astype(np.float64)
        if (bad := _first_bad_row(af[:, None])) is not None:
            raise FlowError(f"{shown}: {name} contains {bad[0]} at row {bad[1]}")
        wrong = (af != np.rint(af)) | (af < 0)
        if wrong.any():
            row = int(np.flatnonzero(wrong)[0])
            raise FlowError(f"{shown}: {name} has {a[row].item()!r} at row {row}, expected a class id (integer >= 0)")
        out = af.astype(np.int64)
    else:
        if a.ndim not in (1, 2) or (a.ndim == 2 and a.shape[1] == 0):
            raise FlowError(f"{shown}: {name} has shape {a.shape}, expected (n,) or (n, n_outputs) for regression")
        if (bad := _first_bad_row(a.astype(np.float64))) is not None:
            raise FlowError(f"{shown}: {name} contains {bad[0]} at row {bad[1]}")
        out = a.astype(np.float32).reshape(a.shape[0], -1)
    if out.shape[0] != n_rows:
        x_name = "X" + name[1:]
        raise FlowError(f"{shown}: {name} has {out.shape[0]} rows but {x_name} has {n_rows}")
    return out


def build(checked: dict, seed: int, ctx: SpecContext) -> Dataset:
    """Load, check and (if the file has no validation split) split off val_fraction of train with the seed."""
    shown = checked["path"]
    arrays = _read_arrays(ctx.resolve(shown), shown)
    task = checked["task"] or _infer_task(arrays["y_train"])
    splits = ("train", "val", "test") if "X_val" in arrays else ("train", "test")
    X = {s: _check_X(f"X_{s}", arrays[f"X_{s}"], shown) for s in splits}
    y = {s: _check_y(f"y_{s}", arrays[f"y_{s}"], task, X[s].shape[0], shown) for s in splits}
    for s in splits[1:]:
        if X[s].shape[1] != X["train"].shape[1]:
            raise FlowError(f"{shown}: X_{s} has shape {X[s].shape}, expected (n, {X['train'].shape[1]}) like X_train")
        if y[s].shape[1:] != y["train"].shape[1:]:
            raise FlowError(f"{shown}: y_{s} has shape {y[s].shape}, expected (n, {y['train'].shape[1]}) like y_train")
    if "val" not in X:
        n = X["train"].shape[0]
        n_val = max(1, round(n * checked["val_fraction"]))
        if n - n_val < 1:
            raise FlowError(f"{shown}: X_train has {n} rows, too few to hold out a validation split")
        order = np.random.default_rng(seed).permutation(n)
        val, train = order[:n_val], order[n_val:]
        X["val"], y["val"] = X["train"][val], y["train"][val]
        X["train"], y["train"] = X["train"][train], y["train"][train]
    names = checked["class_names"]
    if task == "classification" and names is not None:
        top = max(int(v.max()) for v in y.values())
        if top >= len(names):
            raise FlowError(f"{shown}: class id {top} in y but only {len(names)} class_names in the card")
    return Dataset(
        name=f"npz_{Path(shown).stem}",
        task=task,
        X_train=X["train"],
        y_train=y["train"],
        X_val=X["val"],
        y_val=y["val"],
        X_test=X["test"],
        y_test=y["test"],
        class_names=list(names) if (task == "classification" and names) else None,
        meta={"task_inferred": checked["task"] is None, "val_from_train": "X_val" not in arrays},
    )
