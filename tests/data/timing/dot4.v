module dot4(input clk, input [7:0] a0, a1, a2, a3, output reg [17:0] y);
  reg [7:0] r0, r1, r2, r3;
  always @(posedge clk) begin
    r0 <= a0; r1 <= a1; r2 <= a2; r3 <= a3;
    y <= r0 * 8'd37 + r1 * 8'd101 + r2 * 8'd77 + r3 * 8'd13;
  end
endmodule
