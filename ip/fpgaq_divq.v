// fpgaq: the quantizer of an average, exactly as fpgaq.ir.ops.DivQuant computes it:
//
//   y = min(max(round((x << UP) / DEN), LO), HI)
//
// the exact integer division by the constant DEN (the window's count, times a power of two),
// rounded with MODE (numbered as fpgaq.ir.fixed.Rounding numbers it, fpgaq_modes.vh). WC is a
// signed width that holds x << UP, 2 * DEN and both bounds; the result fits in WO bits.
`include "fpgaq_modes.vh"
`default_nettype none
module fpgaq_divq #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer UP = 0,
    parameter integer MODE = 0,
    parameter integer WC = 16,
    parameter signed [WC-1:0] DEN = 1,
    parameter signed [WC-1:0] LO = 0,
    parameter signed [WC-1:0] HI = 0,
    parameter integer WO = 8
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    wire [WC-1:0] xe;
    fpgaq_ext #(.WI(WI), .SI(SI), .WO(WC)) u_x (.x(x), .y(xe));
    wire signed [WC-1:0] num = $signed(xe) <<< UP;
    wire signed [WC-1:0] q0 = num / DEN;            // toward zero
    wire signed [WC-1:0] r0 = num % DEN;            // the sign of num
    wire neg_r = r0 < 0;
    wire signed [WC-1:0] q = neg_r ? q0 - 1 : q0;   // floor
    wire signed [WC-1:0] r = neg_r ? r0 + DEN : r0;
    wire signed [WC-1:0] twice = r <<< 1;
    wire above = twice > DEN;
    wire tie = twice == DEN;
    wire inexact = r != 0;
    wire neg = num < 0;
    wire pos = num > 0;
    reg up;
    always @(*) begin
        case (MODE)
            `FPGAQ_RND_FLOOR: up = 1'b0;
            `FPGAQ_RND_CEIL: up = inexact;
            `FPGAQ_RND_DOWN: up = inexact && neg;
            `FPGAQ_RND_UP: up = inexact && pos;
            `FPGAQ_RND_ROUND: up = above || (tie && q[0]);
            `FPGAQ_RND_HALF_UP: up = above || (tie && pos);
            default: up = above || (tie && neg);   // `FPGAQ_RND_HALF_DOWN
        endcase
    end
    wire signed [WC-1:0] rounded = q + {{(WC - 1){1'b0}}, up};
    wire signed [WC-1:0] hi_ok = rounded > HI ? HI : rounded;
    wire signed [WC-1:0] sat = hi_ok < LO ? LO : hi_ok;
    assign y = sat[WO-1:0];
endmodule
`default_nettype wire
