"""Thresholds: a quantizer of a float-scaled input (or of a sum whose bias the accumulator holds
rounded) lowered exactly to comparisons of the integer codes with constants (FINN's
MultiThreshold), for quantizers with few levels."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..cost import Cost, compare_luts
from ..fixed import INT64_SAFE_BITS, FixedType
from ..interval import Interval
from ..tensor import Tensor
from .base import Args, Op, codes_in, frozen, need, one
from .quantizers import Bipolar, Quant


MAX_THRESHOLDS = 1 << 16      # in all channels: beyond, a multiplier is always cheaper


@dataclass(frozen=True, eq=False)
class Threshold(Op):
    """out = start[c] + step * #{k : x >= thresholds[c, k]} on integer codes x, per channel c
    (one row: all channels). Built by `lower` from a monotone map onto few levels (`model`: a
    Quant, a Bipolar with step 2, or a Lut into a quantizer) so that on every code of its input
    it equals that map's real model, which stays its reference."""
    type: FixedType
    thresholds: np.ndarray      # int64, (channels, k), ascending along k; channels 1 or the input's size
    start: np.ndarray           # int64, (channels,): the output at the input's lowest code
    model: Op                   # the model it computes (a Quant, a Bipolar, a table): the reference
    source: Tensor              # its input as the model reads it (with its float factor)
    step: int = 1
    kind = "threshold"
    elementwise = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", frozen(self.thresholds, np.int64))
        object.__setattr__(self, "start", frozen(self.start, np.int64))
        assert self.thresholds.ndim == 2 and self.start.shape == self.thresholds.shape[:1]
        assert np.all(np.diff(self.thresholds, axis=1) >= 0)

    @classmethod
    def lower(cls, model: Op, x: Tensor, delta: np.ndarray | None = None,
              most: int = MAX_THRESHOLDS) -> Threshold | None:
        """The thresholds computing `model` on x's codes, or None where they cannot (codes wider
        than 62 bits, a scale that is not positive, more than `most` thresholds in all).
        `delta`: what the float model adds to each code (a bias the accumulator holds rounded),
        broadcast to x's shape, or one an element."""
        assert x.type is not None and x.interval is not None
        if isinstance(model, Quant) and np.any(model.ratio(x) <= 0):
            return None
        if x.interval.magnitude >= 1 << INT64_SAFE_BITS:
            return None
        step = 2 if isinstance(model, Bipolar) else 1
        out_type = model.infer([x]).type
        assert out_type is not None
        n = x.size
        if x.channels is not None and len(x.channels) == n and len(x.shape) == 1:
            lo = np.array([c.lo for c in x.channels], dtype=np.int64)
            hi = np.array([c.hi for c in x.channels], dtype=np.int64)
        else:
            lo = np.full(n, x.interval.lo, dtype=np.int64)
            hi = np.full(n, x.interval.hi, dtype=np.int64)
        d = None if delta is None else np.asarray(delta, np.float64)
        # one value, one a channel (broadcast to x's shape), or one an element (flat)
        shift = np.zeros(n) if d is None else d.ravel() if d.size == n else np.broadcast_to(d, x.shape).ravel()
        ins = Args((x,), Tensor(x.shape, out_type), floats=True, batched=(False,))

        def level(codes: np.ndarray) -> np.ndarray:
            y = model.reference([(codes.astype(np.float64) + shift).reshape(x.shape)], ins)
            return np.asarray(y, dtype=np.float64).ravel().astype(np.int64)

        start, end = level(lo), level(hi)
        if np.any(end < start) or np.any((end - start) % step) or int((end - start).sum()) // step > most:
            return None
        k = max(1, int((end - start).max()) // step)
        rows = np.empty((n, k), dtype=np.int64)
        for j in range(1, k + 1):             # the least code reaching start + j (hi + 1: none)
            a, b = lo.copy(), hi + 1
            while np.any(a < b):
                active = a < b
                mid = a + (b - a) // 2
                reached = level(np.minimum(mid, hi)) >= start + j * step
                b = np.where(active & reached, mid, b)
                a = np.where(active & ~reached, mid + 1, a)
            rows[:, j - 1] = b
        if np.all(rows == rows[0]) and np.all(start == start[0]):
            rows, start = rows[:1], start[:1]
        return cls(out_type, rows, start, model, replace(x, value=None), step)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = codes_in(one(xs, "a threshold"), "Threshold")
        need(self.start.size in (1, x.size), f"{self.start.size} threshold rows for {x.size} channels")
        assert x.interval is not None
        hi: int | np.ndarray = x.interval.hi         # per channel where known: rows are padded past it
        if self.start.size > 1 and x.channels is not None and len(x.channels) == self.start.size:
            hi = np.array([c.hi for c in x.channels], dtype=np.int64)
        reach = (self.thresholds <= np.reshape(hi, (-1, 1))).sum(axis=1)
        iv = Interval(int(self.start.min()), int((self.start + self.step * reach).max()))
        return Tensor(x.shape, self.type, iv)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        shape = a.ins[0].shape
        t = self.thresholds.reshape(shape + (-1,)) if self.start.size > 1 else self.thresholds[0]
        start = self.start.reshape(shape) if self.start.size > 1 else self.start[0]
        count = (np.asarray(x)[..., None] >= t).sum(axis=-1)
        y = start + self.step * count
        return y.astype(np.float64) if a.floats else y.astype(np.int64)

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        """The model on the codes as it read them: a relabel folded into this op later (a float
        factor) does not change what it computes."""
        return self.model.reference(xs, replace(a, ins=(self.source,)))

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        assert xs[0].type is not None
        rows = np.broadcast_to(self.thresholds, (out.size, self.thresholds.shape[1]))
        assert xs[0].interval is not None
        live = int(((rows > xs[0].interval.lo) & (rows <= xs[0].interval.hi)).sum())
        return Cost(lut=compare_luts(xs[0].type.width) * live + out.size * self.type.width)

    def describe(self) -> str:
        per = f"[{self.start.size}]" if self.start.size > 1 else ""
        step = f" step {self.step}" if self.step != 1 else ""
        return f"threshold{per} {self.thresholds.shape[1]} per channel{step} ({self.model.describe()})"
