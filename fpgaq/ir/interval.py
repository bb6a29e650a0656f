"""Exact closed intervals over integer codes."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Interval:
    lo: int
    hi: int

    def __post_init__(self):
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

    def __str__(self):
        return f"[{self.lo}, {self.hi}]"
