// fpgaq: the index an argmax key carries in its low WO bits, inverted (the key is
// code * 2**WO + (2**WO - 1 - index), so that the largest key is the first largest code).
`default_nettype none
module fpgaq_index #(
    parameter integer WI = 8,
    parameter integer WO = 3
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    assign y = ~x[WO-1:0];
endmodule
`default_nettype wire
