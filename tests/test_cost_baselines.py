"""Committed cost baselines of small designs: an area regression in any architecture fails here.

``QFLOW_UPDATE_BASELINES=1`` rewrites ``tests/data/cost_baselines.json`` from this run (do it on purpose, and
say why in the commit).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from flow.cost import baselines, libs, yosys
from flow.ir import IR, DenseLayer
from flow.rtl import generate
from tb.irgen import mlp_ir

BASELINES = Path(__file__).parent / "data" / "cost_baselines.json"
UPDATE = os.environ.get("QFLOW_UPDATE_BASELINES") == "1"

# One small network in every architecture (the shift-add one with qflow's own solver: da4ml's needs minutes of
# numba compilation in a new environment).
DESIGNS: dict[str, tuple[str, dict]] = {
    "mlp_3_4_2.parallel": ("parallel", {}),
    "mlp_3_4_2.folded": ("folded", {"reuse_factors": {"fc1": 3, "fc2": 4}}),
    "mlp_3_4_2.shiftadd": ("shiftadd", {"solver": "csd"}),
}

needs_tools = pytest.mark.skipif(
    shutil.which("yosys") is None or libs.osu018() is None, reason="yosys or OSU018 missing (make setup)"
)


def small_ir() -> IR:
    """The baseline network: 3 -> 4 -> 2, 4-bit weights, seed 7."""
    return mlp_ir(
        "mlp_3_4_2",
        [3, 4, 2],
        seed=7,
        in_t="fixed<6,3,RND_CONV,SAT>",
        w_t="fixed<4,1>",
        out_t="fixed<8,4,RND_CONV,SAT>",
    )


def inflated_ir() -> IR:
    """The same network with its first layer's weights made wide and dense: a deliberately larger design."""
    ir = small_ir()
    fc1 = ir.layers[0]
    wide = fc1.weight_t.__class__(12, 2)
    w = np.where(fc1.weights == 0, 1, fc1.weights) * 37 + 5
    w = np.clip(w, wide.min_raw, wide.max_raw)
    int_bits = fc1.accum_t.int_bits + 4
    acc = fc1.accum_t.__class__(int_bits + ir.input.type.frac_bits + wide.frac_bits, int_bits)
    layers = [DenseLayer(fc1.name, wide, w, fc1.bias_t, fc1.biases, acc, acc), *ir.layers[1:]]
    out = IR(ir.name, ir.task, ir.inputs, layers)
    out.validate()
    return out


def measure(ir: IR, arch: str, knobs: dict, tmp: Path, flows: tuple[str, ...] = baselines.FLOWS) -> dict[str, float]:
    """Generate ``ir`` in ``arch`` and return its baseline figures from ``flows``."""
    design = generate(ir, arch, tmp / arch, **knobs)
    return baselines.figures(yosys.cost_rtl(design.out_dir, flows=flows))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One Yosys cache for the module (fresh, so nothing stale answers), with the fetched libraries."""
    root = tmp_path_factory.mktemp("cache")
    if libs.libs_dir().is_dir():
        (root / "libs").symlink_to(libs.libs_dir())
    old = os.environ.get("QFLOW_CACHE")
    os.environ["QFLOW_CACHE"] = str(root)
    yield root
    if old is None:
        os.environ.pop("QFLOW_CACHE", None)
    else:
        os.environ["QFLOW_CACHE"] = old


@needs_tools
def test_every_design_within_its_baseline(cache, tmp_path):
    measured = {name: measure(small_ir(), arch, knobs, tmp_path / name) for name, (arch, knobs) in DESIGNS.items()}
    version = yosys.yosys_version()
    if UPDATE:
        baselines.save(BASELINES, version, measured)
        pytest.skip(f"baselines rewritten: {BASELINES.name}")
    committed = baselines.load(BASELINES)
    assert committed["designs"], f"{BASELINES} has no designs: run with QFLOW_UPDATE_BASELINES=1"
    assert committed["yosys"] == version, f"baselines are for {committed['yosys']}, this is {version}"
    assert set(committed["designs"]) == set(DESIGNS), "a design was added or removed: update the baselines"
    changes = [c for n in DESIGNS for c in baselines.compare(n, measured[n], committed["designs"][n])]
    worse = baselines.regressions(changes)
    assert not worse, "area regression:\n" + "\n".join(map(str, worse))
    for c in changes:  # improvements pass; show them so the baseline can be lowered on purpose
        print(f"improved: {c}")


@needs_tools
def test_an_inflated_design_fails_its_baseline(cache, tmp_path):
    committed = baselines.load(BASELINES)["designs"]["mlp_3_4_2.shiftadd"]
    arch, knobs = DESIGNS["mlp_3_4_2.shiftadd"]
    committed = {k: v for k, v in committed.items() if k.startswith("xc7_nodsp.")}  # the quickest flow suffices
    measured = measure(inflated_ir(), arch, knobs, tmp_path, flows=("xc7_nodsp",))
    worse = baselines.regressions(baselines.compare("inflated", measured, committed))
    assert any(c.figure == "xc7_nodsp.LUT" for c in worse), [str(c) for c in worse]


def test_compare_flags_growth_and_missing_figures_only():
    base = {"xc7.LUT": 100.0, "xc7.FF": 10.0, "asic.osu018_um2": 5000.0}
    assert baselines.regressions(baselines.compare("d", dict(base), base)) == []
    better = baselines.compare("d", {**base, "xc7.LUT": 90.0}, base)
    assert [c.figure for c in better] == ["xc7.LUT"] and baselines.regressions(better) == []
    worse = baselines.regressions(baselines.compare("d", {**base, "xc7.FF": 12.0}, base))
    assert [c.figure for c in worse] == ["xc7.FF"]
    missing = baselines.regressions(baselines.compare("d", {"xc7.LUT": 100.0, "xc7.FF": 10.0}, base))
    assert [c.figure for c in missing] == ["asic.osu018_um2"]  # a figure that vanished is not an improvement


def test_a_failed_flow_is_not_a_figure():
    with pytest.raises(ValueError, match="xc7: synthesis timeout"):
        baselines.figures({"xc7": {"status": "timeout", "error": "900 s"}})
