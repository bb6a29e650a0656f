// fpgaq: a dense layer's output accumulated over the R phases of its reuse factor.
//
//   y <= INIT + x     where first is high (the input's first phase)
//   y <= y + x        otherwise
//
// modulo 2**WO: WO holds the finished sum's exact range, and wrap-around addition is exact
// modulo 2**WO, so a partial sum that leaves the range still ends at the right value. y holds
// the result in the cycle after the last phase.
`default_nettype none
module fpgaq_acc #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer WO = 8,
    parameter [WO-1:0] INIT = {WO{1'b0}}    // the bias
) (
    input  wire clk,
    input  wire first,
    input  wire [WI-1:0] x,
    output reg  [WO-1:0] y
);
    wire [WO-1:0] xe;
    fpgaq_ext #(.WI(WI), .SI(SI), .WO(WO)) u_x (.x(x), .y(xe));
    always @(posedge clk) y <= (first ? INIT : y) + xe;
endmodule
`default_nettype wire
