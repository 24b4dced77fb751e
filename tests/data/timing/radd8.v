module radd8(input clk, input [7:0] a, b, output reg [8:0] s);
  reg [7:0] ra, rb;
  always @(posedge clk) begin
    ra <= a; rb <= b; s <= ra + rb;
  end
endmodule
