// fpgaq: the product of two integer codes, computed modulo 2**WO: fpgaq proves from exact
// intervals that the true product fits in WO bits, so the wrap-around product is exact.
`default_nettype none
module fpgaq_mul #(
    parameter integer WA = 8,
    parameter integer SA = 1,
    parameter integer WB = 8,
    parameter integer SB = 1,
    parameter integer WO = 16
) (
    input  wire [WA-1:0] a,
    input  wire [WB-1:0] b,
    output wire [WO-1:0] y
);
    wire [WO-1:0] ae, be;
    fpgaq_ext #(.WI(WA), .SI(SA), .WO(WO)) u_a (.x(a), .y(ae));
    fpgaq_ext #(.WI(WB), .SI(SB), .WO(WO)) u_b (.x(b), .y(be));
    assign y = ae * be;
endmodule
`default_nettype wire
