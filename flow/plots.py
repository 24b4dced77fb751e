"""PNG plots of the report (matplotlib, Agg backend): metric against cost, per-layer estimates, the summary, and for
table models the error maps and the break-even sweep; for trigger models the ROC with the 10 kHz line."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _scatter(
    points: list[dict], xkey: str, xlabel: str, ylabel: str, path: Path, title: str, refs: list[dict] | None = None
) -> bool:
    """Metric against cost; ``refs``: reference lines ``{"axis": "x"|"y", "value", "label"}`` (the table forms)."""
    pts = [p for p in points if p.get(xkey) and p.get("metric") is not None]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5) if refs else (6, 4), dpi=110)
    for p in pts:
        ax.scatter(p[xkey], p["metric"], s=30)
        ax.annotate(p["label"], (p[xkey], p["metric"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    for i, r in enumerate(refs or []):
        color = f"C{(i + 3) % 10}"
        if r["axis"] == "x":
            ax.axvline(r["value"], color=color, ls="--", lw=1)
            ax.annotate(
                r["label"],
                (r["value"], 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(-2, -3),
                textcoords="offset points",
                rotation=90,
                fontsize=6,
                ha="right",
                va="top",
                color=color,
            )
        else:
            ax.axhline(r["value"], color=color, ls=":", lw=1)
            ax.annotate(
                r["label"], (0.01, r["value"]), xycoords=("axes fraction", "data"), fontsize=6, va="bottom", color=color
            )
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
    refs = d.get("reference_lines") or {}
    if _scatter(pts, "LUT", "LUTs (Yosys xc7)", metric, folder / "metric_vs_lut.png", d["model"], refs.get("LUT")):
        made.append("metric_vs_lut.png")
    xl = "area, µm² (Yosys, OSU018; macro lines: sky130)" if refs.get("um2") else "area, µm² (Yosys, OSU018)"
    if _scatter(pts, "um2", xl, metric, folder / "metric_vs_area.png", d["model"], refs.get("um2")):
        made.append("metric_vs_area.png")
    if d.get("roc") and roc_plot(d["roc"], folder / "roc.png", d["model"]):
        made.append("roc.png")
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


def roc_plot(curves: dict[str, dict], path: Path, title: str) -> bool:
    """Signal efficiency against background rate (Hz of 40 MHz) per stage, with the 10 kHz line; False if empty."""
    from flow.metrics import BUNCH_CROSSING_HZ, TRIGGER_RATE_HZ

    drawn = {k: c for k, c in curves.items() if c and c.get("fpr")}
    if not drawn:
        return False
    fig, ax = plt.subplots(figsize=(5.5, 4), dpi=110)
    for stage, c in drawn.items():
        rate = np.asarray(c["fpr"]) * BUNCH_CROSSING_HZ
        keep = rate > 0
        ax.plot(rate[keep], np.asarray(c["efficiency"])[keep], label=stage, lw=1.2)
    ax.axvline(TRIGGER_RATE_HZ, color="k", ls="--", lw=0.8)
    ax.annotate("10 kHz", (TRIGGER_RATE_HZ, 0.02), fontsize=7, xytext=(3, 0), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_xlabel("background rate, Hz (of 40 MHz crossings)")
    ax.set_ylabel("signal efficiency")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}: ROC")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def summary_plot(points: list[dict], folder: Path) -> str | None:
    """Metric vs OSU018 area across every model; the file name, or None when nothing to plot."""
    if _scatter(
        points, "um2", "area, µm² (Yosys, OSU018)", "primary metric", Path(folder) / "summary.png", "all models"
    ):
        return "summary.png"
    return None


def table_error_plot(table: np.ndarray, errors: dict[str, np.ndarray], path: Path, title: str) -> None:
    """The table beside each implementation's error (implementation − table, LSB) on one colour scale."""
    n = 1 + len(errors)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.8), dpi=110)
    lim = max(1, max(int(np.abs(e).max()) for e in errors.values()))
    if table.ndim == 1:
        axes[0].plot(table)
        axes[0].set_xlabel("address")
        axes[0].set_ylabel("table word")
        for ax, (name, e) in zip(axes[1:], errors.items()):
            ax.plot(e)
            ax.set_ylim(-lim, lim)
            ax.set_xlabel("address")
            ax.set_title(f"{name} − table (LSB)", fontsize=8)
    else:
        im = axes[0].imshow(table, origin="lower", aspect="auto", cmap="viridis")
        fig.colorbar(im, ax=axes[0], label="table word")
        axes[0].set_title("table", fontsize=8)
        for ax, (name, e) in zip(axes[1:], errors.items()):
            im = ax.imshow(e, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
            fig.colorbar(im, ax=ax, label="LSB")
            rmse = float(np.sqrt(np.mean(e.astype(np.float64) ** 2)))
            ax.set_title(f"{name} − table: max {int(np.abs(e).max())}, RMSE {rmse:.3g} LSB", fontsize=8)
        for ax in axes:
            ax.set_xlabel("address a1")
            ax.set_ylabel("address a0")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def break_even_plot(sweep: dict, path: Path, title: str) -> None:
    """Area against address bits per axis: every table form (lines) and the network (its constant cost)."""
    panels = sweep["panels"]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.2), dpi=110)
    axes = np.atleast_1d(axes)
    bits = sweep["address_bits"]
    for ax, panel in zip(axes, panels):
        for i, s in enumerate(panel["series"]):
            xs = [b for b, v in zip(bits, s["values"]) if v]
            ys = [v for v in s["values"] if v]
            if not ys:
                continue
            style = "-" if s["kind"] == "table" else ("--" if s["kind"] == "interp" else ":")
            marker = "o" if len(ys) > 1 else "s"
            ax.plot(xs, ys, style, marker=marker, ms=4, color=f"C{i}", label=s["label"])
        ax.set_yscale("log")
        ax.set_xticks(bits, [f"2×{b}" for b in bits])
        ax.set_xlabel("address bits (per axis)")
        ax.set_ylabel(panel["unit"])
        ax.set_title(panel["title"], fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
