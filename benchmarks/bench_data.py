"""Data benchmarks: generator speed (`run`, fast) and the difficulty calibration (`calibrate`, trains models).

`python -m benchmarks.bench_data` prints run(); `--calibrate` also trains the float diag models and the
charge-table network and prints their figures.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from flow.data import diagonal_features, generate_spectra, load_dataset
from flow.data.spectra import _response_tables

SEED = 0


def run() -> dict:
    """Seconds to build the response tables, generate 10,000 spectra, cut all 20 diagonals, build both tables."""
    _response_tables.cache_clear()
    t0 = time.perf_counter()
    _response_tables(0.07)
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


def _float_diag_model(n_features: int, n_classes: int):
    """The use case's member: 1023 -> Dropout(0.25) -> Dense(40, relu) -> Dropout(0.25) -> Dense(18)."""
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.layers.Input(n_features),
            tf.keras.layers.Dropout(0.25),
            tf.keras.layers.Dense(40, activation="relu"),
            tf.keras.layers.Dropout(0.25),
            tf.keras.layers.Dense(n_classes),
        ]
    )


def calibrate(diagonals: tuple[int, ...] = (0, 5, 19), seed: int = SEED) -> dict:
    """Float test accuracy and training time per diagonal (Adam 1e-3, batch 256, <= 50 epochs, patience 5)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    out = {}
    for k in diagonals:
        t0 = time.perf_counter()
        ds = load_dataset({"kind": "spectra", "diagonal": k}, seed=seed)
        t1 = time.perf_counter()
        tf.keras.utils.set_random_seed(seed)
        model = _float_diag_model(ds.n_features, ds.n_outputs)
        model.compile(
            tf.keras.optimizers.Adam(1e-3),
            tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        stop = tf.keras.callbacks.EarlyStopping(patience=5, restore_best_weights=True)
        hist = model.fit(
            ds.X_train,
            ds.y_train,
            validation_data=(ds.X_val, ds.y_val),
            batch_size=256,
            epochs=50,
            verbose=0,
            callbacks=[stop],
        )
        t2 = time.perf_counter()
        acc = float(np.mean(np.argmax(model.predict(ds.X_test, verbose=0), axis=1) == ds.y_test))
        out[f"diag_{k:02d}"] = {
            "test_accuracy": round(acc, 4),
            "epochs": len(hist.history["loss"]),
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
