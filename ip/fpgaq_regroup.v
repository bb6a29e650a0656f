// fpgaq: a frame buffer in a streaming design (the Flatten before a dense head): a whole frame
// of IN_P pixels of IN_C codes in, then OUT_P pixels of OUT_C codes out in another order.
// ORDER[32*j +: 32] is the arrival position of the j-th code written (pixel j / OUT_C, channel
// j % OUT_C); arrival position k is pixel k / IN_C, channel k % IN_C. Pixels are written one a
// cycle, each reserved at the output (out_ok) and pushed a cycle later. The next frame's first
// pixel may come in the cycle the last pixel goes out: a frame every IN_P + OUT_P - 1 cycles.
`default_nettype none
module fpgaq_regroup #(
    parameter integer W = 8,
    parameter integer IN_P = 1,
    parameter integer IN_C = 1,
    parameter integer OUT_P = 1,
    parameter integer OUT_C = 1,
    parameter [32*OUT_P*OUT_C-1:0] ORDER = 0
) (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    input  wire [IN_C*W-1:0] in_data,
    output wire in_pop,
    input  wire out_ok,
    output wire out_reserve,
    output reg  out_push,
    output reg  [OUT_C*W-1:0] out_data
);
    localparam integer BP = IN_P > 1 ? $clog2(IN_P) : 1;
    localparam integer BK = OUT_P > 1 ? $clog2(OUT_P) : 1;
    reg [IN_C*W-1:0] frame [0:IN_P-1];
    reg [BP-1:0] p;                 // the next pixel in
    reg [BK-1:0] k;                 // the next pixel out, while emitting
    reg emitting;
    wire emit = emitting && out_ok;
    wire done = emit && {{(32 - BK){1'b0}}, k} == OUT_P - 1;      // compared in 32 bits
    assign in_pop = in_valid && (!emitting || done);
    assign out_reserve = emit;

    wire [OUT_C*W-1:0] pixel [0:OUT_P-1];
    genvar j;
    generate
        for (j = 0; j < OUT_P * OUT_C; j = j + 1) begin : g_order
            localparam integer A = ORDER[32*j +: 32];
            assign pixel[j / OUT_C][(j % OUT_C)*W +: W] = frame[A / IN_C][(A % IN_C)*W +: W];
        end
    endgenerate

    always @(posedge clk) begin
        if (in_pop) frame[p] <= in_data;
        if (emit) out_data <= pixel[k];
        if (rst) begin
            p <= 0;
            k <= 0;
            emitting <= 1'b0;
            out_push <= 1'b0;
        end else begin
            out_push <= emit;
            if (emit) k <= done ? {BK{1'b0}} : k + 1'b1;
            if (in_pop) p <= ({{(32 - BP){1'b0}}, p} == IN_P - 1) ? {BP{1'b0}} : p + 1'b1;
            if (in_pop && {{(32 - BP){1'b0}}, p} == IN_P - 1) emitting <= 1'b1;
            else if (done) emitting <= 1'b0;
        end
    end
endmodule
`default_nettype wire
