module add8(input clk, input [7:0] a, b, output reg [8:0] s);
  always @(posedge clk) s <= a + b;
endmodule
