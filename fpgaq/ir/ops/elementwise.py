"""Element-wise activations on codes, at the input's own fraction bits."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cost import Cost
from ..fixed import FixedType
from ..tensor import Tensor
from .base import Args, Op, codes_in, one


def _mux_cost(out: Tensor) -> Cost:
    """A comparator and a multiplexer a value, folded into the layer's output stage."""
    assert out.type is not None
    return Cost(lut=out.size * max(1, out.type.width // 2))


@dataclass(frozen=True)
class Relu(Op):
    kind = "relu"

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
    """Saturate to [lo, hi]: codes at the input's fraction bits, or real bounds on a real
    input (a Clip before the input quantizer). None: no bound."""
    lo: int | float | None
    hi: int | float | None
    kind = "clip"

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a Clip")
        if x.type is None:
            return Tensor(x.shape)
        x = codes_in(x, "Clip")
        assert x.type is not None and x.interval is not None
        lo = x.interval.lo if self.lo is None else int(self.lo)
        hi = x.interval.hi if self.hi is None else int(self.hi)
        iv = x.interval.clamp(lo, max(lo, hi))
        return Tensor(x.shape, FixedType.holding(iv, x.type.frac), iv, factor=x.factor)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,), (src,) = xs, a.ins
        if a.floats or src.type is None:
            return np.clip(x, -np.inf if self.lo is None else self.lo, np.inf if self.hi is None else self.hi)
        assert src.interval is not None
        return np.clip(x, src.interval.lo if self.lo is None else self.lo,
                       src.interval.hi if self.hi is None else self.hi)

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        return Cost() if out.type is None else _mux_cost(out)

    def describe(self) -> str:
        return f"clip [{self.lo}, {self.hi}]"

