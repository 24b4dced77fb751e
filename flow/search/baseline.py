"""The search's baseline: the model as built (`make hls`, `make report`), so a front point is compared like with like.

Trial 0 retrains the card for ``epochs_per_trial`` only; the built model has had its full training. When the card's
project exists, its C-simulation metric, the proxy cost of its IR and (after `make report`) its Yosys LUTs and µm²
are the baseline; otherwise trial 0 is, and the summary says so.
"""

from __future__ import annotations

from pathlib import Path

from flow.card import Card
from flow.project import Project, read_json


def built_baseline(card: Card, metric: str, projects_dir: Path | None = None) -> dict | None:
    """The built model's metric and costs, or None when it is not built (or its C-sim has no such metric)."""
    from flow.ir import IR
    from flow.search.proxy import proxy_cost, shapes_from_ir

    project = Project.of(card.name, projects_dir)
    if not (project.csim_json.is_file() and project.ir_json.is_file()):
        return None
    value = (read_json(project.csim_json).get("metrics") or {}).get(metric)
    if not isinstance(value, (int, float)):
        return None
    arch = card.hardware.arch
    out = {
        "source": f"built model (hls_projects/{card.name}: C simulation, full training)",
        "metric": float(value),
        "proxy_cost": float(proxy_cost(shapes_from_ir(IR.load(project.ir_json)), arch)["total"]),
    }
    report = project.report / "report.json"
    if report.is_file():
        from flow.cost.figures import arch_figures

        entry = ((read_json(report).get("archs") or {}) or {}).get(arch)
        f = arch_figures(entry) if isinstance(entry, dict) else {}
        if f.get("LUT") is not None:
            out["LUT"] = f["LUT"]
        if f.get("osu018_um2") is not None:
            out["um2"] = f["osu018_um2"]
    return out


def next_command(summary: dict) -> str | None:
    """What to run after the search: build the best point (its card), or check the front with Yosys."""
    b = summary.get("best_vs_default") or {}
    if b.get("card"):
        return (
            f"make hls MODEL={b['card']} && make verify MODEL={b['card']} && make sim MODEL={b['card']} && "
            f"make report MODEL={b['card']}  (then compare with {summary['model']}'s report)"
        )
    return f"flow search {summary['model']} --synth-check  (Yosys LUTs and µm² of every front point)"
