// fpgaq's io_stream stages: a stream carries pixels, each a vector of its channels. The
// per-pixel arithmetic is fpgaq_kernels.h's; these move pixels: line-buffer windows, frame
// regrouping, clones and copies. Each is specialised by its sizes and constant tables.
#ifndef FPGAQ_STREAM_H
#define FPGAQ_STREAM_H

#include "hls_stream.h"
#include "fpgaq_kernels.h"

namespace fpgaq {

// One pixel: the codes of its channels.
template <class T, int N>
struct vec {
    T data[N];
};

// --- windows: the taps of every window of a convolution or pooling, from a line buffer ---
// The input is read in raster order; the padded image is walked pixel by pixel (a padding
// pixel holds PAD), the last REACH pixels kept in a shift register. Where the newest pixel is
// a window's last tap, the window is written: tap t, channel c at t * C + c, tap t being the
// pixel offset[t] places from the oldest. geometry rows: padded size, first and end of the
// real input, kernel, stride, dilation, output size; one column an axis.
template <int RANK, int C, int TAPS, int REACH, int PADDED, class PAD_T, class T, class OUT_T>
void windows(hls::stream<vec<T, C> > &in, hls::stream<vec<OUT_T, TAPS * C> > &out, const int geometry[7][RANK],
             const int offset[TAPS], const long long pad) {
    vec<T, C> buffer[REACH];
#pragma HLS ARRAY_PARTITION variable = buffer complete dim = 0
    int q[RANK];
    for (int d = 0; d < RANK; d++) q[d] = 0;
    vec<T, C> fill;
    for (int c = 0; c < C; c++) set_code(fill.data[c], PAD_T(pad));
    for (int n = 0; n < PADDED; n++) {
#pragma HLS PIPELINE II = 1
        bool inside = true, last = true;
        for (int d = 0; d < RANK; d++) {
#pragma HLS UNROLL
            inside = inside && q[d] >= geometry[1][d] && q[d] < geometry[2][d];
            int s = q[d] - (geometry[3][d] - 1) * geometry[5][d];
            last = last && s >= 0 && s % geometry[4][d] == 0 && s / geometry[4][d] < geometry[6][d];
        }
        vec<T, C> px = inside ? in.read() : fill;
        for (int i = 0; i + 1 < REACH; i++) {
#pragma HLS UNROLL
            buffer[i] = buffer[i + 1];
        }
        buffer[REACH - 1] = px;
        if (last) {
            vec<OUT_T, TAPS * C> w;
            for (int t = 0; t < TAPS; t++) {
#pragma HLS UNROLL
                for (int c = 0; c < C; c++) {
#pragma HLS UNROLL
                    w.data[t * C + c] = buffer[offset[t]].data[c];
                }
            }
            out.write(w);
        }
        for (int d = RANK - 1; d >= 0; d--) {    // the next padded pixel, the last axis fastest
            if (++q[d] < geometry[0][d]) break;
            q[d] = 0;
        }
    }
}

// --- max_taps: out[c] = the largest of in[t * n + c] over the taps t (a pooling window) ---
// CFG: n (channels), taps, wide_t.
template <class CFG, class IN_T, class OUT_T>
void max_taps(const IN_T in[CFG::taps * CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int c = 0; c < CFG::n; c++) {
#pragma HLS UNROLL
        typename CFG::wide_t top = code(in[c]);
        for (int t = 1; t < CFG::taps; t++) {
#pragma HLS UNROLL
            typename CFG::wide_t v = code(in[t * CFG::n + c]);
            if (v > top) top = v;
        }
        set_code(out[c], top);
    }
}

// --- regroup: a whole frame in (IN_P pixels of IN_C), then out in another grouping (OUT_P of
// OUT_C); order[k]: the arrival position of the k-th element written (a Flatten's collect) ---
template <int N, int IN_P, int IN_C, int OUT_P, int OUT_C, class T, class OUT_T>
void regroup(hls::stream<vec<T, IN_C> > &in, hls::stream<vec<OUT_T, OUT_C> > &out, const int order[N]) {
    T frame[N];
    for (int p = 0; p < IN_P; p++) {
#pragma HLS PIPELINE II = 1
        vec<T, IN_C> x = in.read();
        for (int c = 0; c < IN_C; c++) {
#pragma HLS UNROLL
            frame[p * IN_C + c] = x.data[c];
        }
    }
    for (int p = 0; p < OUT_P; p++) {
#pragma HLS PIPELINE II = 1
        vec<OUT_T, OUT_C> y;
        for (int c = 0; c < OUT_C; c++) {
#pragma HLS UNROLL
            y.data[c] = frame[order[p * OUT_C + c]];
        }
        out.write(y);
    }
}

// --- copy: every pixel to another stream (a port); the same type, perhaps another name ---
template <int P, class V>
void copy_stream(hls::stream<V> &in, hls::stream<V> &out) {
    for (int p = 0; p < P; p++) {
#pragma HLS PIPELINE II = 1
        out.write(in.read());
    }
}

}  // namespace fpgaq

#endif
