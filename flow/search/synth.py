"""Check the proxy against Yosys on the Pareto points: build each card, generate its RTL, synthesise, rank-correlate.

Optional (``--synth-check``) and robust to the RTL generator or the cost module being unavailable.
"""

from __future__ import annotations

import math
from pathlib import Path

from flow.log import info


def _tools():
    """(generate, cost_rtl) or a reason why they cannot be used."""
    try:
        from flow.cost import cost_rtl
        from flow.rtl import generate
    except ImportError as exc:
        return None, f"not available ({exc})"
    return (generate, cost_rtl), None


def _figures(cost: dict) -> tuple[float | None, float | None]:
    """LUTs (xc7) and µm² (sky130 HD, else OSU018) from a cost_rtl result."""
    lut = um2 = None
    x = cost.get("xc7") or {}
    if x.get("status") == "ok":
        lut = x["fpga"]["LUT"]
    a = cost.get("asic") or {}
    if a.get("status") == "ok":
        for lib in ("sky130_hd", "osu018"):
            r = a["asic"].get(lib) or {}
            if "area_um2" in r:
                um2 = r["area_um2"]
                break
    return lut, um2


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman rank correlation (None with fewer than 3 pairs or a constant side)."""
    from scipy.stats import spearmanr

    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 3:
        return None
    rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
    return None if rho is None or math.isnan(rho) else float(rho)


def synth_check(points: list[dict], card_paths: list[Path], projects_dir: Path | None = None) -> dict:
    """Build, generate and cost each point's card; adds ``LUT``/``um2`` to the points; returns the correlations."""
    tools, why = _tools()
    if tools is None:
        return {"status": why}
    generate, cost_rtl = tools
    from flow.build import Source, build_hls
    from flow.ir import IR
    from flow.project import Project
    from flow.rtl import get_arch
    from flow.search.proxy import proxy_cost, shapes_from_ir

    ir_proxy: list[float | None] = []
    for p, path in zip(points, card_paths):
        try:
            source = Source.from_card(str(path))
            build_hls(source, projects_dir=projects_dir)
            project = Project.of(source.name, projects_dir)
            ir = IR.load(project.ir_json)
            arch = source.card.hardware.arch
            knobs = get_arch(arch).card_knobs(ir.reuse_factors())
            generate(ir, arch, project.rtl / arch, **knobs)
            cost = cost_rtl(project.rtl / arch, flows=("asic", "xc7"))
            p["LUT"], p["um2"] = _figures(cost)
            rf = knobs.get("reuse_factors")
            p["proxy_cost_built"] = proxy_cost(shapes_from_ir(ir, rf), arch)["total"]
            info(f"synth check {source.name}: proxy {p['proxy_cost']:.0f}, LUT {p['LUT']}, µm² {p['um2']}")
        except Exception as exc:  # noqa: BLE001 - an optional check on modules still being written: never fatal
            p["synth_error"] = str(exc)
            info(f"synth check {path.stem}: failed ({exc})")
        ir_proxy.append(p.get("proxy_cost_built"))
    proxy = [p["proxy_cost"] for p in points]
    luts = [p.get("LUT") for p in points]
    um2 = [p.get("um2") for p in points]
    return {
        "status": "ok" if any(v is not None for v in luts + um2) else "failed",
        "n_points": len(points),
        "spearman_proxy_vs_LUT": spearman(proxy, luts),
        "spearman_proxy_vs_um2": spearman(proxy, um2),
        "spearman_built_proxy_vs_LUT": spearman(ir_proxy, luts),
        "spearman_built_proxy_vs_um2": spearman(ir_proxy, um2),
        "note": "cards are retrained with their full training settings before synthesis; "
        "'built_proxy' is the proxy recomputed on the synthesised IR",
    }
