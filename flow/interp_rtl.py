"""Verilog of the interpolated table (:mod:`flow.interp`), and an Icarus check that it equals the NumPy model.

``interp_table`` (the whole baseline): the nodes in 2 (1-D) or 4 (2-D) ROM banks by node-index parity, so every
sample reads each bank once (the neighbours ``i`` and ``i + 1`` always have different parities) and the banks
hold each node once; a registered read, then ``interp_datapath``: the parity muxes, the multiply-adds of
:mod:`flow.interp` with the exact widths below, one pipeline register after the first axis and a registered
output. Latency 1 + axes cycles, II 1. ``interp_datapath`` alone is what the block-RAM and SRAM-macro forms add to their
memories, so it is costed on its own too.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flow.errors import FlowError
from flow.interp import Grid, interpolate, node_values

TOP = "interp_table"
DATAPATH = "interp_datapath"
MAX_CHECKED = 1 << 18  # addresses simulated in Icarus (every one of a 512 x 512 table; ~6 s)


@dataclass(frozen=True)
class Bank:
    """One ROM bank: the nodes whose index parities are ``parity`` (-1: an axis indexed directly), row-major."""

    parity: tuple[int, ...]
    shape: tuple[int, ...]
    values: np.ndarray

    @property
    def depth(self) -> int:
        """Words stored."""
        return int(self.values.size)

    @property
    def name(self) -> str:
        return "bank_" + "".join("x" if p < 0 else str(p) for p in self.parity)

    @property
    def tag(self) -> str:
        return self.name[5:]


def banks(nodes: np.ndarray, axes: tuple[int, ...]) -> list[Bank]:
    """The nodes split by index parity along the interpolated ``axes``; a bank's index of node ``i`` there is
    ``i >> 1`` (other axes are indexed by the address itself)."""
    g = np.asarray(nodes, dtype=np.int64)
    out = []
    for ps in np.ndindex(*(2,) * len(axes)):
        parity = [-1] * g.ndim
        for k, p in zip(axes, ps):
            parity[k] = int(p)
        sub = g[tuple(slice(p, None, 2) if p >= 0 else slice(None) for p in parity)]
        out.append(Bank(tuple(parity), tuple(sub.shape), sub))
    return out


def _bits(n: int) -> int:
    return max(1, int(n - 1).bit_length())


def _rom(b: Bank, width: int) -> list[str]:
    """A registered-read ROM of one bank, addressed by its node indices along each axis."""
    idx_bits = [_bits(s) for s in b.shape]
    ports = ", ".join(f"input [{w - 1}:0] u{k}" for k, w in enumerate(idx_bits))
    flat = " + ".join(
        f"u{k}" + "".join(f" * {b.shape[m]}" for m in range(k + 1, len(b.shape))) for k in range(len(b.shape))
    )
    return [
        f"module {b.name} (input clk, {ports}, output reg [{width - 1}:0] q);",
        f"  reg [{width - 1}:0] m [0:{b.depth - 1}];",
        f'  initial $readmemh("{b.name}.mem", m);',
        f"  always @(posedge clk) q <= m[{flat}];",
        "endmodule",
        "",
    ]


def _datapath_1d(width: int, k: int) -> list[str]:
    return [
        f"// y = ((g0 << {k}) + (g1 - g0) * f + 2^{k - 1}) >> {k}; g0, g1 = nodes i, i + 1 (p = i & 1)",
        f"module {DATAPATH} (input clk, input p, input [{k - 1}:0] f, input [{width - 1}:0] b0, b1,",
        f"                   output reg [{width - 1}:0] y);",
        f"  wire [{width - 1}:0] g0 = p ? b1 : b0;",
        f"  wire [{width - 1}:0] g1 = p ? b0 : b1;",
        f"  wire signed [{width}:0] d = $signed({{1'b0, g1}}) - $signed({{1'b0, g0}});",
        f"  wire signed [{width + k + 1}:0] r = $signed({{1'b0, g0, {k}'b0}}) + d * $signed({{1'b0, f}});",
        f"  wire [{width + k - 1}:0] rp = r[{width + k - 1}:0];  // 0 <= r < 2^{width + k}",
        f"  always @(posedge clk) y <= (rp + {width + k}'d{1 << (k - 1)}) >> {k};",
        "endmodule",
        "",
    ]


def _datapath_2d(width: int, k0: int, k1: int) -> list[str]:
    wr = width + k1  # r0, r1: 0 <= r < 2^wr
    wv = wr + k0
    return [
        f"// r0/r1 = (g[i,j] << {k1}) + (g[i,j+1] - g[i,j]) * f1 for rows i, i + 1 (registered);",
        f"// y = ((r0 << {k0}) + (r1 - r0) * f0 + 2^{k0 + k1 - 1}) >> {k0 + k1}. bPQ = bank of row parity P, column Q.",
        f"module {DATAPATH} (input clk, input p0, p1, input [{k0 - 1}:0] f0, input [{k1 - 1}:0] f1,",
        f"                   input [{width - 1}:0] b00, b01, b10, b11, output reg [{width - 1}:0] y);",
        f"  wire [{width - 1}:0] g00 = p0 ? (p1 ? b11 : b10) : (p1 ? b01 : b00);",
        f"  wire [{width - 1}:0] g01 = p0 ? (p1 ? b10 : b11) : (p1 ? b00 : b01);",
        f"  wire [{width - 1}:0] g10 = p0 ? (p1 ? b01 : b00) : (p1 ? b11 : b10);",
        f"  wire [{width - 1}:0] g11 = p0 ? (p1 ? b00 : b01) : (p1 ? b10 : b11);",
        f"  wire signed [{width}:0] d0 = $signed({{1'b0, g01}}) - $signed({{1'b0, g00}});",
        f"  wire signed [{width}:0] d1 = $signed({{1'b0, g11}}) - $signed({{1'b0, g10}});",
        f"  wire signed [{wr + 1}:0] s0 = $signed({{1'b0, g00, {k1}'b0}}) + d0 * $signed({{1'b0, f1}});",
        f"  wire signed [{wr + 1}:0] s1 = $signed({{1'b0, g10, {k1}'b0}}) + d1 * $signed({{1'b0, f1}});",
        f"  reg [{wr - 1}:0] r0, r1;",
        f"  reg [{k0 - 1}:0] f0_q;",
        f"  always @(posedge clk) begin r0 <= s0[{wr - 1}:0]; r1 <= s1[{wr - 1}:0]; f0_q <= f0; end",
        f"  wire signed [{wr}:0] dr = $signed({{1'b0, r1}}) - $signed({{1'b0, r0}});",
        f"  wire signed [{wv + 1}:0] v = $signed({{1'b0, r0, {k0}'b0}}) + dr * $signed({{1'b0, f0_q}});",
        f"  wire [{wv - 1}:0] vp = v[{wv - 1}:0];  // 0 <= v < 2^{wv}",
        f"  always @(posedge clk) y <= (vp + {wv}'d{1 << (k0 + k1 - 1)}) >> {k0 + k1};",
        "endmodule",
        "",
    ]


def _top(grid: Grid, bs: list[Bank], width: int) -> list[str]:
    """``interp_table``: address split, bank reads, datapath."""
    abits = grid.address_bits
    ports = ", ".join(f"input [{a - 1}:0] a{k}" for k, a in enumerate(abits))
    L = [
        f"// Interpolated table: {grid.label()} of a {'x'.join(map(str, grid.shape))} x {width}-bit table;",
        f"// latency {latency_cycles(grid)} cycles, II 1 (flow.interp defines the arithmetic).",
        f"module {TOP} (input clk, {ports}, output [{width - 1}:0] q);",
    ]
    axes = grid.interpolated_axes
    for k, (a, kb) in enumerate(zip(abits, grid.frac_bits)):
        if not kb:
            L.append(f"  wire [{a - 1}:0] u{k}_x = a{k};  // not interpolated: every entry is a node")
            continue
        ib = max(1, a - kb)
        idx = f"a{k}[{a - 1}:{kb}]" if a > kb else "1'b0"
        L += [
            f"  wire [{ib}:0] i{k} = {{1'b0, {idx}}};",
            f"  wire [{kb - 1}:0] f{k} = a{k}[{kb - 1}:0];",
            f"  reg [{kb - 1}:0] f{k}_q;",
            f"  reg p{k}_q;",
        ]
        for p in (0, 1):
            bshape = next(b.shape[k] for b in bs if b.parity[k] == p)
            L.append(f"  wire [{_bits(bshape) - 1}:0] u{k}_{p} = (i{k} + {1 - p}) >> 1;")
    L.append("  always @(posedge clk) begin " + " ".join(f"f{k}_q <= f{k}; p{k}_q <= i{k}[0];" for k in axes) + " end")
    for b in bs:
        us = ", ".join(f".u{k}(u{k}_{'x' if p < 0 else p})" for k, p in enumerate(b.parity))
        L += [f"  wire [{width - 1}:0] q_{b.tag};", f"  {b.name} {b.name}_i (.clk(clk), {us}, .q(q_{b.tag}));"]
    if len(axes) == 1:
        (k,) = axes
        b0, b1 = (next(b.tag for b in bs if b.parity[k] == p) for p in (0, 1))
        L.append(f"  {DATAPATH} dp (.clk(clk), .p(p{k}_q), .f(f{k}_q), .b0(q_{b0}), .b1(q_{b1}), .y(q));")
    else:
        L.append(
            f"  {DATAPATH} dp (.clk(clk), .p0(p0_q), .p1(p1_q), .f0(f0_q), .f1(f1_q), "
            ".b00(q_00), .b01(q_01), .b10(q_10), .b11(q_11), .y(q));"
        )
    return L + ["endmodule", ""]


def write_interp(table: np.ndarray, grid: Grid, width: int, folder: Path) -> dict:
    """Write ``interp_table.v``, ``interp_datapath.v`` and the bank images into ``folder``; sources, ports, banks."""
    nodes = node_values(table, grid)
    if nodes.min() < 0 or int(nodes.max()).bit_length() > width:
        raise FlowError(f"interpolated table: node values outside 0..{2**width - 1}")
    bs = banks(nodes, grid.interpolated_axes)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    nd = (width + 3) // 4
    for b in bs:
        (folder / f"{b.name}.mem").write_text("\n".join(f"{v:0{nd}x}" for v in b.values.ravel().tolist()) + "\n")
    ks = [grid.frac_bits[k] for k in grid.interpolated_axes]
    dp = _datapath_1d(width, *ks) if len(ks) == 1 else _datapath_2d(width, *ks)
    (folder / f"{TOP}.v").write_text("\n".join(_top(grid, bs, width) + sum((_rom(b, width) for b in bs), [])))
    (folder / f"{DATAPATH}.v").write_text("\n".join(dp))
    ports = {"clk": {"dir": "in", "width": 1}}
    ports.update({f"a{k}": {"dir": "in", "width": a} for k, a in enumerate(grid.address_bits)})
    ports["q"] = {"dir": "out", "width": width}
    return {
        "sources": [f"{TOP}.v", f"{DATAPATH}.v"] + [f"{b.name}.mem" for b in bs],
        "datapath_sources": [f"{DATAPATH}.v"],
        "ports": ports,
        "banks": [{"name": b.name, "shape": list(b.shape), "depth": b.depth} for b in bs],
    }


def latency_cycles(grid: Grid) -> int:
    """Cycles from address to word: the bank read, one register per interpolated axis."""
    return 1 + len(grid.interpolated_axes)


def _testbench(grid: Grid, width: int, n: int) -> str:
    """One address per cycle from ``a<k>.mem``; the word of address ``n`` is written ``latency`` cycles later."""
    lat = latency_cycles(grid)
    axes = range(len(grid.shape))
    regs = "\n".join(f"  reg [{a - 1}:0] a{k}, m{k} [0:{n - 1}];" for k, a in zip(axes, grid.address_bits))
    load = " ".join(f'$readmemh("a{k}.mem", m{k});' for k in axes)
    step = " ".join(f"a{k} = n < {n} ? m{k}[n] : 0;" for k in axes)
    conn = ", ".join(f".a{k}(a{k})" for k in axes)
    return f"""module tb;
  reg clk = 0;
{regs}
  wire [{width - 1}:0] q;
  integer n, fd;
  {TOP} dut (.clk(clk), {conn}, .q(q));
  initial begin
    {load}
    fd = $fopen("out.txt", "w");
    for (n = 0; n < {n + lat}; n = n + 1) begin
      {step}
      #1 clk = 1;
      #1 clk = 0;
      if (n >= {lat - 1} && n < {n + lat - 1}) $fdisplay(fd, "%h", q);
    end
    $fclose(fd);
    $finish;
  end
endmodule
"""


def simulate(table: np.ndarray, grid: Grid, width: int, flat: np.ndarray, verilog: str | None = None) -> np.ndarray:
    """``interp_table`` in Icarus on the row-major addresses ``flat``: its output words. ``verilog``: another
    datapath text."""
    from flow.tools import find_tool

    t = np.asarray(table, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="qflow-interp-") as tmp:
        folder = Path(tmp)
        write_interp(t, grid, width, folder)
        if verilog is not None:
            (folder / f"{DATAPATH}.v").write_text(verilog)
        for k, a in enumerate(np.unravel_index(flat, t.shape)):
            (folder / f"a{k}.mem").write_text("\n".join(f"{v:x}" for v in a.tolist()) + "\n")
        (folder / "tb.v").write_text(_testbench(grid, width, flat.size))
        iverilog, vvp = find_tool("iverilog"), find_tool("vvp")
        cmd = [str(iverilog), "-g2005", "-o", "sim.vvp", "tb.v", f"{TOP}.v", f"{DATAPATH}.v"]
        comp = subprocess.run(cmd, cwd=folder, capture_output=True, text=True)
        if comp.returncode:
            raise FlowError(f"interpolated table Verilog does not compile: {comp.stderr.strip()[-300:]}")
        run = subprocess.run([str(vvp), "-n", "sim.vvp"], cwd=folder, capture_output=True, text=True, timeout=1800)
        if run.returncode:
            raise FlowError(f"interpolated table simulation failed: {run.stderr.strip()[-300:]}")
        text = (folder / "out.txt").read_text().split()
    words = [int(x, 16) if all(c in "0123456789abcdef" for c in x.lower()) else -1 for x in text]
    if len(words) != flat.size:
        raise FlowError(f"interpolated table simulation wrote {len(words)} outputs for {flat.size} addresses")
    return np.asarray(words, dtype=np.int64)


@dataclass(frozen=True)
class RtlCheck:
    """The Verilog against the NumPy model: addresses simulated (every one up to :data:`MAX_CHECKED`)."""

    addresses: int
    of: int
    mismatches: int
    first: dict | None

    @property
    def passed(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "addresses": self.addresses,
            "of": self.of,
            "mismatches": self.mismatches,
            "passed": self.passed,
            "first": self.first,
        }


def check_rtl(table: np.ndarray, grid: Grid, width: int, verilog: str | None = None, seed: int = 0) -> RtlCheck:
    """The Verilog in Icarus against :func:`flow.interp.interpolate` on every address (a table larger than
    :data:`MAX_CHECKED`: that many, the first and last rows and a seeded sample); ``verilog``: another datapath."""
    t = np.asarray(table, dtype=np.int64)
    if t.size <= MAX_CHECKED:
        flat = np.arange(t.size)
    else:
        edge = np.unique(np.r_[np.arange(t.shape[-1]), t.size - t.shape[-1] + np.arange(t.shape[-1])])
        rest = np.setdiff1d(np.arange(t.size), edge)
        sample = np.random.default_rng(seed).choice(rest, MAX_CHECKED - edge.size, replace=False)
        flat = np.sort(np.r_[edge, sample])
    want = interpolate(t, grid).ravel()[flat]
    got = simulate(t, grid, width, flat, verilog)
    bad = np.flatnonzero(got != want)
    first = None
    if len(bad):
        a = tuple(int(x) for x in np.unravel_index(flat[bad[0]], t.shape))
        first = {"address": list(a), "expected": int(want[bad[0]]), "actual": int(got[bad[0]])}
    return RtlCheck(int(flat.size), int(t.size), int(len(bad)), first)


def datapath_bits(grid: Grid, width: int) -> dict:
    """Multiplier operand widths of the datapath (for the report)."""
    ks = [grid.frac_bits[k] for k in grid.interpolated_axes]
    if len(ks) == 1:
        return {"multipliers": 1, "operands": [[width + 1, ks[0] + 1]]}
    k0, k1 = ks
    return {"multipliers": 3, "operands": [[width + 1, k1 + 1]] * 2 + [[width + k1 + 1, k0 + 1]]}
