"""Datasets: determinism, shapes, the diagonal formula, tables and their metrics, and every user error."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from flow.data import CLASS_NAMES, SpectraParams, dataset_fingerprint, diagonal_features, generate_spectra, load_dataset
from flow.data.spectra import GENERATOR_VERSION, N_CHANNELS, N_FEATURES
from flow.data.tables import TableInfo, builtin_table
from flow.errors import FlowError

SMALL_SPECTRA = {"kind": "spectra", "diagonal": 5, "n_spectra": 360}


# ---- spectra ----


def test_generate_spectra_is_deterministic_in_the_seed():
    a_counts, a_labels = generate_spectra(90, seed=1)
    b_counts, b_labels = generate_spectra(90, seed=1)
    c_counts, _ = generate_spectra(90, seed=2)
    np.testing.assert_array_equal(a_counts, b_counts)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a_counts, c_counts)


def test_generate_spectra_shapes_and_balanced_labels():
    counts, labels = generate_spectra(180, seed=3)
    assert counts.shape == (180, N_CHANNELS) and counts.dtype == np.int32
    assert labels.shape == (180,) and labels.dtype == np.int64
    assert (counts >= 0).all() and counts.sum(axis=1).min() > 0
    np.testing.assert_array_equal(np.bincount(labels), np.full(len(CLASS_NAMES), 10))


def test_cs137_photopeak_lands_near_662_kev():
    counts, labels = generate_spectra(360, seed=4)
    cs = counts[labels == CLASS_NAMES.index("Cs-137")].mean(axis=0)
    window = slice(150, 400)  # 450..1200 keV: past the X-ray and backscatter region
    peak_kev = (np.argmax(cs[window]) + window.start + 0.5) * 3.0
    assert abs(peak_kev - 661.7) < 15


def _cs137_mean(params: SpectraParams, n: int = 180) -> np.ndarray:
    counts, labels = generate_spectra(n, seed=4, params=params)
    return counts[labels == CLASS_NAMES.index("Cs-137")].mean(axis=0)


def test_resolution_and_shielding_act_per_spectrum_setting():
    # A broader resolution lowers and widens the 662 keV peak; a thick shield removes low energies first.
    sharp = _cs137_mean(SpectraParams(fwhm_662=(0.05, 0.05), gain_drift=0.0, adc_bit_error=0.0))
    broad = _cs137_mean(SpectraParams(fwhm_662=(0.12, 0.12), gain_drift=0.0, adc_bit_error=0.0))
    peak = slice(200, 240)  # 600..720 keV
    assert sharp[peak].max() > 1.5 * broad[peak].max()
    ba = CLASS_NAMES.index("Ba-133")
    bare, _ = generate_spectra(360, seed=5, params=SpectraParams(shielding=(0.0, 0.0)))
    thick, labels = generate_spectra(360, seed=5, params=SpectraParams(shielding=(1.2, 1.2)))
    low, high = slice(20, 35), slice(110, 125)  # the 81 keV and the 356 keV lines of Ba-133
    ratio_bare = bare[labels == ba][:, low].sum() / bare[labels == ba][:, high].sum()
    ratio_thick = thick[labels == ba][:, low].sum() / thick[labels == ba][:, high].sum()
    assert ratio_thick < 0.7 * ratio_bare


def test_width_pattern_is_off_by_default_and_cancels_on_a_multiple_of_its_period():
    """The channel-width pattern knob: absent, the spectra (and fingerprints) are version 2's; present, it is
    seeded, and the expected counts' log differences at a multiple of the period are the pattern-free ones."""
    plain, _ = generate_spectra(36, seed=3)
    assert np.array_equal(plain, generate_spectra(36, seed=3, params=SpectraParams(pattern_width_error=0.0))[0])
    assert dataset_fingerprint(SMALL_SPECTRA, 0) == dataset_fingerprint({**SMALL_SPECTRA, "pattern_width_error": 0}, 0)
    assert dataset_fingerprint(SMALL_SPECTRA, 0) != dataset_fingerprint(
        {**SMALL_SPECTRA, "pattern_width_error": 0.1}, 0
    )
    params = SpectraParams(pattern_width_error=0.3, pattern_period=(4, 4))
    a, b = generate_spectra(36, seed=3, params=params)[0], generate_spectra(36, seed=3, params=params)[0]
    assert np.array_equal(a, b) and not np.array_equal(a, plain)
    rng = np.random.default_rng(0)
    from flow.data.spectra import _width_pattern

    w = _width_pattern(5, params, rng)
    assert np.allclose(np.log(w[:, 4:]) - np.log(w[:, :-4]), 0) and not np.allclose(np.log(w[:, 1:] / w[:, :-1]), 0)


def test_generator_version_is_in_the_fingerprint():
    ds = load_dataset(SMALL_SPECTRA, seed=7)
    assert ds.meta["version"] == GENERATOR_VERSION >= 2  # v1 caches and trained models are not reused


@pytest.mark.parametrize("k", [0, 5, 19])
def test_diagonal_features_match_a_direct_loop(k):
    counts, _ = generate_spectra(18, seed=5)
    got = diagonal_features(counts[:3], k)
    assert got.shape == (3, N_FEATURES) and got.dtype == np.float32
    for s in range(3):
        h = counts[s].astype(np.float64)
        want = np.zeros(N_FEATURES)
        for i in range(N_CHANNELS - k - 1):  # pairs (i, i + k + 1): 1023 - k of them
            want[i] = np.log1p(h[i + k + 1]) - np.log1p(h[i])
        # The hardware's fixed-point values: two log1p roundings of half an LSB (2**-8) each.
        np.testing.assert_allclose(got[s], want, rtol=0, atol=2**-8 + 1e-9)
        assert not got[s, N_CHANNELS - k - 1 :].any()  # zero padding


def test_diagonal_features_clip_at_zero():
    counts, _ = generate_spectra(18, seed=6)
    raw, clipped = diagonal_features(counts, 3), diagonal_features(counts, 3, clip=True)
    assert (raw < 0).any() and (clipped >= 0).all()
    np.testing.assert_array_equal(clipped, np.maximum(raw, 0))


def test_spectra_dataset_splits_and_is_deterministic():
    a = load_dataset(SMALL_SPECTRA, seed=7)
    b = load_dataset(SMALL_SPECTRA, seed=7)
    c = load_dataset(SMALL_SPECTRA, seed=8)
    assert (a.X_train.shape, a.X_val.shape, a.X_test.shape) == ((252, 1023), (54, 1023), (54, 1023))
    assert a.task == "classification" and a.n_features == 1023 and a.n_outputs == 18
    assert a.class_names == CLASS_NAMES and a.X_train.dtype == np.float32 and a.y_train.dtype == np.int64
    for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.X_train, c.X_train)
    assert a.meta["fingerprint"] == dataset_fingerprint(SMALL_SPECTRA, 7)


def test_every_diagonal_comes_from_the_same_spectra():
    d0 = load_dataset({**SMALL_SPECTRA, "diagonal": 0}, seed=9)
    d19 = load_dataset({**SMALL_SPECTRA, "diagonal": 19}, seed=9)
    np.testing.assert_array_equal(d0.y_test, d19.y_test)
    assert not np.array_equal(d0.X_test, d19.X_test)


# ---- tables ----


@pytest.mark.parametrize("name", ["charge", "discharge"])
def test_builtin_table_range_and_saturation(name):
    grid = builtin_table(name)
    assert grid.shape == (256, 256) and grid.min() == 0 and grid.max() == 4095
    assert ((grid == 0).sum() > 100) and ((grid == 4095).sum() > 100)  # both levels are plateaus


def test_table_dataset_trains_on_unsaturated_and_tests_on_the_whole_table():
    ds = load_dataset({"kind": "table", "table": "charge"}, seed=0)
    info = ds.table
    assert ds.task == "regression" and ds.n_features == 2 and ds.n_outputs == 1
    assert ds.X_test.shape == (65536, 2) and ds.y_test.shape == (65536, 1)
    assert info.shape == (256, 256) and info.bits == 12 and (info.saturation_low, info.saturation_high) == (0, 4095)
    values = np.rint(ds.y_test[:, 0] * 4096)
    assert info.n_saturated == int(((values == 0) | (values == 4095)).sum())
    assert len(ds.X_train) == 65536 - info.n_saturated
    train_values = np.rint(ds.y_train[:, 0] * 4096)
    assert ((train_values > 0) & (train_values < 4095)).all()
    np.testing.assert_array_equal(ds.X_val, ds.X_train)
    # X_test is every grid point exactly once, normalised to [0, 1).
    assert ds.X_test.min() == 0 and ds.X_test.max() == 255 / 256
    assert len(np.unique(ds.X_test * 256, axis=0)) == 65536
    np.testing.assert_array_equal(values.reshape(256, 256), builtin_table("charge"))


def test_table_without_omission_trains_on_everything():
    ds = load_dataset({"kind": "table", "table": "discharge", "omit_saturated": False, "shape": [16, 32]}, seed=0)
    assert ds.X_train.shape == ds.X_test.shape == (512, 2)
    assert ds.table.shape == (16, 32)


def test_table_metrics_and_clamp_against_hand_computed_values():
    info = TableInfo("t", (2, 2), 12, 0, 4095, 10, 4000, 0)
    y_true = np.array([100, 200, 300, 400]) / 4096
    y_pred = np.array([101, 198, 300, 404]) / 4096  # errors 1, -2, 0, 4
    m = info.table_metrics(y_true, y_pred)
    assert m["mse"] == pytest.approx(21 / 4)
    assert m["rmse"] == pytest.approx(np.sqrt(21 / 4))
    assert m["mae"] == pytest.approx(7 / 4)
    assert m["r2"] == pytest.approx(1 - 21 / 50000)  # total sum of squares: 150² + 50² + 50² + 150²
    np.testing.assert_allclose(info.to_words(np.array([5, 500.4, 4090]) / 4096) * 4096, [10, 500, 4000])


def test_csv_grid_and_rows_formats(tmp_path):
    (tmp_path / "grid.csv").write_text("1,2,3\n4,5,6\n")
    (tmp_path / "rows.csv").write_text("x0,x1,y\n0,0,7\n0,1,8\n1,0,9\n1,1,4095\n")
    card = tmp_path / "card.yaml"
    g = load_dataset({"kind": "table", "path": "grid.csv", "omit_saturated": False}, seed=0, card_path=card)
    assert g.table.shape == (2, 3) and g.X_test.shape == (6, 2)
    np.testing.assert_allclose(g.X_test[5], [1 / 2, 2 / 3])
    np.testing.assert_allclose(g.y_test[:, 0] * 4096, [1, 2, 3, 4, 5, 6])
    r = load_dataset({"kind": "table", "path": "rows.csv"}, seed=0, card_path=card)
    assert r.table.shape == (2, 2) and len(r.X_train) == 2  # 7 (min) and 4095 (max) are left out


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1,2\n3,4.5\n", "4.5"),
        ("1,2\n3,5000\n", "0..4095"),
        ("1,2,3\n4,5\n", "line 2 has 2 columns"),
        ("1,2\n3,x\n", "line 2 is not all numbers"),
        ("x0,x1,y\n0,0,1\n0,0,2\n", "repeats the address"),
        ("", "empty"),
    ],
)
def test_csv_errors_name_the_file(tmp_path, text, fragment):
    (tmp_path / "bad.csv").write_text(text)
    with pytest.raises(FlowError, match="bad.csv") as err:
        load_dataset({"kind": "table", "path": "bad.csv"}, seed=0, card_path=tmp_path / "card.yaml")
    assert fragment in str(err.value)


def test_table_needs_exactly_one_source():
    with pytest.raises(FlowError, match="exactly one of table"):
        load_dataset({"kind": "table"}, seed=0)
    with pytest.raises(FlowError, match="table is 'solar'"):
        load_dataset({"kind": "table", "table": "solar"}, seed=0)


# ---- npz ----


def _write_npz(path: Path, **override) -> None:
    rng = np.random.default_rng(0)
    arrays = {
        "X_train": rng.normal(size=(100, 7)),
        "y_train": rng.integers(0, 3, 100),
        "X_test": rng.normal(size=(20, 7)),
        "y_test": rng.integers(0, 3, 20),
        **override,
    }
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})


def _load_npz(tmp_path: Path, **spec):
    return load_dataset({"kind": "npz", "path": "data.npz", **spec}, seed=0, card_path=tmp_path / "card.yaml")


def test_npz_loads_and_splits_validation_from_train(tmp_path):
    _write_npz(tmp_path / "data.npz")
    ds = _load_npz(tmp_path)
    assert ds.task == "classification" and ds.meta["task_inferred"]
    assert (len(ds.X_train), len(ds.X_val), len(ds.X_test)) == (90, 10, 20)
    assert ds.X_train.dtype == np.float32 and ds.y_train.dtype == np.int64 and ds.n_outputs == 3
    np.testing.assert_array_equal(_load_npz(tmp_path).X_val, ds.X_val)


def test_npz_regression_targets_become_2d(tmp_path):
    _write_npz(tmp_path / "data.npz", y_train=np.linspace(0, 1, 100), y_test=np.linspace(0, 1, 20))
    ds = _load_npz(tmp_path)
    assert ds.task == "regression" and ds.y_train.shape == (90, 1) and ds.y_train.dtype == np.float32


def test_npz_explicit_task_and_given_validation(tmp_path):
    _write_npz(tmp_path / "data.npz", X_val=np.zeros((5, 7)), y_val=np.ones(5))
    ds = _load_npz(tmp_path, task="regression")
    assert ds.task == "regression" and len(ds.X_train) == 100 and len(ds.X_val) == 5


def _nan_at_12() -> np.ndarray:
    x = np.zeros((20, 7))
    x[12, 3] = np.nan
    return x


def _inf_at_3() -> np.ndarray:
    x = np.zeros((100, 7))
    x[3, 0] = np.inf
    return x


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ({"y_test": None}, "missing y_test"),
        ({"X_train": np.zeros((100, 7, 1))}, "X_train has shape (100, 7, 1)"),
        ({"X_test": np.zeros((20, 6))}, "X_test has shape (20, 6), expected (n, 7)"),
        ({"X_test": _nan_at_12()}, "X_test contains NaN at row 12"),
        ({"X_train": _inf_at_3()}, "X_train contains inf at row 3"),
        ({"y_train": np.zeros(99, dtype=int)}, "y_train has 99 rows but X_train has 100"),
        ({"y_test": np.full(20, -1)}, "y_test has -1 at row 0"),
        ({"X_val": np.zeros((5, 7))}, "has X_val but not y_val"),
        ({"extra": np.zeros(3)}, "unexpected array extra"),
        ({"y_train": np.zeros((100, 2)), "y_test": np.zeros((20, 3))}, "y_test has shape (20, 3), expected (n, 2)"),
        ({"X_train": np.array([["a"] * 7] * 100)}, "X_train has dtype"),
    ],
)
def test_npz_errors_name_the_file_and_the_array(tmp_path, override, fragment):
    _write_npz(tmp_path / "data.npz", **override)
    with pytest.raises(FlowError, match="data.npz") as err:
        _load_npz(tmp_path)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_npz_missing_file_and_unreadable_file(tmp_path):
    with pytest.raises(FlowError, match="data.npz: file not found"):
        _load_npz(tmp_path)
    (tmp_path / "data.npz").write_text("not a zip")
    with pytest.raises(FlowError, match="data.npz: not a readable .npz"):
        _load_npz(tmp_path)


def test_npz_classification_y_must_be_1d(tmp_path):
    _write_npz(tmp_path / "data.npz", y_train=np.zeros((100, 2)))
    with pytest.raises(FlowError, match=r"y_train has shape \(100, 2\), expected \(n,\)"):
        _load_npz(tmp_path, task="classification")


# ---- spec errors and fingerprints ----


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"kind": "images"}, "kind is 'images'; valid kinds: spectra, table, npz"),
        ({"diagonal": 5}, "kind is missing; valid kinds"),
        ({**SMALL_SPECTRA, "diagonals": 5}, "dataset.diagonals is not a field of kind 'spectra'; allowed: kind, diag"),
        ({"kind": "spectra"}, "dataset.diagonal is required"),
        ({**SMALL_SPECTRA, "diagonal": 20}, "dataset.diagonal is 20, expected an integer in 0..19"),
        ({**SMALL_SPECTRA, "clip": "yes"}, "dataset.clip is 'yes', expected true or false"),
        ({**SMALL_SPECTRA, "source_cps": [300, 5]}, "dataset.source_cps is [300, 5]"),
        ({"kind": "table", "table": "charge", "depth": 8}, "dataset.depth is not a field of kind 'table'"),
        ({"kind": "npz", "path": "x.npz", "task": "ranking"}, "dataset.task is 'ranking'"),
    ],
)
def test_spec_errors(spec, fragment):
    with pytest.raises(FlowError) as err:
        load_dataset(spec, seed=0, card_path=Path("diag.yaml"))
    assert fragment in str(err.value) and str(err.value).startswith("diag.yaml: ")


def test_fingerprint_is_stable_and_tracks_what_determines_the_data(tmp_path):
    base = dataset_fingerprint(SMALL_SPECTRA, 0)
    assert base == dataset_fingerprint(dict(SMALL_SPECTRA), 0) and len(base) == 64
    assert base == dataset_fingerprint({**SMALL_SPECTRA, "clip": False}, 0)  # a default spelled out
    assert base != dataset_fingerprint({**SMALL_SPECTRA, "clip": True}, 0)
    assert base != dataset_fingerprint({**SMALL_SPECTRA, "diagonal": 6}, 0)
    assert base != dataset_fingerprint(SMALL_SPECTRA, 1)
    card = tmp_path / "card.yaml"
    _write_npz(tmp_path / "data.npz")
    spec = {"kind": "npz", "path": "data.npz"}
    first = dataset_fingerprint(spec, 0, card_path=card)
    assert first == dataset_fingerprint(spec, 0, card_path=card)
    _write_npz(tmp_path / "data.npz", y_test=np.zeros(20, dtype=int))
    assert first != dataset_fingerprint(spec, 0, card_path=card)
