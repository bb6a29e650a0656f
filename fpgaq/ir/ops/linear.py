"""Linear ops: ONNX's Gemm, MatMul and BatchNormalization as imported, and Dense, the exact
accumulator (weights, bias) the passes fold them into."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..cost import (CONST_SHIFT_ADD_DIGITS, DSP_MIN_PRODUCT_BITS, DSP_STAGES, LUT_MULT_STAGES, BRAM_BITS,
                    LUTRAM_MAX_BITS, Cost, adder_budget, csd_digits, product_dsps, shift_add_luts)
from ..fixed import INT64_SAFE_BITS, FixedType, compact_codes, exact_codes, log2_exact
from ..interval import Interval
from ..tensor import Factor, Tensor
from .base import Args, Op, code_bits, codes_in, frozen, need
from .arith import Add, exact_operand
from .source import Constant

MAX_FLOAT_WEIGHT_FRAC = 24   # a float weight needing more fraction bits is not quantized


def channel_intervals(weight: np.ndarray, bias: np.ndarray, x: Interval) -> tuple[Interval, ...]:
    """Exact range of each accumulator o: sum_i weight[o, i] * x_i + bias[o] over x_i in x."""
    # a row's sum takes the codes' width plus log2 of the row's length: past 63 bits, Python ints
    bits = Interval.of(weight).width(signed=True) + max(weight.shape[1], 1).bit_length()
    w = weight.astype(object) if weight.dtype == object or bits > 63 else weight
    pos = np.where(w > 0, w, 0).sum(axis=1).tolist()
    neg = np.where(w < 0, w, 0).sum(axis=1).tolist()
    return tuple(Interval(b + p * x.lo + n * x.hi, b + p * x.hi + n * x.lo)
                 for p, n, b in zip(pos, neg, (int(v) for v in bias)))


def union(ivs: Sequence[Interval]) -> Interval:
    lo, hi = min(iv.lo for iv in ivs), max(iv.hi for iv in ivs)
    return Interval(lo, hi)


def weight_codes(w: Tensor, what: str = "weight") -> tuple[np.ndarray, int]:
    """(codes, frac) of a constant weight: its quantizer's, or exactly those of a float one."""
    need(w.value is not None, f"the {what} is computed at run time; fpgaq needs a constant {what}")
    assert w.value is not None
    if w.type is not None:
        return w.value, w.type.frac
    codes, frac = exact_codes(w.value, f"the {what}")
    need(frac <= MAX_FLOAT_WEIGHT_FRAC, f"the {what} is a float tensor that is not quantized (it would need "
         f"{frac} fraction bits); put a weight quantizer (QONNX Quant) on it")
    return codes, frac


def row_factor(w: Tensor, axis: int) -> np.ndarray | None:
    """The float factor of each output of a weight whose input axis is `axis`, or None."""
    if w.factor is None:
        return None
    f = np.broadcast_to(w.factor.array, w.shape)
    first = np.take(f, [0], axis=axis)
    need(bool(np.all(f == first)), "weight scales vary within an output neuron; use per-tensor or "
         "per-output-channel scales")
    return np.take(f, 0, axis=axis).astype(np.float64)


def output_factor(x: Tensor, rows: np.ndarray | None, n_out: int) -> Factor | None:
    """Per output, the float factor of the accumulator (float scales), or None."""
    if rows is None and x.factor is None:
        return None
    if x.factor is not None:
        need(x.factor.uniform, "the layer's input carries per-channel float scales; put a per-tensor "
             "quantizer before it")
    row = np.ones(n_out) if rows is None else rows
    return Factor.of(row * (1.0 if x.factor is None else float(x.factor.values[0])))


@dataclass(frozen=True, eq=False)
class Dense(Op):
    """acc[o] = sum_i weight[o, i] * x[i] + bias[o]; weights at `weight_frac`, the bias at the
    accumulator's fraction bits (input frac + weight_frac). Exact: no rounding, no overflow.
    `factor`: a float scale of each output's weights (--requantize). The input's last axis is
    i; any axes before it are positions, each computed alike (a convolution over its windows):
    in parallel, or one after another by one instance where `serial` (io_stream)."""
    weight: np.ndarray      # integer codes, shape (out, in)
    weight_frac: int
    bias: np.ndarray        # integer codes, shape (out,)
    reuse: int = 1          # products share multipliers over `reuse` cycles (a schedule, not math)
    model_weights: int = -1  # weights of the layer in the ONNX model, before any pass removed some
    model_nonzero: int = -1  # a convolution's non-zero weights (its matrix repeats them); -1: the matrix's
    bias_exact: np.ndarray | None = None  # float bias in accumulator units, where it was rounded
    factor: Factor | None = None
    serial: bool = False    # positions share one instance, one after another (a schedule, not math)
    fabric: bool = False    # every product in LUTs, none on a DSP (a binding, not math)
    kind = "dense"

    def __post_init__(self) -> None:
        object.__setattr__(self, "weight", frozen(compact_codes(self.weight)))
        object.__setattr__(self, "bias", frozen(compact_codes(self.bias)))
        if self.model_weights < 0:
            object.__setattr__(self, "model_weights", int(self.weight.size))
        assert self.weight.ndim == 2 and self.bias.shape == (self.weight.shape[0],)
        assert self.reuse >= 1

    @property
    def nonzero(self) -> int:
        return int(np.count_nonzero(self.weight))

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        (x,) = xs
        x = codes_in(x, "Dense")
        assert x.interval is not None and x.type is not None
        need(len(x.shape) >= 1 and x.shape[-1] == self.weight.shape[1], f"a dense layer of "
             f"{self.weight.shape[1]} inputs reads a tensor of shape {list(x.shape)}")
        channels = channel_intervals(self.weight, self.bias, x.interval)
        iv = union(channels)
        rows = None if self.factor is None else np.broadcast_to(self.factor.array, (self.weight.shape[0],))
        return Tensor(x.shape[:-1] + (self.weight.shape[0],), FixedType.holding(iv, x.type.frac + self.weight_frac),
                      iv, channels, output_factor(x, rows, self.weight.shape[0]))

    @staticmethod
    def positions(x: Tensor) -> int:
        """How many times the layer is computed on its input x (its leading axes)."""
        return math.prod(x.shape[:-1])

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        if a.floats:
            return _float_product(x, *_float_weights(self, np.float32 if x.dtype == np.float32 else np.float64))
        if x.dtype != object and self.peak_bits(a.ins, a.out) <= INT64_SAFE_BITS:
            return x @ self.weight.T.astype(np.int64) + self.bias.astype(np.int64)
        return x.astype(object) @ self.weight.T.astype(object) + self.bias.astype(object)

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        if self.bias_exact is None:
            return self.emulate(xs, a)
        return np.asarray(xs[0], dtype=np.float64) @ self.weight.T.astype(np.float64) + self.bias_exact

    def approximates(self) -> bool:
        return self.bias_exact is not None

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        """A bound on every partial sum of the dot products (the order of summation is free)."""
        (x,) = xs
        assert x.interval is not None
        bound = _abs_row_sum(self) * x.interval.magnitude + int(np.abs(self.bias.astype(object)).max(initial=0))
        return max(code_bits(out), Interval.around(bound).width(signed=True))

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        return dense_cost(self, xs[0], out, clock_ns)

    def describe(self) -> str:
        nz, total = self.nonzero, self.weight.size
        was = f" (model: {self.model_weights})" if self.model_weights != total else ""
        reuse = f" reuse {self.reuse}" if self.reuse != 1 else ""
        return (f"dense {self.weight.shape[1]}->{self.weight.shape[0]} nonzero {nz}/{total}{was} "
                f"({100 * (1 - nz / total):.1f}% sparse) w_frac {self.weight_frac}{reuse}"
                + (" serial" if self.serial else "") + (" fabric" if self.fabric else ""))


BLAS_BLOCK = 1 << 18     # multiply-accumulates of one matrix product call
BLAS_MIN_ROWS = 16       # a block's rows at the least (a wide layer is cut into column blocks)


def _float_product(x: np.ndarray, blocks: tuple[tuple[int, np.ndarray], ...], b: np.ndarray) -> np.ndarray:
    """x @ w + b on exact float codes, w given as column blocks, each product call at most
    BLAS_BLOCK multiply-accumulates: BLAS runs it on one core (below OpenBLAS's threading
    threshold), where its threads cost more than they bring on these layers, and far more on
    a busy machine (where threads waiting for each other made a 200 x 400 layer 50x slower)."""
    flat = x.reshape(-1, x.shape[-1])
    n_out = b.shape[0]
    y = np.empty((len(flat), n_out), dtype=np.result_type(flat, b))
    for start, w in blocks:
        rows = max(1, BLAS_BLOCK // max(w.size, 1))
        cols = slice(start, start + w.shape[1])
        for i in range(0, len(flat), rows):
            if len(blocks) == 1:
                np.matmul(flat[i:i + rows], w, out=y[i:i + rows])
            else:
                y[i:i + rows, cols] = flat[i:i + rows] @ w
    y += b
    return y.reshape(x.shape[:-1] + (n_out,))


@lru_cache(maxsize=256)
def _float_weights(op: Dense, dtype: type) -> tuple[tuple[tuple[int, np.ndarray], ...], np.ndarray]:
    """The weights (transposed, in contiguous column blocks of at most BLAS_BLOCK /
    BLAS_MIN_ROWS entries) and the bias as floats, converted once per op (float32 only for
    inputs in float32: the emulator chose it where every sum stays below 2**23)."""
    w = op.weight.T
    n_in, n_out = w.shape
    width = n_out if n_in * n_out * BLAS_MIN_ROWS <= BLAS_BLOCK else max(1, BLAS_BLOCK // (BLAS_MIN_ROWS * max(n_in, 1)))
    blocks: tuple[tuple[int, np.ndarray], ...] = tuple(
        (j, np.ascontiguousarray(w[:, j:j + width], dtype=dtype)) for j in range(0, max(n_out, 1), width))
    return blocks, op.bias.astype(dtype)


@lru_cache(maxsize=256)
def _abs_row_sum(op: Dense) -> int:
    return int(np.abs(op.weight).astype(object).sum(axis=1).max(initial=0))


def dense_cost(op: Dense, x: Tensor, out: Tensor, clock_ns: float) -> Cost:
    """Latency: multiplier stages + adder-tree stages + one output register, plus R - 1 cycles
    when R products share a multiplier; the tree packs the clock's adder budget into a stage."""
    assert x.type is not None and out.type is not None and out.channels is not None
    w = op.weight
    nz = op.nonzero
    reuse = max(1, op.reuse)
    mults = math.ceil(nz / reuse)
    xbits = x.type.signed_width
    nonzero_w = [int(v) for v in w[w != 0]]
    wbits = Interval.around(max((abs(v) for v in nonzero_w), default=1)).width(signed=True)
    acc = out.type
    terms = int(np.count_nonzero(w, axis=1).max(initial=0)) + 1      # products and the bias
    depth = math.ceil(math.log2(terms)) if terms > 1 else 0
    levels = int(adder_budget(clock_ns))
    shared = reuse > 1
    wide = wbits + xbits >= DSP_MIN_PRODUCT_BITS and not op.fabric       # fabric: no product on a DSP
    if shared:
        dsp_products = mults if wide else 0
    else:
        dsp_products = sum(1 for v in nonzero_w if wide and csd_digits(v) > CONST_SHIFT_ADD_DIGITS)
    on_dsp = dsp_products > 0
    mult_stages = DSP_STAGES if on_dsp else LUT_MULT_STAGES
    latency = mult_stages + math.ceil(depth / levels) + 1 + (reuse - 1)
    copies = 1 if op.serial else Dense.positions(x)     # instances of the layer's hardware
    frame = Dense.positions(x) if op.serial else 1      # positions an instance computes a frame
    dsp = dsp_products * product_dsps(wbits, xbits)
    if not shared:
        lut_w = [v for v in nonzero_w if not (wide and csd_digits(v) > CONST_SHIFT_ADD_DIGITS)]
        mult_lut = sum(shift_add_luts(v, xbits) for v in lut_w)
    elif not on_dsp:
        mult_lut = mults * (wbits * xbits) // 2
    else:
        mult_lut = 0
    # accumulation: one adder a non-zero product (the bias is folded into the first add)
    n_out = w.shape[0]
    add_lut = nz * acc.width if not shared else mults * acc.width + acc.width * n_out
    stages = math.ceil(depth / levels) + 1
    ff = n_out * acc.width * stages + (mults * (wbits + xbits) if shared else 0)
    weight_bits = nz * wbits
    bram = math.ceil(weight_bits / BRAM_BITS) if shared and weight_bits > LUTRAM_MAX_BITS else 0
    lut = mult_lut + add_lut + (math.ceil(weight_bits / 64) if shared and not bram else 0)
    layer = {"weights": op.model_weights, "nonzero": nz if op.model_nonzero < 0 else op.model_nonzero,
             "multipliers": mults * copies, "reuse": reuse,
             "accumulator": {"signed": acc.signed, "width": acc.width, "frac": acc.frac},
             "adder_depth": depth,
             "accumulator_bits": sum(FixedType.holding(iv, acc.frac).width for iv in out.channels)}
    return Cost(latency_cycles=latency, ii=reuse * frame, dsp=dsp * copies, lut=int(lut) * copies,
                ff=int(ff) * copies, bram=bram * copies, layer=layer)


@dataclass(frozen=True)
class MatMul(Op):
    """x @ W, W a constant of shape (in, out): ONNX MatMul as imported, or a convolution's
    unrolled matrix, which carries the convolution's own weight counts for the report."""
    model_weights: int = -1
    model_nonzero: int = -1
    kind = "matmul"

    def weight(self, xs: Sequence[Tensor]) -> tuple[np.ndarray, int]:
        """The weight as (codes of shape (out, in), frac)."""
        codes, frac = weight_codes(xs[1])
        need(codes.ndim == 2, f"weight has shape {list(codes.shape)}; expected a matrix")
        return compact_codes(codes).T, frac

    def dense(self, xs: Sequence[Tensor]) -> Dense:
        """The accumulator this computes on xs[0]: a Dense without bias."""
        x = codes_in(xs[0], "MatMul")
        assert x.type is not None
        codes, frac = self.weight(xs)
        need(len(x.shape) >= 1 and codes.shape[1] == x.shape[-1],
             f"weight shape {list(codes.shape[::-1])} does not match the input's shape {list(x.shape)}")
        need(codes.size > 0, f"the weight has shape {list(codes.shape)}, with no elements: a layer without outputs")
        rows = row_factor(xs[1], 0)
        return Dense(codes, frac, np.zeros(codes.shape[0], dtype=np.int64),
                     factor=None if rows is None else Factor.of(rows), model_weights=self.model_weights,
                     model_nonzero=self.model_nonzero)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        need(len(xs) == 2, f"MatMul takes two inputs, got {len(xs)}")
        if xs[0].type is None:        # a real input (constants not folded yet): fold_affine says what to do
            codes, _ = self.weight(xs)
            return Tensor(xs[0].shape[:-1] + (codes.shape[0],))
        return self.dense(xs).infer(xs[:1])

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        d = self.dense(a.ins)
        return d.emulate(xs[:1], Args(a.ins[:1], a.out, a.floats, a.batched[:1]))

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        return self.dense(xs).peak_bits(xs[:1], out)


@dataclass(frozen=True)
class Gemm(Op):
    """ONNX Gemm as imported: alpha * A @ B' + beta * C, B' = B or its transpose (transB), with
    power-of-two alpha and beta (A's transpose is the importer's). A pass lowers it into
    MatMul and Add; its rules are theirs."""
    alpha: float = 1.0
    beta: float = 1.0
    trans_b: bool = False
    kind = "gemm"

    def parts(self, xs: Sequence[Tensor]) -> tuple[Constant, Constant | None]:
        """alpha * B' (in, out) and beta * C, exactly, as constants."""
        b = xs[1]
        codes, frac = weight_codes(b)
        need(codes.ndim == 2, f"weight B has shape {list(codes.shape)}; expected a matrix")
        factor = None if b.factor is None else np.broadcast_to(b.factor.array, codes.shape)
        if self.trans_b:
            codes, factor = codes.T, None if factor is None else factor.T
        k = log2_exact(self.alpha)
        if k > 0:   # scale the codes, not the grid: the bias sits on the grid of A @ B
            codes = compact_codes(np.asarray(codes, dtype=object) * (1 << k))
        else:
            frac -= k
        weight = Constant.codes(codes, frac, None if factor is None else Factor.of(factor))
        if len(xs) < 3:
            return weight, None
        exact_operand(xs[2], "bias")
        return weight, scaled(xs[2], self.beta)

    def chain(self, xs: Sequence[Tensor]) -> tuple[Tensor, Tensor | None, Tensor | None]:
        weight, bias = self.parts(xs)
        w = weight.infer(())
        acc = MatMul().infer([xs[0], w])
        return acc, w, None if bias is None else bias.infer(())

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        need(len(xs) in (2, 3), f"Gemm takes two or three inputs, got {len(xs)}")
        # ONNX's Gemm multiplies matrices (batch, features); MatMul also takes more axes
        need(len(xs[0].shape) == 1, f"multiplies a tensor of shape {list(xs[0].shape)} (batch excluded); a dense "
             "layer takes a vector: Flatten it first")
        acc, _, bias = self.chain(xs)
        return acc if bias is None else Add().infer([acc, bias])

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        acc, w, bias = self.chain(a.ins)
        assert w is not None and w.value is not None
        wv = w.value.astype(np.float64) if a.floats else w.value
        y = MatMul().emulate([xs[0], wv], Args((a.ins[0], w), acc, a.floats, (a.batched[0], False)))
        if bias is None:
            return y
        assert bias.value is not None
        bv = bias.value.astype(np.float64) if a.floats and bias.type is not None else bias.value
        return Add().emulate([y, bv], Args((acc, bias), a.out, a.floats, (a.batched[0], False)))

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        acc, w, bias = self.chain(xs)
        assert w is not None
        return max(MatMul().peak_bits([xs[0], w], acc), code_bits(out), 0 if bias is None else code_bits(bias))

    def describe(self) -> str:
        return f"gemm alpha {self.alpha:g} beta {self.beta:g}{' transB' if self.trans_b else ''}"


def scaled(c: Tensor, k: float) -> Constant:
    """The constant c times a power of two k, exactly."""
    assert c.value is not None
    if c.type is None:
        return Constant(c.value * k)
    return Constant(c.value, c.type.relabel(log2_exact(k)), c.factor)


@dataclass(frozen=True, eq=False)
class BatchNorm(Op):
    """ONNX BatchNormalization (inference): y = s * x + t per channel (axis 0), with
    s = gamma / sqrt(var + eps) and t = beta - mean * s. Exact codes when s and t are fixed
    point (at most MAX_SCALE_FRAC and MAX_SHIFT_FRAC fraction bits); else a real result, which
    a pass folds into the layer before it, exactly or (--requantize) into a float factor."""
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    kind = "batchnorm"
    MAX_SCALE_FRAC = 24
    MAX_SHIFT_FRAC = 32

    def __post_init__(self) -> None:
        for k in ("gamma", "beta", "mean", "var"):
            object.__setattr__(self, k, frozen(getattr(self, k), np.float64).reshape(-1))

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """(s, t) per channel, in float64 as the model computes them."""
        s = self.gamma / np.sqrt(self.var + self.eps)
        return s, self.beta - self.mean * s

    def exact(self, x: Tensor) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]] | None:
        """((scale codes, frac), (shift codes, frac)) when y is exactly fixed point, else None."""
        s, t = self.folded()
        ds = exact_codes(s, "the batch-norm scale")
        dt = exact_codes(t, "the batch-norm shift")
        if x.factor is not None or ds[1] > self.MAX_SCALE_FRAC or dt[1] > self.MAX_SHIFT_FRAC:
            return None
        return ds, dt

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        (x,) = xs
        c = x.shape[0] if x.shape else 1
        need(all(v.size == c for v in (self.gamma, self.beta, self.mean, self.var)),
             f"its parameters do not have one value for each of the {c} channels")
        s, t = self.folded()
        need(bool(np.all(np.isfinite(s) & np.isfinite(t))) and not np.any(s == 0),
             "its scale gamma/sqrt(var+eps) is zero, NaN or Inf for some channel")
        ex = None if x.type is None else self.exact(x)
        if ex is None:
            return Tensor(x.shape)
        assert x.type is not None and x.interval is not None
        (sc, sf), (tc, tf) = ex
        frac = max(x.type.frac + sf, tf)
        ivs = [x.interval.scale(int(k)).shift_left(frac - x.type.frac - sf) + Interval(int(b) << (frac - tf),
                                                                                       int(b) << (frac - tf))
               for k, b in zip(sc, tc)]
        iv = union(ivs)
        return Tensor(x.shape, FixedType.holding(iv, frac), iv, tuple(ivs) if len(x.shape) == 1 else None)

    def _channel(self, v: np.ndarray, rank: int) -> np.ndarray:
        return v.reshape((-1,) + (1,) * (rank - 1))

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,), (src,) = xs, a.ins
        rank = len(src.shape)
        if a.out.type is None:
            s, t = self.folded()
            return src.real_values(x) * self._channel(s, rank) + self._channel(t, rank)
        ex = self.exact(src)
        assert ex is not None and src.type is not None
        (sc, sf), (tc, tf) = ex
        frac = a.out.type.frac
        k1, k2 = frac - src.type.frac - sf, frac - tf
        if a.floats:
            return x * self._channel(sc.astype(np.float64), rank) * 2.0 ** k1 + self._channel(
                tc.astype(np.float64), rank) * 2.0 ** k2
        xo = np.asarray(x).astype(object)
        y = xo * self._channel(sc.astype(object), rank) * (1 << k1) + self._channel(
            tc.astype(object) * (1 << k2), rank)
        return y

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        return max(code_bits(out), code_bits(xs[0]))

    def describe(self) -> str:
        return f"batchnorm eps {self.eps:g}"
