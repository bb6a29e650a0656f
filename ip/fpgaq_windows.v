// fpgaq: the line buffer of a convolution or pooling in a streaming design: the taps of every
// window, one window a cycle at most. It walks the padded image in raster order (axis 2
// fastest), a position a cycle: a real position (real_pos) takes the next input pixel (C codes of W
// bits), a padding position the code PAD in every channel. The last REACH pixels are kept in
// a shift register; where the newest is a window's last tap, the window is written: tap t at
// [t*C*W +: C*W], tap t being the pixel OFFSETS[t] places from the oldest. Per axis d (size
// N<d> padded; 1 where the image has fewer axes), bit q of IN<d> says position q is real and
// bit q of LAST<d> that a window ends there. The walk waits for an input pixel, and for room
// at the output (out_ok) where it writes a window, which it reserves then and pushes a cycle
// later. As fpgaq's HLS line buffer (fpgaq_stream.h) computes it.
`default_nettype none
module fpgaq_windows #(
    parameter integer C = 1,
    parameter integer W = 8,
    parameter integer TAPS = 1,
    parameter integer REACH = 1,
    parameter integer N0 = 1,
    parameter integer N1 = 1,
    parameter integer N2 = 1,
    parameter [N0-1:0] IN0 = 1'b1,
    parameter [N1-1:0] IN1 = 1'b1,
    parameter [N2-1:0] IN2 = 1'b1,
    parameter [N0-1:0] LAST0 = 1'b1,
    parameter [N1-1:0] LAST1 = 1'b1,
    parameter [N2-1:0] LAST2 = 1'b1,
    parameter [32*TAPS-1:0] OFFSETS = 0,
    parameter [W-1:0] PAD = 0
) (
    input  wire clk,
    input  wire rst,
    input  wire in_valid,
    input  wire [C*W-1:0] in_data,
    output wire in_pop,
    input  wire out_ok,
    output wire out_reserve,
    output reg  out_push,
    output reg  [TAPS*C*W-1:0] out_data
);
    localparam integer B0 = N0 > 1 ? $clog2(N0) : 1;
    localparam integer B1 = N1 > 1 ? $clog2(N1) : 1;
    localparam integer B2 = N2 > 1 ? $clog2(N2) : 1;
    reg [B0-1:0] q0;
    reg [B1-1:0] q1;
    reg [B2-1:0] q2;
    wire real_pos = IN0[q0] & IN1[q1] & IN2[q2];
    wire ends = LAST0[q0] & LAST1[q1] & LAST2[q2];
    wire step = (!real_pos || in_valid) && (!ends || out_ok);
    assign in_pop = step && real_pos;
    assign out_reserve = step && ends;
    wire [C*W-1:0] px = real_pos ? in_data : {C{PAD}};

    // the shift register: buffer[REACH-1] the newest pixel; after a step, position i holds
    // what i + 1 held (the newest: px)
    reg [C*W-1:0] buffer [0:REACH-1];
    wire [C*W-1:0] shifted [0:REACH-1];
    genvar i, t;
    generate
        for (i = 0; i + 1 < REACH; i = i + 1) begin : g_shift
            assign shifted[i] = buffer[i + 1];
            always @(posedge clk) if (step) buffer[i] <= buffer[i + 1];
        end
    endgenerate
    assign shifted[REACH - 1] = px;
    always @(posedge clk) if (step) buffer[REACH - 1] <= px;

    wire [TAPS*C*W-1:0] window;
    generate
        for (t = 0; t < TAPS; t = t + 1) begin : g_tap
            assign window[t*C*W +: C*W] = shifted[OFFSETS[32*t +: 32]];
        end
    endgenerate

    always @(posedge clk) begin
        if (rst) begin
            q0 <= 0;
            q1 <= 0;
            q2 <= 0;
            out_push <= 1'b0;
        end else begin
            out_push <= step && ends;
            if (step) begin        // the next padded position, axis 2 fastest
                if ({{(32 - B2){1'b0}}, q2} != N2 - 1) q2 <= q2 + 1'b1;
                else begin
                    q2 <= 0;
                    if ({{(32 - B1){1'b0}}, q1} != N1 - 1) q1 <= q1 + 1'b1;
                    else begin
                        q1 <= 0;
                        q0 <= ({{(32 - B0){1'b0}}, q0} == N0 - 1) ? {B0{1'b0}} : q0 + 1'b1;
                    end
                end
            end
        end
        if (step && ends) out_data <= window;
    end
endmodule
`default_nettype wire
