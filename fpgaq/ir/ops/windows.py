"""Sliding windows (im2col): the taps of every window of a convolution or pooling, gathered.
A channels-first input (C, *S) becomes (positions, taps * C), channels last: row p holds, tap
by tap, the C codes the window at output position p reads; a tap on the padding reads
`pad_code`. A streaming design computes it with a line buffer; its cost is that buffer."""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..cost import BRAM_BITS, LUTRAM_MAX_BITS, Cost
from ..interval import Interval
from ..tensor import Tensor
from .base import Args, Op, need, one


@dataclass(frozen=True)
class Windows(Op):
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]           # begins of every spatial axis, then ends
    dilations: tuple[int, ...]
    pad_code: int = 0               # what a tap on the padding reads
    kind = "windows"

    @property
    def taps(self) -> int:
        return math.prod(self.kernel)

    def spatial_out(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        out = []
        for i, n in enumerate(spatial):
            span = n + self.pads[i] + self.pads[len(spatial) + i]
            reach = self.dilations[i] * (self.kernel[i] - 1) + 1
            need(span >= reach, f"the window ({self.kernel[i]}, dilation {self.dilations[i]}) is larger than the "
                 f"padded input ({span}) along axis {i}")
            out.append((span - reach) // self.strides[i] + 1)
        return tuple(out)

    def padded(self, spatial: tuple[int, ...]) -> tuple[int, ...]:
        nd = len(spatial)
        return tuple(n + self.pads[i] + self.pads[nd + i] for i, n in enumerate(spatial))

    def reach(self, spatial: tuple[int, ...]) -> int:
        """Pixels of the padded input, in raster order, from a window's first tap to its last:
        the depth of the line buffer."""
        padded = self.padded(spatial)
        strides = [math.prod(padded[i + 1:]) for i in range(len(padded))]
        return sum((k - 1) * d * s for k, d, s in zip(self.kernel, self.dilations, strides)) + 1

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a window gather")
        need(len(x.shape) == len(self.kernel) + 1, f"{len(self.kernel)}-D windows of a tensor of shape "
             f"{list(x.shape)} (channels first, batch excluded)")
        need(x.factor is None or x.factor.uniform, "the input carries per-channel float scales; quantize it first")
        out = (math.prod(self.spatial_out(x.shape[1:])), self.taps * x.shape[0])
        if x.type is None or x.interval is None:
            return Tensor(out)
        iv = x.interval
        if any(self.pads):
            iv = Interval(min(iv.lo, self.pad_code), max(iv.hi, self.pad_code))
        return Tensor(out, x.type, iv, None, x.factor)

    def index(self, x_shape: tuple[int, ...]) -> np.ndarray:
        """(positions, taps * C): the flat input index each output reads; -1 on the padding."""
        return _index(self, x_shape)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        x = np.asarray(xs[0])
        n = a.ins[0].size
        flat = x.reshape((len(x), n) if a.batched[0] else (1, n))
        pad = np.full((len(flat), 1), self.pad_code, dtype=flat.dtype)
        idx = self.index(a.ins[0].shape)
        y = np.concatenate([flat, pad], axis=1)[:, np.where(idx >= 0, idx, n)]
        return y if a.batched[0] else y[0]

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        """The line buffer (LUT RAM or block RAM) and the window's registers; it first emits
        after `reach` pixels and takes a frame in one cycle a padded pixel."""
        x = xs[0]
        if x.type is None:
            return Cost()
        spatial = x.shape[1:]
        bits = self.reach(spatial) * x.shape[0] * x.type.width
        bram = math.ceil(bits / BRAM_BITS) if bits > LUTRAM_MAX_BITS else 0
        lut = 0 if bram else math.ceil(bits / 64)
        layer = {"weights": 0, "nonzero": 0, "multipliers": 0, "reuse": 1,
                 "accumulator": {"signed": x.type.signed, "width": x.type.width, "frac": x.type.frac},
                 "adder_depth": 0, "accumulator_bits": 0, "line_buffer_bits": bits}
        return Cost(latency_cycles=self.reach(spatial), ii=math.prod(self.padded(spatial)),
                    lut=lut, ff=self.taps * x.shape[0] * x.type.width, bram=bram, layer=layer)

    def describe(self) -> str:
        return (f"windows kernel {list(self.kernel)} strides {list(self.strides)} pads {list(self.pads)}"
                + (f" dilations {list(self.dilations)}" if any(d != 1 for d in self.dilations) else "")
                + (f" pad {self.pad_code}" if self.pad_code else ""))


@lru_cache(maxsize=64)
def _index(op: Windows, x_shape: tuple[int, ...]) -> np.ndarray:
    spatial = x_shape[1:]
    nd = len(spatial)
    out = op.spatial_out(spatial)
    grids = [g.ravel() for g in np.meshgrid(*[np.arange(n) for n in out], indexing="ij")]
    channels = np.arange(x_shape[0])
    cols = []
    for k in itertools.product(*(range(n) for n in op.kernel)):
        q = [grids[i] * op.strides[i] - op.pads[i] + k[i] * op.dilations[i] for i in range(nd)]
        valid = np.logical_and.reduce([(q[i] >= 0) & (q[i] < spatial[i]) for i in range(nd)])
        pixel = np.ravel_multi_index(tuple(np.clip(q[i], 0, spatial[i] - 1) for i in range(nd)), spatial)
        # channels first: element (c, pixel) is at c * pixels + pixel
        flat = channels[None, :] * math.prod(spatial) + pixel[:, None]
        cols.append(np.where(valid[:, None], flat, -1))
    idx = np.concatenate(cols, axis=1)
    idx.setflags(write=False)
    return idx
