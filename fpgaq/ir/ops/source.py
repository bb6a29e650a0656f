"""Where values come from: the model's real inputs and constants."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..fixed import FixedType, compact_codes
from ..interval import Interval
from ..tensor import Factor, Tensor
from .base import Args, Op, frozen, need


@dataclass(frozen=True)
class Input(Op):
    """A real-valued (float32) model input."""
    shape: tuple[int, ...]
    kind = "input"

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        need(not xs, "an input has no inputs")
        return Tensor(self.shape)


@dataclass(frozen=True, eq=False)
class Constant(Op):
    """A constant tensor: real values (float64; `type` None), or integer codes of `type`,
    with a float `factor` on them where a float scale was folded in (--requantize)."""
    data: np.ndarray
    type: FixedType | None = None
    factor: Factor | None = None
    kind = "const"

    def __post_init__(self) -> None:
        if self.type is None:
            object.__setattr__(self, "data", frozen(self.data, np.float64))
        else:
            object.__setattr__(self, "data", frozen(compact_codes(self.data)))
            need(self.type.interval.contains(Interval.of(self.data)), f"constant codes overflow {self.type}")

    @classmethod
    def codes(cls, codes: np.ndarray, frac: int, factor: Factor | None = None) -> Constant:
        """Codes at `frac` fraction bits, in the narrowest type that holds them. A factor that
        is a power of two on every element moves into the codes: they are aligned, exactly, to
        the finest grid among them."""
        codes = compact_codes(codes)
        if factor is not None:
            f = np.broadcast_to(factor.array, codes.shape)
            m, e = np.frexp(f)
            if np.all(m == 0.5):
                exps = (e - 1).astype(np.int64)       # f == 2**exps
                low = int(exps.min(initial=0)) if codes.size else 0
                codes = compact_codes(codes.astype(object) * (np.ones(codes.shape, dtype=object)
                                                               * (1 << (exps - low)).astype(object)))
                frac, factor = frac - low, None
            elif factor.uniform:
                factor = Factor.of(factor.values[0])
        return cls(codes, FixedType.holding(Interval.of(codes), frac), factor)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        need(not xs, "a constant has no inputs")
        iv = None if self.type is None else Interval.of(self.data)
        return Tensor(tuple(self.data.shape), self.type, iv, factor=self.factor, value=self.data)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        if a.floats and self.type is not None:
            return self.data.astype(np.float64)
        return self.data

    def describe(self) -> str:
        return "const"
