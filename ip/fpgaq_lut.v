// fpgaq: a lookup table on an integer code, exactly as fpgaq.ir.ops.Lut (and the exp and 1/sum
// tables of fpgaq.ir.ops.SoftmaxTable) compute it:
//
//   y = TABLE[(min(max(x, LO), HI) - LO) >> SHIFT]
//
// WT holds every code of x, LO, HI and HI - LO (two's complement); entry k of the table sits at
// TABLE[k*WO +: WO]. fpgaq passes only the entries the input's proven range reaches.
`default_nettype none
module fpgaq_lut #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer WT = 9,
    parameter [WT-1:0] LO = 0,
    parameter [WT-1:0] HI = 0,
    parameter integer SHIFT = 0,
    parameter integer N = 1,
    parameter integer WO = 8,
    parameter [N*WO-1:0] TABLE = 0
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    wire [WT-1:0] xe;
    fpgaq_ext #(.WI(WI), .SI(SI), .WO(WT)) u_x (.x(x), .y(xe));
    wire [WT-1:0] c = ($signed(xe) < $signed(LO)) ? LO : (($signed(xe) > $signed(HI)) ? HI : xe);
    wire [WT-1:0] k = (c - LO) >> SHIFT;
    assign y = TABLE[k*WO +: WO];
endmodule
`default_nettype wire
