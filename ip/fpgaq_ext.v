// fpgaq: resize a two's complement (SI = 1) or unsigned (SI = 0) code to WO bits.
// Sign- or zero-extends when WO > WI; keeps the low WO bits otherwise (fpgaq only truncates
// bits that the value's proven range makes copies of the sign, so nothing is lost).
`default_nettype none
module fpgaq_ext #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer WO = 8
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    generate
        if (WO > WI) begin : g_extend
            assign y = {{(WO - WI){SI != 0 && x[WI-1]}}, x};
        end else begin : g_keep
            assign y = x[WO-1:0];
        end
    endgenerate
endmodule
`default_nettype wire
