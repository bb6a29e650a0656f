// fpgaq: a layer's input held for the R cycles its shared multipliers read it: loaded where en
// is high, resized to WO bits (sign- or zero-extended) on the way in.
`default_nettype none
module fpgaq_hold #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer WO = 8
) (
    input  wire clk,
    input  wire en,
    input  wire [WI-1:0] x,
    output reg  [WO-1:0] y
);
    wire [WO-1:0] xe;
    fpgaq_ext #(.WI(WI), .SI(SI), .WO(WO)) u_x (.x(x), .y(xe));
    always @(posedge clk) if (en) y <= xe;
endmodule
`default_nettype wire
