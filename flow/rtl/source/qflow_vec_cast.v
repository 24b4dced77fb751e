// qflow_vec_cast: N elements, each optionally clamped at zero (RELU = 1: max(x, 0)) and then converted by
// qflow_fixed_cast. Elements are packed, element 0 in the low bits. Combinational.
`timescale 1ns / 1ps
module qflow_vec_cast #(
    parameter integer N = 1,
    parameter integer RELU = 0,
    parameter integer IN_W = 8,
    parameter integer IN_F = 0,
    parameter integer IN_S = 1,
    parameter integer OUT_W = 8,
    parameter integer OUT_F = 0,
    parameter integer OUT_S = 1,
    parameter integer RND = 0,
    parameter integer OVF = 0
) (
    input wire [N*IN_W-1:0] din,
    output wire [N*OUT_W-1:0] dout
);
    genvar k;
    generate
        for (k = 0; k < N; k = k + 1) begin : g_elem
            wire [IN_W-1:0] e = din[k*IN_W +: IN_W];
            wire clamp = RELU != 0 && IN_S != 0 && e[IN_W-1];
            wire [IN_W-1:0] m = clamp ? {IN_W{1'b0}} : e;
            qflow_fixed_cast #(
                .IN_W(IN_W), .IN_F(IN_F), .IN_S(IN_S), .OUT_W(OUT_W), .OUT_F(OUT_F), .OUT_S(OUT_S),
                .RND(RND), .OVF(OVF)
            ) u_cast (
                .din(m),
                .dout(dout[k*OUT_W +: OUT_W])
            );
        end
    endgenerate
endmodule
