// fpgaq: a shared multiplier's product as one output's term: x in the phases where bit p of
// MASK is set, else 0 (the multiplier then works for another output of the layer).
`default_nettype none
module fpgaq_gate #(
    parameter integer R = 2,
    parameter integer WP = 1,
    parameter [R-1:0] MASK = {R{1'b1}},
    parameter integer WI = 8,
    parameter integer SI = 1,
    parameter integer WO = 8
) (
    input  wire [WP-1:0] phase,
    input  wire [WI-1:0] x,
    output wire [WO-1:0] y
);
    reg on;
    integer k;
    always @* begin
        on = 1'b0;
        for (k = 0; k < R; k = k + 1)
            if (phase == k[WP-1:0]) on = MASK[k];
    end
    wire [WO-1:0] xe;
    fpgaq_ext #(.WI(WI), .SI(SI), .WO(WO)) u_x (.x(x), .y(xe));
    assign y = on ? xe : {WO{1'b0}};
endmodule
`default_nettype wire
