// fpgaq: thresholds on an integer code (FINN's MultiThreshold), exactly as
// fpgaq.ir.ops.Threshold computes it:
//
//   y = START + STEP * (the number of k with x >= T[k])
//
// T holds N thresholds of WT bits each (two's complement, threshold k at [k*WT +: WT]); WT
// holds every code of x and every threshold. fpgaq passes only the thresholds that the input's
// proven range can cross, and proves that y fits in WO bits, so the arithmetic modulo 2**WO
// is exact.
`default_nettype none
module fpgaq_threshold #(
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer N = 1,
    parameter integer WT = 9,
    parameter [N*WT-1:0] T = 0,
    parameter integer START = 0,
    parameter integer STEP = 1,
    parameter integer WO = 2
) (
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    wire [WT-1:0] xe;
    fpgaq_ext #(.WI(WI), .SI(SI), .WO(WT)) u_x (.x(x), .y(xe));
    localparam [31:0] START_BITS = START;
    localparam [31:0] STEP_BITS = STEP;
    reg [WO-1:0] acc;
    integer k;
    always @(*) begin
        acc = START_BITS[WO-1:0];
        for (k = 0; k < N; k = k + 1) begin
            if ($signed(xe) >= $signed(T[k*WT +: WT])) begin
                acc = acc + STEP_BITS[WO-1:0];
            end
        end
    end
    assign y = acc;
endmodule
`default_nettype wire
