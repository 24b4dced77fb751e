"""The trigger figure of merit: efficiency at 10 kHz, its uncertainty, the ROC and its plot, the search's metric."""

from __future__ import annotations

import numpy as np
import pytest

from flow.data.dataset import Dataset
from flow.metrics import FPR_10KHZ, classification_metrics, efficiency_at, roc, score
from flow.plots import roc_plot
from flow.search.metrics import get_metric


def _scores():
    bkg = np.arange(8000, dtype=np.float64)  # 2.5e-4 of 8,000: 2 background crossings may pass
    sig = np.r_[np.full(30, 7997.0), np.full(70, 7998.0)]  # 7997 fails (the threshold), 7998 passes
    return np.r_[bkg, sig], np.r_[np.zeros(bkg.size, bool), np.ones(sig.size, bool)]


def test_efficiency_at_10khz_against_a_hand_count():
    scores, is_signal = _scores()
    e = efficiency_at(scores, is_signal)
    assert FPR_10KHZ == 2.5e-4
    assert e.threshold == 7997.0 and e.fpr == 2 / 8000 and e.efficiency == 0.7
    assert e.uncertainty == pytest.approx(np.sqrt(0.7 * 0.3 / 100))


def test_a_wrong_answer_is_caught():
    scores, is_signal = _scores()
    e = efficiency_at(scores, is_signal)
    # Thresholding one background crossing lower lets 3 through (over the rate) and counts the 30 ties as passing.
    wrong = float(np.mean(scores[is_signal] > 7996.0))
    assert wrong == 1.0 and e.efficiency != wrong
    assert np.mean(scores[~is_signal] > 7996.0) > FPR_10KHZ


def test_score_gives_eff_and_single_logit_accuracy():
    scores, is_signal = _scores()
    y = is_signal.astype(np.int64)
    ds = Dataset("t", "classification", *(np.zeros((1, 1)),) * 6, class_names=["b", "s"], meta={"signal_class": 1})
    logits = (scores - 7997.5)[:, None]
    m = score(ds, logits, y)
    assert m["eff_at_10khz"] == 0.7 and m["eff_at_10khz_err"] == pytest.approx(0.0458, abs=1e-4)
    assert m["accuracy"] == pytest.approx((8000 - 2 + 70) / 8100)
    two = np.c_[np.zeros_like(logits), logits]  # two logits: the score is their difference
    assert classification_metrics(two, y, 1)["eff_at_10khz"] == 0.7
    assert "eff_at_10khz" not in classification_metrics(two, y)
    assert get_metric("eff_at_10khz")(Dataset("t", "classification", *(np.zeros((1, 1)),) * 5, y), logits) == 0.7


def test_roc_is_monotone_and_has_the_10khz_point(tmp_path):
    rng = np.random.default_rng(0)
    scores = np.r_[rng.normal(0, 1, 20000), rng.normal(3, 1, 2000)]
    is_signal = np.r_[np.zeros(20000, bool), np.ones(2000, bool)]
    c = roc(scores, is_signal)
    assert np.all(np.diff(c["fpr"]) >= 0) and np.all(np.diff(c["efficiency"]) >= 0)
    at = efficiency_at(scores, is_signal)
    assert at.efficiency in c["efficiency"] and at.fpr in c["fpr"]
    assert roc_plot({"float": c, "hardware": c}, tmp_path / "roc.png", "t") and (tmp_path / "roc.png").stat().st_size
    assert not roc_plot({"float": {"fpr": [], "efficiency": []}}, tmp_path / "none.png", "t")
