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
    assign ok = held < DEPTH;
    assign valid = count != 0;
    assign dout = mem[rp];
    always @(posedge clk) begin
        if (push) mem[wp] <= din;
        if (rst) begin
            wp <= 0;
            rp <= 0;
            count <= 0;
            held <= 0;
        end else begin
            if (push) wp <= (wp == DEPTH - 1) ? {AW{1'b0}} : wp + 1'b1;
            if (pop) rp <= (rp == DEPTH - 1) ? {AW{1'b0}} : rp + 1'b1;
            count <= count + push - pop;
            held <= held + reserve - pop;
        end
    end
endmodule
`default_nettype wire
