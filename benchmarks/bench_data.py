"""Data benchmarks: generator speed (`run`, fast) and the difficulty calibration (`calibrate`, trains models).

`python -m benchmarks.bench_data` prints run(); `--calibrate` also trains the float diag models, `--table` the
charge-table network, and prints their figures. The ensemble calibration (all 20 members, voting, error overlap)
is `python -m flow.data.ensemble_check`.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from flow.data import SpectraParams, diagonal_features, generate_spectra, load_dataset
from flow.data.ensemble_check import Training, fit_logits, member_model
from flow.data.spectra import _line_tables, _resolution_levels

SEED = 0


def run() -> dict:
    """Seconds to build the response tables, generate 10,000 spectra, cut all 20 diagonals, build both tables."""
    _line_tables.cache_clear()
    t0 = time.perf_counter()
    for fwhm in _resolution_levels(SpectraParams().fwhm_662):
        _line_tables(float(fwhm))
    t1 = time.perf_counter()
    counts, _ = generate_spectra(10_000, SEED)
    t2 = time.perf_counter()
    for k in range(20):
        diagonal_features(counts, k)
    t3 = time.perf_counter()
    for name in ("charge", "discharge"):
        load_dataset({"kind": "table", "table": name}, seed=SEED)
    t4 = time.perf_counter()
    return {
        "spectra_response_tables_s": round(t1 - t0, 3),
        "spectra_generate_10k_s": round(t2 - t1, 3),
        "spectra_generate_10k_total_s": round(t2 - t0, 3),
        "spectra_20_diagonals_10k_s": round(t3 - t2, 3),
        "tables_build_both_s": round(t4 - t3, 3),
    }


def calibrate(diagonals: tuple[int, ...] = (0, 5, 19), seed: int = SEED) -> dict:
    """Float test accuracy and training time per diagonal (Adam 1e-3, batch 256, <= 50 epochs, patience 5)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = {}
    for k in diagonals:
        t0 = time.perf_counter()
        ds = load_dataset({"kind": "spectra", "diagonal": k}, seed=seed)
        t1 = time.perf_counter()
        data = (ds.X_train, ds.y_train, ds.X_val, ds.y_val, ds.X_test)
        logits, epochs = fit_logits(member_model(ds.n_features, ds.n_outputs), data, Training(seed=seed))
        t2 = time.perf_counter()
        out[f"diag_{k:02d}"] = {
            "test_accuracy": round(float(np.mean(logits.argmax(axis=1) == ds.y_test)), 4),
            "epochs": epochs,
            "load_s": round(t1 - t0, 1),
            "train_s": round(t2 - t1, 1),
        }
    return out


def calibrate_table(name: str = "charge", seed: int = SEED, epochs: int = 300) -> dict:
    """Float 2 -> 16 -> 16 -> 1 ReLU net on a built-in table: whole-table metrics (table units), clamped."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    out = {}
    for omit in (False, True):
        ds = load_dataset({"kind": "table", "table": name, "omit_saturated": omit}, seed=seed)
        tf.keras.utils.set_random_seed(seed)
        model = tf.keras.Sequential(
            [
                tf.keras.layers.Input(2),
                tf.keras.layers.Dense(16, activation="relu"),
                tf.keras.layers.Dense(16, activation="relu"),
                tf.keras.layers.Dense(1),
            ]
        )
        model.compile(tf.keras.optimizers.Adam(3e-3), "mse")
        lr = tf.keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=10, min_lr=1e-5)
        t0 = time.perf_counter()
        model.fit(ds.X_train, ds.y_train, batch_size=256, epochs=epochs, verbose=0, callbacks=[lr])
        pred = ds.table.to_words(model.predict(ds.X_test, verbose=0))
        m = ds.table.table_metrics(ds.y_test, pred)
        train_s = round(time.perf_counter() - t0, 1)
        out[f"{name}_omit_saturated_{omit}"] = {**{k: round(v, 5) for k, v in m.items()}, "train_s": train_s}
    return out


if __name__ == "__main__":
    figures = run()
    if "--calibrate" in sys.argv:
        figures["calibration"] = calibrate()
    if "--table" in sys.argv:
        figures["table"] = calibrate_table("charge") | calibrate_table("discharge")
    print(json.dumps(figures, indent=2))
