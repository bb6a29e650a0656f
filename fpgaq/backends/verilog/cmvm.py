"""Constant matrix-vector products with shared sub-expressions (a greedy two-term CSE).

y = W x for a constant integer matrix W is a sum of signed, shifted inputs per output: the
canonical signed digits of its weights. Many outputs (and many digits of one weight) contain
the same pair of terms up to a common shift and sign, e.g. x3 + (x7 << 2) in one output and
-(x3 << 1) - (x7 << 3) in another. In the spirit of Hcub and of da4ml's CMVM optimisation, the
most frequent such pair becomes one adder, every disjoint occurrence is replaced by a term of
it, and this repeats until no pair occurs twice. An occurrence is only replaced where the
output's sum can still be finished within its adder-depth target (the depth of its own adder
tree without sharing, plus `slack`), so sharing never makes the design slower.

The result is a `Program`: the shared adders, in an order in which each one's operands exist,
and the terms left in each output's sum. The back-end builds the adders, then each output's
sum as a tree that adds the terms ready first (their depth counted, shared or not).

A term is (node, shift, sign) meaning sign * (node << shift); nodes 0 .. n_inputs - 1 are the
inputs, node n_inputs + k the k-th adder. Pure integer code, no Verilog.
"""
from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from ...ir.fixed import csd

Term = tuple[int, int, int]          # (node, shift, sign)
Key = tuple[int, int, int, int]      # (node a, node b, shift of b - shift of a, sign of b * sign of a)


@dataclass(frozen=True)
class Adder:
    """(node a << shift_a) + sign * (node b << shift_b); one of the shifts is zero."""
    a: int
    b: int
    shift_a: int
    shift_b: int
    sign: int


@dataclass
class Program:
    """Shared adders and the terms of each output's sum."""
    n_inputs: int
    adders: list[Adder]
    outputs: list[list[Term]]
    levels: list[int]                # adder depth of every node, inputs at their given levels

    @property
    def tree_adders(self) -> int:
        """Adders in the outputs' own sums (n terms take n - 1)."""
        return sum(max(len(t) - 1, 0) for t in self.outputs)

    @property
    def total_adders(self) -> int:
        return len(self.adders) + self.tree_adders


def csd_terms(row: Sequence[int]) -> list[Term]:
    """The signed digits of one row of weights as terms of the inputs."""
    return [(i, shift, sign) for i, w in enumerate(row) if int(w) for shift, sign in csd(int(w))]


def sum_depth(levels: Sequence[int]) -> int:
    """The least depth of a tree of two-input adders summing values ready at `levels`:
    ceil(log2(sum 2**level)) (Kraft's inequality)."""
    if not levels:
        return 0
    return _ceil_log2(sum(1 << lv for lv in levels))


def _ceil_log2(k: int) -> int:
    return (k - 1).bit_length()


def _key(p: Term, q: Term) -> Key:
    """The pair's identity up to a common shift and sign: the lower (node, shift) first."""
    if (q[0], q[1]) < (p[0], p[1]):
        p, q = q, p
    return (p[0], q[0], q[1] - p[1], p[2] * q[2])


@dataclass
class _State:
    """The outputs' terms being rewritten, with the count of every pair among them."""
    levels: list[int]
    targets: list[int]
    terms: list[dict[tuple[int, int], int]]                 # per output: (node, shift) -> sign
    kraft: list[int]                                        # per output: sum 2**level of its terms
    holders: dict[int, dict[int, int]] = field(default_factory=dict)   # node -> {output: occurrences}
    count: dict[Key, int] = field(default_factory=dict)
    heap: list[tuple[int, int, Key]] = field(default_factory=list)

    def level_of(self, key: Key) -> int:
        return max(self.levels[key[0]], self.levels[key[1]]) + 1

    def add(self, o: int, t: Term) -> None:
        """Put term t into output o, counting its pairs with the terms there (the hot loop)."""
        n0, s0, g0 = t
        count, heap, levels = self.count, self.heap, self.levels
        for (n, s), g in self.terms[o].items():
            key = (n, n0, s0 - s, g * g0) if (n, s) < (n0, s0) else (n0, n, s - s0, g * g0)
            c = count.get(key, 0) + 1
            count[key] = c
            if c >= 2:
                heapq.heappush(heap, (-c, max(levels[n], levels[n0]) + 1, key))
        self.terms[o][(n0, s0)] = g0
        self.kraft[o] += 1 << levels[n0]
        held = self.holders.setdefault(n0, {})
        held[o] = held.get(o, 0) + 1

    def remove(self, o: int, t: Term) -> None:
        """Take term t out of output o, uncounting its pairs there."""
        n0, s0, g0 = t
        count = self.count
        del self.terms[o][(n0, s0)]
        for (n, s), g in self.terms[o].items():
            key = (n, n0, s0 - s, g * g0) if (n, s) < (n0, s0) else (n0, n, s - s0, g * g0)
            c = count[key] - 1
            if c:
                count[key] = c
            else:
                del count[key]
        self.kraft[o] -= 1 << self.levels[n0]
        held = self.holders[n0]
        held[o] -= 1
        if not held[o]:
            del held[o]


def _fill(st: _State, rows: list[list[Term]]) -> None:
    """The outputs' first terms and the count of their pairs, at once (what `add` does one term
    at a time)."""
    count: Counter[Key] = Counter()
    for o, row in enumerate(rows):
        row = sorted(row)
        count.update((p[0], q[0], q[1] - p[1], p[2] * q[2]) for i, p in enumerate(row) for q in row[i + 1:])
        for n, s, g in row:
            st.terms[o][(n, s)] = g
            st.kraft[o] += 1 << st.levels[n]
            held = st.holders.setdefault(n, {})
            held[o] = held.get(o, 0) + 1
    st.count = dict(count)
    st.heap = [(-c, st.level_of(k), k) for k, c in count.items() if c >= 2]
    heapq.heapify(st.heap)


def _occurrences(st: _State, key: Key) -> list[tuple[int, Term, Term]]:
    """Disjoint occurrences of the pair in every output whose depth target allows replacing it."""
    a, b, d, s = key
    grow = 1 << st.level_of(key)
    found = []
    outs = sorted(set(st.holders.get(a, {})) & set(st.holders.get(b, {})))
    for o in outs:
        terms, used = st.terms[o], set()
        kraft = st.kraft[o]
        for (n, sa), ga in sorted(terms.items()):
            if n != a or (n, sa) in used or (b, sa + d) in used:
                continue
            gb = terms.get((b, sa + d))
            if gb is None or gb != s * ga or (b, sa + d) == (a, sa):
                continue
            after = kraft - (1 << st.levels[a]) - (1 << st.levels[b]) + grow
            if after > 1 << st.targets[o]:
                continue
            kraft = after
            used |= {(a, sa), (b, sa + d)}
            found.append((o, (a, sa, ga), (b, sa + d, gb)))
    return found


def _share(st: _State, adders: list[Adder], n_inputs: int) -> None:
    """Replace the most frequent pair until none occurs twice where it may be replaced."""
    done: set[Key] = set()
    while st.heap:
        negc, _, key = heapq.heappop(st.heap)
        c = st.count.get(key, 0)
        if key in done or c < 2:
            continue
        if c != -negc:                          # stale: count went down since it was pushed
            heapq.heappush(st.heap, (-c, st.level_of(key), key))
            continue
        done.add(key)
        uses = _occurrences(st, key)
        if len(uses) < 2:
            continue
        a, b, d, s = key
        node = n_inputs + len(adders)
        adders.append(Adder(a, b, max(0, -d), max(0, d), s))
        st.levels.append(st.level_of(key))
        for o, p, q in uses:
            st.remove(o, p)
            st.remove(o, q)
            st.add(o, (node, min(p[1], q[1]), p[2]))


def optimise(weights: Sequence[Sequence[int]], levels: Sequence[int] | None = None, *, share: bool = True,
             slack: int = 0, constants: Sequence[int] | None = None, even: bool = False) -> Program:
    """The program computing weights @ x (weights: outputs x inputs, integers), inputs ready at
    `levels` (adder delays, default all 0). `constants`: how many constants (a bias) each
    output's sum also adds, ready at level 0, for its depth target. With `even`, every output
    may be as deep as the deepest one's own tree (the layer's depth), else only as deep as its
    own. Without `share`, each output is its own sum of the signed digits of its weights."""
    rows = [csd_terms(row) for row in weights]
    n_inputs = len(weights[0]) if len(weights) else 0
    lv = list(levels) if levels is not None else [0] * n_inputs
    adders: list[Adder] = []
    if share:
        extra = list(constants) if constants is not None else [0] * len(rows)
        targets = [sum_depth([lv[n] for n, _, _ in r] + [0] * k) + slack for r, k in zip(rows, extra)]
        if even:
            targets = [max(targets, default=0)] * len(rows)
        st = _State(lv, targets, [{} for _ in rows], extra)
        _fill(st, rows)
        _share(st, adders, n_inputs)
        rows = [sorted((n, s, g) for (n, s), g in ts.items()) for ts in st.terms]
    return Program(n_inputs, adders, rows, lv)


def evaluate(program: Program, x: Sequence[int]) -> list[int]:
    """The outputs for integer inputs x, by running the program (for tests)."""
    values = list(x)
    for ad in program.adders:
        values.append((values[ad.a] << ad.shift_a) + ad.sign * (values[ad.b] << ad.shift_b))
    return [sum(g * (values[n] << s) for n, s, g in terms) for terms in program.outputs]


def coefficients(program: Program) -> list[dict[int, int]]:
    """Each node as a linear combination of the inputs: {input: coefficient}."""
    coefs: list[dict[int, int]] = [{i: 1} for i in range(program.n_inputs)]
    for ad in program.adders:
        c = {i: k << ad.shift_a for i, k in coefs[ad.a].items()}
        for i, k in coefs[ad.b].items():
            c[i] = c.get(i, 0) + ad.sign * (k << ad.shift_b)
        coefs.append({i: k for i, k in c.items() if k})
    return coefs
