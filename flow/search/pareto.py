"""Search outputs: the Pareto front, its comparison with the default card, pareto.csv/json/png and the cards."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from pathlib import Path

from flow.card import Card, card_to_yaml, load_card
from flow.errors import FlowError
from flow.project import write_json
from flow.search import manifest
from flow.search.space import SearchSpace, variant_data

SYNTH_COLUMNS = ("LUT (needs --synth-check)", "um2 (needs --synth-check)")
RMSE_TOLERANCE = 0.10  # "close to the default": within 10 % for minimised metrics ...
ACCURACY_TOLERANCE = 0.01  # ... within 1 point (absolute) for maximised ones


def dominates(a: Sequence[float], b: Sequence[float], directions: Sequence[str]) -> bool:
    """``a`` is at least as good as ``b`` in every objective and better in one."""
    better = False
    for x, y, d in zip(a, b, directions):
        if d == "maximize":
            x, y = -x, -y
        if x > y:
            return False
        better = better or x < y
    return better


def pareto_front(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, ordered by the last objective (cost); equal points: the first."""
    front = []
    for i, v in enumerate(values):
        if any(dominates(u, v, directions) for u in values):
            continue
        if any(tuple(values[j]) == tuple(v) for j in front):
            continue
        front.append(i)
    return sorted(front, key=lambda i: (values[i][-1], i))


def close_to_default(metric: float, default: float, direction: str) -> bool:
    """Within 1 accuracy point (maximised metrics) or 10 % (minimised ones) of the default's metric."""
    if direction == "maximize":
        return metric >= default - ACCURACY_TOLERANCE
    return metric <= default * (1 + RMSE_TOLERANCE)


def best_vs_default(front: list[dict], default: dict | None, direction: str) -> dict | None:
    """The cheapest front point close to the default, and its cost as a fraction of the default's."""
    if default is None:
        return None
    ok = [p for p in front if close_to_default(p["metric"], default["metric"], direction)]
    if not ok:
        return {"point": None, "note": "no front point is within tolerance of the default"}
    best = min(ok, key=lambda p: p["proxy_cost"])
    tol = f"within {ACCURACY_TOLERANCE * 100:.0f} point" if direction == "maximize" else f"within {RMSE_TOLERANCE:.0%}"
    out = {
        "point": best["k"],
        "card": best["card"],
        "trial": best["trial"],
        "metric": best["metric"],
        "default_metric": default["metric"],
        "proxy_cost": best["proxy_cost"],
        "default_proxy_cost": default["proxy_cost"],
        "cost_fraction": best["proxy_cost"] / default["proxy_cost"] if default["proxy_cost"] else None,
        "tolerance": tol,
    }
    for key in ("LUT", "um2"):
        if best.get(key) is not None and default.get(key):
            out[f"{key}_fraction"] = best[key] / default[key]
    return out


def point_of(trial, space: SearchSpace) -> dict:
    """A completed optuna trial as a JSON-ready point."""
    ua = trial.user_attrs
    return {
        "trial": trial.number,
        "default": bool(ua.get("default")),
        "params": dict(trial.params),
        "bitwidths": ua.get("bitwidths", {}),
        "units": ua.get("units", {}),
        "metric": float(trial.values[0]),
        "metrics": ua.get("metrics", {}),
        "proxy_cost": float(trial.values[1]),
        "proxy": ua.get("proxy", {}),
        "epochs": ua.get("epochs"),
        "duplicate_of": ua.get("duplicate_of"),
    }


# ---------------------------------------------------------------------------------------------- cards


def write_cards(card: Card, space: SearchSpace, front: list[dict], out_dir: Path) -> list[Path]:
    """Each front point as a standalone card ``<m>_p<k>.yaml`` in ``out_dir``, checked by loading it back."""
    out_dir = Path(out_dir)
    manifest.check_writable(out_dir, card.name)
    out_dir.mkdir(parents=True, exist_ok=True)
    ours = manifest.listed(out_dir)
    names = {f"{p['card']}.yaml" for p in front}
    manifest.write(out_dir, ours | names)  # first: a kill while writing leaves no card of ours unlisted
    paths = []
    for p in front:
        name = p["card"]
        data = variant_data(card, space, p["params"])
        data["name"] = name
        data["description"] = (
            f"Bitwidth-search point {p['k']} of {card.name} (trial {p['trial']}): "
            f"{space.metric.name} {p['metric']:.4g}, proxy cost {p['proxy_cost']:.0f}"
        )
        data["dataset"] = _relocate_dataset(card, dict(data["dataset"]), out_dir)
        data = {k: data[k] for k in ("name", "description", *[k for k in data if k not in ("name", "description")])}
        path = out_dir / f"{name}.yaml"
        tmp = out_dir / f".{name}.yaml.tmp"
        tmp.write_text(
            f"# Generated by `flow search {card.name}`; edits are lost when the search runs again.\n"
            + card_to_yaml(data)
        )
        tmp.replace(path)
        try:
            load_card(path)
        except FlowError as exc:
            path.unlink()
            raise FlowError(f"{path}: the generated card does not validate ({exc})") from None
        paths.append(path)
    stale = {p.name for p in manifest.variant_cards(out_dir, card.name)} & (ours - names)  # an earlier, longer front
    for name in sorted(stale):
        (out_dir / name).unlink(missing_ok=True)
    manifest.write(out_dir, (ours - stale) | names)
    return paths


def _relocate_dataset(card: Card, dataset: dict, out_dir: Path) -> dict:
    """A dataset ``path`` relative to the original card, rewritten relative to the generated card's folder."""
    if isinstance(dataset.get("path"), str) and card.path is not None and not os.path.isabs(dataset["path"]):
        target = (card.path.parent / dataset["path"]).resolve()
        dataset["path"] = os.path.relpath(target, Path(out_dir).resolve())
    return dataset


# ---------------------------------------------------------------------------------------------- files


def write_csv(path: Path, front: list[dict], param_names: list[str]) -> None:
    """One row per front point: k, card, trial, metric, proxy cost, LUTs, µm², then the parameters.

    The LUT and µm² columns are filled only by ``flow search <m> --synth-check``; their headers say so.
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["k", "card", "trial", "metric", "proxy_cost", *SYNTH_COLUMNS, *param_names])
    for p in front:
        w.writerow(
            [
                p["k"],
                p["card"],
                p["trial"],
                f"{p['metric']:.6g}",
                f"{p['proxy_cost']:.0f}",
                p.get("LUT", ""),
                p.get("um2", ""),
            ]
            + [p["params"].get(n, "") for n in param_names]
        )
    _atomic_text(path, buf.getvalue())


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def plot(path: Path, points: list[dict], front: list[dict], default: dict | None, metric: str) -> None:
    """Metric against proxy cost (and against LUTs and µm² of the synthesised front, when known)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes_keys = [("proxy_cost", "proxy cost (bit operations)")]
    for key, label in (("LUT", "LUTs (Yosys xc7)"), ("um2", "area (µm², Yosys)")):
        if any(p.get(key) is not None for p in front):
            axes_keys.append((key, label))
    fig, axes = plt.subplots(1, len(axes_keys), figsize=(5.2 * len(axes_keys), 4), squeeze=False)
    for ax, (key, label) in zip(axes[0], axes_keys):
        pts = points if key == "proxy_cost" else [p for p in front if p.get(key) is not None]
        if key == "proxy_cost":
            ax.scatter([p[key] for p in pts], [p["metric"] for p in pts], s=14, c="0.6", label="trials")
        fr = sorted((p for p in front if p.get(key) is not None), key=lambda p: p[key])
        ax.plot([p[key] for p in fr], [p["metric"] for p in fr], "o-", c="tab:blue", label="Pareto front")
        for p in fr:
            ax.annotate(f"p{p['k']}", (p[key], p["metric"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        if default is not None and default.get(key) is not None:
            ax.scatter(
                [default[key]], [default["metric"]], marker="*", s=160, c="tab:red", zorder=5, label="default card"
            )
        ax.set_xlabel(label)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def write_outputs(search_dir: Path, summary: dict, points: list[dict], param_names: list[str]) -> None:
    """pareto.json, pareto.csv and pareto.png into ``search_dir`` (each written atomically)."""
    search_dir.mkdir(parents=True, exist_ok=True)
    write_csv(search_dir / "pareto.csv", summary["front"], param_names)
    plot(search_dir / "pareto.png", points, summary["front"], summary.get("default"), summary["metric"])
    write_json(search_dir / "pareto.json", summary)
