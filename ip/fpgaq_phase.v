// fpgaq: the phase of a layer with reuse factor R: 0 in the cycle after start, then 1, ...,
// R - 1, and round again (a phase past R - 1 is never read).
`default_nettype none
module fpgaq_phase #(
    parameter integer R = 2,
    parameter integer WP = 1
) (
    input  wire clk,
    input  wire rst,
    input  wire start,
    output reg  [WP-1:0] phase
);
    localparam integer LAST_I = R - 1;
    localparam [WP-1:0] LAST = LAST_I[WP-1:0];
    always @(posedge clk) begin
        if (rst || start || phase == LAST) phase <= {WP{1'b0}};
        else phase <= phase + 1'b1;
    end
endmodule
`default_nettype wire
