"""Calibration check of the spectra generator: float diagonal members, their voting and how their errors overlap.

`python -m flow.data.ensemble_check` trains the use case's member (1023 -> Dropout -> Dense 40 ReLU -> Dropout ->
Dense 18, float Keras) on each diagonal of one seeded spectra set, a large model on the whole log1p spectrum, and
prints member accuracies, hard/soft voting accuracies and the member-error correlation as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace

import numpy as np

from flow.card import Training  # the diag cards' defaults: shared by the members and the large model
from flow.data.dataset import SpecContext
from flow.data.kinds import load_dataset
from flow.data.shares import MAX_SHARES, MODES
from flow.data.spectra import CLASS_NAMES, N_DIAGONALS, check_spec, spectra_of


def member_model(n_features: int, n_classes: int):
    """The use case's member: n_features -> Dropout(0.25) -> Dense(40, relu) -> Dropout(0.25) -> Dense(n_classes)."""
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


def large_model(n_features: int, n_classes: int):
    """A wide MLP on the whole log1p spectrum: the 'what the data allows' ceiling for the members."""
    import tensorflow as tf

    return tf.keras.Sequential(
        [
            tf.keras.layers.Input(n_features),
            tf.keras.layers.Dense(256, activation="relu"),
            tf.keras.layers.Dropout(0.2),
            tf.keras.layers.Dense(256, activation="relu"),
            tf.keras.layers.Dropout(0.2),
            tf.keras.layers.Dense(n_classes),
        ]
    )


def fit_logits(model, data: tuple[np.ndarray, ...], training: Training) -> tuple[np.ndarray, int]:
    """Train on (X_train, y_train, X_val, y_val) with early stopping; return test logits and epochs run."""
    import tensorflow as tf

    X_train, y_train, X_val, y_val, X_test = data
    tf.keras.utils.set_random_seed(training.seed)
    model.compile(
        tf.keras.optimizers.Adam(training.learning_rate),
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    stop = tf.keras.callbacks.EarlyStopping(patience=training.patience, restore_best_weights=True)
    hist = model.fit(
        X_train,
        y_train,
        validation_data=(X_val, y_val),
        batch_size=training.batch_size,
        epochs=training.epochs,
        verbose=0,
        callbacks=[stop],
    )
    return model.predict(X_test, verbose=0, batch_size=1024), len(hist.history["loss"])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    z = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def hard_vote(member_logits: np.ndarray, n_classes: int) -> np.ndarray:
    """Majority of the members' argmax, (members, n, classes) -> (n,); a tie goes to the lowest class index."""
    votes = member_logits.argmax(axis=-1)
    counts = np.stack([(votes == c).sum(axis=0) for c in range(n_classes)], axis=-1)
    return counts.argmax(axis=-1)


def soft_vote(member_logits: np.ndarray) -> np.ndarray:
    """Argmax of the summed member probabilities, (members, n, classes) -> (n,)."""
    return softmax(member_logits.astype(np.float64)).sum(axis=0).argmax(axis=-1)


def error_overlap(member_logits: np.ndarray, y: np.ndarray) -> dict:
    """How much the members' mistakes coincide: mean pairwise correlation of 0/1 errors and shared-error shares."""
    errors = (member_logits.argmax(axis=-1) != y[None, :]).astype(np.float64)  # (members, n)
    n_members = errors.shape[0]
    out = {
        "frac_wrong_by_half_or_more": float(np.mean(errors.sum(axis=0) >= n_members / 2)),
        "frac_wrong_by_all": float(np.mean(errors.sum(axis=0) == n_members)),
    }
    if n_members > 1:
        corr = np.corrcoef(errors)
        off = corr[~np.eye(n_members, dtype=bool)]
        out["mean_pairwise_error_correlation"] = float(np.nanmean(off))
    return out


def top_confusions(y: np.ndarray, pred: np.ndarray, n: int = 6) -> dict[str, int]:
    """The most frequent mistakes, 'true -> predicted': count."""
    pairs, counts = np.unique(np.stack([y, pred])[:, y != pred], axis=1, return_counts=True)
    order = np.argsort(-counts, kind="stable")[:n]
    return {f"{CLASS_NAMES[pairs[0, i]]} -> {CLASS_NAMES[pairs[1, i]]}": int(counts[i]) for i in order}


def check(
    diagonals: tuple[int, ...],
    *,
    n_spectra: int,
    data_seed: int,
    training: Training,
    large: bool,
    knobs: dict | None = None,
    share: str = "full",
    n_shares: int | None = None,
    member_seeds: bool = False,
    log=print,
) -> dict:
    """Train the members (and the large model), return accuracies, voting and error overlap.

    Member ``i`` trains on share ``i`` of ``n_shares`` (default: one per member) of the training spectra;
    ``member_seeds`` gives member ``i`` the training seed ``training.seed + i``.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    spec = {"kind": "spectra", "n_spectra": n_spectra, **(knobs or {})}
    logits, members = [], {}
    y_test = None
    count = 1 if share == "full" else n_shares or len(diagonals)
    for i, k in enumerate(diagonals):
        t0 = time.perf_counter()
        shared = {"share": share, "share_index": i, "share_count": count} if share != "full" else {}
        ds = load_dataset({**spec, "diagonal": k, **shared}, seed=data_seed)
        y_test = ds.y_test
        data = (ds.X_train, ds.y_train, ds.X_val, ds.y_val, ds.X_test)
        seeded = replace(training, seed=training.seed + i) if member_seeds else training
        out, epochs = fit_logits(member_model(ds.n_features, ds.n_outputs), data, seeded)
        logits.append(out)
        acc = float(np.mean(out.argmax(axis=1) == y_test))
        n_rows = len(data[1])
        members[f"diag_{k:02d}"] = {"accuracy": round(acc, 4), "epochs": epochs, "n_train": n_rows}
        log(f"diag_{k:02d}: accuracy {acc:.4f} ({epochs} epochs, {n_rows} spectra, {time.perf_counter() - t0:.0f} s)")
    stacked = np.stack(logits)
    n_classes = stacked.shape[-1]
    accs = [m["accuracy"] for m in members.values()]
    result = {
        "n_spectra": n_spectra,
        "data_seed": data_seed,
        "knobs": knobs or {},
        "member_share": {"mode": share, "count": count, "member_seeds": member_seeds},
        "training": asdict(training),
        "members": members,
        "member_accuracy_min": min(accs),
        "member_accuracy_max": max(accs),
        "member_accuracy_mean": round(float(np.mean(accs)), 4),
        "hard_vote_accuracy": round(float(np.mean(hard_vote(stacked, n_classes) == y_test)), 4),
        "soft_vote_accuracy": round(float(np.mean(soft_vote(stacked) == y_test)), 4),
        **{k: round(v, 4) for k, v in error_overlap(stacked, y_test).items()},
    }
    result["hard_vote_gain_over_best_member"] = round(result["hard_vote_accuracy"] - max(accs), 4)
    result["hard_vote_top_confusions"] = top_confusions(y_test, hard_vote(stacked, n_classes))
    if large:
        t0 = time.perf_counter()
        counts, labels = spectra_counts(spec, data_seed)
        L = np.log1p(counts.astype(np.float32))
        L -= L.mean(axis=1, keepdims=True)  # the members' differences ignore the overall level; so does this
        n_train, n_val = ds.meta["n_train"], ds.meta["n_val"]  # the whole training set, whatever the members' share
        data = (L[:n_train], labels[:n_train], L[n_train : n_train + n_val], ds.y_val, L[n_train + n_val :])
        out, epochs = fit_logits(large_model(L.shape[1], n_classes), data, training)
        acc = float(np.mean(out.argmax(axis=1) == y_test))
        result["large_model"] = {"accuracy": round(acc, 4), "epochs": epochs}
        log(f"large model: accuracy {acc:.4f} ({epochs} epochs, {time.perf_counter() - t0:.0f} s)")
    return result


def spectra_counts(spec: dict, data_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The counts and labels behind the diagonal datasets (same spectra, same order as their train/val/test cut)."""
    checked = check_spec({**spec, "diagonal": 0}, SpecContext())
    return spectra_of(checked, data_seed)


def _diagonals(text: str) -> tuple[int, ...]:
    """'0-19' or '0,5,19' -> diagonal indices."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    if not out or not all(0 <= k < N_DIAGONALS for k in out):
        raise argparse.ArgumentTypeError(f"diagonals must lie in 0..{N_DIAGONALS - 1}, got {text!r}")
    return tuple(out)


def _knobs(items: list[str]) -> dict:
    """['shielding=[0, 1]', ...] -> {'shielding': [0, 1]} (values parsed as YAML; checked with the dataset)."""
    import yaml

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected KNOB=VALUE, e.g. gain_drift=0.05")
        out[name.strip()] = yaml.safe_load(value)
    return out


def main(argv: list[str] | None = None) -> int:
    """Command line: train, print the figures as JSON (and write them with --out)."""
    parser = argparse.ArgumentParser(prog="python -m flow.data.ensemble_check", description=__doc__)
    parser.add_argument("--diagonals", type=_diagonals, default=tuple(range(N_DIAGONALS)), help="e.g. 0-19, 0,5,19")
    parser.add_argument("--n-spectra", type=int, default=30000, help="total spectra (70/15/15 split; default 30000)")
    parser.add_argument("--data-seed", type=int, default=1, help="generator seed (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="training seed (default 1)")
    parser.add_argument("--epochs", type=int, default=50, help="maximum epochs (early stopping, patience 5)")
    parser.add_argument("--no-large", action="store_true", help="skip the large whole-spectrum model")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KNOB=VALUE",
        help="a spectra dataset field or generator knob (YAML value), repeatable",
    )
    parser.add_argument(
        "--member-share", choices=list(MODES), default="full", help="training spectra per member (default full)"
    )
    parser.add_argument("--shares", type=int, help="number of shares (default: one per member); member i takes share i")
    parser.add_argument("--member-seeds", action="store_true", help="member i trains with seed --seed + i")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    if args.shares is not None and not len(args.diagonals) <= args.shares <= MAX_SHARES:
        parser.error(f"--shares {args.shares}: member i takes share i, so {len(args.diagonals)}..{MAX_SHARES}")
    from flow.log import quiet_tensorflow

    quiet_tensorflow()
    training = Training(epochs=args.epochs, seed=args.seed)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    result = check(
        args.diagonals,
        n_spectra=args.n_spectra,
        data_seed=args.data_seed,
        training=training,
        large=not args.no_large,
        knobs=_knobs(args.set),
        share=args.member_share,
        n_shares=args.shares,
        member_seeds=args.member_seeds,
        log=log,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
