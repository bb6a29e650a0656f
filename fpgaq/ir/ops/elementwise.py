"""Element-wise activations on codes, at the input's own fraction bits."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..cost import Cost
from ..fixed import FixedType
from ..tensor import Tensor
from .base import Args, Op, need, one


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

