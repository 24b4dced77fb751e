"""Messages and progress bars on stderr; TensorFlow kept quiet."""

from __future__ import annotations

import logging
import os
import sys
import warnings

_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence progress and info messages (errors still print)."""
    global _quiet
    _quiet = quiet


def info(msg: str) -> None:
    """One line of progress for people."""
    if not _quiet:
        sys.stderr.write(f"[flow] {msg}\n")  # one write: lines from worker threads do not interleave
        sys.stderr.flush()


def progress(iterable=None, **kwargs):
    """A tqdm progress bar on stderr, off when quiet or not a terminal."""
    from tqdm import tqdm

    kwargs.setdefault("disable", _quiet or not sys.stderr.isatty())
    kwargs.setdefault("leave", False)
    return tqdm(iterable, file=sys.stderr, **kwargs)


def quiet_tensorflow() -> None:
    """Hide TensorFlow's and hls4ml's start-up noise; call before importing them."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _keras_progress_base():
    import tensorflow as tf

    return tf.keras.callbacks.Callback


class KerasProgress:
    """Factory for a Keras callback that shows epochs on a progress bar (or one line per 10 epochs)."""

    def __new__(cls, label: str, epochs: int):
        base = _keras_progress_base()

        class _Progress(base):  # type: ignore[misc, valid-type]
            def on_train_begin(self, logs=None):
                self.bar = progress(total=epochs, desc=f"train {label}", unit="epoch")

            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                self.bar.update(1)
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in logs.items() if k.startswith("val_")})
                if self.bar.disable and (epoch + 1) % 10 == 0:
                    info(f"train {label}: epoch {epoch + 1}, val_loss {logs.get('val_loss', float('nan')):.4g}")

            def on_train_end(self, logs=None):
                self.bar.close()

        return _Progress()
