"""Element-wise activations on codes, at the input's own fraction bits."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..cost import Cost, shift_add_luts
from ..fixed import FixedType, dyadic
from ..interval import Interval
from ..tensor import Tensor
from .base import Args, Op, code_bits, codes_in, frozen, need, one


def _mux_cost(out: Tensor) -> Cost:
    """A comparator and a multiplexer a value, folded into the layer's output stage."""
    assert out.type is not None
    return Cost(lut=out.size * max(1, out.type.width // 2))


@dataclass(frozen=True)
class Relu(Op):
    kind = "relu"
    elementwise = True

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a ReLU")
        if x.type is None:
            return Tensor(x.shape)
        assert x.interval is not None
        iv = x.interval.clamp(0, max(x.interval.hi, 0))
        return Tensor(x.shape, FixedType.holding(iv, x.type.frac), iv, factor=x.factor)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        return np.maximum(xs[0], 0)

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        return Cost() if out.type is None else _mux_cost(out)


@dataclass(frozen=True)
class Clip(Op):
    """ONNX Clip: saturate the input's values to [lo, hi] (None: no bound). On codes it is a
    clamp to the codes of those bounds: the smallest code at or above lo and the largest at or
    below hi, on the input's grid (with its float factor, if one rides on it); where lo is
    above hi, everything is hi, as ONNX and numpy have it."""
    lo: float | None
    hi: float | None
    kind = "clip"
    elementwise = True

    def code_bounds(self, x: Tensor) -> tuple[int, int]:
        """The bounds in x's codes (x's own range where a bound is absent); (hi, hi) where
        they cross."""
        lo, hi = self.raw_code_bounds(x)
        return (hi, hi) if lo > hi else (lo, hi)

    def raw_code_bounds(self, x: Tensor) -> tuple[int, int]:
        """The codes of the bounds, as given."""
        assert x.type is not None and x.interval is not None
        factor = None
        if x.factor is not None:
            need(x.factor.uniform, "a Clip on a tensor with per-channel float scales is not supported")
            factor = x.factor.values[0]
        grid = Fraction(2) ** x.type.frac

        def code(v: float | None, to_int: Callable[[Fraction], int], default: int) -> int:
            if v is None or math.isinf(v):
                return default
            # exact: floats are dyadic; a float factor divides in float64, as the bound was given
            return to_int(Fraction(v if factor is None else v / factor) * grid)
        return code(self.lo, math.ceil, x.interval.lo), code(self.hi, math.floor, x.interval.hi)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a Clip")
        if x.type is None:
            return Tensor(x.shape)
        assert x.interval is not None
        iv = x.interval.clamp(*self.code_bounds(x))
        return Tensor(x.shape, FixedType.holding(iv, x.type.frac), iv, factor=x.factor)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,), (src,) = xs, a.ins
        if src.type is None:
            lo = -np.inf if self.lo is None else self.lo
            hi = np.inf if self.hi is None else self.hi
            return np.clip(x, lo, hi) if lo <= hi else np.full_like(x, hi)
        return np.clip(x, *self.code_bounds(src))

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        return Cost() if out.type is None else _mux_cost(out)

    def describe(self) -> str:
        return f"clip [{self.lo}, {self.hi}]"



@dataclass(frozen=True, eq=False)
class LeakyRelu(Op):
    """ONNX LeakyRelu and PRelu on codes, exactly: y = x * 2**shift where x >= 0, else
    x * slope[c], with slope = the model's slope * 2**shift, an integer (every float is a
    dyadic number). The output has `shift` more fraction bits; the quantizer after it rounds as
    the model does (up to float32's rounding of the model's own product)."""
    slope: np.ndarray          # int64, one value or one an element, >= 0
    shift: int
    kind = "leaky_relu"
    elementwise = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "slope", frozen(self.slope, np.int64))

    @classmethod
    def of(cls, slopes: np.ndarray, shape: tuple[int, ...]) -> LeakyRelu:
        """From the model's slopes (a scalar, or broadcast to the tensor's shape)."""
        s = np.asarray(slopes, dtype=np.float64)
        need(bool(np.all(np.isfinite(s))), "the slope holds NaN or Inf")
        need(bool(np.all(s >= 0)), "a negative slope is not supported (the function would not be monotone)")
        if s.size > 1:
            try:
                s = np.broadcast_to(s, (1,) + shape)[0] if s.ndim > len(shape) else np.broadcast_to(s, shape)
            except ValueError:
                raise ValueError(f"a slope of shape {list(np.shape(slopes))} does not fit a tensor of shape "
                                 f"{list(shape)}") from None
            if np.all(s == s.ravel()[0]):
                s = s.ravel()[:1]
        d = dyadic(s.ravel(), max_frac=48)
        need(d is not None, "the slope needs more than 48 fraction bits")
        assert d is not None
        codes, frac = d
        need(max(abs(int(c)) for c in codes.ravel()).bit_length() <= 48, "the slope needs more than 48 bits")
        return cls(np.array([int(c) for c in codes.ravel()], dtype=np.int64), frac)

    def slopes(self, n: int) -> np.ndarray:
        return np.broadcast_to(self.slope, (n,)) if self.slope.size == 1 else self.slope

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = codes_in(one(xs, "a LeakyRelu"), "LeakyRelu")
        need(self.slope.size in (1, x.size), f"{self.slope.size} slopes for {x.size} elements")
        assert x.type is not None and x.interval is not None
        lo, hi = x.interval.lo, x.interval.hi
        ends = [max(lo, 0) << self.shift, max(hi, 0) << self.shift]
        if lo < 0:
            m_lo, m_hi = int(self.slope.min()), int(self.slope.max())
            ends += [lo * m_hi, lo * m_lo, min(hi, -1) * m_lo, min(hi, -1) * m_hi]
        iv = Interval(min(ends), max(ends))
        return Tensor(x.shape, FixedType.holding(iv, x.type.frac + self.shift), iv, factor=x.factor)

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        return code_bits(xs[0]) + max(self.shift, int(self.slope.max()).bit_length()) + 1

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        m = self.slope.reshape(a.ins[0].shape) if self.slope.size > 1 else self.slope[0]
        if x.dtype == object:
            m = m.astype(object) if isinstance(m, np.ndarray) else int(m)
            return np.where(x >= 0, x * (1 << self.shift), x * m)
        k = float(1 << self.shift) if a.floats else 1 << self.shift
        return np.where(x >= 0, x * k, x * (m.astype(x.dtype) if isinstance(m, np.ndarray) else m))

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        x = xs[0]
        assert x.type is not None and out.type is not None
        products = sum(shift_add_luts(int(m), x.type.width) for m in self.slopes(out.size))
        return Cost(lut=products + _mux_cost(out).lut)

    def describe(self) -> str:
        per = f"[{self.slope.size}]" if self.slope.size > 1 else f" {int(self.slope[0])}"
        return f"leaky_relu slope{per} * 2**-{self.shift}"
