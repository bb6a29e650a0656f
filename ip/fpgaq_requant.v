// fpgaq: requantize an integer code, exactly as fpgaq.ir.fixed.shift_round and a saturation.
//
//   y = min(max(round(x * 2**-SHIFT), LO), HI)      (SHIFT < 0: an exact left shift)
//
// MODE is the rounding, numbered as fpgaq.ir.fixed.Rounding numbers it (fpgaq_modes.vh, which
// fpgaq generates from it): FLOOR (toward -inf), CEIL (toward +inf), DOWN (toward zero),
// UP (away from zero), ROUND (half to even), HALF_UP (half away from zero), HALF_DOWN (half
// toward zero).
// SAT_LO / SAT_HI switch each bound on; fpgaq turns a bound off where the input's range
// proves it can never bite. With SHIFT = 0 this is a clip, and a ReLU with LO = 0.
// WC is a signed compute width that holds the rounded value (and its +1) and both bounds;
// the result fits in WO bits by construction.
`include "fpgaq_modes.vh"
`default_nettype none
module fpgaq_requant #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer SHIFT = 0,
    parameter integer MODE = 0,
    parameter integer WC = 9,
    parameter integer SAT_LO = 0,
    parameter integer SAT_HI = 0,
    parameter signed [WC-1:0] LO = 0,
    parameter signed [WC-1:0] HI = 0,
    parameter integer WO = 8
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    wire neg = SI != 0 && x[WI-1];
    wire signed [WC-1:0] r;     // the rounded value
    generate
        if (SHIFT > 0) begin : g_round
            wire [WC+SHIFT-1:0] xe;
            fpgaq_ext #(.WI(WI), .SI(SI), .WO(WC + SHIFT)) u_x (.x(x), .y(xe));
            wire [WC-1:0] fl = xe[WC+SHIFT-1:SHIFT];
            wire [SHIFT-1:0] rem = xe[SHIFT-1:0];
            wire half = rem[SHIFT-1];               // the dropped bits are >= one half
            wire inexact = |rem;
            wire above;                             // the dropped bits are > one half
            if (SHIFT > 1) begin : g_above
                assign above = half && |rem[SHIFT-2:0];
            end else begin : g_above1
                assign above = 1'b0;
            end
            wire tie = half && !above;
            reg up;
            always @(*) begin
                case (MODE)
                    `FPGAQ_RND_FLOOR: up = 1'b0;
                    `FPGAQ_RND_CEIL: up = inexact;
                    `FPGAQ_RND_DOWN: up = neg && inexact;
                    `FPGAQ_RND_UP: up = !neg && inexact;
                    `FPGAQ_RND_ROUND: up = above || (tie && fl[0]);
                    `FPGAQ_RND_HALF_UP: up = above || (tie && !neg);
                    default: up = above || (tie && neg);   // `FPGAQ_RND_HALF_DOWN
                endcase
            end
            assign r = fl + {{(WC - 1){1'b0}}, up};
        end else if (SHIFT < 0) begin : g_left
            wire [WC+SHIFT-1:0] xe;
            fpgaq_ext #(.WI(WI), .SI(SI), .WO(WC + SHIFT)) u_x (.x(x), .y(xe));
            assign r = {xe, {(-SHIFT){1'b0}}};
        end else begin : g_same
            fpgaq_ext #(.WI(WI), .SI(SI), .WO(WC)) u_x (.x(x), .y(r));
        end
    endgenerate
    wire signed [WC-1:0] hi_ok = (SAT_HI != 0 && r > HI) ? HI : r;
    wire signed [WC-1:0] sat = (SAT_LO != 0 && r < LO) ? LO : hi_ok;
    assign y = sat[WO-1:0];
endmodule
`default_nettype wire
