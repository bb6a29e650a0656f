// fpgaq's hand-written HLS kernels. Each is specialised by a small generated config struct.
// Tensors are arrays of ap_fixed / ap_ufixed; arithmetic works on their integer codes, with
// widths that fpgaq proved wide enough, so nothing here can overflow.
#ifndef FPGAQ_KERNELS_H
#define FPGAQ_KERNELS_H

#include "ap_fixed.h"
#include "ap_int.h"
#include "fpgaq_modes.h"

namespace fpgaq {

// The integer code of a fixed-point value (its bits, read as a signed integer).
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
ap_int<W + 1> code(const ap_fixed<W, I, Q, O, N> &x) {
    ap_int<W> c;
    c.range() = x.range();
    return c;
}
template <int W, int I, ap_q_mode Q, ap_o_mode O, int N>
ap_int<W + 1> code(const ap_ufixed<W, I, Q, O, N> &x) {
    ap_uint<W> c;
    c.range() = x.range();
    return c;
}

// Store an integer code (already proved to fit) into a fixed-point value.
template <class T, int CW>
void set_code(T &x, const ap_int<CW> &c) {
    x.range() = c.range(T::width - 1, 0);
}

// c * 2**-SHIFT rounded to an integer with MODE (SHIFT > 0), exactly.
template <rounding_t MODE, int SHIFT, int CW>
ap_int<CW + 1> shift_round(const ap_int<CW> &c) {
    ap_int<CW + 1> floor = c >> SHIFT;
    ap_uint<SHIFT> rem = c.range(SHIFT - 1, 0);
    const ap_uint<SHIFT> half = ap_uint<SHIFT>(1) << (SHIFT - 1);
    bool exact = rem == 0, neg = c < 0, up;
    switch (MODE) {
    case RND_FLOOR: up = false; break;
    case RND_CEIL: up = !exact; break;
    case RND_DOWN: up = neg && !exact; break;
    case RND_UP: up = !neg && !exact; break;
    case RND_ROUND: up = rem > half || (rem == half && floor[0]); break;
    case RND_HALF_UP: up = rem > half || (rem == half && !neg); break;
    default: up = rem > half || (rem == half && neg); break;
    }
    return floor + (up ? 1 : 0);
}

// --- dense: out = W in + b, iterating a compile-time list of the non-zero weights only ---
// CFG: n_in, n_out, n_nonzero, acc_t (ap_int wide enough for every accumulator),
// weight_t (ap_int of the weight codes), reuse, multipliers (= ceil(n_nonzero / reuse)),
// weight_store_t / bias_store_t: the plain C++ integers the constants are stored in (they
// compile far faster than arrays of ap_int; each value is converted where it is used).
template <class CFG, class IN_T, class OUT_T>
void dense_products(const IN_T in[CFG::n_in], OUT_T out[CFG::n_out],
                    const typename CFG::weight_store_t weight[CFG::n_nonzero], const short row[CFG::n_nonzero],
                    const short col[CFG::n_nonzero], const typename CFG::bias_store_t bias[CFG::n_out]) {
#pragma HLS INLINE
    typename CFG::acc_t acc[CFG::n_out];
#pragma HLS ARRAY_PARTITION variable = acc complete
init:
    for (int o = 0; o < CFG::n_out; o++) {
#pragma HLS UNROLL
        acc[o] = typename CFG::acc_t(bias[o]);
    }
    // each input's code once, not once a product (in C-simulation a code is a bit-range copy,
    // and an input feeds many products; in hardware both are the same wires)
    ap_int<IN_T::width + 1> x[CFG::n_in];
#pragma HLS ARRAY_PARTITION variable = x complete
codes:
    for (int i = 0; i < CFG::n_in; i++) {
#pragma HLS UNROLL
        x[i] = code(in[i]);
    }
products:
    for (int k = 0; k < CFG::n_nonzero; k++) {
#pragma HLS UNROLL
        acc[row[k]] += typename CFG::weight_t(weight[k]) * x[col[k]];
    }
store:
    for (int o = 0; o < CFG::n_out; o++) {
#pragma HLS UNROLL
        set_code(out[o], acc[o]);
    }
}

// Reuse 1: every product has its own (constant) multiplier; inlined into the top's pipeline.
template <class CFG, class IN_T, class OUT_T>
void dense(const IN_T in[CFG::n_in], OUT_T out[CFG::n_out],
           const typename CFG::weight_store_t weight[CFG::n_nonzero], const short row[CFG::n_nonzero],
           const short col[CFG::n_nonzero], const typename CFG::bias_store_t bias[CFG::n_out]) {
#pragma HLS INLINE
    dense_products<CFG>(in, out, weight, row, col, bias);
}

// Reuse R > 1: CFG::multipliers multipliers, each used R times; a new input every R cycles.
template <class CFG, class IN_T, class OUT_T>
void dense_reuse(const IN_T in[CFG::n_in], OUT_T out[CFG::n_out],
                 const typename CFG::weight_store_t weight[CFG::n_nonzero], const short row[CFG::n_nonzero],
                 const short col[CFG::n_nonzero], const typename CFG::bias_store_t bias[CFG::n_out]) {
#pragma HLS INLINE off
#pragma HLS PIPELINE II = CFG::reuse
#pragma HLS ALLOCATION operation instances = mul limit = CFG::multipliers
#pragma HLS ARRAY_RESHAPE variable = weight cyclic factor = CFG::multipliers
#pragma HLS ARRAY_RESHAPE variable = row cyclic factor = CFG::multipliers
#pragma HLS ARRAY_RESHAPE variable = col cyclic factor = CFG::multipliers
    dense_products<CFG>(in, out, weight, row, col, bias);
}

// --- quantize: round and saturate, by ap_fixed's own modes (the type of OUT_T) ---
template <class CFG, class IN_T, class OUT_T>
void quantize_ap(const IN_T in[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        out[i] = in[i];
    }
}

// c * 2**-CFG::shift rounded with CFG::mode (a left shift when shift <= 0), then saturated
// to [CFG::lo, CFG::hi]: the integer core of every explicit requantisation.
template <class CFG>
typename CFG::wide_t rescale(const typename CFG::wide_t &c) {
#pragma HLS INLINE
    typename CFG::wide_t r;
    if (CFG::shift > 0)
        r = shift_round<CFG::mode, (CFG::shift > 0 ? CFG::shift : 1)>(c);
    else
        r = c << (CFG::shift < 0 ? -CFG::shift : 0);
    if (r < CFG::lo) r = CFG::lo;
    if (r > CFG::hi) r = CFG::hi;
    return r;
}

// --- quantize: explicit integer rounding and clamping, for modes ap_fixed lacks ---
// CFG: n, shift (input frac - output frac), mode, lo, hi (output codes), wide_t.
template <class CFG, class IN_T, class OUT_T>
void quantize_explicit(const IN_T in[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        set_code(out[i], rescale<CFG>(typename CFG::wide_t(code(in[i]))));
    }
}

// --- requantize (float scales): code * multiplier[c] + offset[c], rounded right by shift, saturated ---
// CFG: n, shift, mode, lo, hi, n_multipliers, n_offsets (1: one for all channels), wide_t,
// multiplier_store_t, offset_store_t.
template <class CFG, class IN_T, class OUT_T>
void requantize(const IN_T in[CFG::n], OUT_T out[CFG::n],
                const typename CFG::multiplier_store_t multiplier[CFG::n_multipliers],
                const typename CFG::offset_store_t offset[CFG::n_offsets]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        typename CFG::wide_t p = typename CFG::wide_t(code(in[i])) * multiplier[CFG::n_multipliers == 1 ? 0 : i]
                                 + offset[CFG::n_offsets == 1 ? 0 : i];
        set_code(out[i], rescale<CFG>(p));
    }
}

// --- quantize_one: one element of a per-element quantizer (HGQ's heterogeneous quantization):
// rounded right by SHIFT with MODE (or widened, SHIFT <= 0), saturated to [lo, hi] on its own
// grid, then given UP more fraction bits (the tensor's common grid). WIDE_T holds every step.
template <rounding_t MODE, int SHIFT, int UP, class WIDE_T, class IN_T, class OUT_T>
void quantize_one(const IN_T &in, OUT_T &out, const long long lo, const long long hi) {
#pragma HLS INLINE
    WIDE_T c = code(in);
    WIDE_T y;
    if (SHIFT > 0) {
        y = shift_round<MODE, (SHIFT > 0 ? SHIFT : 1)>(c);
    } else {
        y = c << (SHIFT < 0 ? -SHIFT : 0);
    }
    if (y < WIDE_T(lo)) y = lo;
    if (y > WIDE_T(hi)) y = hi;
    y = y << UP;
    set_code(out, y);
}

// --- threshold: out = start[c] + step * (the number of thresholds[c][k] that code <= x) ---
// CFG: n, n_rows (1: one row for all channels), k (thresholds a row), step, wide_t (holds
// the input's codes and every threshold), threshold_store_t, start_store_t, count_t.
template <class CFG, class IN_T, class OUT_T>
void threshold(const IN_T in[CFG::n], OUT_T out[CFG::n],
               const typename CFG::threshold_store_t thresholds[CFG::n_rows][CFG::k],
               const typename CFG::start_store_t start[CFG::n_rows]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        const int row = CFG::n_rows == 1 ? 0 : i;
        typename CFG::wide_t c = code(in[i]);
        typename CFG::count_t count = 0;
        for (int k = 0; k < CFG::k; k++) {
#pragma HLS UNROLL
            count += c >= typename CFG::wide_t(thresholds[row][k]) ? 1 : 0;
        }
        typename CFG::wide_t y = typename CFG::wide_t(start[row]) + typename CFG::wide_t(count) * CFG::step;
        set_code(out[i], y);
    }
}

// --- relu and clip on codes, at the input's fraction bits ---
template <class CFG, class IN_T, class OUT_T>
void relu(const IN_T in[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        typename CFG::wide_t c = code(in[i]);
        set_code(out[i], c < 0 ? typename CFG::wide_t(0) : c);
    }
}

template <class CFG, class IN_T, class OUT_T>
void clip(const IN_T in[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        typename CFG::wide_t c = code(in[i]);
        if (c < CFG::lo) c = CFG::lo;
        if (c > CFG::hi) c = CFG::hi;
        set_code(out[i], c);
    }
}

// --- leaky_relu: x << shift where x >= 0, else x * slope (LeakyRelu, PRelu) ---
// CFG: n, shift, n_slopes (1: one for all), wide_t (holds every result), slope_store_t.
template <class CFG, class IN_T, class OUT_T>
void leaky_relu(const IN_T in[CFG::n], OUT_T out[CFG::n], const typename CFG::slope_store_t slope[CFG::n_slopes]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        typename CFG::wide_t c = code(in[i]);
        typename CFG::wide_t m = slope[CFG::n_slopes == 1 ? 0 : i];
        typename CFG::wide_t y = c >= 0 ? typename CFG::wide_t(c << CFG::shift) : typename CFG::wide_t(c * m);
        set_code(out[i], y);
    }
}

// --- copy: the same codes, another shape (a reshape or flatten of an N-d tensor) ---
template <class CFG, class IN_T, class OUT_T>
void copy(const IN_T in[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        out[i] = in[i];
    }
}

// --- bipolar: +1 for x >= 0, else -1 ---
template <class CFG, class IN_T, class OUT_T>
void bipolar(const IN_T in[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        set_code(out[i], ap_int<2>(code(in[i]) < 0 ? -1 : 1));
    }
}

// --- lut: out = table[(clamp(x, lo, hi) - lo) >> shift], a tabulated activation ---
// CFG: n, lo, hi, shift, entries, wide_t (holds every code of the input and lo, hi),
// index_t, table_store_t.
template <class CFG, class IN_T, class OUT_T>
void lut(const IN_T in[CFG::n], OUT_T out[CFG::n], const typename CFG::table_store_t table[CFG::entries]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        typename CFG::wide_t c = code(in[i]);
        if (c < typename CFG::wide_t(CFG::lo)) c = CFG::lo;
        if (c > typename CFG::wide_t(CFG::hi)) c = CFG::hi;
        typename CFG::index_t k = (c - typename CFG::wide_t(CFG::lo)) >> CFG::shift;
        set_code(out[i], typename CFG::out_t(table[k]));
    }
}

// --- softmax_table: per row of n_classes codes (fpgaq.ir.ops.SoftmaxTable) ---
//   d = max - x; e = exp_table[min(d, d_hi) >> exp_shift]; s = sum of e;
//   r = inv_table[(min(s, s_hi) - s_lo) >> inv_shift]; y = (e * r + 2**(out_shift-1)) >> out_shift
// CFG: n, n_classes, wide_t (the codes and their differences), exp_t, sum_t, inv_t,
// product_t, d_hi, exp_shift, exp_entries, s_lo, s_hi, inv_shift, inv_entries, out_shift,
// exp_store_t, inv_store_t, out_t.
template <class CFG, class IN_T, class OUT_T>
void softmax_table(const IN_T in[CFG::n], OUT_T out[CFG::n],
                   const typename CFG::exp_store_t exp_table[CFG::exp_entries],
                   const typename CFG::inv_store_t inv_table[CFG::inv_entries]) {
#pragma HLS INLINE
    for (int row = 0; row < CFG::n; row += CFG::n_classes) {
#pragma HLS UNROLL
        typename CFG::wide_t top = code(in[row]);
        for (int i = 1; i < CFG::n_classes; i++) {
#pragma HLS UNROLL
            typename CFG::wide_t c = code(in[row + i]);
            if (c > top) top = c;
        }
        typename CFG::exp_t e[CFG::n_classes];
#pragma HLS ARRAY_PARTITION variable = e complete
        typename CFG::sum_t s = 0;
        for (int i = 0; i < CFG::n_classes; i++) {
#pragma HLS UNROLL
            typename CFG::wide_t d = top - typename CFG::wide_t(code(in[row + i]));
            if (d > typename CFG::wide_t(CFG::d_hi)) d = CFG::d_hi;
            e[i] = exp_table[int(d >> CFG::exp_shift)];
            s += e[i];
        }
        if (s > typename CFG::sum_t(CFG::s_hi)) s = CFG::s_hi;
        typename CFG::inv_t r = inv_table[int((s - typename CFG::sum_t(CFG::s_lo)) >> CFG::inv_shift)];
        for (int i = 0; i < CFG::n_classes; i++) {
#pragma HLS UNROLL
            typename CFG::product_t p = typename CFG::product_t(e[i]) * r;
            p += typename CFG::product_t(1) << (CFG::out_shift - 1);
            set_code(out[row + i], typename CFG::out_t(p >> CFG::out_shift));
        }
    }
}

// --- max_windows: out[o] = the largest of in[index[o][k]] over the taps k (MaxPool) ---
// CFG: n (outputs), n_in, taps, wide_t.
template <class CFG, class IN_T, class OUT_T>
void max_windows(const IN_T in[CFG::n_in], OUT_T out[CFG::n], const int index[CFG::n][CFG::taps]) {
#pragma HLS INLINE
    for (int o = 0; o < CFG::n; o++) {
#pragma HLS UNROLL
        typename CFG::wide_t top = code(in[index[o][0]]);
        for (int k = 1; k < CFG::taps; k++) {
#pragma HLS UNROLL
            typename CFG::wide_t c = code(in[index[o][k]]);
            if (c > top) top = c;
        }
        set_code(out[o], top);
    }
}

// --- add2: out = (a << shift_a) + (b << shift_b), two run-time tensors (a residual Add) ---
template <class CFG, class A_T, class B_T, class OUT_T>
void add2(const A_T a[CFG::n], const B_T b[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        typename CFG::wide_t x = code(a[i]), y = code(b[i]);
        set_code(out[i], typename CFG::wide_t((x << CFG::shift_a) + (y << CFG::shift_b)));
    }
}

// --- copy_shift: one element copied onto a finer grid (a Concat's) ---
template <int SHIFT, class WIDE_T, class IN_T, class OUT_T>
void copy_shift(const IN_T &in, OUT_T &out) {
#pragma HLS INLINE
    WIDE_T c = code(in);
    set_code(out, WIDE_T(c << SHIFT));
}

// --- divide_quantize: clamp(round(x * 2**up / den)) exactly, an average's quantizer ---
// CFG: n, up, den, mode, lo, hi, wide_t (holds x << up, and 2 * den).
template <class CFG, class IN_T, class OUT_T>
void divide_quantize(const IN_T in[CFG::n], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int i = 0; i < CFG::n; i++) {
#pragma HLS UNROLL
        typename CFG::wide_t num = typename CFG::wide_t(code(in[i])) << CFG::up;
        const typename CFG::wide_t den = CFG::den;
        typename CFG::wide_t q = num / den, r = num % den;     // toward zero
        if (r < 0) {                                           // floor
            q -= 1;
            r += den;
        }
        const typename CFG::wide_t twice = r << 1;
        bool up;
        switch (CFG::mode) {
        case RND_FLOOR: up = false; break;
        case RND_CEIL: up = r != 0; break;
        case RND_DOWN: up = r != 0 && num < 0; break;
        case RND_UP: up = r != 0 && num > 0; break;
        case RND_ROUND: up = twice > den || (twice == den && q[0]); break;
        case RND_HALF_UP: up = twice > den || (twice == den && num > 0); break;
        default: up = twice > den || (twice == den && num < 0); break;
        }
        q += up ? 1 : 0;
        if (q < typename CFG::wide_t(CFG::lo)) q = CFG::lo;
        if (q > typename CFG::wide_t(CFG::hi)) q = CFG::hi;
        set_code(out[i], q);
    }
}

// --- argmax: the index of the largest code of each row (the first on a tie) ---
// CFG: n (rows), n_classes, wide_t, out_t.
template <class CFG, class IN_T, class OUT_T>
void argmax(const IN_T in[CFG::n * CFG::n_classes], OUT_T out[CFG::n]) {
#pragma HLS INLINE
    for (int row = 0; row < CFG::n; row++) {
#pragma HLS UNROLL
        typename CFG::wide_t top = code(in[row * CFG::n_classes]);
        int best = 0;
        for (int i = 1; i < CFG::n_classes; i++) {
#pragma HLS UNROLL
            typename CFG::wide_t c = code(in[row * CFG::n_classes + i]);
            if (c > top) {
                top = c;
                best = i;
            }
        }
        set_code(out[row], typename CFG::out_t(best));
    }
}

} // namespace fpgaq

#endif
