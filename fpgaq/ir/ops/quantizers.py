"""Quantizers: where values get (or change) their fixed-point type, and the relabelling Scale."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cost import Cost, shift_add_luts
from ..fixed import INT64_SAFE_BITS, FixedType, Rounding, is_power_of_two, log2_exact, round_real, shift_round
from ..interval import Interval
from ..tensor import Factor, Tensor
from .base import FLOAT64_EXACT_BITS, Args, Op, code_bits, codes_in, frozen, need, one


def _saturating(t: FixedType, lo: int, hi: int) -> None:
    if not t.min_code <= lo <= hi <= t.max_code:
        raise ValueError(f"saturation bounds [{lo}, {hi}] outside {t}")


@dataclass(frozen=True)
class Quant(Op):
    """Round onto the grid of `type`, then saturate to the codes [lo, hi].

    On a real input x (the model's, or a constant), as ONNX computes it in float32: codes
    clamp(round(x * 2**frac)), or clamp(round(x / step * 2**frac)) with a float `step`. On
    codes of a fixed type: the same rounding of the input's value, exactly, by a shift. On
    codes with a float factor, or with a step: the float model, which a requantiser pass turns
    into integer arithmetic (--requantize)."""
    type: FixedType
    rounding: Rounding
    lo: int
    hi: int
    step: Factor | None = None
    relu: bool = False      # a ReLU was folded in (lo >= 0 does it); kept to say so in the outputs
    kind = "quant"
    elementwise = True

    def __post_init__(self) -> None:
        _saturating(self.type, self.lo, self.hi)
        assert not self.relu or self.lo >= 0

    def integer(self, x: Tensor) -> bool:
        """Whether it is exact integer arithmetic on x's codes (a shift, a rounding, a clamp)."""
        return x.type is not None and x.factor is None and self.step is None

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a quantizer")
        if x.type is None:
            return Tensor(x.shape, self.type, Interval(self.lo, self.hi))
        assert x.interval is not None
        if self.integer(x):
            shift = x.type.frac - self.type.frac
            iv = Interval(shift_round(x.interval.lo, shift, self.rounding),
                          shift_round(x.interval.hi, shift, self.rounding))
        else:
            ratio = self.ratio(x)
            ends = [round_real(np.array(float(v) * ratio), self.rounding) for v in (x.interval.lo, x.interval.hi)]
            iv = Interval(int(min(float(e.min()) for e in ends)), int(max(float(e.max()) for e in ends)))
        return Tensor(x.shape, self.type, iv.clamp(self.lo, self.hi))

    def ratio(self, x: Tensor) -> np.ndarray:
        """The float factor from x's codes to this quantizer's codes (before rounding)."""
        assert x.type is not None
        src = 2.0 ** -x.type.frac * (1.0 if x.factor is None else x.factor.array)
        step = 2.0 ** -self.type.frac * (1.0 if self.step is None else self.step.array)
        return np.atleast_1d(np.asarray(src / step, dtype=np.float64))

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,), (src,) = xs, a.ins
        if src.type is None:
            codes = self._from_real(x)
            return codes.astype(np.float32) if a.float32 else codes
        if not self.integer(src):
            return self.reference(xs, a)
        shift = src.type.frac - self.type.frac
        if a.floats:
            # codes are integers below 2**52 (2**23 in float32): scaling by a power of two is exact
            y = x * 2.0 ** -shift
            if shift > 0:
                y = np.rint(y, out=y) if self.rounding is Rounding.ROUND else round_real(y, self.rounding)
            return np.clip(y, self.lo, self.hi, out=y)
        return np.clip(shift_round(x, shift, self.rounding), self.lo, self.hi)

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,), (src,) = xs, a.ins
        if src.type is None or self.integer(src):
            return self.emulate(xs, a)
        y = np.asarray(x, dtype=np.float64) * self.ratio(src)
        return np.clip(round_real(y, self.rounding), self.lo, self.hi)

    def _from_real(self, x: np.ndarray) -> np.ndarray:
        """As the model computes it: it reads float32, then rounds and saturates."""
        x32 = np.asarray(x, dtype=np.float32)
        if self.step is not None:   # a float scale: x / step in float32, as the model computes it
            scaled = np.ldexp((x32 / self.step.array.astype(np.float32)).astype(np.float64), self.type.frac)
        else:
            scaled = np.ldexp(x32.astype(np.float64), self.type.frac)  # exact, also for huge float32
        codes = round_real(scaled, self.rounding)
        if self.type.width < FLOAT64_EXACT_BITS:
            return np.clip(codes, self.lo, self.hi)
        # wider bounds are not all floats (2**63 - 1 rounds up to 2**63): saturate on Python ints
        near = np.clip(codes, float(self.lo), float(self.hi)).ravel()
        return np.array([min(max(int(v), self.lo), self.hi) for v in near], dtype=object).reshape(codes.shape)

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        (x,) = xs
        if x.type is None:
            return self.type.width + 1
        return max(code_bits(x) + max(self.type.frac - x.type.frac, 0), self.type.width + 1)

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        if xs[0].type is None:
            return Cost()          # the input quantizer: the firmware receives its codes
        return Cost(lut=out.size * self.type.width)   # a rounding adder and a saturation mux

    def describe(self) -> str:
        step = f" step {self.step}" if self.step is not None else ""
        return f"{'relu+' if self.relu else ''}quant {self.rounding.name} sat[{self.lo}, {self.hi}]{step}"


@dataclass(frozen=True)
class Bipolar(Op):
    """+1 where the input is >= 0, else -1, at `frac` fraction bits (QONNX BipolarQuant)."""
    frac: int
    kind = "bipolar"
    elementwise = True

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a bipolar quantizer")
        return Tensor(x.shape, FixedType(True, 2, self.frac), Interval(-1, 1))

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        if a.floats or a.ins[0].type is None:
            return np.where(x >= 0, 1.0, -1.0)
        return np.where(x >= 0, 1, -1)

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        return Cost() if xs[0].type is None else Cost(lut=out.size)

    def describe(self) -> str:
        return f"bipolar frac {self.frac}"


@dataclass(frozen=True, eq=False)
class Requant(Op):
    """Integer requantisation for float scales: out = clamp(round((x * multiplier[c] + offset[c])
    * 2**-shift)) per channel c (one multiplier: all channels), saturated to [lo, hi] of `type`.
    `ratio` is the exact float ratio the multiplier approximates (what the float model computes);
    `offset` carries the part of a bias that the accumulator holds rounded (--requantize), at
    the multiplier's precision."""
    type: FixedType
    rounding: Rounding
    lo: int
    hi: int
    multiplier: np.ndarray      # positive integers, shape (channels,) or (1,)
    shift: int
    ratio: np.ndarray           # float64, same shape
    offset: np.ndarray | None = None    # integers, shape (channels,) or (1,)
    kind = "requant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "multiplier", frozen(self.multiplier, np.int64))
        object.__setattr__(self, "ratio", frozen(self.ratio, np.float64))
        if self.offset is not None:
            object.__setattr__(self, "offset", frozen(self.offset, np.int64) if np.any(self.offset) else None)
        _saturating(self.type, self.lo, self.hi)
        assert np.all(self.multiplier > 0)

    def offsets(self, channels: int) -> np.ndarray:
        return np.broadcast_to(np.zeros(1, np.int64) if self.offset is None else self.offset, (channels,))

    def multipliers(self, channels: int) -> np.ndarray:
        return np.broadcast_to(self.multiplier, (channels,))

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = codes_in(one(xs, "a requantiser"), "Requant")
        assert x.interval is not None
        need(self.multiplier.size in (1, x.size), f"{self.multiplier.size} multipliers for {x.size} channels")
        need(self.offset is None or self.offset.size in (1, x.size), f"{self.offset} offsets for {x.size} channels")
        n = max(self.multiplier.size, 1 if self.offset is None else self.offset.size)
        ends = [int(v) * int(m) + int(o) for v in (x.interval.lo, x.interval.hi)
                for m, o in zip(np.broadcast_to(self.multiplier, (n,)), self.offsets(n))]
        iv = Interval(shift_round(min(ends), self.shift, self.rounding), shift_round(max(ends), self.shift, self.rounding))
        return Tensor(x.shape, self.type, iv.clamp(self.lo, self.hi))

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        shape = a.ins[0].shape
        m = self._per(self.multiplier, shape)
        off = self._per(self.offsets(1) if self.offset is None else self.offset, shape)
        if a.floats:
            y = x * m.astype(np.float64) + off                  # exact: checked below 2**52
            y = round_real(y * 2.0 ** -self.shift, self.rounding) if self.shift > 0 else y * 2.0 ** -self.shift
            return np.clip(y, self.lo, self.hi, out=y)
        wide = x.dtype == object or self.peak_bits(a.ins, a.out) > INT64_SAFE_BITS
        if wide:
            m, off = m.astype(object), off.astype(object)
        return np.clip(shift_round(x.astype(m.dtype) * m + off, self.shift, self.rounding), self.lo, self.hi)

    @staticmethod
    def _per(v: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """One value per channel, shaped as the input (or one for all)."""
        return v.reshape(shape) if v.size > 1 else v.reshape(())

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        ratio = self._per(self.ratio, a.ins[0].shape)
        return np.clip(round_real(np.asarray(xs[0], dtype=np.float64) * ratio, self.rounding), self.lo, self.hi)

    def approximates(self) -> bool:
        return True

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        (x,) = xs
        assert x.interval is not None
        off = 0 if self.offset is None else int(np.abs(self.offset).max())
        return Interval.around(x.interval.magnitude * int(self.multiplier.max()) + off).width(signed=True) + 1

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        assert xs[0].type is not None
        x_bits = xs[0].type.width
        mult = sum(shift_add_luts(int(m), x_bits) for m in self.multipliers(out.size))
        adds = 0 if self.offset is None else int(np.count_nonzero(self.offsets(out.size))) * (x_bits + self.shift)
        return Cost(lut=out.size * self.type.width + mult + adds)

    def describe(self) -> str:
        bits = int(self.multiplier.max()).bit_length()
        per = f"[{self.multiplier.size}]" if self.multiplier.size > 1 else ""
        off = "" if self.offset is None else f" + offset{'[' + str(self.offset.size) + ']' if self.offset.size > 1 else ''}"
        return (f"requant x{per} {bits}-bit multiplier{off} >> {self.shift} {self.rounding.name} "
                f"sat[{self.lo}, {self.hi}]")


@dataclass(frozen=True)
class Scale(Op):
    """Multiply by constant factors (QDQ DequantizeLinear, the float scale of a QONNX Quant).
    On codes it only relabels them: a power of two moves the binary point, any other factor
    joins the tensor's float factor. The codes do not change."""
    factor: Factor
    kind = "scale"

    def exponent(self) -> int | None:
        """e when the factor is one power of two 2**e, else None."""
        if self.factor.uniform and self.factor.values and is_power_of_two(self.factor.values[0]):
            return log2_exact(self.factor.values[0])
        return None

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a scale")
        try:
            np.broadcast_shapes(self.factor.shape, x.shape)
        except ValueError:
            raise ValueError(f"a scale of shape {list(self.factor.shape)} does not fit a tensor of shape "
                             f"{list(x.shape)}") from None
        if x.type is None:
            return Tensor(x.shape)
        e = self.exponent()
        if e is not None:
            return Tensor(x.shape, x.type.relabel(e), x.interval, x.channels, x.factor)
        factor = self.factor if x.factor is None else Factor.of(self.factor.array * x.factor.array)
        return Tensor(x.shape, x.type, x.interval, x.channels, factor)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        return x * self.factor.array if a.ins[0].type is None else x

    def describe(self) -> str:
        return f"scale {self.factor}"
