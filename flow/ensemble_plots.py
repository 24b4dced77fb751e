"""PNG plots of an ensemble's report (matplotlib, Agg backend): accuracy against members, the vote's confusion."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def accuracy_vs_members(curve: dict, path: Path, title: str) -> str:
    """Accuracy of the first k members voting, per voting kind: hardware solid, float dashed; returns the name."""
    ks = np.arange(1, len(curve["members"]) + 1)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, (method, acc) in enumerate(curve["hardware"].items()):
        ax.plot(ks, acc, "-o", color=f"C{i}", ms=4, label=f"{method} (hardware)")
        flt = curve["float"].get(method)
        if flt is not None:
            ax.plot(ks, flt, "--", color=f"C{i}", lw=1, label=f"{method} (float)")
    ax.set_xticks(ks, [f"{k}\n{m}" for k, m in zip(ks, curve["members"])], fontsize=6)
    ax.set_xlabel("members voting (added in the card's order)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"{title}: accuracy against the number of members")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path).name


def confusion_plot(matrix: np.ndarray, class_names: list[str] | None, path: Path) -> str:
    """Rows the true class, columns the hardware vote, each row normalised; returns the file name."""
    n = matrix.shape[0]
    names = class_names or [str(i) for i in range(n)]
    rows = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5), dpi=110)
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), names, rotation=90, fontsize=6)
    ax.set_yticks(range(n), names, fontsize=6)
    ax.set_xlabel("hardware vote")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion of the vote ({int(np.trace(matrix))}/{int(matrix.sum())} right)")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path).name
