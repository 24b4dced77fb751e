"""The generator's calibration check: voting rules and the error-overlap figures (no training here)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from flow.data.ensemble_check import _diagonals, _knobs, error_overlap, hard_vote, main, soft_vote


def one_hot_logits(votes: list[list[int]], n_classes: int) -> np.ndarray:
    """(members, n, classes) logits whose argmax is ``votes[member][sample]``."""
    return np.eye(n_classes)[np.array(votes)]


def test_hard_vote_is_the_majority_and_ties_go_to_the_lowest_class():
    logits = one_hot_logits([[2, 1, 0], [2, 3, 3], [1, 3, 0], [0, 1, 3]], 4)
    np.testing.assert_array_equal(hard_vote(logits, 4), [2, 1, 0])  # 2 wins; 1 vs 3 tie -> 1; 0 vs 3 tie -> 0


def test_soft_vote_can_differ_from_hard_vote():
    # Two members lean weakly to class 0, one is sure of class 1: hard says 0, soft says 1.
    logits = np.array([[[0.1, 0.0]], [[0.1, 0.0]], [[0.0, 5.0]]])
    assert hard_vote(logits, 2)[0] == 0 and soft_vote(logits)[0] == 1


def test_error_overlap_tells_shared_from_independent_errors():
    y = np.zeros(4, dtype=np.int64)
    shared = one_hot_logits([[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 0]], 2)  # everyone wrong on the same two
    spread = one_hot_logits([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]], 2)  # each wrong on its own one
    a, b = error_overlap(shared, y), error_overlap(spread, y)
    assert a["mean_pairwise_error_correlation"] == pytest.approx(1.0)
    assert a["frac_wrong_by_all"] == 0.5 and a["frac_wrong_by_half_or_more"] == 0.5
    assert b["mean_pairwise_error_correlation"] < 0 and b["frac_wrong_by_all"] == 0.0
    assert b["frac_wrong_by_half_or_more"] == 0.0


def test_diagonal_lists():
    assert _diagonals("0-3,7") == (0, 1, 2, 3, 7)
    with pytest.raises(argparse.ArgumentTypeError, match="0..19"):
        _diagonals("18-20")


def test_knobs_are_yaml_values():
    assert _knobs(["gain_drift=0.05", "shielding=[0, 1.5]"]) == {"gain_drift": 0.05, "shielding": [0, 1.5]}
    with pytest.raises(SystemExit, match="KNOB=VALUE"):
        _knobs(["gain_drift"])


def test_too_few_shares_for_the_members_is_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--diagonals", "0-4", "--member-share", "disjoint", "--shares", "3"])
    assert exc.value.code == 2 and "--shares 3: member i takes share i, so 5..1000" in capsys.readouterr().err
