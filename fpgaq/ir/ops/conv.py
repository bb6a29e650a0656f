"""ONNX Conv, 1-D and 2-D (any rank), as imported: the data input, a constant weight and an
optional constant bias; strides, explicit pads (begins, then ends), dilations and groups
(depthwise included). Exact integer arithmetic on codes, channels first, no batch axis in
shapes. The lower_conv pass turns it into a dense layer over its unrolled matrix."""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..cost import Cost, compare_luts
from ..interval import Interval
from ..fixed import FixedType, exact_codes, regrid
from ..tensor import Factor, Tensor
from .base import Args, Op, code_bits, need
from .linear import row_factor, weight_codes


@dataclass(frozen=True)
class Conv(Op):
    strides: tuple[int, ...]
    pads: tuple[int, ...]          # begins of every spatial axis, then ends
    dilations: tuple[int, ...]
    group: int = 1
    kind = "conv"

    def out_shape(self, x_shape: tuple[int, ...], w_shape: tuple[int, ...]) -> tuple[int, ...]:
        nd = len(w_shape) - 2
        need(len(x_shape) == nd + 1, f"a {nd}-D convolution of a tensor of shape {list(x_shape)} (channels first, "
             "batch excluded)")
        need(x_shape[0] == w_shape[1] * self.group, f"{x_shape[0]} input channels for a weight of shape "
             f"{list(w_shape)} in {self.group} group(s)")
        need(w_shape[0] % self.group == 0, f"{w_shape[0]} output channels do not split into {self.group} groups")
        out = []
        for i in range(nd):
            span = x_shape[1 + i] + self.pads[i] + self.pads[nd + i]
            reach = self.dilations[i] * (w_shape[2 + i] - 1) + 1
            need(span >= reach, f"the kernel ({w_shape[2 + i]}, dilation {self.dilations[i]}) is larger than the "
                 f"padded input ({span}) along axis {i}")
            out.append((span - reach) // self.strides[i] + 1)
        return (w_shape[0],) + tuple(out)

    def parts(self, xs: Sequence[Tensor]) -> tuple[np.ndarray, int, np.ndarray | None]:
        """The weight's codes and frac, and its float factor per output channel (or None)."""
        codes, frac = weight_codes(xs[1])
        rows = row_factor(Tensor(xs[1].shape[:1] + (int(np.prod(xs[1].shape[1:])),), xs[1].type, xs[1].interval,
                                 factor=None if xs[1].factor is None else Factor.of(
                                     np.broadcast_to(xs[1].factor.array, xs[1].shape).reshape(xs[1].shape[0], -1))),
                          1) if xs[1].factor is not None else None
        return np.asarray(codes), frac, rows

    def bias_codes(self, xs: Sequence[Tensor], acc_frac: int) -> np.ndarray | None:
        """The bias as exact codes on the accumulator's grid (a quantized bias, Brevitas'
        Int16Bias / Int32Bias), or None: no bias, or one off the grid (a pass folds it)."""
        if len(xs) < 3 or xs[0].factor is not None or xs[1].factor is not None:
            return None
        b = xs[2]
        if b.value is None or b.factor is not None:
            return None
        if b.type is not None:
            bc, bf = b.value, b.type.frac
        else:
            try:
                bc, bf = exact_codes(b.value, "the bias")
            except ValueError:
                return None
        return regrid(np.ravel(bc), bf, acc_frac)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        need(len(xs) in (2, 3), f"Conv takes two or three inputs, got {len(xs)}")
        x, w = xs[0], xs[1]
        need(w.value is not None, "the weight is computed at run time; fpgaq needs a constant weight")
        codes, frac, rows = self.parts(xs)
        shape = self.out_shape(x.shape, codes.shape)
        need(len(xs) == 2 or xs[2].size == shape[0], f"a bias of {xs[-1].size} values for {shape[0]} channels")
        if x.type is None:
            return Tensor(shape)            # real until lower_conv and fold_affine make codes of it
        bias = self.bias_codes(xs, x.type.frac + frac)
        if len(xs) == 3 and bias is None:
            return Tensor(shape)            # a bias off the grid: fold_affine folds it, or says why not
        assert x.interval is not None
        lo, hi = x.interval.lo, x.interval.hi
        if any(self.pads):
            lo, hi = min(lo, 0), max(hi, 0)
        flat = codes.reshape(codes.shape[0], -1).astype(object)
        b = np.zeros(shape[0], dtype=object) if bias is None else bias
        top = sum(np.maximum(flat * lo, flat * hi).T) + b
        bottom = sum(np.minimum(flat * lo, flat * hi).T) + b
        iv = Interval(int(np.min(bottom)), int(np.max(top)))
        factor = None
        if rows is not None or x.factor is not None:
            f = (np.ones(shape[0]) if rows is None else rows) * (1.0 if x.factor is None else float(x.factor.values[0]))
            factor = Factor.of(f.reshape((-1,) + (1,) * (len(shape) - 1)))
        return Tensor(shape, FixedType.holding(iv, x.type.frac + frac), iv, factor=factor)

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        codes, _, _ = self.parts(xs)
        taps = int(np.prod(codes.shape[1:]))
        return max(code_bits(out) + 1,
                   code_bits(xs[0]) + int(np.abs(codes).max(initial=0)).bit_length() + taps.bit_length() + 2)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        codes, frac, rows = self.parts(a.ins)
        x = np.asarray(xs[0]) if a.batched[0] else np.asarray(xs[0])[None]
        src = a.ins[0]
        if a.out.type is not None:          # codes in, codes out (a bias on the accumulator's grid)
            y = convolve(x, codes, self)
            if len(a.ins) == 3:
                src = a.ins[0]
                assert src.type is not None
                bias = self.bias_codes(a.ins, src.type.frac + frac)
                assert bias is not None
                y = y + bias.astype(y.dtype).reshape((1, -1) + (1,) * (y.ndim - 2))
        else:                               # the real values (a bias, or a real input): float64
            y = convolve(x.astype(np.float64), codes.astype(np.float64), self)
            unit = np.full(codes.shape[0], 2.0 ** -frac) * (1.0 if rows is None else rows)
            if src.type is not None:
                unit = unit * 2.0 ** -src.type.frac * (1.0 if src.factor is None else float(src.factor.values[0]))
            y = y * unit.reshape((1, -1) + (1,) * (y.ndim - 2))
            if len(a.ins) == 3:
                b = a.ins[2]
                assert b.value is not None
                y = y + np.asarray(b.real_values(b.value), np.float64).reshape((1, -1) + (1,) * (y.ndim - 2))
        return y if a.batched[0] else y[0]

    def describe(self) -> str:
        return (f"conv strides {list(self.strides)} pads {list(self.pads)} dilations {list(self.dilations)}"
                + (f" group {self.group}" if self.group > 1 else ""))


def convolve(x: np.ndarray, w: np.ndarray, conv: Conv) -> np.ndarray:
    """Batched x (N, C, *S) with weight w (Co, C/g, *K): the sum over every tap, exact for
    integer codes (int64, float64 integers below 2**52, or Python ints)."""
    nd = w.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + [(conv.pads[i], conv.pads[nd + i]) for i in range(nd)])
    out = conv.out_shape(x.shape[1:], w.shape)[1:]
    cig, cog = w.shape[1], w.shape[0] // conv.group
    dtype = object if (x.dtype == object or w.dtype == object) else np.result_type(x.dtype, w.dtype)
    y = np.zeros((x.shape[0], w.shape[0]) + out, dtype=dtype)
    for k in itertools.product(*(range(n) for n in w.shape[2:])):
        window = tuple(slice(k[i] * conv.dilations[i], k[i] * conv.dilations[i] + conv.strides[i] * (out[i] - 1) + 1,
                             conv.strides[i]) for i in range(nd))
        part = xp[(slice(None), slice(None)) + window]              # (N, C, *out)
        for g in range(conv.group):
            taps = w[(slice(g * cog, (g + 1) * cog), slice(None)) + tuple(k)]   # (cog, cig)
            if not np.any(taps):
                continue
            xs = part[:, g * cig:(g + 1) * cig]
            y[:, g * cog:(g + 1) * cog] += np.tensordot(xs, taps.astype(dtype), axes=([1], [1])).transpose(
                (0, nd + 1) + tuple(range(1, nd + 1)))
    return y


@dataclass(frozen=True)
class MaxPool(Op):
    """ONNX MaxPool (and GlobalMaxPool: the window is the whole input): the largest code of
    each window, per channel; padding never wins. The codes keep the input's type."""
    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    kind = "maxpool"

    def _geometry(self) -> Conv:
        return Conv(self.strides, self.pads, self.dilations, 1)

    def out_shape(self, x_shape: tuple[int, ...]) -> tuple[int, ...]:
        c = x_shape[0]
        return (c,) + self._geometry().out_shape((1,) + x_shape[1:], (1, 1) + self.kernel)[1:]

    def windows(self, x_shape: tuple[int, ...]) -> np.ndarray:
        """(outputs, taps): the flat input index each output reads at each tap; a tap on the
        padding repeats one inside the window (the maximum does not change)."""
        out_shape = self.out_shape(x_shape)
        nd = len(x_shape) - 1
        grids = [g.ravel() for g in np.meshgrid(*[np.arange(n) for n in out_shape[1:]], indexing="ij")]
        taps = []
        for k in itertools.product(*(range(n) for n in self.kernel)):
            taps.append([grids[i] * self.strides[i] - self.pads[i] + k[i] * self.dilations[i] for i in range(nd)])
        positions = len(grids[0])
        index = np.full((out_shape[0], positions, len(taps)), -1, dtype=np.int64)
        for j, q in enumerate(taps):
            valid = np.logical_and.reduce([(q[i] >= 0) & (q[i] < x_shape[1 + i]) for i in range(nd)])
            for c in range(x_shape[0]):
                flat = np.ravel_multi_index((np.full(int(valid.sum()), c),) + tuple(v[valid] for v in q), x_shape)
                index[c, valid, j] = flat
        rows = index.reshape(-1, len(taps))
        need(bool(np.all(rows.max(axis=1) >= 0)), "a pooling window lies entirely in the padding")
        first = np.take_along_axis(rows, np.argmax(rows >= 0, axis=1)[:, None], axis=1)
        return np.where(rows >= 0, rows, first)

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = xs[0]
        need(len(xs) == 1 and len(x.shape) == len(self.kernel) + 1, f"a {len(self.kernel)}-D pooling of a tensor "
             f"of shape {list(x.shape)} (channels first, batch excluded)")
        shape = self.out_shape(x.shape)
        self.windows(x.shape)
        if x.type is None:
            return Tensor(shape)
        return Tensor(shape, x.type, x.interval, factor=x.factor if x.factor is None or x.factor.uniform else None)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        x = np.asarray(xs[0])
        flat = x.reshape((len(x), -1) if a.batched[0] else (1, -1))
        y = flat[:, self.windows(a.ins[0].shape)].max(axis=-1)
        return y.reshape(((len(x),) if a.batched[0] else ()) + a.out.shape)

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        x = xs[0]
        if x.type is None:
            return Cost()
        taps = int(np.prod(self.kernel))
        # a comparison and a multiplexer for each tap after the first
        return Cost(lut=out.size * (taps - 1) * (compare_luts(x.type.width) + x.type.width))

    def describe(self) -> str:
        return f"maxpool kernel {list(self.kernel)} strides {list(self.strides)} pads {list(self.pads)}"
