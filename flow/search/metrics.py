"""The objective metrics a search can optimise: an explicit registry of name -> :class:`Metric`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flow.data.dataset import Dataset
from flow.errors import FlowError
from flow.metrics import FPR_10KHZ, efficiency_at, score, signal_scores

DEFAULT_FPR = FPR_10KHZ  # 10 kHz of background out of the 40 MHz collision rate (design.md §1)


@dataclass(frozen=True)
class Metric:
    """One figure of merit: ``fn(ds, y_pred, **options)`` on the test set; ``direction`` for optuna."""

    name: str
    direction: str  # "maximize" or "minimize"
    fn: Callable[..., float]
    tasks: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)  # allowed option -> default

    def __call__(self, ds: Dataset, y_pred: np.ndarray, options: dict | None = None) -> float:
        return float(self.fn(ds, y_pred, **(self.options | (options or {}))))

    def badness(self, value: float) -> float:
        """A loss-like view (lower is better, 0 is perfect for bounded metrics) used by the prune rule."""
        return value if self.direction == "minimize" else 1.0 - value


def _accuracy(ds: Dataset, y_pred: np.ndarray) -> float:
    return score(ds, y_pred)["accuracy"]


def _regression(key: str) -> Callable[..., float]:
    def fn(ds: Dataset, y_pred: np.ndarray) -> float:
        return score(ds, y_pred)[key]  # table units (LSBs) for tables: flow.metrics clamps and rescales

    return fn


def signal_efficiency(ds: Dataset, y_pred: np.ndarray, fpr: float = DEFAULT_FPR, signal_class: int = 1) -> float:
    """True-positive rate of ``signal_class`` at the threshold that lets through a fraction ``fpr`` of the rest
    (:func:`flow.metrics.efficiency_at` on :func:`flow.metrics.signal_scores`)."""
    y = np.asarray(ds.y_test).ravel()
    return efficiency_at(signal_scores(y_pred, signal_class), y == signal_class, fpr).efficiency


METRICS: dict[str, Metric] = {
    "accuracy": Metric("accuracy", "maximize", _accuracy, ("classification",)),
    "rmse": Metric("rmse", "minimize", _regression("rmse"), ("regression",)),
    "mae": Metric("mae", "minimize", _regression("mae"), ("regression",)),
    "eff_at_10khz": Metric("eff_at_10khz", "maximize", signal_efficiency, ("classification",)),
    "signal_efficiency": Metric(
        "signal_efficiency", "maximize", signal_efficiency, ("classification",), {"fpr": DEFAULT_FPR, "signal_class": 1}
    ),
}


def get_metric(name: Any) -> Metric:
    """The registered metric ``name``; a FlowError lists the valid names."""
    if not isinstance(name, str) or name not in METRICS:
        raise FlowError(f"{name!r} is not a known metric; known: {', '.join(METRICS)}")
    return METRICS[name]
