"""The operations of the IR and their bit-growth rules.

Every op is a frozen dataclass of its parameters. `infer` gives the exact code interval and
the type of an op's output from its inputs; it is the one place where widths are derived.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fixed import FixedType, Rounding, shift_round
from .interval import Interval


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


@dataclass(frozen=True)
class Input:
    """A real-valued (float32) model input of `features` values."""
    features: int


@dataclass(frozen=True)
class Quant:
    """Round to `type.frac` fraction bits, then saturate to [lo, hi] (codes of `type`).

    Reads real values (a model input) or codes of a fixed type.
    """
    type: FixedType
    rounding: Rounding
    lo: int
    hi: int
    input_scale: float | None = None   # on real inputs: round(x / input_scale), a float scale

    def __post_init__(self):
        if not self.type.min_code <= self.lo <= self.hi <= self.type.max_code:
            raise ValueError(f"saturation bounds [{self.lo}, {self.hi}] outside {self.type}")


@dataclass(frozen=True, eq=False)
class Requant:
    """Integer requantisation for float scales: out = clamp(round(x * multiplier[c] * 2**-shift))
    per channel c (one multiplier: all channels), saturated to [lo, hi] of `type`. `ratio` is the
    exact float ratio the multiplier approximates (what the float model computes)."""
    type: FixedType
    rounding: Rounding
    lo: int
    hi: int
    multiplier: np.ndarray      # positive integers, shape (channels,) or (1,)
    shift: int
    ratio: np.ndarray           # float64, same shape

    def __post_init__(self):
        object.__setattr__(self, "multiplier", _frozen(np.asarray(self.multiplier, dtype=np.int64)))
        object.__setattr__(self, "ratio", _frozen(np.asarray(self.ratio, dtype=np.float64)))
        if not self.type.min_code <= self.lo <= self.hi <= self.type.max_code:
            raise ValueError(f"saturation bounds [{self.lo}, {self.hi}] outside {self.type}")
        assert np.all(self.multiplier > 0)

    def multipliers(self, channels: int) -> np.ndarray:
        return np.broadcast_to(self.multiplier, (channels,))


@dataclass(frozen=True)
class Bipolar:
    """+1 where the input is >= 0, else -1, at `frac` fraction bits (QONNX BipolarQuant)."""
    frac: int


@dataclass(frozen=True, eq=False)
class Dense:
    """acc[o] = sum_i weight[o, i] * x[i] + bias[o]; weights at `weight_frac`, bias at the
    accumulator's fraction bits (input frac + weight_frac). Exact: no rounding, no overflow."""
    weight: np.ndarray      # integer codes, shape (out, in)
    weight_frac: int
    bias: np.ndarray        # integer codes, shape (out,)
    reuse: int = 1          # products share multipliers over `reuse` cycles (a schedule, not math)
    model_weights: int = -1  # weights of the layer in the ONNX model, before any pass removed some
    bias_exact: np.ndarray | None = None  # float bias in accumulator units, where it was rounded

    def __post_init__(self):
        object.__setattr__(self, "weight", _frozen(self.weight))
        object.__setattr__(self, "bias", _frozen(self.bias))
        if self.model_weights < 0:
            object.__setattr__(self, "model_weights", int(self.weight.size))
        assert self.weight.ndim == 2 and self.bias.shape == (self.weight.shape[0],)
        assert self.reuse >= 1

    @property
    def nonzero(self) -> int:
        return int(np.count_nonzero(self.weight))


@dataclass(frozen=True)
class Relu:
    pass


@dataclass(frozen=True)
class Clip:
    """Saturate codes to [lo, hi] at the input's own fraction bits."""
    lo: int | None
    hi: int | None


Op = Input | Quant | Requant | Bipolar | Dense | Relu | Clip


@dataclass(frozen=True)
class Typed:
    """What `infer` derives for a tensor: its type, its exact interval and per-channel intervals."""
    type: FixedType | None          # None: real-valued (before the input quantizer)
    interval: Interval | None
    channels: tuple[Interval, ...] | None = field(default=None, compare=False)


def dense_channel_intervals(op: Dense, x: Interval) -> tuple[Interval, ...]:
    """Exact range of each accumulator, from the weight codes and the input range."""
    w = op.weight
    out = []
    for o in range(w.shape[0]):
        row = w[o]
        pos = int(sum(int(v) for v in row[row > 0]))
        neg = int(sum(int(v) for v in row[row < 0]))
        b = int(op.bias[o])
        lo = b + pos * x.lo + neg * x.hi
        hi = b + pos * x.hi + neg * x.lo
        out.append(Interval(lo, hi))
    return tuple(out)


def infer(op: Op, inputs: list[Typed]) -> Typed:
    """Type and interval of an op's output. Raises ValueError on an op/input mismatch."""
    if isinstance(op, Input):
        return Typed(None, None)
    (x,) = inputs
    if isinstance(op, Quant):
        if x.type is None:
            return Typed(op.type, Interval(op.lo, op.hi))
        iv = Interval(shift_round(x.interval.lo, x.type.frac - op.type.frac, op.rounding),
                      shift_round(x.interval.hi, x.type.frac - op.type.frac, op.rounding))
        return Typed(op.type, iv.clamp(op.lo, op.hi))
    if isinstance(op, Bipolar):
        return Typed(FixedType(True, 2, op.frac), Interval(-1, 1))
    if isinstance(op, Requant):
        if x.type is None:
            raise ValueError("Requant needs fixed-point input")
        ends = [int(v) * int(m) for v in (x.interval.lo, x.interval.hi) for m in op.multiplier]
        iv = Interval(shift_round(min(ends), op.shift, op.rounding), shift_round(max(ends), op.shift, op.rounding))
        return Typed(op.type, iv.clamp(op.lo, op.hi))
    if x.type is None:
        raise ValueError(f"{type(op).__name__} needs fixed-point input; put a quantizer before it")
    if isinstance(op, Dense):
        channels = dense_channel_intervals(op, x.interval)
        iv = channels[0]
        for c in channels[1:]:
            iv = iv.union(c)
        return Typed(FixedType.holding(iv, x.type.frac + op.weight_frac), iv, channels)
    if isinstance(op, Relu):
        iv = x.interval.clamp(0, max(x.interval.hi, 0))
        return Typed(FixedType.holding(iv, x.type.frac), iv)
    if isinstance(op, Clip):
        lo = x.interval.lo if op.lo is None else op.lo
        hi = x.interval.hi if op.hi is None else op.hi
        iv = x.interval.clamp(lo, max(lo, hi))
        return Typed(FixedType.holding(iv, x.type.frac), iv)
    raise TypeError(f"unknown op {op!r}")
