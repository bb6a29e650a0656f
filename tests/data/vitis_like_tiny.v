// A hand-written stand-in for the RTL Vitis HLS exports from fpgaq's HLS project of
// modelgen.qonnx_mlp([4, 6, 3], rng=0) (top function `tiny`): the same ports as the exported
// module (ap_ctrl_hs block protocol; each array partitioned into a port an element, ap_vld on
// each), here accepting an input every II cycles. The arithmetic is fpgaq's own core `tiny_core`.
`default_nettype none
module tiny #(
    parameter integer II = 2
) (
    input  wire ap_clk,
    input  wire ap_rst,
    input  wire ap_start,
    output wire ap_done,
    output wire ap_idle,
    output wire ap_ready,
    input  wire [7:0] quant_0,
    input  wire [7:0] quant_1,
    input  wire [7:0] quant_2,
    input  wire [7:0] quant_3,
    input  wire quant_0_ap_vld,
    input  wire quant_1_ap_vld,
    input  wire quant_2_ap_vld,
    input  wire quant_3_ap_vld,
    output wire [7:0] out0_quant_2_0,
    output wire [7:0] out0_quant_2_1,
    output wire [7:0] out0_quant_2_2,
    output wire out0_quant_2_0_ap_vld,
    output wire out0_quant_2_1_ap_vld,
    output wire out0_quant_2_2_ap_vld
);
    reg [7:0] phase;
    always @(posedge ap_clk) begin
        if (ap_rst) phase <= 8'd0;
        else if (phase != 8'd0 || ap_start) phase <= (phase == II - 1) ? 8'd0 : phase + 8'd1;
    end
    assign ap_ready = ap_start && phase == 8'd0;
    wire take = ap_ready && quant_0_ap_vld && quant_1_ap_vld && quant_2_ap_vld && quant_3_ap_vld;

    wire valid;
    wire [23:0] data;
    tiny_core u_core (
        .clk(ap_clk), .rst(ap_rst), .in_valid(take),
        .in_data({quant_3, quant_2, quant_1, quant_0}),
        .out_valid(valid), .out_data(data)
    );
    assign out0_quant_2_0 = data[7:0];
    assign out0_quant_2_1 = data[15:8];
    assign out0_quant_2_2 = data[23:16];
    assign out0_quant_2_0_ap_vld = valid;
    assign out0_quant_2_1_ap_vld = valid;
    assign out0_quant_2_2_ap_vld = valid;
    assign ap_done = valid;
    assign ap_idle = !ap_start && !valid;
endmodule
`default_nettype wire
