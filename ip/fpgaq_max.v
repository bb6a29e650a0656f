// fpgaq: the larger of two integer codes (a on a tie), in WO bits: fpgaq proves from exact
// intervals that both fit in WO bits with their signs, and WC bits hold both for the comparison.
`default_nettype none
module fpgaq_max #(
    parameter integer WA = 8,
    parameter integer SA = 1,
    parameter integer WB = 8,
    parameter integer SB = 1,
    parameter integer WC = 9,
    parameter integer WO = 8
) (
    input  wire [WA-1:0] a,
    input  wire [WB-1:0] b,
    output wire [WO-1:0] y
);
    wire [WC-1:0] ae, be;
    fpgaq_ext #(.WI(WA), .SI(SA), .WO(WC)) u_a (.x(a), .y(ae));
    fpgaq_ext #(.WI(WB), .SI(SB), .WO(WC)) u_b (.x(b), .y(be));
    wire [WC-1:0] m = ($signed(ae) >= $signed(be)) ? ae : be;
    assign y = m[WO-1:0];
endmodule
`default_nettype wire
