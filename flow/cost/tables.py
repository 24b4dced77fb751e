"""Cost of the lookup table a network replaces: synthesised ROM logic, FPGA block RAM, ASIC SRAM macro.

Formulas (constants from design notes §6; every figure the report shows names which one it used):

* FPGA block RAM: at least ⌈bits / 36,864⌉ RAMB36; by aspect ratio, the fewest RAMB36 over the 7-series
  configurations 32K×1, 16K×2, 8K×4, 4K×9, 2K×18, 1K×36 (``⌈depth/d⌉·⌈width/w⌉``).
* FPGA LUT-ROM: ≈ ⌈depth/64⌉ × width LUT6.
* ASIC memory macro (OpenRAM sky130 SRAM: 1 KB 190,713 µm², 8 KB 788,097 µm²): per macro of up to 64 kbit,
  area ≈ 87,700 µm² + 10.7 µm²/bit.

The ROM synthesis uses the real table contents (``flow.data.tables``) and the Yosys cache, so the 256×256×12
tables cost minutes once and nothing after. Larger tables than :data:`MAX_SYNTH_BITS` use the formulas only.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np

from flow.cost import yosys
from flow.errors import FlowError

RAMB36_BITS = 36_864
RAMB36_SHAPES = ((32768, 1), (16384, 2), (8192, 4), (4096, 9), (2048, 18), (1024, 36))
LUT6_DEPTH = 64
SRAM_MACRO_FIXED_UM2 = 87_700.0
SRAM_UM2_PER_BIT = 10.7
SRAM_MACRO_MAX_BITS = 65_536
SKY130_NAND2_UM2 = 3.7536  # sky130_fd_sc_hd__nand2_1, 1.38 × 2.72 µm
MAX_SYNTH_BITS = int(os.environ.get("QFLOW_TABLE_MAX_SYNTH_BITS", 1 << 20))
DEFAULT_SHAPE = (256, 256)
DEFAULT_WIDTH = 12

FORMULAS = {
    "bram36_min": "ceil(bits / 36864) RAMB36",
    "bram36_aspect": "min over RAMB36 shapes (32Kx1 .. 1Kx36) of ceil(depth/d) * ceil(width/w)",
    "lutrom_lut6": "ceil(depth / 64) * width LUT6",
    "sram_macro_um2": "n_macros * 87,700 um2 + 10.7 um2/bit, n_macros = ceil(bits / 65,536) (OpenRAM sky130)",
}


def bram36_count(depth: int, width: int) -> dict[str, int]:
    """RAMB36 count: the bit lower bound and the count by aspect ratio."""
    bits = depth * width
    aspect = min(math.ceil(depth / d) * math.ceil(width / w) for d, w in RAMB36_SHAPES)
    return {"bram36_min": math.ceil(bits / RAMB36_BITS), "bram36_aspect": aspect}


def sram_macro(bits: int) -> dict[str, float]:
    """OpenRAM sky130 macro estimate: number of macros, area (µm²) and sky130 NAND2-equivalents."""
    n = max(1, math.ceil(bits / SRAM_MACRO_MAX_BITS))
    area = n * SRAM_MACRO_FIXED_UM2 + SRAM_UM2_PER_BIT * bits
    return {"macros": n, "area_um2": round(area, 1), "nand2_eq_sky130": round(area / SKY130_NAND2_UM2, 1)}


def table_formulas(depth: int, width: int) -> dict:
    """Every formula-based cost of a ``depth`` × ``width`` table."""
    if depth < 1 or width < 1:
        raise FlowError(f"table of depth {depth} and width {width}: both must be positive")
    bits = depth * width
    return {
        "depth": depth,
        "width": width,
        "bits": bits,
        **bram36_count(depth, width),
        "lutrom_lut6": math.ceil(depth / LUT6_DEPTH) * width,
        "sram_macro": sram_macro(bits),
        "formulas": FORMULAS,
    }


def _standin(shape: tuple[int, int], width: int) -> np.ndarray:
    """A smooth saturating 2-D curve of the right shape (only when the named table is unknown)."""
    a, b = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    v = (1 - np.exp(-4 * a * (0.3 + b))) * (2**width - 1)
    return np.clip(np.round(v), 0, 2**width - 1).astype(np.int64)


def _find_csv(path: str, root: Path | None) -> Path:
    p = Path(path)
    candidates = [p] if p.is_absolute() else [c / p for c in (root, Path.cwd(), _QMODELS) if c is not None]
    for c in candidates:
        if c.is_file():
            return c
    raise FlowError(f"table file {path}: not found (looked in {', '.join(str(c.parent) for c in candidates)})")


_QMODELS = Path(__file__).resolve().parents[2] / "qmodels"


def table_values(dataset: dict, root: Path | None = None) -> tuple[np.ndarray, str]:
    """The integer table a card's ``dataset`` (kind: table) describes, and where its contents came from."""
    from flow.data import tables as data_tables

    bits = int(dataset.get("bits", DEFAULT_WIDTH))
    if dataset.get("path"):
        p = _find_csv(dataset["path"], root)
        _, values, shape = data_tables.read_csv_table(p, p.name, dataset.get("format", "auto"), bits)
        return np.asarray(values, dtype=np.int64).reshape(shape), f"CSV table {p.name}"
    name = dataset.get("table")
    shape = tuple(dataset.get("shape", DEFAULT_SHAPE))
    if name in data_tables.BUILTIN_TABLES:
        return data_tables.builtin_table(name, shape, bits), f"built-in table {name!r} (flow.data.tables)"
    return _standin(shape, bits), f"stand-in contents (no table named {name!r})"


def write_rom(values: np.ndarray, folder: Path, width: int | None = None) -> tuple[Path, int, int]:
    """A ROM ``table_rom`` (registered output) of ``values`` flattened row-major; (folder, depth, width)."""
    flat = np.asarray(values, dtype=np.int64).ravel()
    if flat.size == 0:
        raise FlowError("table is empty")
    if flat.min() < 0:
        raise FlowError("table has negative entries; store them as raw unsigned words")
    width = width or max(1, int(flat.max()).bit_length())
    depth = flat.size
    aw = max(1, math.ceil(math.log2(depth)))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nd = (width + 3) // 4
    (folder / "table.mem").write_text("\n".join(f"{v:0{nd}x}" for v in flat.tolist()) + "\n")
    (folder / "table_rom.v").write_text(
        f"module table_rom (input clk, input [{aw - 1}:0] addr, output reg [{width - 1}:0] q);\n"
        f"  reg [{width - 1}:0] m [0:{depth - 1}];\n"
        '  initial $readmemh("table.mem", m);\n'
        "  always @(posedge clk) q <= m[addr];\n"
        "endmodule\n"
    )
    return folder, depth, width


def synth_table(
    values: np.ndarray,
    width: int | None = None,
    flows: tuple[str, ...] = ("asic", "xc7"),
    jobs: int | None = None,
    cache: Path | None = None,
    timeout_s: float | None = None,
) -> dict:
    """Yosys cost of the table as a ROM (real contents), one result per flow; cached by content digest."""
    with tempfile.TemporaryDirectory() as tmp:
        folder, depth, width = write_rom(values, Path(tmp), width)
        aw = max(1, math.ceil(math.log2(depth)))
        ports = {"clk": {"dir": "in", "width": 1}, "addr": {"dir": "in", "width": aw}}
        ports["q"] = {"dir": "out", "width": width}  # for the ecp5 flow's port registers
        plans = [yosys.plan(f, folder, ["table_rom.v", "table.mem"], "table_rom", cache, ports) for f in flows]
        return dict(zip(flows, yosys.run_all(plans, jobs, timeout_s)))


def table_cost(
    dataset: dict, root: Path | None = None, synth: bool = True, flows: tuple[str, ...] = ("asic", "xc7")
) -> dict:
    """Formulas plus (when small enough and ``synth``) Yosys results for a card's table."""
    values, note = table_values(dataset, root)
    width = int(dataset.get("bits", dataset.get("width", 0))) or max(DEFAULT_WIDTH, int(values.max()).bit_length())
    out = {"contents": note, "shape": list(values.shape), **table_formulas(int(values.size), width)}
    if not synth:
        out["synth"] = {"status": "skipped"}
    elif out["bits"] > MAX_SYNTH_BITS:
        out["synth"] = {"status": "too large", "note": f"{out['bits']} bits > {MAX_SYNTH_BITS}: formulas only"}
    else:
        out["synth"] = synth_table(values, width, flows)
    return out
