"""Task metrics: accuracy for classifiers, MSE/RMSE/MAE/R² (in table units) for regressors, and for trigger data
(a dataset whose ``meta`` names a ``signal_class``) the signal efficiency at a 10 kHz background rate."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flow.data.dataset import Dataset

BUNCH_CROSSING_HZ = 40e6
TRIGGER_RATE_HZ = 10e3
FPR_10KHZ = TRIGGER_RATE_HZ / BUNCH_CROSSING_HZ  # 2.5e-4 of the background crossings may pass


def primary_metric(task: str, meta: dict | None = None) -> str:
    """The figure a report leads with: accuracy or ``eff_at_10khz`` (higher is better), RMSE (lower is better)."""
    if task != "classification":
        return "rmse"
    return "eff_at_10khz" if (meta or {}).get("signal_class") is not None else "accuracy"


@dataclass(frozen=True)
class Efficiency:
    """Signal efficiency at a background pass fraction: the threshold, its binomial uncertainty, the counts."""

    efficiency: float
    uncertainty: float  # binomial: sqrt(eff (1 - eff) / n_signal)
    threshold: float  # a crossing passes when its score is above this
    fpr: float  # the background fraction that passes at this threshold (<= the asked rate)
    n_signal: int
    n_background: int


def signal_scores(y_pred: np.ndarray, signal_class: int = 1) -> np.ndarray:
    """One score per sample: a single output as is, else the signal logit minus the log-sum-exp of the others."""
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    if y_pred.shape[1] == 1:
        return y_pred[:, 0]
    others = np.delete(y_pred, signal_class, axis=1)
    m = others.max(axis=1, keepdims=True)
    return y_pred[:, signal_class] - (m[:, 0] + np.log(np.exp(others - m).sum(axis=1)))


def efficiency_at(scores: np.ndarray, is_signal: np.ndarray, fpr: float = FPR_10KHZ) -> Efficiency:
    """Signal efficiency at the lowest threshold that passes at most a fraction ``fpr`` of the background."""
    scores, is_signal = np.asarray(scores, dtype=np.float64), np.asarray(is_signal, dtype=bool)
    sig, bkg = scores[is_signal], scores[~is_signal]
    if not sig.size or not bkg.size:
        return Efficiency(0.0, 0.0, float("inf"), 0.0, int(sig.size), int(bkg.size))
    bkg = np.sort(bkg)
    allowed = int(np.floor(fpr * bkg.size))  # background crossings that may pass
    threshold = float(bkg[bkg.size - 1 - allowed])  # ties at the threshold fail: never more than `allowed` pass
    eff = float(np.mean(sig > threshold))
    passed = float(np.mean(bkg > threshold))
    return Efficiency(eff, float(np.sqrt(eff * (1 - eff) / sig.size)), threshold, passed, int(sig.size), int(bkg.size))


def roc(scores: np.ndarray, is_signal: np.ndarray, points: int = 400) -> dict[str, list[float]]:
    """Background pass fraction against signal efficiency at ``points`` thresholds, log-spaced in the fraction."""
    scores, is_signal = np.asarray(scores, dtype=np.float64), np.asarray(is_signal, dtype=bool)
    bkg = np.sort(scores[~is_signal])
    sig = np.sort(scores[is_signal])
    if not bkg.size or not sig.size:
        return {"fpr": [], "efficiency": []}
    fprs = np.unique(np.r_[np.geomspace(1.0 / bkg.size, 1.0, points), FPR_10KHZ])
    thresholds = bkg[np.clip(bkg.size - 1 - np.floor(fprs * bkg.size).astype(np.int64), 0, bkg.size - 1)]
    passed_bkg = (bkg.size - np.searchsorted(bkg, thresholds, side="right")) / bkg.size
    eff = (sig.size - np.searchsorted(sig, thresholds, side="right")) / sig.size
    return {"fpr": passed_bkg.tolist(), "efficiency": eff.tolist()}


def score(ds: Dataset, y_pred: np.ndarray, y_true: np.ndarray | None = None) -> dict[str, float]:
    """Metrics of network outputs (logits or regression values) against the test set."""
    y_true = ds.y_test if y_true is None else y_true
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if ds.task == "classification":
        return classification_metrics(y_pred, y_true, ds.meta.get("signal_class"))
    y_pred = y_pred.reshape(len(y_pred), -1)
    if ds.table is not None:
        # The table's output stage (round to the word, clamp), exactly as the IR's clamp layer and the RTL do it.
        return {k: float(v) for k, v in ds.table.table_metrics(np.asarray(y_true), ds.table.to_words(y_pred)).items()}
    y_true = np.asarray(y_true, dtype=np.float64).reshape(y_pred.shape)
    err = y_pred - y_true
    mse = float(np.mean(err**2))
    var = float(np.var(y_true))
    return {"mse": mse, "rmse": mse**0.5, "mae": float(np.mean(np.abs(err))), "r2": 1.0 - mse / var if var else 0.0}


def classification_metrics(y_pred: np.ndarray, y_true: np.ndarray, signal_class: int | None = None) -> dict:
    """Accuracy, and with a ``signal_class`` the efficiency at 10 kHz and its binomial uncertainty."""
    y_pred = np.asarray(y_pred, dtype=np.float64).reshape(len(y_pred), -1)
    # One output is a binary logit (class 1 when positive); more are one logit per class.
    label = (y_pred[:, 0] > 0).astype(np.int64) if y_pred.shape[1] == 1 else np.argmax(y_pred, axis=1)
    out = {"accuracy": float(np.mean(label == np.asarray(y_true)))}
    if signal_class is not None:
        e = efficiency_at(signal_scores(y_pred, signal_class), np.asarray(y_true) == signal_class)
        out |= {"eff_at_10khz": e.efficiency, "eff_at_10khz_err": e.uncertainty}
    return out


def trigger_roc(y_pred: np.ndarray, y_true: np.ndarray, signal_class: int) -> dict[str, list[float]]:
    """The ROC of a trigger model's outputs (:func:`roc` of :func:`signal_scores`)."""
    return roc(signal_scores(y_pred, signal_class), np.asarray(y_true) == signal_class)


def agreement(task: str, a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How two implementations' outputs agree: argmax agreement (classifiers) and max abs difference."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64).reshape(a.shape)
    out = {"max_abs_diff": float(np.max(np.abs(a - b))) if a.size else 0.0}
    if task == "classification":
        out["argmax_agreement"] = float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1)))
    return out
