"""The trigger dataset: determinism, shapes and splits, integer energies, the physics it promises, user errors."""

from __future__ import annotations

import numpy as np
import pytest

from flow.data import dataset_fingerprint, load_dataset
from flow.data.trigger import TriggerParams, digitise, generate_images
from flow.errors import FlowError

SMALL = {"kind": "trigger", "n_train": 400, "n_val": 100, "n_test_signal": 100, "n_test_background": 400}


def test_images_are_deterministic_in_the_seed():
    labels = np.arange(300) % 2
    a, b, c = generate_images(labels, 1), generate_images(labels, 1), generate_images(labels, 2)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_dataset_splits_shapes_and_integer_energies():
    ds = load_dataset(SMALL, seed=3)
    assert ds.X_train.shape == (400, 144) and ds.X_test.shape == (500, 144) and ds.X_val.shape == (100, 144)
    assert ds.meta["image_shape"] == [12, 12, 1] and ds.class_names == ["background", "signal"]
    assert np.bincount(ds.y_train).tolist() == [200, 200] and np.bincount(ds.y_test).tolist() == [400, 100]
    for X in (ds.X_train, ds.X_val, ds.X_test):
        assert X.dtype == np.float32 and (X == np.rint(X)).all() and X.min() >= 0 and X.max() <= 255
    again = load_dataset(SMALL, seed=3)
    np.testing.assert_array_equal(ds.X_test, again.X_test)


def test_signal_is_a_compact_energetic_deposit():
    ds = load_dataset(SMALL | {"jet_probability": 0.0}, seed=4)
    imgs = ds.X_train.reshape(-1, 12, 12)
    peak = imgs.reshape(len(imgs), -1).max(axis=1)
    sig, bkg = peak[ds.y_train == 1], peak[ds.y_train == 0]
    # A 10-40 GeV shower of core width <= 0.5 towers puts several GeV (0.5 GeV counts) in its hottest tower.
    assert np.median(sig) >= 3 * np.median(bkg) and np.mean(sig > np.percentile(bkg, 90)) > 0.8


def test_digitise_rounds_zero_suppresses_and_saturates():
    p = TriggerParams(lsb_gev=0.5, bits=4)
    assert digitise(np.array([-1.0, 0.2, 0.3, 0.76, 7.4, 100.0]), p).tolist() == [0, 0, 1, 2, 15, 15]


def test_fingerprint_tracks_the_knobs_and_the_seed():
    base = dataset_fingerprint(SMALL, 1)
    assert base == dataset_fingerprint(dict(SMALL), 1)
    assert base != dataset_fingerprint(SMALL, 2)
    assert base != dataset_fingerprint(SMALL | {"jet_slope": 5.0}, 1)


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"n_test_background": 5}, "dataset.n_test_background is 5, expected an integer in 10..5000000"),
        ({"size": 2}, "dataset.size is 2"),
        ({"signal_gev": [40, 10]}, "dataset.signal_gev is [40, 10], expected [low, high]"),
        ({"jet_slope": 1.0}, "dataset.jet_slope is 1.0, expected a number in [1.5, 10.0]"),
        ({"colour": 1}, "dataset.colour is not a field of kind 'trigger'"),
    ],
)
def test_spec_errors(override, fragment):
    with pytest.raises(FlowError, match=fragment.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_dataset(SMALL | override, seed=1)
