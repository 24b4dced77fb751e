"""PNG plots of the report (matplotlib, Agg backend): metric against cost, per-layer estimates, the summary."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _scatter(points: list[dict], xkey: str, xlabel: str, ylabel: str, path: Path, title: str) -> bool:
    pts = [p for p in points if p.get(xkey) and p.get("metric") is not None]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
    for p in pts:
        ax.scatter(p[xkey], p["metric"], s=30)
        ax.annotate(p["label"], (p[xkey], p["metric"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def model_plots(d: dict, folder: Path) -> list[str]:
    """Metric vs LUT, metric vs µm² (every architecture and search variant) and the per-layer estimate."""
    folder = Path(folder)
    made = []
    metric = d.get("primary_metric") or "metric"
    pts = d.get("points") or []
    if _scatter(pts, "LUT", "LUTs (Yosys xc7)", metric, folder / "metric_vs_lut.png", d["model"]):
        made.append("metric_vs_lut.png")
    if _scatter(pts, "um2", "area, µm² (Yosys, OSU018)", metric, folder / "metric_vs_area.png", d["model"]):
        made.append("metric_vs_area.png")
    layers = d.get("layers")
    if isinstance(layers, list) and layers:
        names = [r["layer"] for r in layers]
        fig, ax = plt.subplots(figsize=(6, 4), dpi=110)
        x = range(len(names))
        w = 0.27
        for i, (key, label) in enumerate(
            (
                ("rom_bits", "weight ROM bits"),
                ("mult_bits_parallel", "partial-product bits (parallel)"),
                ("mult_bits_folded", "partial-product bits (folded)"),
            )
        ):
            ax.bar([j + (i - 1) * w for j in x], [max(r[key], 1) for r in layers], w, label=label)
        ax.set_xticks(list(x), names)
        ax.set_yscale("log")
        ax.set_ylabel("bits (estimate from the IR)")
        ax.set_title(f"{d['model']}: per-layer cost estimate")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "layers.png")
        plt.close(fig)
        made.append("layers.png")
    return made


def summary_plot(points: list[dict], folder: Path) -> str | None:
    """Metric vs OSU018 area across every model; the file name, or None when nothing to plot."""
    if _scatter(
        points, "um2", "area, µm² (Yosys, OSU018)", "primary metric", Path(folder) / "summary.png", "all models"
    ):
        return "summary.png"
    return None
