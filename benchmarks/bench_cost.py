"""Cost benchmark: a fresh and a cached Yosys cost run on a diag-size folded design, and the table ROM synthesis.

Uses ``hls_projects/<diag model>/rtl/folded`` when one exists, else a generated stand-in with the same shape
(1023 → 40 → 18, one multiplier per output neuron, weights in ``$readmemh`` ROMs, inputs streamed one per
cycle). The fresh run uses a
temporary cache folder; the table ROM run uses the shared cache (the first run costs minutes, later ones nothing).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

_MAC_LAYER = """
module {name} #(parameter N_IN = {n_in}, N_OUT = {n_out}, XW = {xw}, WW = {ww}, AW = {aw}) (
  input clk, input rst, input start, input [XW-1:0] x, output reg [$clog2(N_IN+1)-1:0] idx,
  output reg busy, output reg done, output [N_OUT*AW-1:0] acc_flat
);
  reg [N_OUT*WW-1:0] rom [0:N_IN-1];
  initial $readmemh("{name}.mem", rom);
  reg [N_OUT*WW-1:0] wrow;
  reg phase;
  always @(posedge clk) wrow <= rom[idx];
  always @(posedge clk) begin
    done <= 1'b0;
    if (rst) begin busy <= 0; idx <= 0; phase <= 0; end
    else if (start && !busy) begin busy <= 1; idx <= 0; phase <= 0; end
    else if (busy) begin
      phase <= 1;
      if (idx == N_IN) begin busy <= 0; done <= 1; end else idx <= idx + 1;
    end
  end
  genvar g;
  generate for (g = 0; g < N_OUT; g = g + 1) begin : mac
    reg signed [AW-1:0] acc;
    always @(posedge clk)
      if (start && !busy) acc <= 0;
      else if (busy && phase) acc <= acc + $signed(x) * $signed(wrow[g*WW +: WW]);
    assign acc_flat[g*AW +: AW] = acc;
  end endgenerate
endmodule
"""

_TOP = """
module standin_top (input clk, input rst, input start, input [11:0] x_in,
                    output done, output [18*30-1:0] y_flat);
  wire [9:0] i1; wire b1, d1; wire [40*30-1:0] a1;
  fc1 l1 (.clk(clk), .rst(rst), .start(start), .x(x_in), .idx(i1),
          .busy(b1), .done(d1), .acc_flat(a1));
  reg [40*8-1:0] h;
  integer k;
  always @(posedge clk) if (d1) for (k = 0; k < 40; k = k + 1)
    h[k*8 +: 8] <= a1[k*30+29] ? 8'd0 : (|a1[k*30+28 -: 10] ? 8'd255 : a1[k*30+10 -: 8]);
  reg d1q; always @(posedge clk) d1q <= d1;
  wire [5:0] i2; wire b2;
  fc2 l2 (.clk(clk), .rst(rst), .start(d1q), .x({1'b0, h[(i2 > 39 ? 39 : i2)*8 +: 8]}), .idx(i2),
          .busy(b2), .done(done), .acc_flat(y_flat));
endmodule
"""


def write_standin(folder: Path, seed: int = 0) -> Path:
    """A diag-size folded network (1023 → 40 → 18) as Verilog + ROM images + files.txt + design.json."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name, n_in, n_out, xw in (("fc1", 1023, 40, 12), ("fc2", 40, 18, 9)):
        (folder / f"{name}.v").write_text(_MAC_LAYER.format(name=name, n_in=n_in, n_out=n_out, xw=xw, ww=8, aw=30))
        w = rng.integers(-128, 128, size=(n_in, n_out)) & 0xFF
        rows = ["".join(f"{v:02x}" for v in row[::-1]) for row in w]
        (folder / f"{name}.mem").write_text("\n".join(rows) + "\n")
    (folder / "top.v").write_text(_TOP)
    (folder / "files.txt").write_text("fc1.v\nfc2.v\ntop.v\nfc1.mem\nfc2.mem\n")
    (folder / "design.json").write_text(json.dumps({"top": "standin_top", "arch": "folded", "standin": True}))
    return folder


def _diag_rtl() -> Path | None:
    from flow.project import PROJECTS_DIR

    folded = sorted(Path(PROJECTS_DIR).glob("diag_*/rtl/folded"), key=lambda d: (d.parent.parent.name != "diag_05", d))
    for d in folded:  # diag_05 (the README's figures) when it is built
        if (d / "files.txt").is_file() and (d / "design.json").is_file():
            return d
    return None


def run() -> dict:
    """Timings in seconds (and peak memory in MB) of the cost runs."""
    from flow.cost import tables, yosys

    out: dict = {"yosys": yosys.yosys_version()}
    with tempfile.TemporaryDirectory() as tmp:
        rtl = _diag_rtl() or write_standin(Path(tmp) / "standin")
        out["design"] = "standin (generated)" if rtl.is_relative_to(tmp) else rtl.parent.parent.name
        cache = Path(tmp) / "cache"
        t0 = time.monotonic()
        fresh = yosys.cost_rtl(rtl, cache=cache)
        out["cost_fresh_s"] = round(time.monotonic() - t0, 2)
        t0 = time.monotonic()
        cached = yosys.cost_rtl(rtl, cache=cache)
        out["cost_cached_s"] = round(time.monotonic() - t0, 3)
        assert all(r.get("cached") for r in cached.values())
        for flow, r in fresh.items():
            out[f"{flow}_s"] = r.get("seconds")
            out[f"{flow}_peak_mb"] = r.get("peak_rss_mb")
            out[f"{flow}_status"] = r["status"]
        if fresh["xc7"]["status"] == "ok":
            out["xc7_LUT"] = fresh["xc7"]["fpga"]["LUT"]
        if fresh["asic"]["status"] == "ok":
            out["asic_osu018_um2"] = fresh["asic"]["asic"]["osu018"].get("area_um2")
    if os.environ.get("QFLOW_BENCH_TABLE", "1") != "0":
        values, note = tables.table_values({"kind": "table", "table": "charge"})
        t0 = time.monotonic()
        rom = tables.synth_table(values, flows=("asic",))
        out["table_rom_total_s"] = round(time.monotonic() - t0, 2)
        r = rom["asic"]
        out["table_rom_asic_s"] = r.get("seconds")
        out["table_rom_asic_peak_mb"] = r.get("peak_rss_mb")
        out["table_rom_asic_cached"] = r.get("cached")
        out["table_rom_status"] = r["status"]
        out["table_contents"] = note
    return out


if __name__ == "__main__":
    print(json.dumps(run(), indent=1))
