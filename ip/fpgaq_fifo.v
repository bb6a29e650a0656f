// fpgaq: a FIFO between two stages of a streaming design, with credits. A producer whose
// result takes cycles to compute reserves a place when it starts (reserve), so that the
// result always has room when it arrives (push); `ok` says a place is free for a reservation.
// A producer that pushes at once reserves and pushes in the same cycle. The consumer reads
// dout while valid and pops it. rst (synchronous, active high) empties it.
`default_nettype none
module fpgaq_fifo #(
    parameter integer W = 8,
    parameter integer DEPTH = 2
) (
    input  wire clk,
    input  wire rst,
    input  wire reserve,
    output wire ok,
    input  wire push,
    input  wire [W-1:0] din,
    input  wire pop,
    output wire valid,
    output wire [W-1:0] dout
);
    localparam integer AW = DEPTH > 1 ? $clog2(DEPTH) : 1;
    localparam integer CW = $clog2(DEPTH + 1);
    reg [W-1:0] mem [0:DEPTH-1];
    reg [AW-1:0] wp, rp;
    reg [CW-1:0] count, held;       // stored; reserved and not yet popped (held >= count)
    assign ok = {{(32 - CW){1'b0}}, held} < DEPTH;      // compared in 32 bits
    assign valid = count != {CW{1'b0}};
    assign dout = mem[rp];
    always @(posedge clk) begin
        if (push) mem[wp] <= din;
        if (rst) begin
            wp <= {AW{1'b0}};
            rp <= {AW{1'b0}};
            count <= {CW{1'b0}};
            held <= {CW{1'b0}};
        end else begin
            if (push) wp <= ({{(32 - AW){1'b0}}, wp} == DEPTH - 1) ? {AW{1'b0}} : wp + 1'b1;
            if (pop) rp <= ({{(32 - AW){1'b0}}, rp} == DEPTH - 1) ? {AW{1'b0}} : rp + 1'b1;
            if (push && !pop) count <= count + 1'b1;
            else if (pop && !push) count <= count - 1'b1;
            if (reserve && !pop) held <= held + 1'b1;
            else if (pop && !reserve) held <= held - 1'b1;
        end
    end
endmodule
`default_nettype wire
