"""Task metrics: accuracy for classifiers, MSE/RMSE/MAE/R² (in table units) for regressors."""

from __future__ import annotations

import numpy as np

from flow.data.dataset import Dataset


def primary_metric(task: str) -> str:
    """The figure a report leads with: accuracy (higher is better) or RMSE (lower is better)."""
    return "accuracy" if task == "classification" else "rmse"


def score(ds: Dataset, y_pred: np.ndarray, y_true: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of network outputs (logits or regression values) against the test set."""
    y_true = ds.y_test if y_true is None else y_true
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if ds.task == "classification":
        return {"accuracy": float(np.mean(np.argmax(y_pred, axis=1) == y_true))}
    y_pred = y_pred.reshape(len(y_pred), -1)
    if ds.table is not None:
        # The table's output stage (round to the word, clamp), exactly as the IR's clamp layer and the RTL do it.
        return {k: float(v) for k, v in ds.table.table_metrics(np.asarray(y_true), ds.table.to_words(y_pred)).items()}
    y_true = np.asarray(y_true, dtype=np.float64).reshape(y_pred.shape)
    err = y_pred - y_true
    mse = float(np.mean(err**2))
    var = float(np.var(y_true))
    return {"mse": mse, "rmse": mse**0.5, "mae": float(np.mean(np.abs(err))), "r2": 1.0 - mse / var if var else 0.0}


def agreement(task: str, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How two implementations' outputs agree: argmax agreement (classifiers) and max abs difference."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(a.shape)
    out = {"max_abs_diff": float(np.max(np.abs(a - b))) if a.size else 0.0}
    if task == "classification":
        out["argmax_agreement"] = float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    return out
