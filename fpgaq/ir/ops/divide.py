"""An average's division, exactly: `Average` is the real window sum / window count as
imported (an AveragePool over a window that is not a power of two); the lower_averages pass
makes the quantizer after it a `DivQuant`, the exact integer division of the sum's codes with
that quantizer's rounding."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cost import ROUND_COST, Cost, shift_add_luts
from ..fixed import FixedType, Rounding
from ..interval import Interval
from ..tensor import Tensor
from .base import Args, Op, code_bits, codes_in, one


@dataclass(frozen=True)
class Average(Op):
    """x / count, real-valued (float64), as imported; a pass folds it into the next quantizer."""
    count: int
    kind = "average"
    elementwise = True

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        return Tensor(one(xs, "an average").shape)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        return np.asarray(a.ins[0].real_values(xs[0]) if a.ins[0].type is not None else xs[0],
                          dtype=np.float64) / self.count

    def describe(self) -> str:
        return f"average / {self.count} (real)"


def divide_round(n: np.ndarray, den: int, rounding: Rounding) -> np.ndarray:
    """n / den rounded to an integer with `rounding`, exactly (n: int64 or Python ints, den > 0)."""
    q = n // den                             # floor division (object arrays too): 0 <= r < den
    r = n - q * den
    twice = 2 * r
    if rounding is Rounding.FLOOR:
        up = np.zeros(np.shape(n), dtype=bool)
    elif rounding is Rounding.CEIL:
        up = r != 0
    elif rounding is Rounding.DOWN:
        up = (r != 0) & (n < 0)
    elif rounding is Rounding.UP:
        up = (r != 0) & (n > 0)
    elif rounding is Rounding.ROUND:
        up = (twice > den) | ((twice == den) & (q % 2 == 1))
    elif rounding is Rounding.HALF_UP:
        up = (twice > den) | ((twice == den) & (n > 0))
    else:
        up = (twice > den) | ((twice == den) & (n < 0))
    return q + np.asarray(up).astype(np.int64)


@dataclass(frozen=True)
class DivQuant(Op):
    """A quantizer of x / count (an average): y = clamp(round(x * 2**up / den)) on x's codes,
    with up = max(0, type.frac - x.frac - 0) and den = count * 2**(x.frac - type.frac) where
    that is positive: the exact integer division, with the quantizer's rounding."""
    type: FixedType
    rounding: Rounding
    lo: int
    hi: int
    count: int
    kind = "div_quant"
    elementwise = True

    def scaling(self, x: Tensor) -> tuple[int, int]:
        """(up, den): y = round(x * 2**up / den)."""
        assert x.type is not None
        s = self.type.frac - x.type.frac
        return max(s, 0), self.count << max(-s, 0)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = codes_in(one(xs, "an average's quantizer"), "an average's quantizer")
        assert x.interval is not None
        up, den = self.scaling(x)
        ends = divide_round(np.array([x.interval.lo << up, x.interval.hi << up], dtype=object), den, self.rounding)
        return Tensor(x.shape, self.type, Interval(int(ends[0]), int(ends[1])).clamp(self.lo, self.hi))

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        up, den = self.scaling(xs[0])
        return max(code_bits(xs[0]) + up, den.bit_length()) + 2

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        up, den = self.scaling(a.ins[0])
        x = np.asarray(xs[0])
        n = (x.astype(object) if x.dtype == object else x.astype(np.int64)) * (1 << up)
        y = np.clip(divide_round(n, den, self.rounding), self.lo, self.hi)
        return y.astype(np.float64) if a.floats else y

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        return self.emulate(xs, a)

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        x = xs[0]
        assert x.type is not None
        up, den = self.scaling(x)
        # a constant division: a multiplication by the reciprocal and a correction
        width = x.type.width + up
        return Cost(lut=out.size * (shift_add_luts((1 << (width + den.bit_length())) // den, width) + 2 * width
                                    + int(ROUND_COST)))

    def describe(self) -> str:
        return f"div_quant / {self.count} {self.rounding.name} sat[{self.lo}, {self.hi}]"
