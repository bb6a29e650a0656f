// fpgaq: the fixed top of a network for a trigger path.
//
// Ports (the same for every network; widths come from fpgaq_params.vh, written with the design):
//   clk        the processing clock (the design was pipelined for the --clock-ns it was built with)
//   rst        synchronous, active high; clears the valid pipeline only
//   in_valid   in_data holds a new input this cycle (one every cycle is fine: II = 1)
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
    input  wire [`FPGAQ_IN_BITS-1:0] in_data,
    output wire out_valid,
    output wire [`FPGAQ_OUT_BITS-1:0] out_data
);
    localparam integer LATENCY = `FPGAQ_LATENCY + REG_IN + REG_OUT;

    wire core_in_valid, core_out_valid;
    wire [`FPGAQ_IN_BITS-1:0] core_in_data;
    wire [`FPGAQ_OUT_BITS-1:0] core_out_data;

    generate
        if (REG_IN != 0) begin : g_reg_in
            reg v_q;
            reg [`FPGAQ_IN_BITS-1:0] d_q;
            always @(posedge clk) begin
                v_q <= rst ? 1'b0 : in_valid;
                d_q <= in_data;
            end
            assign core_in_valid = v_q;
            assign core_in_data = d_q;
        end else begin : g_in
            assign core_in_valid = in_valid;
            assign core_in_data = in_data;
        end
    endgenerate

    `FPGAQ_CORE u_core (
        .clk(clk), .rst(rst),
        .in_valid(core_in_valid), .in_data(core_in_data),
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
