"""Functions a table computes: Sigmoid, Tanh, HardSigmoid and Softmax as ONNX defines them
(real-valued, as imported), and the lookup tables the table pass lowers them to (exact integer
arithmetic on codes, the specification of the HLS and Verilog kernels). A table's reference is
the real function, so the deviation report measures what the tables cost."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..cost import Cost, compare_luts, product_dsps
from ..fixed import INT64_SAFE_BITS, FixedType
from ..interval import Interval
from ..tensor import Tensor
from .base import Args, Op, codes_in, frozen, need, one
from .quantizers import Quant


def values(x: np.ndarray, t: Tensor) -> np.ndarray:
    """The real values (float64) of codes x of tensor t; x itself for a real tensor."""
    v = np.asarray(x, dtype=np.float64)
    if t.type is None:
        return v
    v = np.ldexp(v, -t.type.frac)
    if t.factor is not None:
        v = v * np.broadcast_to(t.factor.array, t.shape)
    return v


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * v))      # no overflow for large |v|


FUNCTIONS: dict[str, Callable[[np.ndarray, float, float], np.ndarray]] = {
    "sigmoid": lambda v, a, b: _sigmoid(v),
    "tanh": lambda v, a, b: np.tanh(v),
    "hardsigmoid": lambda v, a, b: np.clip(a * v + b, 0.0, 1.0),
}


@dataclass(frozen=True)
class Activation(Op):
    """A monotone real function of each value (ONNX Sigmoid, Tanh, HardSigmoid with alpha > 0),
    as ONNX computes it in float32. Real-valued: the table pass lowers it to a Lut."""
    fn: str
    alpha: float = 0.0
    beta: float = 0.0
    kind = "activation"
    elementwise = True

    def __post_init__(self) -> None:
        assert self.fn in FUNCTIONS

    def of(self, v: np.ndarray) -> np.ndarray:
        """The function on real values, rounded to float32 as the ONNX model computes it."""
        return FUNCTIONS[self.fn](np.asarray(v, np.float64), self.alpha, self.beta).astype(np.float32).astype(np.float64)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        return Tensor(one(xs, f"a {self.fn}").shape)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        return self.of(values(xs[0], a.ins[0]))

    def describe(self) -> str:
        params = f" alpha {self.alpha} beta {self.beta}" if self.fn == "hardsigmoid" else ""
        return f"{self.fn}{params} (real)"


@dataclass(frozen=True)
class Softmax(Op):
    """ONNX Softmax over the last axis, real-valued (float64), as imported. The table pass
    lowers it to a SoftmaxTable, an Argmax, or drops it (the logits), as configured."""
    kind = "softmax"

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        return Tensor(one(xs, "a Softmax").shape)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        v = values(xs[0], a.ins[0])
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)


def _index(x: np.ndarray, lo: int, hi: int, shift: int) -> np.ndarray:
    """(clamp(x, lo, hi) - lo) >> shift, on int64 codes."""
    return (np.clip(np.asarray(x).astype(np.int64), lo, hi) - lo) >> shift


def table_luts(entries: int, width: int) -> int:
    """LUT6s of a read-only table: 64 entries a bit in one LUT."""
    return -(-entries // 64) * width


def uniform_scale(x: Tensor, what: str) -> float:
    """The real value of code 1 of x, which must be one positive number for the whole tensor."""
    assert x.type is not None
    f = 1.0
    if x.factor is not None:
        need(x.factor.uniform and x.factor.values[0] > 0, f"{what} of values with per-channel or negative "
             "float scales; quantize them first (an activation quantizer before it)")
        f = float(x.factor.values[0])
    return float(np.ldexp(f, -x.type.frac))


@dataclass(frozen=True, eq=False)
class Lut(Op):
    """y = table[(clamp(x, lo, hi) - lo) >> shift] on integer codes x: a monotone function
    tabulated over the codes where it changes (`shift` 0: one entry a code; else the function
    at each bin's centre). `model` is the real function of the value x * scale; `quant`, if
    any, is the quantizer that followed it, folded in: with one entry a code the table is then
    the model exactly. Without one, the table holds the function on the output type's grid,
    rounded to nearest."""
    type: FixedType
    table: np.ndarray
    lo: int
    hi: int
    shift: int
    model: Activation
    scale: float
    quant: Quant | None = None
    kind = "lut"
    elementwise = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", frozen(self.table, np.int64))
        assert self.table.ndim == 1 and len(self.table) == ((self.hi - self.lo) >> self.shift) + 1

    @classmethod
    def lower(cls, model: Activation, x: Tensor, quant: Quant | None, frac: int, bits: int) -> Lut:
        """The table of `model` on x's codes, at most 2**bits entries; into `quant`'s codes, or
        rounded to `frac` fraction bits."""
        codes_in(x, f"a {model.fn}")
        assert x.type is not None and x.interval is not None
        need(x.interval.magnitude < 1 << INT64_SAFE_BITS, "a table activation of codes wider than 62 bits")
        scale = uniform_scale(x, f"a {model.fn}")
        proto = cls(FixedType(True, 2, 0), np.zeros(1), 0, 0, 0, model, scale, quant)

        def level(codes: np.ndarray) -> np.ndarray:
            return np.asarray(proto.reference([codes], Args((), Tensor(codes.shape), True, (False,)))
                              if quant is not None else np.rint(np.ldexp(model.of(codes * scale), frac))
                              ).astype(np.int64)

        lo, hi = x.interval.lo, x.interval.hi
        ends = level(np.array([lo, hi], dtype=np.float64))
        a = b = lo
        if ends[0] != ends[1]:                     # the codes where the output changes: [a, b]
            a = _first(lambda c: level(c) > ends[0], lo, hi) - 1
            b = _first(lambda c: level(c) >= ends[1], lo, hi)
        span = b - a
        shift = max(0, span.bit_length() - bits)
        k = np.arange((span >> shift) + 1, dtype=np.int64)
        table = level(np.minimum(a + (k << shift) + ((1 << shift) - 1) // 2, b).astype(np.float64))
        out_type = quant.type if quant is not None else FixedType.holding(
            Interval(int(table.min()), int(table.max())), frac)
        return cls(out_type, table, int(a), int(b), shift, model, scale, quant)

    def exact(self) -> bool:
        """Every code has its own entry and the model's own quantizer: equal to the model."""
        return self.shift == 0 and self.quant is not None

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = codes_in(one(xs, "a table"), "a table")
        assert x.interval is not None
        k0, k1 = (int(i) for i in _index(np.array([x.interval.lo, x.interval.hi]), self.lo, self.hi, self.shift))
        part = self.table[k0:k1 + 1]
        return Tensor(x.shape, self.type, Interval(int(part.min()), int(part.max())))

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        y = self.table[_index(xs[0], self.lo, self.hi, self.shift)]
        return y.astype(np.float64) if a.floats else y

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        v = self.model.of(np.asarray(xs[0], dtype=np.float64) * self.scale)
        if self.quant is not None:
            real = Tensor(a.out.shape)
            return self.quant.emulate([v], Args((real,), real, True, a.batched))
        return np.ldexp(v, self.type.frac)

    def approximates(self) -> bool:
        return not self.exact()

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        assert xs[0].type is not None
        each = table_luts(len(self.table), self.type.width) + 2 * compare_luts(xs[0].type.width)
        return Cost(lut=out.size * each)

    def describe(self) -> str:
        how = "exact" if self.exact() else (f"{len(self.table)} entries" + (f", bins of {1 << self.shift}"
                                                                          if self.shift else ""))
        into = f" into {self.quant.describe()}" if self.quant is not None else ""
        return f"lut {self.model.fn} {how}{into} over codes [{self.lo}, {self.hi}]"


def _first(pred: Callable[[np.ndarray], np.ndarray], lo: int, hi: int) -> int:
    """The least code c in [lo, hi] with pred(c), for a monotone pred true at hi."""
    a, b = lo, hi
    while a < b:
        mid = a + (b - a) // 2
        if bool(pred(np.array([mid]))[0]):
            b = mid
        else:
            a = mid + 1
    return a


@dataclass(frozen=True, eq=False)
class SoftmaxTable(Op):
    """Softmax on the integer codes x of each row (the last axis), in the manner of hls4ml's
    stable softmax, every step an integer:

        d = max(x) - x                          (>= 0)
        e = EXP[min(d, d_hi) >> exp_shift]      (exp(-value of d), `exp_frac` fraction bits)
        s = sum of e over the row               (>= EXP[0]: the largest element has d = 0)
        r = INV[(min(s, s_hi) - s_lo) >> inv_shift]   (2**inv_frac / s)
        y = (e * r + 2**(out_shift - 1)) >> out_shift  (the output's codes)

    Tables hold the function at each bin's centre, rounded to nearest."""
    type: FixedType
    exp_table: np.ndarray
    exp_shift: int
    inv_table: np.ndarray
    s_lo: int
    inv_shift: int
    out_shift: int
    scale: float               # the real value of input code 1
    kind = "softmax_table"

    def __post_init__(self) -> None:
        object.__setattr__(self, "exp_table", frozen(self.exp_table, np.int64))
        object.__setattr__(self, "inv_table", frozen(self.inv_table, np.int64))
        assert self.out_shift >= 1

    @property
    def d_hi(self) -> int:
        return ((len(self.exp_table) - 1) << self.exp_shift) + (1 << self.exp_shift) - 1

    @property
    def s_hi(self) -> int:
        return self.s_lo + ((len(self.inv_table) - 1) << self.inv_shift) + (1 << self.inv_shift) - 1

    @classmethod
    def lower(cls, x: Tensor, frac: int, bits: int) -> SoftmaxTable:
        """Tables for x's codes: 2**bits entries at most each; the output has `frac` fraction
        bits (and one integer bit, for 1.0)."""
        codes_in(x, "a Softmax")
        assert x.type is not None and x.interval is not None
        need(x.interval.magnitude < 1 << 40, "a Softmax of codes wider than 40 bits; quantize its input first")
        n = x.shape[-1]
        scale = uniform_scale(x, "a Softmax")
        exp_frac = frac + 2
        # d beyond which exp(-value) rounds to 0 at exp_frac bits
        cut = int(np.ceil((exp_frac + 1) * np.log(2) / scale))
        span = min(x.interval.hi - x.interval.lo, cut)
        exp_shift = max(0, span.bit_length() - bits)
        k = np.arange((span >> exp_shift) + 1, dtype=np.float64)
        centre = k * 2.0 ** exp_shift + ((1 << exp_shift) - 1) / 2
        centre[0] = 0.0                                  # the row's largest element: exactly 1
        exp_table = np.rint(np.ldexp(np.exp(-centre * scale), exp_frac)).astype(np.int64)
        s_lo = int(exp_table[0])
        s_hi = n * s_lo
        inv_frac = exp_frac + frac + 2 + max(0, (n - 1).bit_length())
        inv_shift = max(0, (s_hi - s_lo).bit_length() - bits)
        j = np.arange(((s_hi - s_lo) >> inv_shift) + 1, dtype=np.float64)
        s_centre = s_lo + j * 2.0 ** inv_shift + ((1 << inv_shift) - 1) / 2
        inv_table = np.rint(np.ldexp(1.0 / s_centre, inv_frac)).astype(np.int64)
        out_shift = inv_frac - frac                     # e * r = (e / s) * 2**inv_frac
        top = (int(exp_table.max()) * int(inv_table.max()) + (1 << (out_shift - 1))) >> out_shift
        out_type = FixedType.holding(Interval(0, top), frac)
        return cls(out_type, exp_table, exp_shift, inv_table, s_lo, inv_shift, out_shift, scale)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = codes_in(one(xs, "a Softmax"), "Softmax")
        top = (int(self.exp_table.max()) * int(self.inv_table.max()) + (1 << (self.out_shift - 1))) >> self.out_shift
        return Tensor(x.shape, self.type, Interval(0, top))

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        return (int(self.exp_table.max()) * int(self.inv_table.max())).bit_length() + 2

    def steps(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Each integer step, for rows on the last axis of int64 codes x."""
        x = np.asarray(x).astype(np.int64)
        d = x.max(axis=-1, keepdims=True) - x
        e = self.exp_table[np.minimum(d, self.d_hi) >> self.exp_shift]
        s = e.sum(axis=-1, keepdims=True)
        r = self.inv_table[(np.minimum(s, self.s_hi) - self.s_lo) >> self.inv_shift]
        y = (e * r + (1 << (self.out_shift - 1))) >> self.out_shift
        return {"d": d, "e": e, "s": s, "r": r, "y": y}

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        y = self.steps(xs[0])["y"]
        return y.astype(np.float64) if a.floats else y

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        v = np.asarray(xs[0], dtype=np.float64) * self.scale
        e = np.exp(v - v.max(axis=-1, keepdims=True))
        return np.ldexp(e / e.sum(axis=-1, keepdims=True), self.type.frac)

    def approximates(self) -> bool:
        return True

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        x = xs[0]
        assert x.type is not None
        n, rows = x.shape[-1], out.size // max(1, x.shape[-1])
        ew = int(self.exp_table.max()).bit_length()
        rw = int(self.inv_table.max()).bit_length()
        per_row = ((n - 1) * 2 * compare_luts(x.type.width + 1)          # the maximum
                   + n * (x.type.width + 1)                              # the differences
                   + n * table_luts(len(self.exp_table), ew)             # the exponentials
                   + (n - 1) * (ew + n.bit_length())                     # their sum
                   + table_luts(len(self.inv_table), rw))                # the reciprocal
        dsp = rows * n * product_dsps(ew + 1, rw + 1)
        return Cost(lut=rows * per_row, dsp=dsp)

    def describe(self) -> str:
        return (f"softmax_table exp {len(self.exp_table)} entries (bins of {1 << self.exp_shift}), "
                f"1/sum {len(self.inv_table)} entries (bins of {1 << self.inv_shift})")


@dataclass(frozen=True)
class Argmax(Op):
    """The index of the largest code of each row (the last axis); the first on a tie. What a
    trigger wants of a classifier's Softmax: its argmax, which the logits give."""
    kind = "argmax"

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = codes_in(one(xs, "an argmax"), "Argmax")
        n = x.shape[-1]
        iv = Interval(0, n - 1)
        return Tensor(x.shape[:-1] + (1,), FixedType.holding(iv, 0), iv)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        y = np.argmax(np.asarray(xs[0]), axis=-1)[..., None]
        return y.astype(np.float64) if a.floats else y.astype(np.int64)

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        x = xs[0]
        assert x.type is not None
        n = x.shape[-1]
        return Cost(lut=out.size * (n - 1) * (2 * compare_luts(x.type.width) + x.type.width + n.bit_length()))
