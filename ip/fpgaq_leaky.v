// fpgaq: LeakyRelu / PRelu on an integer code, exactly as fpgaq.ir.ops.LeakyRelu computes it:
//
//   y = x << SHP     where x >= 0
//   y = n << SHN     where x < 0   (n = x times the odd part of the slope, built outside)
//
// computed modulo 2**WO: fpgaq proves from exact intervals that both fit in WO bits.
`default_nettype none
module fpgaq_leaky #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer WN = 8,
    parameter integer SN = 1,
    parameter integer SHP = 0,
    parameter integer SHN = 0,
    parameter integer WO = 8
) (
    input  wire [WI-1:0] x,
    input  wire [WN-1:0] n,
    output wire [WO-1:0] y
);
    wire [WO-1:0] xe, ne;
    fpgaq_ext #(.WI(WI), .SI(SI), .WO(WO)) u_x (.x(x), .y(xe));
    fpgaq_ext #(.WI(WN), .SI(SN), .WO(WO)) u_n (.x(n), .y(ne));
    assign y = (SI != 0 && x[WI-1]) ? (ne << SHN) : (xe << SHP);
endmodule
`default_nettype wire
