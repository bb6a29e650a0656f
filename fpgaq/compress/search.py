"""The sensitivity-aware search for the cheapest plan within the allowed drop.

1. Sensitivity. From a safe start (8-bit weights, 12-bit activations, nothing pruned), each
   knob alone is turned down level by level: one layer's weight bits, one tensor's activation
   bits, one layer's unstructured sparsity or share of removed neurons. Every such design is
   measured with the emulator (the relative RMS error of the logits and the metric, on the
   tuning data) and priced with fpgaq's estimate. Measuring beats a Fisher or Hessian-trace
   estimate here: the emulator runs the exact integer design in milliseconds, so the
   sensitivity includes rounding, clipping and the interaction with fpgaq's exact widths,
   which a second-order estimate of float weights does not see.
2. Greedy descent (as HAWQ's bit allocation, with measured costs): from the start, take the
   move one level down on the knob with the largest estimated saving per unit of added error
   (both from step 1, assumed additive), measure the design it gives, and keep it if the
   metric's drop stays within the limit and the cost does not rise (a design over
   --max-latency-ns costs more than any design within it); otherwise that knob stays
   where it is. Stop when no move is left.
The held-out part is never looked at here: it only reports on the result.

Deterministic: no randomness beyond the data split, ties broken by knob order.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .evaluate import Evaluator, Measured
from .floatnet import Net
from .plan import Plan
from .quantize import Choice, Stats, make_plan

W_LEVELS = (8, 7, 6, 5, 4, 3, 2)
A_LEVELS = (12, 10, 9, 8, 7, 6, 5, 4, 3, 2)
S_LEVELS = (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 0.9)
R_LEVELS = (0.0, 0.125, 0.25, 0.375, 0.5)
# the level each knob's sensitivity is reported at
REFERENCE = {"w": 4, "a": 4, "s": 0.5, "r": 0.25}
EPS = 1e-12
LATENCY_PENALTY = 1e9      # per ns over --max-latency-ns
Z = 2.0                   # standard errors of margin on the tuning data


@dataclass(frozen=True)
class Knob:
    kind: str                 # w (weight bits), a (activation bits), s (sparsity), r (removed neurons)
    index: int                # into Net.weighted (w, s, r) or the quantized points (a)
    target: str               # the layer's or tensor's name
    levels: tuple


@dataclass
class Point:
    """A measured design of the search."""
    state: tuple[int, ...]
    choice: Choice
    measured: Measured
    phase: str                # start, sensitivity, search


class Search:
    def __init__(self, net: Net, stats: Stats, points: list[str], evaluator: Evaluator, *, max_drop: float,
                 prune: bool, dsp_cost: float, prunable: list[bool], max_latency_ns: float | None = None,
                 progress: Callable[[int, str], None] = lambda done, what: None):
        self.net, self.stats, self.points, self.ev = net, stats, points, evaluator
        self.max_drop, self.dsp_cost, self.progress = max_drop, dsp_cost, progress
        self.max_latency_ns = max_latency_ns
        layers = net.weighted
        self.knobs = [Knob("w", i, la.name, W_LEVELS) for i, la in enumerate(layers)]
        self.knobs += [Knob("a", i, t, A_LEVELS) for i, t in enumerate(points)]
        if prune:
            self.knobs += [Knob("s", i, la.name, S_LEVELS) for i, la in enumerate(layers)]
            self.knobs += [Knob("r", i, la.name, R_LEVELS) for i, la in enumerate(layers) if prunable[i]]
        self.cache: dict[tuple[int, ...], Point] = {}
        self.explored: list[Point] = []
        self.error: dict[int, list[float]] = {}      # knob -> error per level (inf: not measured, too far)
        self.cost: dict[int, list[float]] = {}

    def choice(self, state: tuple[int, ...]) -> Choice:
        n, p = len(self.net.weighted), len(self.points)
        values: dict[str, list] = {"w": [W_LEVELS[0]] * n, "a": [A_LEVELS[0]] * p, "s": [0.0] * n, "r": [0.0] * n}
        for k, level in zip(self.knobs, state):
            values[k.kind][k.index] = k.levels[level]
        return Choice(*(tuple(values[kind]) for kind in "wasr"))

    def plan(self, state: tuple[int, ...]) -> Plan:
        return make_plan(self.net, self.stats, self.choice(state), self.points)

    def measure(self, state: tuple[int, ...], phase: str) -> Point:
        if state not in self.cache:
            choice = self.choice(state)
            point = Point(state, choice, self.ev.measure(make_plan(self.net, self.stats, choice, self.points)), phase)
            self.cache[state] = point
            self.explored.append(point)
            self.progress(len(self.explored), phase)
        return self.cache[state]

    def price(self, m: Measured) -> float:
        """What the search minimises: LUT + dsp_cost x DSP, plus a penalty that outweighs any
        area for every ns over --max-latency-ns (so a design over it moves towards it first)."""
        over = 0.0 if self.max_latency_ns is None else max(0.0, m.latency_ns - self.max_latency_ns)
        return m.cost(self.dsp_cost) + LATENCY_PENALTY * over

    def ok(self, m: Measured) -> bool:
        """Within the limit with a margin of Z standard errors of the measured drop: on a few
        hundred inputs, a move that flips two of them may well flip more on unseen data."""
        return self.ev.drop(m.metric) + Z * m.se <= self.max_drop + EPS

    def budget(self) -> int:
        """At most this many designs are measured (for a progress bar)."""
        return 1 + 2 * sum(len(k.levels) - 1 for k in self.knobs)

    def run(self) -> tuple[Point, Point]:
        """(the start, the chosen design), from the tuning data alone."""
        start = tuple(0 for _ in self.knobs)
        base = self.measure(start, "start")
        self.sensitivity(start, base)
        return base, self.descend(start, base)

    def sensitivity(self, start: tuple[int, ...], base: Point) -> None:
        base_cost = self.price(base.measured)
        for j, k in enumerate(self.knobs):
            err, cost, drops = [base.measured.error], [base_cost], [self.ev.drop(base.measured.metric)]
            for level in range(1, len(k.levels)):
                if drops[-1] > 5 * self.max_drop + 0.05 and _past_reference(k, level - 1):
                    err.append(math.inf)            # far past the limit already: lower levels are worse
                    cost.append(cost[-1])
                    drops.append(math.inf)
                    continue
                state = start[:j] + (level,) + start[j + 1:]
                m = self.measure(state, "sensitivity").measured
                err.append(max(m.error, err[-1]))
                cost.append(self.price(m))
                drops.append(self.ev.drop(m.metric))
            self.error[j], self.cost[j] = err, cost

    def descend(self, start: tuple[int, ...], base: Point) -> Point:
        state, current = start, base
        path = [base]
        frozen: set[int] = set()
        while True:
            best, best_j = -math.inf, -1
            for j, _k in enumerate(self.knobs):
                level = state[j]
                if j in frozen or level + 1 >= len(self.error[j]) or math.isinf(self.error[j][level + 1]):
                    continue
                saving = self.cost[j][level] - self.cost[j][level + 1]
                if saving <= 0:
                    continue
                score = saving / max(self.error[j][level + 1] - self.error[j][level], EPS)
                if score > best:
                    best, best_j = score, j
            if best_j < 0:
                break
            trial = state[:best_j] + (state[best_j] + 1,) + state[best_j + 1:]
            point = self.measure(trial, "search")
            if self.ok(point.measured) and self.price(point.measured) <= self.price(current.measured):
                state, current = trial, point
                path.append(point)
            else:
                frozen.add(best_j)
        return path[-1]

    def sensitivity_of(self, kind: str, target: str) -> float | None:
        """The relative RMS error of the logits with only this knob at its reference level."""
        for j, k in enumerate(self.knobs):
            if k.kind == kind and k.target == target and j in self.error:
                level = k.levels.index(REFERENCE[kind])
                value = self.error[j][level]
                return None if math.isinf(value) else value
        return None


def _past_reference(k: Knob, level: int) -> bool:
    ref = k.levels.index(REFERENCE[k.kind])
    return level >= ref
