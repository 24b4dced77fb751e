"""Member training shares: deterministic from the seed, disjoint, covering; the card field and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from flow.card import QMODELS_DIR, load_card
from flow.data import dataset_fingerprint
from flow.data.dataset import SpecContext
from flow.data.shares import MemberShare
from flow.data.spectra import check_spec
from flow.ensemble_card import load_ensemble_card
from flow.errors import FlowError

LABELS = np.random.default_rng(3).permutation(np.arange(1000) % 18)


def parts(mode: str, count: int, seed: int = 1) -> list[np.ndarray]:
    return [MemberShare(mode, i, count, seed).rows(LABELS) for i in range(count)]


def test_disjoint_shares_are_disjoint_cover_every_row_and_keep_the_classes_balanced():
    shares = parts("disjoint", 7)
    together = np.concatenate(shares)
    assert np.array_equal(np.sort(together), np.arange(LABELS.size))  # disjoint and covering
    for rows in shares:
        per_class = np.bincount(LABELS[rows], minlength=18)
        assert per_class.max() - per_class.min() <= 1 + 1  # 1000 / 18 rows a class, split seven ways


def test_shares_are_deterministic_from_the_seed():
    for mode in ("disjoint", "bootstrap"):
        again = parts(mode, 5)
        assert all(np.array_equal(a, b) for a, b in zip(parts(mode, 5), again))
        other = parts(mode, 5, seed=2)
        assert not all(np.array_equal(a, b) for a, b in zip(parts(mode, 5), other))


def test_bootstrap_shares_are_their_members_own_and_a_share_big():
    shares = parts("bootstrap", 4)
    assert all(abs(rows.size - LABELS.size / 4) <= 18 for rows in shares)
    assert not np.array_equal(shares[0], shares[1])
    assert any(np.unique(rows).size < rows.size for rows in shares)  # drawn with replacement


def test_full_share_is_every_row_and_leaves_the_spec_unchanged():
    assert np.array_equal(MemberShare().rows(LABELS), np.arange(LABELS.size))
    plain = check_spec({"kind": "spectra", "diagonal": 3}, SpecContext())
    assert not {"share", "share_index", "share_count"} & set(plain)  # the single cards' fingerprints stay
    shared = check_spec(
        {"kind": "spectra", "diagonal": 3, "share": "disjoint", "share_index": 2, "share_count": 4}, SpecContext()
    )
    assert (shared["share"], shared["share_index"], shared["share_count"]) == ("disjoint", 2, 4)


def test_a_wrong_split_is_caught():
    """The checks above fail on a split that overlaps (a known-wrong answer)."""
    overlapping = [MemberShare("bootstrap", i, 3).rows(LABELS) for i in range(3)]
    together = np.concatenate(overlapping)
    assert not np.array_equal(np.sort(together), np.arange(LABELS.size))


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"share": "half"}, "dataset.share is 'half', expected one of: full, disjoint, bootstrap"),
        (
            {"share": "disjoint", "share_index": 4, "share_count": 4},
            "dataset.share_index is 4, expected an integer in 0..3",
        ),
        ({"share": "disjoint", "share_count": 0}, "dataset.share_count is 0, expected an integer in 1..1000"),
    ],
)
def test_bad_share_fields_are_one_line(spec, message):
    with pytest.raises(FlowError) as exc:
        check_spec({"kind": "spectra", "diagonal": 0, **spec}, SpecContext())
    assert message in str(exc.value) and "\n" not in str(exc.value)


ENSEMBLE = """name: ens
members: [diag_04, diag_09, diag_14]
member_training: {share: disjoint, shares: 20, epochs: 200}
"""


def test_member_training_gives_each_member_its_share_and_epochs(tmp_path):
    path = tmp_path / "ens.yaml"
    path.write_text(ENSEMBLE)
    card = load_ensemble_card(path)
    assert [m.dataset["share_index"] for m in card.members] == [0, 1, 2]
    assert {m.dataset["share_count"] for m in card.members} == {20}
    assert {m.training.epochs for m in card.members} == {200}
    assert all(m.raw["dataset"]["share"] == "disjoint" for m in card.members)  # the project's card copy says so


def test_member_training_enters_the_members_fingerprints(tmp_path):
    path = tmp_path / "ens.yaml"
    path.write_text(ENSEMBLE)
    shared = load_ensemble_card(path).members[0]
    path.write_text(ENSEMBLE.replace("member_training: {share: disjoint, shares: 20, epochs: 200}\n", ""))
    plain = load_ensemble_card(path).members[0]
    own = load_card("diag_04")
    assert plain.dataset == own.dataset and plain.training == own.training  # without the field: the card as it is
    fp = [dataset_fingerprint(c.dataset, c.training.seed) for c in (shared, plain, own)]
    assert fp[0] != fp[1] == fp[2]
    assert shared.training_fingerprint(fp[0]) != plain.training_fingerprint(fp[1])


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "share: disjoint",
            "share: half",
            "member_training.share: 'half' is not allowed; expected one of full, disjoint, bootstrap",
        ),
        ("shares: 20", "shares: 2", "member_training.shares: 2 is not allowed; expected an integer 3..1000"),
        ("epochs: 200", "epochs: 0", "member_training.epochs: 0 is not allowed; expected an integer 1..10000"),
        ("epochs: 200", "epoch: 200", "member_training.epoch: is not a field"),
        ("share: disjoint", "share: full", "member_training.shares: needs share disjoint or bootstrap"),
    ],
)
def test_bad_member_training_is_one_line(tmp_path, old, new, message):
    path = tmp_path / "ens.yaml"
    path.write_text(ENSEMBLE.replace(old, new))
    with pytest.raises(FlowError) as exc:
        load_ensemble_card(path)
    assert message in str(exc.value) and "\n" not in str(exc.value) and str(exc.value).startswith(str(path))


def test_a_member_setting_its_own_share_is_refused(tmp_path):
    (tmp_path / "diag_04.yaml").write_text(
        f"name: diag_04\nbase: {QMODELS_DIR / '_diag.yaml'}\n"
        "dataset: {diagonal: 4, share: disjoint, share_count: 3}\n"
    )
    path = tmp_path / "ens.yaml"
    path.write_text(ENSEMBLE)
    with pytest.raises(FlowError, match="diag_04 sets dataset.share; the ensemble's member_training sets shares"):
        load_ensemble_card(path)


def test_member_training_dataset_knobs_reach_every_member(tmp_path):
    path = tmp_path / "ens.yaml"
    path.write_text(ENSEMBLE.replace("epochs: 200}", "epochs: 200, dataset: {gain_drift: 0.01, shielding: [0, 0.6]}}"))
    card = load_ensemble_card(path)
    assert all(m.dataset["gain_drift"] == 0.01 and m.dataset["shielding"] == [0, 0.6] for m in card.members)
    assert [m.dataset["diagonal"] for m in card.members] == [4, 9, 14]


@pytest.mark.parametrize(
    "knobs, message",
    [
        ("{gain_drift: 0.9}", "member_training.dataset.gain_drift is 0.9, expected a number in [0.0, 0.2]"),
        ("{diagonal: 3}", "member_training.dataset.diagonal: is not a field"),
        ("{share_index: 3}", "member_training.dataset.share_index: is not a field"),
    ],
)
def test_bad_member_training_dataset_is_one_line(tmp_path, knobs, message):
    path = tmp_path / "ens.yaml"
    path.write_text(ENSEMBLE.replace("epochs: 200}", f"epochs: 200, dataset: {knobs}}}"))
    with pytest.raises(FlowError) as exc:
        load_ensemble_card(path)
    assert message in str(exc.value) and "\n" not in str(exc.value) and str(exc.value).startswith(str(path))


def test_a_single_cards_fingerprints_are_those_before_the_shares():
    """diag_05's dataset and training fingerprints as they were before shares existed (a changed spec fails here)."""
    card = load_card("diag_05")
    fp = dataset_fingerprint(card.dataset, card.training.seed, card_path=card.path)
    assert fp == "c3f58a6fae58c1ed68ef11be1f1bccd261123f189f30a9d44937b7b3857558cc"
    assert card.training_fingerprint(fp) == "9efa42d1830e058a"
