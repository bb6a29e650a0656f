// fpgaq: one adder of a constant-multiplication tree.
//
//   y = b + (a << SH)      (NEG = 0)
//   y = b - (a << SH)      (NEG = 1)
//
// computed modulo 2**WO: fpgaq proves from exact intervals that the true sum fits in WO bits,
// so the wrap-around arithmetic is exact and no wider adder is ever built. The SH low bits
// of y are b's own (a contributes zeros there), so the carry chain is only WO - SH bits long.
// A constant b (the bias, or 0 for a bare shift) is folded by synthesis.
`default_nettype none
module fpgaq_add #(
    parameter integer WA = 8,   // width of a
    parameter integer SA = 1,   // a is two's complement (1) or unsigned (0)
    parameter integer WB = 8,
    parameter integer SB = 1,
    parameter integer SH = 0,   // a's left shift
    parameter integer NEG = 0,  // subtract a instead of adding it
    parameter integer WO = 9    // width of y
) (
    input  wire [WA-1:0] a,
    input  wire [WB-1:0] b,
    output wire [WO-1:0] y
);
    wire [WO-1:0] b_ext;
    fpgaq_ext #(.WI(WB), .SI(SB), .WO(WO)) u_b (.x(b), .y(b_ext));
    generate
        if (SH >= WO) begin : g_b_only
            // a << SH vanishes modulo 2**WO
            assign y = b_ext;
        end else begin : g_add
            localparam integer H = WO - SH;
            wire [H-1:0] a_ext;
            fpgaq_ext #(.WI(WA), .SI(SA), .WO(H)) u_a (.x(a), .y(a_ext));
            wire [H-1:0] hi = (NEG != 0) ? b_ext[WO-1:SH] - a_ext : b_ext[WO-1:SH] + a_ext;
            if (SH > 0) begin : g_low
                assign y = {hi, b_ext[SH-1:0]};
            end else begin : g_full
                assign y = hi;
            end
        end
    endgenerate
endmodule
`default_nettype wire
