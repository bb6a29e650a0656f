"""Fixed-point types and the rounding of integer codes.

A value is an integer code with a FixedType; its real value is code * 2**-frac.
Every bit-growth rule and every rounding rule lives here.
"""
from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from .interval import Interval

# int64 arithmetic is exact below this many bits of magnitude; past it we use object arrays.
INT64_SAFE_BITS = 62


@dataclass(frozen=True)
class FixedType:
    signed: bool
    width: int
    frac: int

    def __post_init__(self) -> None:
        if not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"FixedType width must be a positive int, got {self.width!r}")
        if not isinstance(self.frac, int):
            raise ValueError(f"FixedType frac must be an int, got {self.frac!r}")

    @property
    def integer(self) -> int:
        """Integer bits including the sign bit, as ap_fixed<W, I> counts them."""
        return self.width - self.frac

    @property
    def signed_width(self) -> int:
        """Bits of the narrowest signed integer holding every code of this type."""
        return self.width + (0 if self.signed else 1)

    @property
    def min_code(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def interval(self) -> Interval:
        return Interval(self.min_code, self.max_code)

    @classmethod
    def holding(cls, iv: Interval, frac: int) -> FixedType:
        """The narrowest type at `frac` fraction bits whose codes include all of `iv`."""
        return cls(iv.signed, iv.width(), frac)

    @classmethod
    def parse(cls, text: str) -> FixedType:
        """`fixed<W,I>` or `ufixed<W,I>` (also `ap_fixed<W,I>`, `ap_ufixed<W,I>`): W bits, I of
        them integer bits (the sign included); ValueError otherwise."""
        m = re.fullmatch(r"\s*(?:ap_)?(u?)fixed\s*<\s*(\d+)\s*,\s*(-?\d+)\s*>\s*", text)
        if not m or int(m.group(2)) < 1:
            raise ValueError(f"{text!r} is not a fixed-point type such as 'fixed<16,6>' or 'ap_ufixed<8,3>'")
        width, integer = int(m.group(2)), int(m.group(3))
        return cls(m.group(1) != "u", width, width - integer)

    def relabel(self, exponent: int) -> FixedType:
        """The same codes read as value * 2**exponent: only the binary point moves."""
        return FixedType(self.signed, self.width, self.frac - exponent)

    def __str__(self) -> str:
        kind = "fixed" if self.signed else "ufixed"
        return f"{kind}<{self.width},{self.integer}>"


class Rounding(enum.Enum):
    """How a code loses fraction bits. Names follow QONNX's rounding_mode; the values are the
    mode numbers the C++ kernels and the Verilog primitives use, written into each generated
    project from here (fpgaq_modes.h, fpgaq_modes.vh)."""
    FLOOR = 0        # toward -inf
    CEIL = 1         # toward +inf
    DOWN = 2         # toward zero
    UP = 3           # away from zero
    ROUND = 4        # half to even
    HALF_UP = 5      # half away from zero
    HALF_DOWN = 6    # half toward zero

    @classmethod
    def parse(cls, text: str) -> Rounding:
        """A QONNX rounding_mode (HALF_EVEN is ROUND); ValueError when unknown."""
        key = text.upper()
        if key == "HALF_EVEN":
            key = "ROUND"
        if key not in cls.__members__:
            raise ValueError(f"unknown rounding mode {text!r}")
        return cls[key]


class Saturation(enum.Enum):
    """How a quantizer keeps its codes in [lo, hi], given the range its input can reach."""
    NONE = "never"            # the range proves the bounds never bite
    TYPE = "type"             # the bounds are the type's own (ap_fixed AP_SAT)
    SYMMETRIC = "symmetric"   # signed, without the most negative code (QONNX narrow, AP_SAT_SYM)
    BOUNDS = "bounds"         # other bounds: an explicit clamp

    @classmethod
    def of(cls, lo: int, hi: int, t: FixedType, reach: Interval) -> Saturation:
        if lo <= reach.lo and reach.hi <= hi:
            return cls.NONE
        if (lo, hi) == (t.min_code, t.max_code):
            return cls.TYPE
        if t.signed and lo == -hi == -t.max_code:
            return cls.SYMMETRIC
        return cls.BOUNDS


def shift_round(codes: Any, shift: int, rounding: Rounding) -> Any:
    """codes * 2**-shift rounded to an integer, exactly (codes: int, int64 or object array)."""
    if shift <= 0:
        return codes << (-shift) if shift else codes
    floor = codes >> shift
    rem = codes - (floor << shift)            # in [0, 2**shift)
    half = 1 << (shift - 1)
    # numpy bools: `~` on a Python bool is integer negation (~True == -2, which is truthy)
    inexact = np.not_equal(rem, 0)
    neg = np.less(codes, 0)
    if rounding is Rounding.FLOOR:
        up = False
    elif rounding is Rounding.CEIL:
        up = inexact
    elif rounding is Rounding.DOWN:
        up = neg & inexact
    elif rounding is Rounding.UP:
        up = ~neg & inexact
    elif rounding is Rounding.ROUND:
        up = (rem > half) | ((rem == half) & ((floor & 1) == 1))
    elif rounding is Rounding.HALF_UP:
        up = (rem > half) | ((rem == half) & ~neg)
    elif rounding is Rounding.HALF_DOWN:
        up = (rem > half) | ((rem == half) & neg)
    else:  # pragma: no cover - enum is closed
        raise AssertionError(rounding)
    if isinstance(codes, (int, np.integer)):
        return int(floor) + int(bool(up))
    return floor + np.asarray(up, dtype=np.int64).astype(floor.dtype)


def round_real(x: np.ndarray, rounding: Rounding) -> np.ndarray:
    """Round float64 values (already scaled to code units) to integers, as QONNX does."""
    if rounding is Rounding.ROUND:
        return np.rint(x)         # half to even, like np.round, and faster
    if rounding is Rounding.FLOOR:
        return np.floor(x)
    if rounding is Rounding.CEIL:
        return np.ceil(x)
    if rounding is Rounding.DOWN:
        return np.trunc(x)
    if rounding is Rounding.UP:
        return np.sign(x) * np.ceil(np.abs(x))
    if rounding is Rounding.HALF_UP:
        return np.sign(x) * np.floor(np.abs(x) + 0.5)
    if rounding is Rounding.HALF_DOWN:
        return np.sign(x) * np.ceil(np.abs(x) - 0.5)
    raise AssertionError(rounding)  # pragma: no cover


def code_array(values: object, bits: int) -> np.ndarray:
    """An array of integer codes: int64 when `bits` fits, else Python ints in an object array."""
    if bits <= INT64_SAFE_BITS:
        return np.asarray(values, dtype=np.int64)
    return np.asarray(values, dtype=object)


def compact_codes(values: object) -> np.ndarray:
    """Integer codes as int64 when every one fits in 62 bits, else as Python ints (object)."""
    a = np.asarray(values)
    limit = 1 << INT64_SAFE_BITS
    if a.size == 0:
        return a.astype(np.int64)
    if a.dtype.kind in "iu":          # machine integers: their range says it
        if -limit < int(a.min()) and int(a.max()) < limit:
            return a.astype(np.int64)
    elif max(abs(int(v)) for v in a.ravel()) < limit:
        return a.astype(np.int64)
    return np.array([int(v) for v in a.ravel()], dtype=object).reshape(a.shape)


def csd(w: int) -> list[tuple[int, int]]:
    """Canonical signed digits of w: (shift, sign) pairs with w == sum(sign << shift),
    no two adjacent; the fewest non-zero digits of any signed-digit form."""
    digits, k = [], 0
    while w:
        if w & 1:
            d = 2 - (w & 3)          # +1 if w = 1 mod 4, -1 if w = 3 mod 4
            digits.append((k, d))
            w -= d
        w >>= 1
        k += 1
    return digits


def is_power_of_two(x: float) -> bool:
    m, _ = np.frexp(x)
    return bool(x > 0 and m == 0.5)


def log2_exact(x: float) -> int:
    """k with x == 2**k, for a positive power of two."""
    m, e = np.frexp(x)
    assert m == 0.5, x
    return int(e) - 1


def dyadic(values: np.ndarray, max_frac: int = 200) -> tuple[np.ndarray, int] | None:
    """Exact (integer codes, frac) with values == codes * 2**-frac and the smallest such frac >= 0.

    Every finite float is dyadic; returns None when more than max_frac bits would be needed.
    """
    vals = np.asarray(values, dtype=np.float64).ravel()
    frac = 0
    parts = []                        # v == mant * 2**(e - 53), in Python ints
    for v in vals:
        if v == 0:
            parts.append((0, 0))
            continue
        m, e = np.frexp(v)            # v = m * 2**e, 0.5 <= |m| < 1, m has 53 bits
        mant = int(np.ldexp(m, 53))
        tz = (mant & -mant).bit_length() - 1
        frac = max(frac, 53 - int(e) - tz)
        parts.append((mant, int(e) - 53))
    if frac > max_frac:
        return None
    # exact in integers (a float ldexp would overflow for a huge value beside a tiny one);
    # the right shift drops only zero bits, since no value has bits below 2**-frac
    codes = [mant << (e + frac) if e + frac >= 0 else mant >> -(e + frac) for mant, e in parts]
    bits = max([abs(c).bit_length() for c in codes] + [1]) + 1
    return code_array(codes, bits).reshape(np.shape(values)), frac


def exact_codes(values: np.ndarray, what: str) -> tuple[np.ndarray, int]:
    """Exact (codes, frac) of constant real values, or a ValueError saying why not."""
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} holds NaN or Inf; export the model again with finite values")
    d = dyadic(values)
    if d is None:
        raise ValueError(f"{what} needs more than 200 fraction bits to be held exactly")
    return d


def regrid(codes: np.ndarray, frac: int, target: int) -> np.ndarray | None:
    """Codes at `frac` re-expressed exactly at `target` fraction bits (an object array), or None
    when a value has bits below 2**-target. A coarser target is fine for values on its grid:
    a zero bias fits any accumulator."""
    vals = [int(c) for c in np.ravel(codes)]
    if target >= frac:
        out = [v << (target - frac) for v in vals]
    elif any(v % (1 << (frac - target)) for v in vals):
        return None
    else:
        out = [v >> (frac - target) for v in vals]
    return np.array(out, dtype=object).reshape(np.shape(codes))
