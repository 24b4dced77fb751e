"""Flat figures of one architecture's cost results (xc7, LUT-only, ASIC), shared by the report and its sections."""

from __future__ import annotations

ASIC_FLOWS = ("osu018", "sky130_hd")  # the cell libraries of the asic flow, in report order


def arch_figures(entry: dict) -> dict:
    """Flat cost figures of one architecture (missing ones absent)."""
    cost = entry.get("cost")
    f: dict = {}
    if not isinstance(cost, dict):
        return f
    x = cost.get("xc7") or {}
    if x.get("status") == "ok":
        f.update({k: v for k, v in x["fpga"].items()})
    xn = cost.get("xc7_nodsp") or {}
    if xn.get("status") == "ok":
        f["LUT_nodsp"] = xn["fpga"]["LUT"]
        f["FF_nodsp"] = xn["fpga"]["FF"]
        f["CARRY4_nodsp"] = xn["fpga"]["CARRY4"]
    a = cost.get("asic") or {}
    if a.get("status") == "ok":
        for lib in ASIC_FLOWS:
            r = a["asic"].get(lib) or {}
            if "area_um2" in r:
                f[f"{lib}_um2"] = r["area_um2"]
                f[f"{lib}_nand2"] = r["nand2_eq"]
        if a["asic"].get("transistors") is not None:
            f["transistors"] = a["asic"]["transistors"]
    return f
