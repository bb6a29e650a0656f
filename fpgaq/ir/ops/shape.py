"""Ops that only move values: Reshape and Transpose (ONNX's Reshape, Flatten, Squeeze,
Unsqueeze and Transpose). The codes do not change."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..fixed import FixedType
from ..interval import Interval
from ..tensor import Factor, Tensor
from .base import Args, Op, need, one


def _moved_factor(x: Tensor, move: Callable[[np.ndarray], np.ndarray]) -> Factor | None:
    # one value broadcasts to any shape; a value an element (even all equal) moves with them
    if x.factor is None or len(x.factor.values) == 1:
        return x.factor
    return Factor.of(move(np.broadcast_to(x.factor.array, x.shape)))


@dataclass(frozen=True)
class Reshape(Op):
    shape: tuple[int, ...]
    kind = "reshape"

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a reshape")
        need(math.prod(self.shape) == x.size, f"cannot reshape {x.size} values into shape {list(self.shape)}")
        return Tensor(self.shape, x.type, x.interval, None,
                      _moved_factor(x, lambda f: f.reshape(self.shape)))

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        return np.reshape(x, ((len(x),) if a.batched[0] else ()) + self.shape)

    def describe(self) -> str:
        return f"reshape {list(self.shape)}"


@dataclass(frozen=True)
class Transpose(Op):
    perm: tuple[int, ...]
    kind = "transpose"

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        x = one(xs, "a transpose")
        need(sorted(self.perm) == list(range(len(x.shape))),
             f"perm {list(self.perm)} does not fit a tensor of shape {list(x.shape)}")
        shape = tuple(x.shape[p] for p in self.perm)
        return Tensor(shape, x.type, x.interval, None, _moved_factor(x, lambda f: np.transpose(f, self.perm)))

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        (x,) = xs
        if a.batched[0]:
            return np.transpose(x, (0,) + tuple(p + 1 for p in self.perm))
        return np.transpose(x, self.perm)

    def describe(self) -> str:
        return f"transpose {list(self.perm)}"


@dataclass(frozen=True)
class Concat(Op):
    """ONNX Concat of run-time tensors along `axis` (batch excluded): every input moved onto the
    finest grid among them, exactly (a left shift), then laid side by side."""
    axis: int
    kind = "concat"

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        need(len(xs) >= 1, "Concat takes at least one input")
        need(all(x.type is not None and x.factor is None for x in xs), "concatenates tensors that are not all "
             "fixed point (a float scale on one); quantize each with a power-of-two scale first")
        first = xs[0].shape
        need(0 <= self.axis < len(first), f"axis {self.axis} of a tensor of shape {list(first)}")
        for x in xs[1:]:
            need(len(x.shape) == len(first) and all(a == b for i, (a, b) in enumerate(zip(x.shape, first))
                                                   if i != self.axis),
                 f"concatenates shapes {list(first)} and {list(x.shape)} along axis {self.axis}")
        frac = max(x.type.frac for x in xs if x.type is not None)
        ivs = [x.interval.shift_left(frac - x.type.frac) for x in xs if x.type is not None and x.interval is not None]
        iv = Interval(min(v.lo for v in ivs), max(v.hi for v in ivs))
        shape = tuple(sum(x.shape[self.axis] for x in xs) if i == self.axis else d for i, d in enumerate(first))
        return Tensor(shape, FixedType.holding(iv, frac), iv)

    def sources(self, xs: Sequence[Tensor]) -> np.ndarray:
        """(output elements, 2): the input and the flat index within it of each output element."""
        parts = []
        for j, x in enumerate(xs):
            idx = np.arange(x.size).reshape(x.shape)
            parts.append(np.stack([np.full(x.shape, j), idx], axis=-1))
        return np.concatenate(parts, axis=self.axis).reshape(-1, 2)

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        assert a.out.type is not None
        parts = []
        for x, t, batched in zip(xs, a.ins, a.batched):
            assert t.type is not None
            k = a.out.type.frac - t.type.frac
            v = np.asarray(x)
            v = v * 2.0 ** k if v.dtype == np.float64 else (v.astype(object) if v.dtype == object else v) * (1 << k)
            parts.append(v if batched else v[None])
        y = np.concatenate(parts, axis=self.axis + 1)
        return y if any(a.batched) else y[0]

    def describe(self) -> str:
        return f"concat axis {self.axis}"
