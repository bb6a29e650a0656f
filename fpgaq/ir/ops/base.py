"""What every IR op is: a frozen dataclass of its parameters that holds all of its own rules.

- `infer`: the shape, fixed-point type and exact code interval of its output, from its inputs
  (raises ValueError, with a message for the user, when the inputs do not fit the op);
- `emulate`: the exact, vectorised computation on codes (the specification);
- `peak_bits`: how wide the integers of that computation get, so the emulator can pick exact
  float64, int64 or Python-int arithmetic;
- `cost`: latency and resources on the FPGA (fpgaq.ir.cost);
- `describe`: its text in the IR dump.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..cost import Cost
from ..fixed import INT64_SAFE_BITS
from ..interval import Interval
from ..tensor import Tensor

FLOAT64_EXACT_BITS = 52   # integers (and their halves) are exact in float64 below 2**52
FLOAT32_EXACT_BITS = 23   # ... and in float32 below 2**23


@dataclass(frozen=True)
class Args:
    """What an op's emulation sees beside the input arrays."""
    ins: tuple[Tensor, ...]
    out: Tensor
    floats: bool                    # codes are held in float64, exact: every value is below 2**52
    batched: tuple[bool, ...]       # per input: a leading batch axis (constants have none)
    float32: bool = False           # with floats: in float32 where an op keeps it, every value below 2**23


class Op:
    """The base of the IR's ops. Subclasses are frozen dataclasses; they are hashable and
    compare by value (ops holding arrays compare by identity)."""
    kind: ClassVar[str] = "op"
    # the same rule on every element, the output shaped as the input (a constant neuron stays
    # constant through it: zero-weight elimination looks through such ops)
    elementwise: ClassVar[bool] = False

    def infer(self, xs: Sequence[Tensor]) -> Tensor:
        raise NotImplementedError

    def emulate(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        raise NotImplementedError

    def reference(self, xs: Sequence[np.ndarray], a: Args) -> np.ndarray:
        """The float model this op approximates (where it rounds a float scale); by default
        the op itself."""
        return self.emulate(xs, a)

    def approximates(self) -> bool:
        """Whether `emulate` rounds a float model that `reference` computes (--requantize)."""
        return False

    def peak_bits(self, xs: Sequence[Tensor], out: Tensor) -> int:
        """Bits (sign included) of the largest integer the emulation handles."""
        return max([code_bits(out)] + [code_bits(x) for x in xs])

    def cost(self, xs: Sequence[Tensor], out: Tensor, clock_ns: float) -> Cost:
        return Cost()

    def describe(self) -> str:
        return self.kind


def code_bits(t: Tensor) -> int:
    """Bits (sign included) of the largest code of t; 0 for a real tensor."""
    return 0 if t.interval is None else Interval.around(t.interval.magnitude).width(signed=True)


def frozen(a: Any, dtype: Any = None) -> np.ndarray:
    """A read-only copy of an array."""
    out = np.array(a, dtype=dtype, copy=True)
    out.setflags(write=False)
    return out


def as_codes(x: np.ndarray, bits: int) -> np.ndarray:
    """Integer codes as int64 when `bits` fit, else as Python ints (an object array)."""
    x = np.asarray(x)
    if bits <= INT64_SAFE_BITS:
        return x.astype(np.int64)
    if x.dtype == object:
        return x
    return np.array([int(v) for v in x.ravel()], dtype=object).reshape(x.shape)


def need(condition: bool, message: str) -> None:
    """An input that does not fit the op: a ValueError the importer reports for the node."""
    if not condition:
        raise ValueError(message)


def one(xs: Sequence[Tensor], kind: str) -> Tensor:
    need(len(xs) == 1, f"{kind} takes one input, got {len(xs)}")
    return xs[0]


def codes_in(x: Tensor, kind: str) -> Tensor:
    """x, which must be integer codes (a quantized tensor)."""
    need(x.type is not None, f"{kind} needs fixed-point input; put a quantizer before it")
    return x
