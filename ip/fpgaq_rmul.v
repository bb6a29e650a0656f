// fpgaq: one multiplier shared by R products of a dense layer (reuse factor R).
//
// In phase p (0 <= p < R) it multiplies operand p of x (R operands of WX bits, operand 0 in the
// low bits) by weight p of W (R constants of WW bits, two's complement), modulo 2**WO: fpgaq
// proves from exact intervals that every product fits in WO bits, so the result is exact. A
// phase without a product has weight 0. The weights are a small ROM addressed by the phase;
// the product is a real multiplication, which synthesis may place on a DSP (DSP = 1) or is told
// to build in LUTs (DSP = 0: a narrow product, or a design without DSPs).
`default_nettype none
module fpgaq_rmul #(
    parameter integer R = 2,            // products a multiplier computes, one a cycle
    parameter integer WP = 1,           // width of phase
    parameter integer WX = 8,           // width of each operand
    parameter integer SX = 1,           // the operands are two's complement (1) or unsigned (0)
    parameter integer WW = 8,           // width of each weight (two's complement)
    parameter [R*WW-1:0] W = {R*WW{1'b0}},
    parameter integer WO = 16,          // width of y
    parameter integer DSP = 1           // 0: the product in LUTs (use_dsp = "no")
) (
    input  wire [WP-1:0] phase,
    input  wire [R*WX-1:0] x,
    output wire [WO-1:0] y
);
    reg [WX-1:0] xs;
    reg [WW-1:0] ws;
    integer k;
    always @* begin
        xs = x[WX-1:0];
        ws = W[WW-1:0];
        for (k = 1; k < R; k = k + 1)
            if (phase == k[WP-1:0]) begin
                xs = x[k*WX +: WX];
                ws = W[k*WW +: WW];
            end
    end
    wire [WO-1:0] xe, we;
    fpgaq_ext #(.WI(WX), .SI(SX), .WO(WO)) u_x (.x(xs), .y(xe));
    fpgaq_ext #(.WI(WW), .SI(1), .WO(WO)) u_w (.x(ws), .y(we));
    // signed: the low WO bits are the same, and synthesis sees that the operands' top bits are
    // copies of their sign bits and trims the multiplier to the operands' real widths
    generate
        if (DSP != 0) begin : g_dsp
            assign y = $signed(xe) * $signed(we);
        end else begin : g_lut
            (* use_dsp = "no" *) wire [WO-1:0] p;
            assign p = $signed(xe) * $signed(we);
            assign y = p;
        end
    endgenerate
endmodule
`default_nettype wire
