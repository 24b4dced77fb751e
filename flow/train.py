"""Quantization-aware training of a card's model, reused while the card and the data are unchanged."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from flow import batchnorm
from flow.card import Card
from flow.data.dataset import Dataset
from flow.log import info
from flow.metrics import primary_metric, score, trigger_roc
from flow.model import build_model
from flow.project import Project, read_json, write_json, write_npz

FLOAT_TEST = "float_test.npz"  # the float baseline's test-set outputs, kept with the trained model
FLOAT_WEIGHTS = "float_weights.npz"  # the float baseline's weights and fingerprint: the search's warm start


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's kernels deterministic."""
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    # Without this, multi-threaded reductions make two runs with one seed differ.
    tf.config.experimental.enable_op_determinism()


def fit(model, ds: Dataset, card: Card, *, seed: int | None = None, label: str | None = None, callbacks=()) -> int:
    """The one training recipe: Adam, early stopping on val_loss with best weights restored; returns epochs run."""
    import tensorflow as tf

    from flow.log import KerasProgress

    if seed is not None:
        seed_everything(seed)
    if ds.task == "classification" and model.output_shape[-1] == 1:  # one logit for two classes
        loss = tf.keras.losses.BinaryCrossentropy(from_logits=True)
        metrics = [tf.keras.metrics.BinaryAccuracy(threshold=0.0)]
    elif ds.task == "classification":
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = ["accuracy"]
    else:
        loss, metrics = "mse", []
    model.compile(optimizer=tf.keras.optimizers.Adam(card.training.learning_rate), loss=loss, metrics=metrics)
    stop = tf.keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=card.training.patience, restore_best_weights=True
    )
    extra = [KerasProgress(label, card.training.epochs)] if label else []
    hist = model.fit(
        ds.X_train,
        ds.y_train,
        validation_data=(ds.X_val, ds.y_val),
        epochs=card.training.epochs,
        batch_size=card.training.batch_size,
        callbacks=[stop, *extra, *callbacks],
        verbose=0,
    )
    return len(hist.history["loss"])


def fit_quantized(model, ds: Dataset, card: Card, *, seed: int | None = None, label: str | None = None, callbacks=()):
    """Quantization-aware training of the card's QKeras model: :func:`fit`, then, when the card has batchnorm
    layers, their statistics folded into the fixed-point scale and shift and the rest fine-tuned around them
    (flow/batchnorm.py); returns the epochs run."""
    epochs = fit(model, ds, card, seed=seed, label=label, callbacks=callbacks)
    if batchnorm.fold_all(model, card):
        epochs += fit(model, ds, card, seed=seed, label=label and f"{label}, batch norm folded", callbacks=callbacks)
    return epochs


def train_float(card: Card, ds: Dataset, *, label: str | None = None):
    """The float baseline of ``card`` (its own epochs and seed); returns (model, epochs run).

    The search's float warm start of the card's shape is this same model, so it can load the project's instead.
    """
    seed_everything(card.training.seed)  # before building: the initial weights come from the seeded generator
    model = build_model(card, ds.n_features, ds.n_outputs, quantized=False, image_shape=ds.meta.get("image_shape"))
    return model, fit(model, ds, card, seed=card.training.seed, label=label)


def write_float_weights(project: Project, weights: list[np.ndarray], fingerprint: str) -> None:
    """The float baseline's weights, with the training fingerprint they belong to."""
    arrays = {f"w{i}": w for i, w in enumerate(weights)}
    write_npz(project.root / FLOAT_WEIGHTS, fingerprint=np.array(fingerprint), **arrays)


def read_float_weights(project: Project, fingerprint: str) -> list[np.ndarray] | None:
    """The project's float baseline weights if they were trained for ``fingerprint`` (and train.json says so)."""
    path = project.root / FLOAT_WEIGHTS
    if not (path.is_file() and project.train_json.is_file()):
        return None
    if read_json(project.train_json).get("fingerprint") != fingerprint:
        return None
    with np.load(path) as z:
        if str(z["fingerprint"]) != fingerprint:  # written before a train.json that was never replaced
            return None
        return [z[f"w{i}"] for i in range(len(z.files) - 1)]


def train(
    card: Card, ds: Dataset, project: Project, dataset_fingerprint: str, *, force: bool = False
) -> dict[str, Any]:
    """Train the float baseline and the QKeras model, or reuse them when nothing changed; returns train.json."""
    fingerprint = card.training_fingerprint(dataset_fingerprint)
    if not force and project.train_json.exists() and project.keras.exists():
        summary = read_json(project.train_json)
        if summary.get("fingerprint") == fingerprint:
            info(f"{card.name}: reusing the trained model (card and data unchanged)")
            return summary
    seed = card.training.seed
    t0 = time.perf_counter()
    shape = ds.meta.get("image_shape")
    float_model, float_epochs = train_float(card, ds, label="float")
    float_test = float_model.predict(ds.X_test, verbose=0, batch_size=4096)
    float_metrics = score(ds, float_test)
    t1 = time.perf_counter()
    seed_everything(seed)
    qmodel = build_model(card, ds.n_features, ds.n_outputs, quantized=True, image_shape=shape)
    # Starting QAT from the float weights converges faster and better than from scratch.
    qmodel.set_weights(float_model.get_weights())
    q_epochs = fit_quantized(qmodel, ds, card, seed=seed, label="QAT")
    q_test = qmodel.predict(ds.X_test, verbose=0, batch_size=4096)
    q_metrics = score(ds, q_test)
    t2 = time.perf_counter()

    project.root.mkdir(parents=True, exist_ok=True)
    tmp = project.keras.with_name(".model.tmp.h5")
    qmodel.save(tmp, save_format="h5")
    tmp.replace(project.keras)
    write_npz(project.root / FLOAT_TEST, logits=float_test)  # the float baseline's test outputs (ensembles vote them)
    write_float_weights(project, float_model.get_weights(), fingerprint)
    metric = primary_metric(ds.task, ds.meta)
    summary = {
        "model": card.name,
        "fingerprint": fingerprint,
        "task": ds.task,
        "primary_metric": metric,
        "float": {"metrics": float_metrics, "epochs": float_epochs, "seconds": round(t1 - t0, 2)},
        "qkeras": {"metrics": q_metrics, "epochs": q_epochs, "seconds": round(t2 - t1, 2)},
        "n_params": int(qmodel.count_params()),
        "bitwidths": card.bitwidths(),
        "n_train": int(len(ds.X_train)),
        "n_test": int(len(ds.X_test)),
        "seed": seed,
    }
    signal = ds.meta.get("signal_class")
    if signal is not None:  # trigger data: the report's ROC plot
        summary["roc"] = {k: trigger_roc(p, ds.y_test, signal) for k, p in (("float", float_test), ("qkeras", q_test))}
    # train.json is written last: it is the marker that model.h5 is complete and current.
    write_json(project.train_json, summary)
    info(
        f"{card.name}: float {metric} {float_metrics[metric]:.4f}, QKeras {metric} {q_metrics[metric]:.4f} "
        f"({float_epochs}+{q_epochs} epochs, {t2 - t0:.0f} s)"
    )
    return summary


def keras_predict(model, X: np.ndarray) -> np.ndarray:
    """Float outputs of a Keras model, quietly."""
    return model.predict(X, verbose=0, batch_size=4096)
