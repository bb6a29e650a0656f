"""Exact closed intervals over integer codes."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Interval:
    lo: int
    hi: int

    def __post_init__(self) -> None:
        if not (isinstance(self.lo, int) and isinstance(self.hi, int)):
            raise TypeError(f"Interval bounds must be Python ints, got {self.lo!r}, {self.hi!r}")
        if self.lo > self.hi:
            raise ValueError(f"empty interval [{self.lo}, {self.hi}]")

    def __add__(self, other: Interval) -> Interval:
        return Interval(self.lo + other.lo, self.hi + other.hi)

    def scale(self, k: int) -> Interval:
        """The interval of k * x."""
        a, b = self.lo * k, self.hi * k
        return Interval(min(a, b), max(a, b))

    def shift_left(self, s: int) -> Interval:
        return Interval(self.lo << s, self.hi << s)

    def union(self, other: Interval) -> Interval:
        return Interval(min(self.lo, other.lo), max(self.hi, other.hi))

    def clamp(self, lo: int, hi: int) -> Interval:
        """The interval of min(max(x, lo), hi)."""
        return Interval(min(max(self.lo, lo), hi), min(max(self.hi, lo), hi))

    def contains(self, other: Interval) -> bool:
        return self.lo <= other.lo and other.hi <= self.hi

    @property
    def magnitude(self) -> int:
        return max(abs(self.lo), abs(self.hi))

    @property
    def signed(self) -> bool:
        """Whether a type holding these codes needs a sign bit."""
        return self.lo < 0

    def width(self, signed: bool | None = None) -> int:
        """Bits of the narrowest integer holding every code: two's complement when `signed`
        (default: when a code is negative), else unsigned. The one width rule of fpgaq."""
        if signed is None:
            signed = self.signed
        if signed:
            return max(max(-self.lo - 1, 0).bit_length(), max(self.hi, 0).bit_length()) + 1
        assert self.lo >= 0, f"unsigned width of {self}"
        return max(self.hi.bit_length(), 1)

    @classmethod
    def around(cls, magnitude: int) -> Interval:
        """[-m, m]: the codes of a value known only by its magnitude."""
        m = abs(int(magnitude))
        return cls(-m, m)

    @classmethod
    def of(cls, codes: object) -> Interval:
        """The interval of an array of integer codes (int64 or Python ints); [0, 0] when empty."""
        a = np.asarray(codes)
        if a.size == 0:
            return cls(0, 0)
        return cls(int(a.min()), int(a.max()))

    def __str__(self) -> str:
        return f"[{self.lo}, {self.hi}]"
