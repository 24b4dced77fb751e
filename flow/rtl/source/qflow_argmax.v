// qflow_argmax: index of the largest of N packed values (element 0 in the low bits), the lowest index on
// ties. S = 1 compares as two's complement. Combinational (a linear chain of N - 1 comparators).
`timescale 1ns / 1ps
module qflow_argmax #(
    parameter integer N = 2,
    parameter integer W = 8,
    parameter integer S = 1,
    parameter integer CW = 1
) (
    input wire [N*W-1:0] din,
    output reg [CW-1:0] idx
);
    // Comparing with the sign bit flipped turns a signed comparison into an unsigned one.
    localparam [W-1:0] FLIP = S != 0 ? {W{1'b1}} << (W - 1) : {W{1'b0}};
    reg [W-1:0] best;
    reg [W-1:0] cur;
    integer k;
    always @* begin
        idx = {CW{1'b0}};
        best = din[W-1:0] ^ FLIP;
        for (k = 1; k < N; k = k + 1) begin
            cur = din[k*W +: W] ^ FLIP;
            if (cur > best) begin
                best = cur;
                idx = k[CW-1:0];
            end
        end
    end
endmodule
