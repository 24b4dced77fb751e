"""Cost baselines: committed figures of small designs, so that an area regression fails a test.

Like hls4ml's synthesis baselines: a design's figures (xc7 LUT/FF/CARRY4/DSP, LUT-only LUTs, OSU018 µm²) are
stored in a JSON file next to the tests, and a new run may not exceed any of them by more than a tolerance.
A figure that improves passes and is reported, so the baseline can be lowered on purpose
(``QFLOW_UPDATE_BASELINES=1 make test-all``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from flow.project import write_json

# flow -> (figure name -> how to read it from that flow's result)
FIGURES: dict[str, dict[str, tuple[str, ...]]] = {
    "xc7": {
        "LUT": ("fpga", "LUT"),
        "FF": ("fpga", "FF"),
        "CARRY4": ("fpga", "CARRY4"),
        "DSP48E1": ("fpga", "DSP48E1"),
    },
    "xc7_nodsp": {"LUT": ("fpga", "LUT"), "CARRY4": ("fpga", "CARRY4")},
    "asic": {"osu018_um2": ("asic", "osu018", "area_um2"), "transistors": ("asic", "transistors")},
}
FLOWS = tuple(FIGURES)
REL_TOL = 0.01  # Yosys is pinned: the figures are exact; the slack only absorbs float formatting of areas


@dataclass(frozen=True)
class Change:
    """One figure that moved against its baseline."""

    design: str
    figure: str
    baseline: float
    measured: float

    @property
    def regression(self) -> bool:
        return self.measured > self.baseline * (1 + REL_TOL) + 0.5

    def __str__(self) -> str:
        ratio = self.measured / self.baseline if self.baseline else float("inf")
        return f"{self.design} {self.figure}: {self.measured:g} against the baseline {self.baseline:g} ({ratio:.3f}x)"


def figures(costs: dict[str, dict]) -> dict[str, float]:
    """The baseline figures (``"xc7.LUT"`` …) of one design's ``{flow: cost result}``; a failed flow is an error."""
    out: dict[str, float] = {}
    for flow, names in FIGURES.items():
        if flow not in costs:
            continue
        result = costs[flow]
        if result.get("status") != "ok":
            raise ValueError(f"{flow}: synthesis {result.get('status')}: {result.get('error', '')}")
        for name, path in names.items():
            value = result
            for key in path:
                value = value[key]
            out[f"{flow}.{name}"] = float(value)
    return out


def compare(design: str, measured: dict[str, float], baseline: dict[str, float]) -> list[Change]:
    """Every figure that differs from the baseline; figures missing on either side are changes too."""
    changes = []
    for name in sorted(set(measured) | set(baseline)):
        b, m = baseline.get(name, 0.0), measured.get(name, float("inf"))
        if m != b:
            changes.append(Change(design, name, b, m))
    return changes


def regressions(changes: list[Change]) -> list[Change]:
    """The changes that make a design larger than its baseline allows."""
    return [c for c in changes if c.regression]


def load(path: Path) -> dict:
    """The committed baselines: ``{"yosys": version, "designs": {name: {figure: value}}}``."""
    return json.loads(Path(path).read_text()) if Path(path).is_file() else {"yosys": None, "designs": {}}


def save(path: Path, yosys: str, designs: dict[str, dict[str, float]]) -> None:
    """Write the baselines file (sorted, so its diff shows what moved)."""
    write_json(
        Path(path), {"yosys": yosys, "designs": {k: dict(sorted(v.items())) for k, v in sorted(designs.items())}}
    )
