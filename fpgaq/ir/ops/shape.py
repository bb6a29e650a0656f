"""Ops that only move values: Reshape and Transpose (ONNX's Reshape, Flatten, Squeeze,
Unsqueeze and Transpose). The codes do not change."""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..tensor import Factor, Tensor
from .base import Args, Op, need, one


def _moved_factor(x: Tensor, move: Callable[[np.ndarray], np.ndarray]) -> Factor | None:
    if x.factor is None or x.factor.uniform:
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
