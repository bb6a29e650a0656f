// fpgaq: the fixed top of a network for a trigger path.
//
// Ports (the same for every network; widths come from fpgaq_params.vh, written with the design):
//   clk        the processing clock (the design was pipelined for the --clock-ns it was built with)
//   rst        synchronous, active high; clears the valid pipeline only
//   in_valid   in_data holds a new input this cycle
//   in_ready   an input is taken where in_valid and in_ready are both high: always at II 1 (a
//              new input every cycle); one every `FPGAQ_II cycles where dense layers have reuse
//              factors above 1
//   in_data    [`FPGAQ_IN_BITS-1:0] the input codes, element 0 in the low bits
//   out_valid  out_data holds the result of the input given LATENCY cycles before
//   out_data   [`FPGAQ_OUT_BITS-1:0] the output codes, element 0 in the low bits
// The bit layout of in_data and out_data is listed at the top of the generated core.
//
// Latency: LATENCY = `FPGAQ_LATENCY + REG_IN + REG_OUT clock cycles, fixed, data independent.
// REG_IN = 1 registers the inputs, so in_data may come from logic rather than a register;
// REG_OUT = 1 adds a register after the core for routing across the device.
`default_nettype none
`include "fpgaq_params.vh"
module fpgaq_trigger_top #(
    parameter integer REG_IN = 1,
    parameter integer REG_OUT = 0
) (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    output wire in_ready,
    input  wire [`FPGAQ_IN_BITS-1:0] in_data,
    output wire out_valid,
    output wire [`FPGAQ_OUT_BITS-1:0] out_data
);
    localparam integer LATENCY = `FPGAQ_LATENCY + REG_IN + REG_OUT;
    localparam integer II = `FPGAQ_II;

    // the core takes an input every II cycles; it sees the inputs taken here REG_IN cycles
    // later, in the same rhythm, so a count of the cycles since the last one says when
    wire take = in_valid && in_ready;
    generate
        if (II > 1) begin : g_gap
            localparam integer GW = $clog2(II);
            localparam integer LAST_I = II - 1;
            localparam [GW-1:0] LAST = LAST_I[GW-1:0];
            reg [GW-1:0] gap_q;
            always @(posedge clk) begin
                if (rst) gap_q <= LAST;
                else if (take) gap_q <= {GW{1'b0}};
                else if (gap_q != LAST) gap_q <= gap_q + 1'b1;
            end
            assign in_ready = gap_q == LAST;
        end else begin : g_every
            assign in_ready = 1'b1;
        end
    endgenerate

    wire core_in_valid, core_out_valid;
    wire [`FPGAQ_IN_BITS-1:0] core_in_data;
    wire [`FPGAQ_OUT_BITS-1:0] core_out_data;

    generate
        if (REG_IN != 0) begin : g_reg_in
            reg v_q;
            reg [`FPGAQ_IN_BITS-1:0] d_q;
            always @(posedge clk) begin
                v_q <= rst ? 1'b0 : take;
                d_q <= in_data;
            end
            assign core_in_valid = v_q;
            assign core_in_data = d_q;
        end else begin : g_in
            assign core_in_valid = take;
            assign core_in_data = in_data;
        end
    endgenerate

    `FPGAQ_CORE u_core (
        .clk(clk), .rst(rst),
        .in_valid(core_in_valid), .in_ready(), .in_data(core_in_data),
        .out_valid(core_out_valid), .out_data(core_out_data)
    );

    generate
        if (REG_OUT != 0) begin : g_reg_out
            reg v_q;
            reg [`FPGAQ_OUT_BITS-1:0] d_q;
            always @(posedge clk) begin
                v_q <= rst ? 1'b0 : core_out_valid;
                d_q <= core_out_data;
            end
            assign out_valid = v_q;
            assign out_data = d_q;
        end else begin : g_out
            assign out_valid = core_out_valid;
            assign out_data = core_out_data;
        end
    endgenerate
endmodule
`default_nettype wire
