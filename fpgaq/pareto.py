"""The Pareto front of points with two costs, both to be made small (fpgaq sweep: latency and
area; fpgaq compress: the metric's loss and area)."""
from __future__ import annotations

from collections.abc import Sequence


def pareto_flags(costs: Sequence[tuple[float, float] | None]) -> list[bool]:
    """Which (cost, cost) pairs no other pair dominates (as small or smaller in both, smaller
    in one); None (a failed or uncounted point) is never on the front. Equal pairs are both on it."""
    flags = []
    for i, a in enumerate(costs):
        if a is None:
            flags.append(False)
            continue
        dominated = any(b is not None and j != i and b[0] <= a[0] and b[1] <= a[1] and b != a
                        for j, b in enumerate(costs))
        flags.append(not dominated)
    return flags
