"""Reuse-factor tiling: a dense layer with reuse R computes ceil(non-zeros / R) products a
cycle and accepts a new input every R cycles."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace


from ..errors import ConfigError
from ..ir.cost import Cost, csd_digits
from ..ir.graph import Graph, Node
from ..ir.ops import Dense


def legal_reuse(nonzero: int) -> list[int]:
    """The smallest R for each distinct multiplier count ceil(nonzero / R): the useful values."""
    n = max(nonzero, 1)
    out, last = [], None
    for r in range(1, n + 1):
        m = math.ceil(n / r)
        if m != last:
            out.append(r)
            last = m
    return out


def _show(values: list[int]) -> str:
    if len(values) <= 16:
        return ", ".join(map(str, values))
    return ", ".join(map(str, values[:12])) + ", ..., " + ", ".join(map(str, values[-3:]))


def _names(node: Node) -> set[str]:
    return {node.name, node.origin.onnx_name}


def _dense(node: Node) -> Dense:
    assert isinstance(node.op, Dense)
    return node.op


# what a DSP is worth in LUTs, to weigh the two budgets of --reuse auto against each other
DSP_LUTS = 55
# LUTs of a Verilog dense layer at R = 1 (one shared adder graph of its constant products), per
# canonical signed digit of its weights and accumulator bit: its adder bits measured 0.41 to 0.51
# of that on the jet tagger and random MLPs (a LUT an adder bit on a carry chain)
SHARED_ADDER_BITS = 0.45


@dataclass(frozen=True)
class TileByReuse:
    """Set each dense layer's reuse factor: `default` (capped at a layer's non-zero count),
    overridden per layer by `per_layer` ((IR or ONNX node name, R) pairs); or, with `auto`, the lowest-latency choice whose
    estimated DSPs fit `dsp_budget` and estimated LUTs `lut_budget`. With `serial` (io_stream), a layer applied at several
    positions is one instance computing them in turn. A DSP budget of 0 is a design without DSPs:
    every product in LUTs (`fabric`), at R = 1 unless `shift_add`. With `shift_add` (the Verilog
    back-end), a layer at R = 1 multiplies by its constant weights in shift-and-add adders: no
    DSPs, more LUTs; only its shared multipliers at R > 1 may take DSPs."""
    default: int = 1
    per_layer: tuple[tuple[str, int], ...] = ()
    auto: bool = False
    dsp_budget: int | None = None
    clock_ns: float = 5.0
    serial: bool = False        # io_stream: a layer's positions share its one instance
    lut_budget: int | None = None
    shift_add: bool = False     # R = 1 is constants in shift-and-add (Verilog), not multipliers
    name: str = "tile_by_reuse"

    def run(self, graph: Graph) -> Graph:
        dense = [n for n in graph.nodes if isinstance(n.op, Dense)]
        wanted = dict(self.per_layer)
        known = set().union(*(_names(n) for n in dense)) if dense else set()
        unknown = sorted(set(wanted) - known)
        if unknown:
            raise ConfigError(f"layer_reuse names {', '.join(unknown)}, which is not a dense layer; "
                              f"dense layers are {', '.join(n.name for n in dense)}")
        fabric = self.auto and self.dsp_budget == 0     # a design without DSPs: every product in LUTs
        if self.auto and self.dsp_budget is None and self.lut_budget is None:
            raise ConfigError("--reuse auto needs --dsp-budget N or --lut-budget N (what the design may use)")
        if fabric and not (self.shift_add and self.lut_budget is not None):
            choice = {n.name: 1 for n in dense}
        elif self.auto and self.serial:
            choice = self._auto_stream(graph, dense, fabric)
        elif self.auto:
            choice = self._auto(graph, dense, fabric)
        else:
            choice = {}
            for n in dense:
                nz = max(_dense(n).nonzero, 1)
                named = next((wanted[k] for k in _names(n) if k in wanted), None)
                # the global default caps at a small layer's product count; a named value must fit
                r = named if named is not None else min(self.default, nz)
                if not 1 <= r <= nz:
                    raise ConfigError(
                        f"reuse factor {r} is illegal for layer {n.name} ({n.origin}, {nz} non-zero "
                        f"weights); legal values: 1 to {nz}, of which these give distinct "
                        f"multiplier counts: {_show(legal_reuse(nz))}")
                choice[n.name] = r
        return graph.replace_nodes(replace(n, op=replace(_dense(n), reuse=choice[n.name], serial=self.serial,
                                                         fabric=fabric))
                                   if n.name in choice else n for n in graph.nodes)

    def _estimate(self, graph: Graph, n: Node, r: int, fabric: bool = False) -> Cost:
        # shift_add at R = 1: every product a constant's shift-and-add in LUTs, no DSP
        op = replace(_dense(n), reuse=r, serial=self.serial, fabric=fabric or (self.shift_add and r == 1))
        cost = op.cost([graph[n.inputs[0]].out], n.out, self.clock_ns)
        if self.shift_add and r == 1:
            assert n.out.type is not None
            w = op.weight
            digits = sum(csd_digits(int(v)) for v in w[w != 0])
            copies = 1 if self.serial else Dense.positions(graph[n.inputs[0]].out)
            cost = replace(cost, lut=math.ceil(SHARED_ADDER_BITS * digits * n.out.type.width) * copies)
        return cost

    def _fixed_lut(self, graph: Graph) -> int:
        """The LUTs of everything but the dense layers (their activations, quantizers, tables),
        which no reuse factor changes: counted only against a LUT budget."""
        if self.lut_budget is None:
            return 0
        return sum(n.op.cost([graph[i].out for i in n.inputs], n.out, self.clock_ns).lut
                   for n in graph.nodes if n.inputs and not isinstance(n.op, Dense))

    def _budgets(self) -> str:
        parts = ([f"{self.dsp_budget} DSPs"] if self.dsp_budget is not None else []) + (
            [f"{self.lut_budget} LUTs"] if self.lut_budget is not None else [])
        return " and ".join(parts)

    def _over(self, dsp: int, lut: int) -> bool:
        return ((self.dsp_budget is not None and dsp > self.dsp_budget)
                or (self.lut_budget is not None and lut > self.lut_budget))

    def _no_fit(self, dsp: int, lut: int) -> ConfigError:
        return ConfigError(f"no reuse factors fit {self._budgets()}; at the largest useful reuse factors the "
                           f"model needs an estimated {dsp} DSPs and {lut} LUTs")

    def _auto_stream(self, graph: Graph, dense: list[Node], fabric: bool = False) -> dict[str, int]:
        """io_stream: the design's II is its slowest stage's frame (positions x R); the least II
        whose layers fit the budgets, each layer at the largest useful R within it (fewest DSPs)."""
        options = {n.name: legal_reuse(_dense(n).nonzero) for n in dense}
        frames = {n.name: Dense.positions(graph[n.inputs[0]].out) for n in dense}
        costs = {(n.name, r): self._estimate(graph, n, r, fabric) for n in dense for r in options[n.name]}
        fixed = self._fixed_lut(graph)

        def within(ii: int) -> dict[str, int]:
            return {n.name: max([r for r in options[n.name] if frames[n.name] * r <= ii] or options[n.name][:1])
                    for n in dense}

        def use(choice: dict[str, int]) -> tuple[int, int]:
            return (sum(costs[(name, r)].dsp for name, r in choice.items()),
                    fixed + sum(costs[(name, r)].lut for name, r in choice.items()))

        def fits(ii: int) -> bool:
            return not self._over(*use(within(ii)))

        candidates = sorted({frames[n.name] * r for n in dense for r in options[n.name]})
        if not candidates or not fits(candidates[-1]):
            raise self._no_fit(*use({n.name: options[n.name][-1] for n in dense}))
        lo, hi = 0, len(candidates) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if fits(candidates[mid]) else (mid + 1, hi)
        return within(candidates[lo])

    def _relief(self, dsp: int, lut: int, before: Cost, after: Cost) -> float:
        """What a layer's step from `before` to `after` gives back of the resources over their
        budgets (a DSP worth DSP_LUTS LUTs), less what it pushes over a budget it fitted."""
        gain = 0.0
        for have, budget, was, now, weight in ((dsp, self.dsp_budget, before.dsp, after.dsp, DSP_LUTS),
                                               (lut, self.lut_budget, before.lut, after.lut, 1)):
            if budget is None:
                continue
            if have > budget:
                gain += (was - now) * weight
            elif have - was + now > budget:
                gain -= (have - was + now - budget) * weight
        return gain

    def _auto(self, graph: Graph, dense: list[Node], fabric: bool = False) -> dict[str, int]:
        """The better (less latency, then a lower II) of two searches, each followed by giving
        back, the largest reuse factor first, the steps that the budgets do not need:
        - greedy: start at R = 1 everywhere; while the DSPs or LUTs exceed their budgets, step the
          layer that gives back the most per added cycle to its next useful R;
        - balanced: the least bound on R for which every layer at its largest useful R within
          the bound fits (the II of an io_parallel design is its largest R)."""
        options = {n.name: legal_reuse(_dense(n).nonzero) for n in dense}
        cache: dict[tuple[str, int], Cost] = {}

        def est(n: Node, r: int) -> Cost:
            if (n.name, r) not in cache:
                cache[(n.name, r)] = self._estimate(graph, n, r, fabric)
            return cache[(n.name, r)]

        fixed = self._fixed_lut(graph)

        def use(choice: dict[str, int]) -> tuple[int, int]:
            costs = [est(n, choice[n.name]) for n in dense]
            return sum(e.dsp for e in costs), fixed + sum(e.lut for e in costs)

        def give_back(choice: dict[str, int]) -> dict[str, int]:
            choice = dict(choice)
            lowered = True
            while lowered:
                lowered = False
                for n in sorted(dense, key=lambda n: -choice[n.name]):
                    i = options[n.name].index(choice[n.name])
                    if i == 0 or self._over(*use({**choice, n.name: options[n.name][i - 1]})):
                        continue
                    choice[n.name], lowered = options[n.name][i - 1], True
                    break
            return choice

        def latency(choice: dict[str, int]) -> tuple[int, int]:
            return sum(est(n, choice[n.name]).latency_cycles for n in dense), max(choice.values(), default=1)

        found = [give_back(self._greedy(dense, options, est, use))]
        bounds = sorted({r for n in dense for r in options[n.name]})

        def within(bound: int) -> dict[str, int]:
            return {n.name: max(r for r in options[n.name] if r <= bound) for n in dense}

        fitting = [b for b in bounds if not self._over(*use(within(b)))]
        if fitting:
            found.append(give_back(within(fitting[0])))
        return min(found, key=latency)

    def _greedy(self, dense: list[Node], options: dict[str, list[int]], est: Callable[[Node, int], Cost],
                use: Callable[[dict[str, int]], tuple[int, int]]) -> dict[str, int]:
        choice = {n.name: 1 for n in dense}
        while self._over(*use(choice)):
            best = None
            dsp, lut = use(choice)
            for n in dense:
                i = options[n.name].index(choice[n.name]) + 1
                now = est(n, choice[n.name])
                if i >= len(options[n.name]) or (self.lut_budget is None and now.dsp == 0):
                    continue
                nxt = est(n, options[n.name][i])
                saved = self._relief(dsp, lut, now, nxt)
                # cycles added: to the latency, or to a frame (a serial layer's II is positions x R)
                cost = max(nxt.latency_cycles - now.latency_cycles, nxt.ii - now.ii, 1)
                if saved > 0 and (best is None or saved / cost > best[0]):
                    best = (saved / cost, n.name, options[n.name][i])
                elif saved <= 0 and best is None:
                    best = (0.0, n.name, options[n.name][i])
            if best is None:
                raise self._no_fit(*use(choice))
            choice[best[1]] = best[2]
        return choice
