"""A value of the IR: a tensor with a shape, a fixed-point type and an exact code interval.

Shapes exclude the batch axis and keep the layout ONNX gives ((C,), (C, W), (C, H, W)). A
tensor is real (float32, as ONNX computes it: before the input quantizer, and constants not
yet quantized) or integer codes of a FixedType, whose value is code * 2**-frac, times a float
`factor` where a float scale rides on the codes (--requantize, until a pass absorbs it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .fixed import FixedType
from .interval import Interval


@dataclass(frozen=True)
class Factor:
    """Float scales on the codes of a tensor, broadcastable to its shape: one value, or one
    per channel (or per element, on a constant)."""
    shape: tuple[int, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, values: object) -> Factor:
        a = np.asarray(values, dtype=np.float64)
        return cls(tuple(a.shape), tuple(float(v) for v in a.ravel()))

    @property
    def array(self) -> np.ndarray:
        return np.array(self.values, dtype=np.float64).reshape(self.shape)

    @property
    def uniform(self) -> bool:
        return len(set(self.values)) <= 1

    def __str__(self) -> str:
        shown = ", ".join(f"{v:.9g}" for v in self.values[:4])
        return f"x[{shown}{', ...' if len(self.values) > 4 else ''}]"


@dataclass(frozen=True)
class Tensor:
    shape: tuple[int, ...]
    type: FixedType | None = None          # None: real-valued
    interval: Interval | None = None       # exact range of the codes
    channels: tuple[Interval, ...] | None = None   # exact range per index of the last axis (a layer's outputs), where known
    factor: Factor | None = None           # float scale on the codes (value = code * 2**-frac * factor)
    value: np.ndarray | None = field(default=None, compare=False, repr=False)  # a constant's data

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def real(self) -> bool:
        return self.type is None

    @property
    def const(self) -> bool:
        return self.value is not None

    @property
    def frac(self) -> int:
        assert self.type is not None, "a real tensor has no binary point"
        return self.type.frac

    def real_values(self, codes: np.ndarray) -> np.ndarray:
        """Real values (float64) of this tensor's codes (int64, float64 or Python ints)."""
        c = np.asarray(codes)
        if self.type is None:
            return c.astype(np.float64)
        if c.dtype == object:
            c = np.array([float(v) for v in c.ravel()]).reshape(c.shape)
        out = c * 2.0 ** -self.type.frac
        return out if self.factor is None else out * self.factor.array

    def __str__(self) -> str:
        ty = "float" if self.type is None else str(self.type)
        dims = ",".join(map(str, self.shape))
        iv = f" codes {self.interval}" if self.interval is not None else ""
        f = f" {self.factor}" if self.factor is not None else ""
        return f"{ty}[{dims}]{iv}{f}"
