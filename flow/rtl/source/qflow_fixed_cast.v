// qflow_fixed_cast: one ap_fixed conversion, combinational and bit-exact with flow/fixed.py.
// din is a raw mantissa with IN_F fraction bits (IN_S: two's complement); dout is the raw mantissa of the
// destination type with OUT_F fraction bits. Quantization (RND) is applied first, then overflow (OVF).
// IN_F and OUT_F may be negative or larger than the widths.
//   RND: 0 TRN, 1 TRN_ZERO, 2 RND, 3 RND_ZERO, 4 RND_MIN_INF, 5 RND_INF, 6 RND_CONV
//   OVF: 0 WRAP, 1 SAT, 2 SAT_ZERO, 3 SAT_SYM
`timescale 1ns / 1ps
/* verilator lint_off UNUSEDSIGNAL */
// Reason: one generic block; a given instance uses only the bits its modes need (e.g. WRAP ignores the top).
module qflow_fixed_cast #(
    parameter integer IN_W = 8,
    parameter integer IN_F = 0,
    parameter integer IN_S = 1,
    parameter integer OUT_W = 8,
    parameter integer OUT_F = 0,
    parameter integer OUT_S = 1,
    parameter integer RND = 0,
    parameter integer OVF = 0
) (
    input wire [IN_W-1:0] din,
    output wire [OUT_W-1:0] dout
);
    localparam integer SH = IN_F - OUT_F;             // fraction bits dropped (> 0) or added (< 0)
    localparam integer DROP = SH > 0 ? SH : 0;
    localparam integer ADD = SH < 0 ? -SH : 0;
    localparam integer XW = (IN_W > DROP ? IN_W : DROP) + 2;  // room for the half bit and a +1
    localparam integer QW = XW - DROP;                 // floor(din / 2**DROP)
    localparam integer SW = QW + ADD;                  // after adding fraction bits
    localparam integer RW = (SW > OUT_W ? SW : OUT_W) + 2;
    localparam [RW-1:0] ONE = {{(RW-1){1'b0}}, 1'b1};
    localparam [RW-1:0] HI = OUT_S != 0 ? (ONE << (OUT_W - 1)) - ONE : (ONE << OUT_W) - ONE;
    localparam [RW-1:0] MINV = OUT_S != 0 ? ~(ONE << (OUT_W - 1)) + ONE : {RW{1'b0}};
    localparam [RW-1:0] LO = (OVF == 3 && OUT_S != 0 && OUT_W > 1) ? ~HI + ONE : MINV;

    wire neg = IN_S != 0 ? din[IN_W-1] : 1'b0;
    wire [XW-1:0] x = {{(XW-IN_W){neg}}, din};
    wire [QW-1:0] q = x[XW-1:DROP];
    wire half;
    wire rest;
    generate
        if (DROP == 0) begin : g_exact
            assign half = 1'b0;
            assign rest = 1'b0;
        end else if (DROP == 1) begin : g_half
            assign half = x[0];
            assign rest = 1'b0;
        end else begin : g_round
            assign half = x[DROP-1];
            assign rest = |x[DROP-2:0];
        end
    endgenerate

    wire inc = RND == 1 ? neg & (half | rest) :
               RND == 2 ? half :
               RND == 3 ? half & (rest | neg) :
               RND == 4 ? half & rest :
               RND == 5 ? half & (rest | ~neg) :
               RND == 6 ? half & (rest | q[0]) : 1'b0;
    wire [QW-1:0] qi = q + {{(QW-1){1'b0}}, inc};
    wire [SW-1:0] s;
    generate
        if (ADD == 0) begin : g_noshift
            assign s = qi;
        end else begin : g_shift
            assign s = {qi, {ADD{1'b0}}};
        end
    endgenerate
    wire [RW-1:0] r = {{(RW-SW){s[SW-1]}}, s};

    wire over = $signed(r) > $signed(HI);
    wire under = $signed(r) < $signed(LO);
    assign dout = OVF == 0 ? r[OUT_W-1:0] :
                  OVF == 2 ? ((over | under) ? {OUT_W{1'b0}} : r[OUT_W-1:0]) :
                  over ? HI[OUT_W-1:0] : under ? LO[OUT_W-1:0] : r[OUT_W-1:0];
endmodule
/* verilator lint_on UNUSEDSIGNAL */
