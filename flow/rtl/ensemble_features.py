"""The ensemble's feature stage in RTL: one shared spectrum buffer, log1p and a delay line feeding member lanes.

``log1p`` is a ROM read bit-exact with :func:`flow.features.log1p_table` (the correctly rounded value) in one of
two forms (:data:`LOG1P_FORMS`): ``table``, the full table (``2**count_width`` words), or ``lod``, a
leading-one detector and a small table: counts below ``2**T`` are looked up directly; a count with its leading
one at bit ``e >= T`` is looked up by ``e`` and the ``T`` bits after the leading one, and the entry holds the
value at the start of that bucket and the offset into the bucket from which the value is one more. ``T`` is the
smallest for which every bucket spans at most one step of the (monotone) table, and the ROM is checked against
the full table for every count before any Verilog is written.

The stream: channels are read one per step from the spectrum buffer (rotated one channel per step), so the
ROM is read synchronously (block RAM). At step ``t`` the stage holds ``L[t]`` and a delay line of the last
``max(k) + 1`` values; a member on diagonal ``k`` gets input ``i = t - k - 1`` at step ``t``: ``L[t] - L[t-k-1]``
while ``t < n``, then the zero padding, each through the member's lane layers (clip, cast). A pass ends when
its last member has its last input; the serial arrangement runs one pass per member.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from flow.errors import FlowError
from flow.features import difference_type, log1p_table
from flow.fixed import FixedType
from flow.rtl.common import elementwise_chain, ext, lit

LOG1P_FORMS = ("auto", "table", "lod")
MAX_RTL_COUNT_WIDTH = 20  # the ROM is checked against the full table of 2**count_width counts


def clog2(n: int) -> int:
    """Bits to count 0 .. n-1 (at least 1)."""
    return max(1, (n - 1).bit_length())


@dataclass(frozen=True)
class Log1pRom:
    """The log1p ROM of one form: its words (value, and for ``lod`` the bucket's step offset) and geometry."""

    form: str
    count_width: int
    out_t: FixedType
    top_bits: int  # T: counts below 2**T are looked up directly (lod); count_width for the full table
    base: tuple[int, ...]
    threshold: tuple[int, ...]  # lod: the offset into a bucket from which the value is base + 1

    @property
    def depth(self) -> int:
        return len(self.base)

    @property
    def threshold_width(self) -> int:
        """Bits of a threshold: up to ``2**(count_width - 1 - T)`` (no step in the bucket)."""
        return 0 if self.form == "table" else self.count_width - self.top_bits

    @property
    def word_width(self) -> int:
        return self.out_t.width + self.threshold_width

    @property
    def bits(self) -> int:
        """ROM bits: what the feature stage's log1p costs in memory."""
        return self.depth * self.word_width

    def lookup(self, counts: np.ndarray) -> np.ndarray:
        """What the RTL computes for raw counts (int64): the ROM's reading, for the exactness check."""
        c = np.asarray(counts, dtype=np.int64)
        if self.form == "table":
            return np.asarray(self.base, dtype=np.int64)[c]
        idx, off = lod_index(c, self.top_bits)
        base, thr = np.asarray(self.base, dtype=np.int64), np.asarray(self.threshold, dtype=np.int64)
        return base[idx] + (off >= thr[idx])

    def details(self) -> dict:
        """design.json's record of the log1p ROM."""
        full = (1 << self.count_width) * self.out_t.width
        return {
            "form": self.form,
            "top_bits": self.top_bits,
            "depth": self.depth,
            "word_width": self.word_width,
            "rom_bits": self.bits,
            "full_table_bits": full,
        }


def lod_index(counts: np.ndarray, top_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(ROM index, offset into the bucket) of each count for a lod ROM with ``T = top_bits``."""
    c = np.asarray(counts, dtype=np.int64)
    e = np.zeros_like(c)
    nz = c > 0
    e[nz] = np.floor(np.log2(c[nz])).astype(np.int64)
    e[nz & (c < (np.int64(1) << e))] -= 1  # float log2 rounding near powers of two
    e[nz & (c >= (np.int64(1) << (e + 1)))] += 1
    direct = c < (1 << top_bits)
    shift = np.where(direct, 0, e - top_bits)
    top = (c >> shift) & ((1 << top_bits) - 1)
    seg = np.where(direct, 0, e - top_bits + 1)
    idx = np.where(direct, c, (seg << top_bits) | top)
    off = np.where(direct, 0, c & ((np.int64(1) << shift) - 1))
    return idx, off


def _lod_rom(table: np.ndarray, count_width: int, out_t: FixedType, t: int) -> Log1pRom | None:
    """The lod ROM with ``T = t``, or None when a bucket spans more than one step of the table."""
    base, thr = [int(v) for v in table[: 1 << t]], [1] * (1 << t)  # direct: offset 0 never reaches 1
    for e in range(t, count_width):
        width = 1 << (e - t)
        buckets = table[1 << e : 1 << (e + 1)].reshape(1 << t, width)
        first, last = buckets[:, 0], buckets[:, -1]
        if np.any(last - first > 1):
            return None
        steps = (buckets > first[:, None]).argmax(axis=1)
        base += [int(v) for v in first]
        thr += [int(s) if s else width for s in steps]  # width: no step in this bucket
    return Log1pRom("lod", count_width, out_t, t, tuple(base), tuple(thr))


def log1p_rom(count_width: int, out_t: FixedType, form: str = "auto") -> Log1pRom:
    """The log1p ROM in ``form`` (``auto``: the one with fewer bits), checked against the full table."""
    if form not in LOG1P_FORMS:
        raise FlowError(f"log1p: form {form!r} is not allowed (choose from: {', '.join(LOG1P_FORMS)})")
    if count_width > MAX_RTL_COUNT_WIDTH:
        raise FlowError(f"log1p: the RTL takes count_width <= {MAX_RTL_COUNT_WIDTH}, got {count_width}")
    table = np.asarray(log1p_table(count_width, out_t), dtype=np.int64)
    full = Log1pRom("table", count_width, out_t, count_width, tuple(int(v) for v in table), ())
    lods = [r for t in range(1, count_width) if (r := _lod_rom(table, count_width, out_t, t)) is not None]
    if form == "table" or (form == "auto" and (not lods or full.bits <= min(r.bits for r in lods))):
        rom = full
    elif lods:
        rom = min(lods, key=lambda r: r.bits)
    else:
        raise FlowError(f"log1p: no leading-one table fits {out_t} for {count_width}-bit counts; use the full table")
    counts = np.arange(1 << count_width, dtype=np.int64)
    if not np.array_equal(rom.lookup(counts), table):
        raise FlowError(f"log1p: the {rom.form} ROM differs from the correctly rounded table (a bug)")
    return rom


def rom_index_logic(rom: Log1pRom, count: str, prefix: str) -> tuple[str, str, str, int, int]:
    """Verilog computing the ROM index (and lod offset) of ``count``; (text, index, offset, widths)."""
    w, iw = rom.count_width, clog2(rom.depth)
    if rom.form == "table":
        return "", count, "", iw, 0
    t = rom.top_bits
    ow = max(1, w - 1 - t)
    lines = [
        f"    reg [{iw - 1}:0] {prefix}_idx;",
        f"    reg [{ow - 1}:0] {prefix}_off;",
        "    always @* begin",
        f"        {prefix}_idx = {ext(f'{count}[{t - 1}:0]', t, iw, False)};",
        f"        {prefix}_off = {ow}'d0;",
    ]
    # A priority chain from the top bit: the leading one picks the segment, the T bits after it the bucket.
    first = True
    for e in range(w - 1, t - 1, -1):
        kw = "if" if first else "else if"
        first = False
        seg = e - t + 1
        off = f"{prefix}_off = {ext(f'{count}[{e - t - 1}:0]', e - t, ow, False)};" if e > t else ""
        lines.append(
            f"        {kw} ({count}[{e}]) begin {prefix}_idx = {{{lit(seg, iw - t)}, {count}[{e - 1}:{e - t}]}}; "
            f"{off} end".replace("  end", " end")
        )
    lines.append("    end")
    return "\n".join(lines) + "\n", f"{prefix}_idx", f"{prefix}_off", iw, ow


@dataclass(frozen=True)
class Lane:
    """One member input stream: the member's diagonal and its lane layers (clip, cast) after the difference."""

    name: str
    diagonal: int
    layers: list  # the elementwise nodes between the diagonal_difference and the member's first dense layer
    out_t: FixedType  # what the member's first dense layer takes


def feature_module(name: str, n: int, rom: Log1pRom, lanes: list[Lane], passes: list[list[int]], n_outs: int) -> str:
    """The feature stage: spectrum buffer, log1p ROM, delay line and ``n_outs`` member input streams.

    ``passes[p]`` lists the lanes served in pass ``p`` (parallel: one pass, every lane on its own output;
    serial: one lane per pass, all on output 0, ``pass_o`` naming the pass). Output ``o`` is a streaming input
    of the folded layer (``o_valid``/``o_ready``/``o_last``/``o_data``).
    """
    w, lt = rom.count_width, rom.out_t
    lw = lt.width
    dt = difference_type(lt)
    max_k = max(lane.diagonal for lane in lanes)
    depth = max_k + 1
    steps_end = [max(lanes[i].diagonal for i in p) + n - 1 for p in passes]
    tw = clog2(max(steps_end) + 1)
    pw = clog2(len(passes))
    serial = n_outs == 1 and len(passes) > 1
    out_w = [lanes[p[0]].out_t.width for p in passes] if serial else [lane.out_t.width for lane in lanes]
    ports = []
    for o in range(n_outs):
        ow = out_w[0] if serial else out_w[o]
        ports += [
            f"    output wire o{o}_valid,",
            f"    input wire o{o}_ready,",
            f"    output wire o{o}_last,",
            f"    output wire [{ow - 1}:0] o{o}_data,",
        ]
    idx_text, idx, off, iw, offw = rom_index_logic(rom, "rd_count", "rd")
    thr_w = rom.threshold_width
    word = []
    mask = (1 << lw) - 1
    for k in range(rom.depth):
        v = rom.base[k] & mask
        if thr_w:
            v |= rom.threshold[k] << lw
        if v:
            word.append(f"            {iw}'d{k}: rom_word = {rom.word_width}'h{v:x};")
    diagonals = [lane.diagonal for lane in lanes]
    text = f"""// {name}: the ensemble's feature stage ({n} channels of {w}-bit counts). Generated by qflow.
// log1p: {rom.form} ROM, {rom.depth} x {rom.word_width} bits ({rom.bits} bits; the full table: {(1 << w) * lw}),
// read synchronously; {len(lanes)} member lane(s) on diagonals {diagonals}, {len(passes)} pass(es). Do not edit.
`timescale 1ns / 1ps
module {name} (
    input wire clk,
    input wire rst,
    input wire in_valid,
    output wire in_ready,
    input wire [{n * w - 1}:0] in_data,
{chr(10).join(ports)}
    output wire [{pw - 1}:0] pass_o
);
    reg running;
    reg [{tw - 1}:0] t;
    reg [{pw - 1}:0] pidx;
    assign pass_o = pidx;
    assign in_ready = !running;
    wire take = in_valid && in_ready;
    // The spectrum buffer: channel t in the low bits, rotated one channel per step of the first n steps.
    wire [{n * w - 1}:0] sr;
    wire in_spectrum = t <= {tw}'d{n - 1};
    wire [{w - 1}:0] rd_count = take ? in_data[{w - 1}:0] : sr[{(2 * w if n > 1 else w) - 1}:{w if n > 1 else 0}];
{idx_text}    // The log1p ROM as a case table: Yosys' proc_rom takes it as one ROM (an initial block of per-word writes
    // took its front end minutes), registered below (block RAM).
    reg [{rom.word_width - 1}:0] rom_word;
    always @* begin
        case ({idx})
{chr(10).join(word)}
            default: rom_word = {rom.word_width}'h0;
        endcase
    end
    reg [{rom.word_width - 1}:0] ent_q;
"""
    if offw:
        text += f"    reg [{offw - 1}:0] off_q;\n"
    text += f"""    wire adv;
    wire rd = take || (adv && in_spectrum);
    // One register per channel: Yosys 0.23 spends many minutes on one register of all the channels.
    genvar ch;
    generate for (ch = 0; ch < {n}; ch = ch + 1) begin : g_buf
        reg [{w - 1}:0] c;
        always @(posedge clk) begin
            if (take) c <= in_data[ch * {w} +: {w}];
            else if (adv && in_spectrum) c <= sr[((ch + 1) % {n}) * {w} +: {w}];
        end
        assign sr[ch * {w} +: {w}] = c;
    end endgenerate
    always @(posedge clk) begin
        if (rd) ent_q <= rom_word;
{f"        if (rd) off_q <= {off};" + chr(10) if offw else ""}    end
"""
    if thr_w:
        step = f"({ext('off_q', offw, thr_w, False)} >= thr)"
        text += (
            f"    wire [{thr_w - 1}:0] thr = ent_q[{rom.word_width - 1}:{lw}];\n"
            f"    wire [{lw - 1}:0] l_now = ent_q[{lw - 1}:0] + {ext(step, 1, lw, False)};\n"
        )
    else:
        text += f"    wire [{lw - 1}:0] l_now = ent_q;\n"
    text += f"""    // The delay line: dl[j] holds L[t - 1 - j].
    reg [{depth * lw - 1}:0] dl;
    always @(posedge clk) begin
        if (adv) dl <= {f"{{dl[{(depth - 1) * lw - 1}:0], l_now}}" if depth > 1 else "l_now"};
    end
"""
    # Each lane: the difference (zero past the spectrum), then its layers.
    sig = dt.width
    for i, lane in enumerate(lanes):
        k = lane.diagonal
        text += (
            f"    wire [{sig - 1}:0] d{i} = in_spectrum ? {{1'b0, l_now}} - {{1'b0, dl[{k * lw + lw - 1}:{k * lw}]}} "
            f": {sig}'d0;\n"
        )
        chunk, packed = elementwise_chain(f"lane{i}", dt, lane.layers, [f"d{i}"])
        text += chunk + f"    wire [{lane.out_t.width - 1}:0] x{i} = {packed};\n"
        text += (
            f"    wire v{i} = t >= {tw}'d{k + 1} && t <= {tw}'d{k + n - 1};\n"
            f"    wire last{i} = t == {tw}'d{k + n - 1};\n"
        )
    if serial:
        cases_v = " : ".join(f"pidx == {pw}'d{p} ? v{q[0]}" for p, q in enumerate(passes[:-1]))
        cases_x = " : ".join(f"pidx == {pw}'d{p} ? x{q[0]}" for p, q in enumerate(passes[:-1]))
        cases_l = " : ".join(f"pidx == {pw}'d{p} ? last{q[0]}" for p, q in enumerate(passes[:-1]))
        lp = passes[-1][0]
        text += (
            f"    wire sv = {cases_v} : v{lp};\n    assign o0_data = {cases_x} : x{lp};\n"
            f"    wire sl = {cases_l} : last{lp};\n"
            "    assign adv = running && (!sv || o0_ready);\n"
            "    assign o0_valid = running && sv && o0_ready;\n    assign o0_last = sl;\n"
        )
        ends = " : ".join(f"pidx == {pw}'d{p} ? {tw}'d{e}" for p, e in enumerate(steps_end[:-1]))
        t_end = f"({ends} : {tw}'d{steps_end[-1]})" if len(passes) > 1 else f"{tw}'d{steps_end[0]}"
        last_pass = f"pidx == {pw}'d{len(passes) - 1}"
    else:
        ready_all = " && ".join(f"(!v{i} || o{i}_ready)" for i in range(len(lanes)))
        text += f"    assign adv = running && {ready_all};\n"
        for i in range(len(lanes)):
            text += f"    assign o{i}_valid = adv && v{i};\n    assign o{i}_data = x{i};\n"
            text += f"    assign o{i}_last = last{i};\n"
        t_end = f"{tw}'d{steps_end[0]}"
        last_pass = "1'b1"
    text += f"""    wire pass_done = adv && t == {t_end};
    always @(posedge clk) begin
        if (rst) begin
            running <= 1'b0;
            t <= {tw}'d0;
            pidx <= {pw}'d0;
        end else if (take) begin
            running <= 1'b1;
            t <= {tw}'d0;
            pidx <= {pw}'d0;
        end else if (pass_done) begin
            t <= {tw}'d0;
            if ({last_pass}) running <= 1'b0;
            else pidx <= pidx + {pw}'d1;
        end else if (adv) begin
            t <= t + {tw}'d1;
        end
    end
endmodule
"""
    return text
