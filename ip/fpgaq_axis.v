// fpgaq: an AXI4-Stream wrapper around a network, with back-pressure.
//
// One transfer on s_axis is one input (in_data in the low `FPGAQ_IN_BITS of TDATA, the rest
// ignored); one transfer on m_axis is its result (out_data in the low `FPGAQ_OUT_BITS bits,
// the rest zero). TDATA widths are rounded up to whole bytes. TLAST travels with its sample.
//
// The core cannot stall, so results land in a FIFO of DEPTH entries, and s_axis_tready
// stays high only while every input in flight is sure of a place in it (credits) and the core
// is ready. With m_axis_tready always high, the wrapper takes an input every `FPGAQ_II cycles
// (every cycle unless dense layers have reuse factors above 1); its latency is the core's,
// `FPGAQ_LATENCY cycles, plus one cycle through the FIFO.
`default_nettype none
`include "fpgaq_params.vh"
module fpgaq_axis (
    input  wire aclk,
    input  wire aresetn,
    input  wire [((`FPGAQ_IN_BITS + 7) / 8) * 8 - 1:0] s_axis_tdata,
    input  wire s_axis_tvalid,
    output wire s_axis_tready,
    input  wire s_axis_tlast,
    output wire [((`FPGAQ_OUT_BITS + 7) / 8) * 8 - 1:0] m_axis_tdata,
    output wire m_axis_tvalid,
    input  wire m_axis_tready,
    output wire m_axis_tlast
);
    localparam integer IN_W = ((`FPGAQ_IN_BITS + 7) / 8) * 8;
    localparam integer OUT_W = ((`FPGAQ_OUT_BITS + 7) / 8) * 8;
    localparam integer LAT = `FPGAQ_LATENCY;
    localparam integer AW = $clog2(LAT + 2);
    localparam integer DEPTH = 1 << AW;
    localparam integer DW = `FPGAQ_OUT_BITS + 1;     // the result and its TLAST

    wire rst = !aresetn;
    wire take = s_axis_tvalid && s_axis_tready;
    wire give = m_axis_tvalid && m_axis_tready;

    // credits: inputs in flight plus results waiting in the FIFO
    reg [AW:0] used;
    always @(posedge aclk) begin
        if (rst) used <= {(AW + 1){1'b0}};
        else if (take && !give) used <= used + 1'b1;
        else if (give && !take) used <= used - 1'b1;
    end
    wire core_ready;
    assign s_axis_tready = !rst && !used[AW] && core_ready;      // used < DEPTH = 2**AW

    wire core_valid;
    wire [`FPGAQ_OUT_BITS-1:0] core_data;
    `FPGAQ_CORE u_core (
        .clk(aclk), .rst(rst),
        .in_valid(take), .in_ready(core_ready), .in_data(s_axis_tdata[`FPGAQ_IN_BITS-1:0]),
        .out_valid(core_valid), .out_data(core_data)
    );

    // TLAST follows its sample through a shift register as long as the core
    reg [LAT-1:0] last_sr;
    generate
        if (LAT > 1) begin : g_last
            always @(posedge aclk) last_sr <= {last_sr[LAT-2:0], s_axis_tlast};
        end else begin : g_last1
            always @(posedge aclk) last_sr <= s_axis_tlast;
        end
    endgenerate

    // the result FIFO
    reg [DW-1:0] mem [0:DEPTH-1];
    reg [AW:0] wptr, rptr;
    always @(posedge aclk) begin
        if (rst) begin
            wptr <= {(AW + 1){1'b0}};
            rptr <= {(AW + 1){1'b0}};
        end else begin
            if (core_valid) wptr <= wptr + 1'b1;
            if (give) rptr <= rptr + 1'b1;
        end
        if (core_valid) mem[wptr[AW-1:0]] <= {last_sr[LAT-1], core_data};
    end
    wire [DW-1:0] head = mem[rptr[AW-1:0]];
    assign m_axis_tvalid = wptr != rptr;
    assign m_axis_tlast = head[DW-1];
    generate
        if (OUT_W > `FPGAQ_OUT_BITS) begin : g_pad
            assign m_axis_tdata = {{(OUT_W - `FPGAQ_OUT_BITS){1'b0}}, head[DW-2:0]};
        end else begin : g_nopad
            assign m_axis_tdata = head[DW-2:0];
        end
    endgenerate
endmodule
`default_nettype wire
