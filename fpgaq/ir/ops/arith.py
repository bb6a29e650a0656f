"""Element-wise arithmetic of two tensors, with ONNX's broadcasting: Add, Sub, Mul, Div.

Two real tensors (the host's pre-processing, before the input quantizer) are computed in float32,
as ONNX computes them. On codes the result is exact wherever it stays on a fixed-point grid (a
float constant counts as its exact codes; a division by powers of two is a multiplication);
elsewhere (a float factor on an input, a division by any other number) it is real, for a pass to
fold into a layer or a requantiser.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cost import Cost
from ..fixed import INT64_SAFE_BITS, FixedType, compact_codes, exact_codes, is_power_of_two
from ..interval import Interval
from ..tensor import Tensor
from .base import Args, Op, code_bits, need


def exact_operand(t: Tensor, what: str = "the added constant") -> Tensor:
    """A real constant read exactly as codes at the fewest fraction bits that hold it (floats
    are dyadic); any other tensor as it is."""
    if t.type is not None or t.value is None:
        return t
    need(bool(np.all(np.isfinite(t.value))), f"{what} holds NaN or Inf; export the model again with finite values")
    try:
        codes, frac = exact_codes(t.value, what)
    except ValueError:
        return t
    iv = Interval.of(codes)
    return Tensor(t.shape, FixedType.holding(iv, frac), iv, value=compact_codes(codes))


class _Binary(Op):
    """What the four share; each says how codes combine (`_combine`) and on what grid (`_exact`)."""

    def _shape(self, xs: Sequence[Tensor]) -> tuple[int, ...]:
        need(len(xs) == 2, f"{type(self).__name__} takes two inputs, got {len(xs)}")
        try:
            return tuple(np.broadcast_shapes(xs[0].shape, xs[1].shape))
        except ValueError:
            raise ValueError(f"{self.verb} tensors of shapes {list(xs[0].shape)} and {list(xs[1].shape)}, "
                             "which do not broadcast") from None

    verb = "combines"

    def operands(self, xs: Sequence[Tensor]) -> tuple[Tensor, Tensor] | None:
        """The two inputs as exact codes, or None where the result is real."""
        a, b = (exact_operand(x) for x in xs)
        if a.type is None or b.type is None or a.factor is not None or b.factor is not None:
            return None
        return a, b

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        shape = self._shape(xs)
        if xs[0].type is None and xs[1].type is None:
            return Tensor(shape)                    # two real tensors: float32, as ONNX computes them
        ops = self.operands(xs)
        if ops is None:
            return Tensor(shape)
        frac, iv = self._exact(*ops)
        return Tensor(shape, FixedType.holding(iv, frac), iv)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        if a.ins[0].type is None and a.ins[1].type is None:
            return self._real(np.asarray(xs[0], dtype=np.float32), np.asarray(xs[1], dtype=np.float32))
        ops = self.operands(a.ins)
        if ops is None or a.out.type is None:
            return self._real(a.ins[0].real_values(xs[0]), a.ins[1].real_values(xs[1]))
        # a real constant operand: its exact codes (at the grid exact_operand chose)
        x, y = (v if t.type is not None or e.value is None else e.value for t, e, v in zip(a.ins, ops, xs))
        if a.floats:
            x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        elif self.peak_bits(ops, a.out) > INT64_SAFE_BITS:
            x, y = np.asarray(x).astype(object), np.asarray(y).astype(object)
        return self._combine(x, y, ops, a.out)

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        return max([code_bits(out)] + [code_bits(exact_operand(x)) for x in xs])

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        return Cost() if out.type is None else Cost(latency_cycles=1, lut=out.size * out.type.width)

    # --- what each op defines ---
    def _real(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _exact(self, a: Tensor, b: Tensor) -> tuple[int, Interval]:
        raise NotImplementedError

    def _combine(self, x: np.ndarray, y: np.ndarray, ops: tuple[Tensor, Tensor], out: Tensor) -> np.ndarray:
        raise NotImplementedError


def _aligned(a: Tensor, b: Tensor, frac: int) -> tuple[Interval, Interval]:
    assert a.type is not None and b.type is not None and a.interval is not None and b.interval is not None
    return a.interval.shift_left(frac - a.type.frac), b.interval.shift_left(frac - b.type.frac)


def _shifts(x: np.ndarray, y: np.ndarray, ops: tuple[Tensor, Tensor], out: Tensor) -> tuple[object, object]:
    """x and y on the output's grid (a power of two is exact in float64 below 2**52)."""
    assert out.type is not None
    kx, ky = (out.type.frac - t.frac for t in ops)
    if x.dtype == np.float64:
        return x * 2.0 ** kx, y * 2.0 ** ky
    return np.left_shift(x, kx), np.left_shift(y, ky)


@dataclass(frozen=True)
class Add(_Binary):
    kind = "add"
    verb = "adds"

    def _real(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x + y

    def _exact(self, a: Tensor, b: Tensor) -> tuple[int, Interval]:
        assert a.type is not None and b.type is not None
        frac = max(a.type.frac, b.type.frac)
        ia, ib = _aligned(a, b, frac)
        return frac, ia + ib

    def _combine(self, x: np.ndarray, y: np.ndarray, ops: tuple[Tensor, Tensor], out: Tensor) -> np.ndarray:
        u, v = _shifts(x, y, ops, out)
        return u + v     # type: ignore[operator]


@dataclass(frozen=True)
class Sub(_Binary):
    kind = "sub"
    verb = "subtracts"

    def _real(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x - y

    def _exact(self, a: Tensor, b: Tensor) -> tuple[int, Interval]:
        assert a.type is not None and b.type is not None
        frac = max(a.type.frac, b.type.frac)
        ia, ib = _aligned(a, b, frac)
        return frac, ia + ib.scale(-1)

    def _combine(self, x: np.ndarray, y: np.ndarray, ops: tuple[Tensor, Tensor], out: Tensor) -> np.ndarray:
        u, v = _shifts(x, y, ops, out)
        return u - v     # type: ignore[operator]


def _product(a: Interval, b: Interval) -> Interval:
    ends = [a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi]
    return Interval(min(ends), max(ends))


@dataclass(frozen=True)
class Mul(_Binary):
    kind = "mul"
    verb = "multiplies"

    def _real(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x * y

    def _exact(self, a: Tensor, b: Tensor) -> tuple[int, Interval]:
        assert a.type is not None and b.type is not None and a.interval is not None and b.interval is not None
        return a.type.frac + b.type.frac, _product(a.interval, b.interval)

    def _combine(self, x: np.ndarray, y: np.ndarray, ops: tuple[Tensor, Tensor], out: Tensor) -> np.ndarray:
        return x * y


@dataclass(frozen=True)
class Div(_Binary):
    """x / y: exact where y is a constant of powers of two (a multiplication by their exact
    reciprocals), else real."""
    kind = "div"
    verb = "divides"

    def _real(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return x / y

    def operands(self, xs: Sequence[Tensor]) -> tuple[Tensor, Tensor] | None:
        y = xs[1]
        if y.value is None:
            return None
        values = y.real_values(y.value) if y.type is not None else np.asarray(y.value, dtype=np.float64)
        if not all(is_power_of_two(abs(float(v))) for v in np.ravel(values)):
            return None
        return Mul().operands([xs[0], Tensor(y.shape, value=1.0 / values)])

    def _exact(self, a: Tensor, b: Tensor) -> tuple[int, Interval]:
        return Mul()._exact(a, b)

    def _combine(self, x: np.ndarray, y: np.ndarray, ops: tuple[Tensor, Tensor], out: Tensor) -> np.ndarray:
        assert ops[1].value is not None
        recip = ops[1].value.astype(np.float64) if x.dtype == np.float64 else ops[1].value
        return x * recip
