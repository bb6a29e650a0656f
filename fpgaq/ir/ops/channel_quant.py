"""A quantizer with its own grid and bounds for each element (HGQ's and PQuantML's
heterogeneous quantization: a QONNX Quant whose bit width or power-of-two scale is a tensor).
Its codes share the finest grid among the elements, each element's codes a multiple of its
own step, saturated at its own bounds: in hardware, the widest type with each element's
saturation."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cost import Cost
from ..fixed import FixedType, Rounding, round_real, shift_round
from ..interval import Interval
from ..tensor import Tensor
from .base import Args, Op, code_bits, frozen, need, one


@dataclass(frozen=True, eq=False)
class ChannelQuant(Op):
    """Element i: round onto 2**-fracs[i] with `rounding`, saturate to [lo[i], hi[i]] (codes of
    that grid), and give it on the common grid 2**-type.frac (type.frac = the largest frac):
    code << (type.frac - fracs[i]). On a real input (the model's), as ONNX computes it in
    float32; on codes, exactly, by a shift."""
    type: FixedType
    rounding: Rounding
    fracs: np.ndarray          # int64, one an element
    lo: np.ndarray             # int64, one an element, on the element's own grid
    hi: np.ndarray
    kind = "channel_quant"
    elementwise = True

    def __post_init__(self) -> None:
        for name in ("fracs", "lo", "hi"):
            object.__setattr__(self, name, frozen(getattr(self, name), np.int64))
        assert self.fracs.shape == self.lo.shape == self.hi.shape and self.fracs.ndim == 1
        assert int(self.fracs.max()) == self.type.frac and np.all(self.lo <= self.hi)

    @classmethod
    def of(cls, rounding: Rounding, fracs: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> ChannelQuant:
        f = int(np.max(fracs))
        up = f - np.asarray(fracs, np.int64)
        iv = Interval(int(np.min(np.asarray(lo) << up)), int(np.max(np.asarray(hi) << up)))
        return cls(FixedType.holding(iv, f), rounding, np.ravel(fracs), np.ravel(lo), np.ravel(hi))

    def _per(self, shape: tuple[int, ...], a: np.ndarray) -> np.ndarray:
        return a.reshape(shape)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a quantizer")
        need(self.fracs.size == x.size, f"{self.fracs.size} element grids for a tensor of {x.size} elements")
        need(x.factor is None, "a per-element quantizer of a float-scaled value; use power-of-two scales")
        up = self.type.frac - self.fracs
        if x.type is None:
            lo, hi = self.lo, self.hi
        else:
            assert x.interval is not None
            shift = x.type.frac - self.fracs
            lo = np.clip([shift_round(x.interval.lo, int(s), self.rounding) for s in shift], self.lo, self.hi)
            hi = np.clip([shift_round(x.interval.hi, int(s), self.rounding) for s in shift], self.lo, self.hi)
        channels = tuple(Interval(int(a) << int(u), int(b) << int(u)) for a, b, u in zip(lo, hi, up))
        iv = Interval(min(c.lo for c in channels), max(c.hi for c in channels))
        return Tensor(x.shape, self.type, iv, channels if len(x.shape) == 1 else None)

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        x = xs[0]
        grow = max(0, int((self.fracs - (x.type.frac if x.type is not None else 0)).max()))
        return max(code_bits(out), code_bits(x) + grow + 1)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,), (src,) = xs, a.ins
        shape = src.shape
        fracs, lo, hi = (self._per(shape, v) for v in (self.fracs, self.lo, self.hi))
        up = self.type.frac - fracs
        if src.type is None:           # float32 times a power of two: exact in float64
            codes = round_real(np.ldexp(np.asarray(x, np.float32).astype(np.float64), fracs), self.rounding)
            codes = np.clip(codes, lo, hi)
            return np.ldexp(codes, up) if a.floats else (codes.astype(np.int64) << up)
        shift = src.type.frac - fracs
        if a.floats:
            y = round_real(np.ldexp(np.asarray(x, np.float64), -shift), self.rounding)
            return np.ldexp(np.clip(y, lo, hi), up)
        flat = np.asarray(x).reshape(len(x), -1) if np.ndim(x) > len(shape) else np.asarray(x).reshape(1, -1)
        out = np.empty(flat.shape, dtype=object if flat.dtype == object else np.int64)
        for i, (s, u, l, h) in enumerate(zip(shift.ravel(), up.ravel(), lo.ravel(), hi.ravel())):
            col = shift_round(flat[:, i], int(s), self.rounding)
            out[:, i] = np.clip(col, int(l), int(h)) * (1 << int(u))
        return out.reshape(np.shape(x))

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        x = xs[0]
        if x.type is None:
            return Cost()
        # a rounding adder and a saturation multiplexer an element, as a quantizer
        assert out.type is not None
        return Cost(lut=out.size * (x.type.width + out.type.width // 2 + 1))

    def describe(self) -> str:
        widths = sorted({int(f) for f in self.fracs})
        return (f"channel_quant {self.rounding.name} fracs {widths[0]}..{widths[-1]} "
                f"codes [{int(self.lo.min())}..{int(self.hi.max())}]")
