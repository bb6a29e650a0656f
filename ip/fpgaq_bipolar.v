// fpgaq: QONNX BipolarQuant on a code: y = +1 where x >= 0, else -1, as a 2-bit signed code.
`default_nettype none
module fpgaq_bipolar #(
    parameter integer WI = 8,
    parameter integer SI = 1
) (
    input  wire [WI-1:0] x,
    output wire [1:0]    y
);
    assign y = {SI != 0 && x[WI-1], 1'b1};
endmodule
`default_nettype wire
