"""Constant matrix-vector products with shared sub-expressions (a greedy two-term CSE).

y = W x for a constant integer matrix W is a sum of signed, shifted inputs per output: the
signed digits of its weights. Many outputs (and many digits of one weight) contain the same
pair of terms up to a common shift and sign, e.g. x3 + (x7 << 2) in one output and
-(x3 << 1) - (x7 << 3) in another. In the spirit of Hcub and of da4ml's CMVM optimisation, the
most frequent such pair becomes one adder, every disjoint occurrence is replaced by a term of
it, and this repeats until no pair occurs twice. A pair's frequency counts only occurrences
that can be replaced together; among equally frequent pairs a one-step look-ahead prefers the
one that grows into a larger shared sum and, of those, the one whose replacement takes the
fewest occurrences from the other recurring pairs (most of the pairs chosen occur only twice:
packing many of them is an independent-set problem, where the least conflicting goes first).
An occurrence is only replaced where the output's sum can still be finished within its
adder-depth target (the depth of its own adder tree without sharing, plus `slack`), so sharing
never makes the design slower.

The same greedy also runs on W's transpose, sharing pairs of outputs within one input's
column, and the program found there is turned back into one for W (the transposition
principle: a node used k times becomes a sum of k terms); its depth targets are kept while it
is built. `optimise` runs a few such variants (digit form: canonical or plain-binary-first
minimal signed digits; look-ahead; W or its transpose) and keeps the one with fewest adders.

Bookkeeping: every pair's count is kept up to date as terms are replaced (one pass over the
output's other terms), and the pairs' counts at the start are counted once per digit form and
orientation. What the greedy learns about a pair in one output (its occurrences, their
look-ahead terms, the recurring pairs they would spoil) is remembered while that output does
not change: only new nodes' terms are ever added, so a pair of existing nodes never gains an
occurrence, and an output's depth only grows.

The result is a `Program`: the shared adders, in an order in which each one's operands exist,
and the terms left in each output's sum. The back-end builds the adders, then each output's
sum as a tree that adds the terms ready first (their depth counted, shared or not).

A term is (node, shift, sign) meaning sign * (node << shift); nodes 0 .. n_inputs - 1 are the
inputs, node n_inputs + k the k-th adder. Pure integer code, no Verilog.
"""
from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import combinations

from ...ir.fixed import csd

Term = tuple[int, int, int]          # (node, shift, sign)
Key = tuple[int, int, int, int]      # (node a, node b, shift of b - shift of a, sign of b * sign of a)
Form = Callable[[int], Sequence[tuple[int, int]]]    # a weight -> its signed digits (shift, sign)
UNBOUNDED = 1 << 20                  # a depth target no sum reaches


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
    return digit_terms(row, csd)


def digit_terms(row: Sequence[int], form: Form) -> list[Term]:
    """One row of weights as terms of the inputs, each weight in the signed-digit `form`."""
    return [(i, shift, sign) for i, w in enumerate(row) if int(w) for shift, sign in form(int(w))]


@lru_cache(maxsize=1 << 12)
def low_digits(w: int) -> tuple[tuple[int, int], ...]:
    """Of the signed-digit forms of w with the fewest non-zero digits (as many as its canonical
    form has), the one whose digit positions, highest first, are lexicographically least: plain
    binary where that is as short (3 = 2 + 1, not 4 - 1). Another form than CSD changes which
    pairs of digits recur across a layer. (shift, sign) pairs, lowest shift first."""
    if w == 0:
        return ()
    if w < 0:
        return tuple((s, -g) for s, g in low_digits(-w))
    if not w & 1:
        return tuple((s + 1, g) for s, g in low_digits(w >> 1))
    n = len(csd(w))
    forms = [((0, d),) + tuple((s + 1, g) for s, g in low_digits((w - d) >> 1))
             for d in (1, -1) if len(csd((w - d) >> 1)) == n - 1]
    return min(forms, key=lambda f: sorted((s for s, _ in f), reverse=True))


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
    step: int = 0                                           # pairs replaced so far
    touched: dict[int, int] = field(default_factory=dict)  # output -> step it last changed in
    # key -> (its outputs, per output: (step, its occurrences there, their look-ahead terms or
    # None)), valid while that output is unchanged (a pair of existing nodes never gains
    # outputs or occurrences: only new nodes are added, and the outputs' depths only grow)
    memo: dict[Key, tuple[list[int], dict[int, tuple[int, list[tuple[int, Term, Term]], list[set[Term]] | None]]]] = \
        field(default_factory=dict)
    grows: dict[Key, int] = field(default_factory=dict)   # key -> look-ahead count, while its memo holds
    # key -> output -> (step, terms replaced there, the other recurring pairs they spoil): see `_damage`
    spoiled: dict[Key, dict[int, tuple[int, set[tuple[int, int]], list[Key]]]] = field(default_factory=dict)
    guard: _Transposed | None = None        # depth targets of the transposed result, if any

    def level_of(self, key: Key) -> int:
        return max(self.levels[key[0]], self.levels[key[1]]) + 1

    def replace(self, o: int, p: Term, q: Term, t: Term) -> None:
        """Replace terms p and q of output o by t, in one pass over the others (the hot loop):
        their pairs with p and q are uncounted, those with t counted."""
        count, heap, levels, terms = self.count, self.heap, self.levels, self.terms[o]
        get, push = count.get, heapq.heappush
        pn, ps, pg = p
        qn, qs, qg = q
        n0, s0, g0 = t
        pk, qk, tk = (pn, ps), (qn, qs), (n0, s0)
        l0 = levels[n0]
        del terms[pk], terms[qk]
        gone = _key(p, q)
        c = count[gone] - 1
        if c:
            count[gone] = c
        else:
            del count[gone]
        for y, g in terms.items():
            n, s = y
            key = (n, pn, ps - s, g * pg) if y < pk else (pn, n, s - ps, g * pg)
            c = count[key] - 1
            if c:
                count[key] = c
            else:
                del count[key]
            key = (n, qn, qs - s, g * qg) if y < qk else (qn, n, s - qs, g * qg)
            c = count[key] - 1
            if c:
                count[key] = c
            else:
                del count[key]
            key = (n, n0, s0 - s, g * g0) if y < tk else (n0, n, s - s0, g * g0)
            c = get(key, 0) + 1
            count[key] = c
            if c >= 2:
                push(heap, (-c, max(levels[n], l0) + 1, key))
        terms[tk] = g0
        self.touched[o] = self.step
        self.kraft[o] += (1 << l0) - (1 << levels[pn]) - (1 << levels[qn])
        holders = self.holders
        for n, d in ((pn, -1), (qn, -1), (n0, 1)):
            held = holders.setdefault(n, {})
            h = held.get(o, 0) + d
            if h:
                held[o] = h
            else:
                del held[o]


@dataclass
class _Transposed:
    """Depth bookkeeping for sharing in W's transpose (see `transposed`): there, an output row
    i is an input x_i of the result, ready at level lv[i], and a node v becomes a sum t(v) of
    its uses, as deep as ceil(log2 K(v)) with K(v) the sum of 2**level over its uses (an
    output row's term: x_i's level; an adder reading v: that adder's own depth). The result's
    output j is t(u_j) plus its constants, which must meet its depth target."""
    lv: list[int]                    # per output row (an input of the result): its level
    targets: list[int]               # per input u_j (an output of the result)
    constants: list[int]
    kraft: list[int]                 # per node: K(v)
    operands: list[tuple[int, int]] = field(default_factory=list)    # per adder

    def change(self, delta: dict[int, int]) -> dict[int, int] | None:
        """The nodes' new K after adding `delta` to some of them and passing each adder's
        change of depth on to its operands, or None if an output would be too deep."""
        new: dict[int, int] = {}
        heap = [-v for v in delta]
        heapq.heapify(heap)
        pending = dict(delta)
        n = len(self.targets)
        while heap:
            v = -heapq.heappop(heap)
            d = pending.pop(v, 0)
            if not d:
                continue
            k = new.get(v, self.kraft[v]) + d
            if v < n:
                if k + self.constants[v] > 1 << self.targets[v]:
                    return None
            else:
                grow = (1 << _ceil_log2(k)) - (1 << _ceil_log2(new.get(v, self.kraft[v])))
                if grow:
                    for u in self.operands[v - n]:
                        if u not in pending:
                            heapq.heappush(heap, -u)
                        pending[u] = pending.get(u, 0) + grow
            new[v] = k
        return new

    def effect(self, key: Key, uses: list[tuple[int, Term, Term]]) -> tuple[int, dict[int, int]] | None:
        """K of the new adder for these occurrences and everyone's new K, or None if too deep."""
        k = sum(1 << self.lv[o] for o, _, _ in uses)
        delta: dict[int, int] = {}
        for node in (key[0], key[1]):
            delta[node] = delta.get(node, 0) + (1 << _ceil_log2(k)) - k
        return None if (new := self.change(delta)) is None else (k, new)

    def trim(self, key: Key, uses: list[tuple[int, Term, Term]]) -> list[tuple[int, Term, Term]]:
        """The most of these occurrences that keep every output within its target: all of
        them, or else the most of them whose sum of 2**level is a power of two (the new adder's
        depth wastes nothing there, so no node's depth grows), if that is at least two."""
        if self.effect(key, uses) is not None:
            return uses
        total = sum(1 << self.lv[o] for o, _, _ in uses)
        by_level = sorted(uses, key=lambda u: -self.lv[u[0]])
        best: list[tuple[int, Term, Term]] = []
        for t in range(total.bit_length() - 1, -1, -1):
            room, pick = 1 << t, []
            for u in by_level:
                if 1 << self.lv[u[0]] <= room:
                    room -= 1 << self.lv[u[0]]
                    pick.append(u)
            if room == 0 and len(pick) > len(best):
                best = pick
        return sorted(best) if len(best) >= 2 else []

    def commit(self, key: Key, uses: list[tuple[int, Term, Term]]) -> None:
        got = self.effect(key, uses)
        assert got is not None
        k, new = got
        for v, kv in new.items():
            self.kraft[v] = kv
        self.kraft.append(k)
        self.operands.append((key[0], key[1]))


def _pairs(rows: list[list[Term]]) -> dict[Key, int]:
    """How often every pair of terms occurs within the rows (up to a common shift and sign):
    the same for every variant sharing in these rows, so `optimise` counts it once."""
    count: Counter[Key] = Counter()
    for row in rows:
        count.update((p[0], q[0], q[1] - p[1], p[2] * q[2]) for p, q in combinations(sorted(row), 2))
    return dict(count)


def _fill(st: _State, rows: list[list[Term]], pairs: dict[Key, int]) -> None:
    """The outputs' first terms and the count of their pairs, `_pairs(rows)` (which
    `_State.replace` then keeps up to date)."""
    for o, row in enumerate(rows):
        terms = st.terms[o]
        for n, s, g in sorted(row):
            terms[(n, s)] = g
            st.kraft[o] += 1 << st.levels[n]
            held = st.holders.setdefault(n, {})
            held[o] = held.get(o, 0) + 1
    st.count = dict(pairs)
    st.heap = [(-c, st.level_of(k), k) for k, c in pairs.items() if c >= 2]
    heapq.heapify(st.heap)


def _evaluated(st: _State, key: Key) -> list[tuple[int, Term, Term]]:
    """The pair's occurrences, remembered per output while it does not change (an output
    where it has none is forgotten: it will have none again)."""
    m = st.memo.get(key)
    if m is None:
        outs = sorted(set(st.holders.get(key[0], {})) & set(st.holders.get(key[1], {})))
        m = st.memo[key] = (outs, {})
    outs, per = m
    touched, uses, fresh = st.touched, [], False
    for o in outs:
        e = per.get(o)
        if e is None or touched.get(o, -1) >= e[0]:     # changed since it was seen
            e = per[o] = (st.step, _occurrences(st, key, o), None)
            fresh = True
        uses += e[1]
    if fresh:
        outs[:] = [o for o in outs if per[o][1]]
        st.grows.pop(key, None)
    return uses


def _ahead(st: _State, key: Key) -> int:
    """The look-ahead count of a pair just evaluated: the most occurrences (`_looks`) in which one
    same term could pair again with its new term. Remembered with its occurrences, and only
    needed where two pairs are equally frequent."""
    if key in st.grows:
        return st.grows[key]
    outs, per = st.memo[key]
    seen: Counter[Term] = Counter()
    for o in outs:
        step, found, looks = per[o]
        if looks is None:
            looks = _looks(st, found)
            per[o] = (step, found, looks)
        for keys in looks:
            seen.update(keys)
    nxt = max(seen.values(), default=0)
    st.grows[key] = nxt
    return nxt


def _occurrences(st: _State, key: Key, o: int) -> list[tuple[int, Term, Term]]:
    """Disjoint occurrences of the pair in output o, if its depth target allows replacing them."""
    a, b, d, s = key
    grow = 1 << st.level_of(key)
    found = []
    terms, used = st.terms[o], set()
    kraft = st.kraft[o]
    for sa in sorted(sh for n, sh in terms if n == a):
        if (a, sa) in used or (b, sa + d) in used:
            continue
        ga, gb = terms[(a, sa)], terms.get((b, sa + d))
        if gb is None or gb != s * ga or (b, sa + d) == (a, sa):
            continue
        after = kraft - (1 << st.levels[a]) - (1 << st.levels[b]) + grow
        if after > 1 << st.targets[o]:
            continue
        kraft = after
        used |= {(a, sa), (b, sa + d)}
        found.append((o, (a, sa, ga), (b, sa + d, gb)))
    return found


def _looks(st: _State, uses: list[tuple[int, Term, Term]]) -> list[set[Term]]:
    """For each occurrence, the other terms of its output as seen from the new pair's term
    (node, shift relative to it, sign relative to it): a one-step look-ahead, see `_ahead`,
    counts in how many occurrences one of them could pair again with the new term, so that
    among pairs as frequent as each other the one that grows into a larger shared sum goes
    first."""
    looks = []
    for o, p, q in uses:
        k, g0 = min(p[1], q[1]), p[2]
        # the map from a term to its key is one-to-one: drop p's and q's from the whole set
        keys = {(n, s - k, g * g0) for (n, s), g in st.terms[o].items()}
        keys.discard((p[0], p[1] - k, p[2] * g0))
        keys.discard((q[0], q[1] - k, q[2] * g0))
        looks.append(keys)
    return looks


def _damage(st: _State, key: Key, uses: list[tuple[int, Term, Term]]) -> int:
    """How many occurrences the other pairs that occur at least twice lose if these are
    replaced: each pair of a replaced term with another term of its output (once per pair of
    terms). A pair chosen among equals should spoil as few of the others' sharing as it can:
    a greedy for a large independent set takes the vertex of fewest conflicts first.

    The pairs that count are remembered per output with the terms replaced there: while the
    output does not change, its pairs stay the same and a pair of existing nodes only ever
    loses occurrences (new terms are of new nodes), so its damage now is the number of the
    remembered pairs that still occur twice."""
    count = st.count
    by_output: dict[int, set[tuple[int, int]]] = {}
    for o, p, q in uses:
        by_output.setdefault(o, set()).update({(p[0], p[1]), (q[0], q[1])})
    seen = st.spoiled.setdefault(key, {})
    damage = 0
    for o, gone in by_output.items():
        m = seen.get(o)
        if m is not None and m[1] == gone and st.touched.get(o, -1) < m[0]:
            hit = [k for k in m[2] if count.get(k, 0) >= 2]
        else:
            hit = []
            terms = st.terms[o]
            for x in gone:
                xn, xs = x
                xg = terms[x]
                for y, g in terms.items():
                    if y in gone and y <= x:            # a pair of two replaced terms: once
                        continue
                    yn, ys = y
                    k = (xn, yn, ys - xs, xg * g) if x < y else (yn, xn, xs - ys, xg * g)
                    if k != key and count.get(k, 0) >= 2:
                        hit.append(k)
        seen[o] = (st.step, gone, hit)
        damage += len(hit)
    return damage


def _valid(st: _State, key: Key, priority: int, done: set[Key]) -> list[tuple[int, Term, Term]] | None:
    """The pair's occurrences if it may be chosen now at `priority` (its count when pushed);
    None after re-queueing it under its true count (overlapping occurrences within one output,
    or ones its outputs' depth targets refuse, are counted once) or dropping it."""
    c = st.count.get(key, 0)
    if key in done or c < 2:
        return None
    if c < priority:                                    # stale: it lost occurrences
        heapq.heappush(st.heap, (-c, st.level_of(key), key))
        return None
    uses = _evaluated(st, key)
    if st.guard is not None:
        uses = st.guard.trim(key, uses)
    if len(uses) < 2:
        done.add(key)
        return None
    if len(uses) < priority:                            # fewer that can really be replaced
        heapq.heappush(st.heap, (-len(uses), st.level_of(key), key))
        return None
    return uses


def _share(st: _State, adders: list[Adder], n_inputs: int, ahead: int = 0) -> None:
    """Replace the most frequent pair (counting only occurrences that can be replaced together)
    until none occurs twice; with `ahead`, up to that many equally frequent pairs are compared
    by `_ahead`, and of those that grow equally, the one that does least `_damage` goes."""
    done: set[Key] = set()
    while st.heap:
        negc, _, key = heapq.heappop(st.heap)
        uses = _valid(st, key, -negc, done)
        if uses is None:
            continue
        if ahead > 1:
            cands = [(key, uses)]
            while st.heap and len(cands) < ahead and st.heap[0][0] == negc:
                _, _, k2 = heapq.heappop(st.heap)
                u2 = _valid(st, k2, -negc, done)
                if u2 is not None:
                    cands.append((k2, u2))
            if len(cands) > 1:
                grows = [_ahead(st, k2) for k2, _ in cands]
                top = max(grows)
                tied = [i for i, g in enumerate(grows) if g == top]
                best = tied[0] if len(tied) == 1 else min(tied, key=lambda i: (_damage(st, *cands[i]), i))
                for i, (k2, _) in enumerate(cands):
                    if i != best:
                        heapq.heappush(st.heap, (negc, st.level_of(k2), k2))
                key, uses = cands[best]
        done.add(key)
        if st.guard is not None:
            st.guard.commit(key, uses)
        a, b, d, s = key
        node = n_inputs + len(adders)
        adders.append(Adder(a, b, max(0, -d), max(0, d), s))
        st.levels.append(st.level_of(key))
        for o, p, q in uses:
            st.replace(o, p, q, (node, min(p[1], q[1]), p[2]))
        st.step += 1


# The greedy's variants `optimise` tries, keeping the program with the fewest adders (the first
# of equals): the signed-digit form of the weights, how many equally frequent pairs it compares
# by look-ahead, and whether it shares in W (pairs of inputs within an output) or in W's
# transpose (pairs of outputs within an input), the latter then turned back by `transposed`.
VARIANTS: tuple[tuple[Form, int, bool], ...] = (
    (csd, 0, False), (low_digits, 24, True), (csd, 0, True), (csd, 8, False))


def optimise(weights: Sequence[Sequence[int]], levels: Sequence[int] | None = None, *, share: bool = True,
             slack: int = 0, constants: Sequence[int] | None = None, even: bool = False,
             variants: Sequence[tuple[Form, int, bool]] | None = None) -> Program:
    """The program computing weights @ x (weights: outputs x inputs, integers), inputs ready at
    `levels` (adder delays, default all 0). `constants`: how many constants (a bias) each
    output's sum also adds, ready at level 0, for its depth target. With `even`, every output
    may be as deep as the deepest one's own tree (the layer's depth), else only as deep as its
    own. Without `share`, each output is its own sum of the signed digits of its weights.
    With `share`, the greedy runs once per variant (default `VARIANTS`) and the program with
    the fewest adders is kept (the first of equals); every one meets the depth targets."""
    n_inputs = len(weights[0]) if len(weights) else 0
    lv = list(levels) if levels is not None else [0] * n_inputs
    plain = [csd_terms(row) for row in weights]
    if not share:
        return Program(n_inputs, [], plain, lv)
    extra = list(constants) if constants is not None else [0] * len(plain)
    # every minimal signed-digit form has as many digits: one depth target for all variants
    targets = [sum_depth([lv[n] for n, _, _ in r] + [0] * k) + slack for r, k in zip(plain, extra)]
    if even:
        targets = [max(targets, default=0)] * len(plain)
    columns = [list(c) for c in zip(*weights)]
    starts: dict[tuple[Form, bool], tuple[list[list[Term]], dict[Key, int]]] = {}
    best: Program | None = None
    for form, ahead, transpose in (variants if variants is not None else VARIANTS):
        if (form, transpose) not in starts:
            rows = [digit_terms(r, form) for r in (columns if transpose else weights)]
            starts[form, transpose] = rows, _pairs(rows)
        rows, pairs = starts[form, transpose]
        if transpose:
            kraft = [0] * len(weights)
            for i, row in enumerate(rows):
                for n, _, _ in row:
                    kraft[n] += 1 << lv[i]
            guard = _Transposed(lv, targets, extra, kraft)
            # the transpose's own depths do not matter (no target there): the guard keeps W's
            t = _greedy(rows, pairs, [0] * len(weights), [UNBOUNDED] * n_inputs, [0] * n_inputs, ahead, guard)
            prog = _pruned(transposed(t, lv))
        else:
            prog = _greedy(rows, pairs, lv, targets, extra, ahead)
        assert all(sum_depth([prog.levels[n] for n, _, _ in o] + [0] * k) <= target
                   for o, k, target in zip(prog.outputs, extra, targets)), "a depth target is missed"
        if best is None or prog.total_adders < best.total_adders:
            best = prog
    assert best is not None
    return best


def _greedy(rows: list[list[Term]], pairs: dict[Key, int], levels: Sequence[int], targets: list[int],
            constants: Sequence[int], ahead: int, guard: _Transposed | None = None) -> Program:
    """The shared program of these rows of terms (`pairs`: their `_pairs`), each output within
    its depth target (and, with `guard`, each output of its transpose within its own)."""
    st = _State(list(levels), targets, [{} for _ in rows], list(constants), guard=guard)
    _fill(st, rows, pairs)
    adders: list[Adder] = []
    _share(st, adders, len(levels), ahead)
    return Program(len(levels), adders, [sorted((n, s, g) for (n, s), g in ts.items()) for ts in st.terms],
                   st.levels)


def _put(terms: dict[tuple[int, int], int], node: int, shift: int, sign: int) -> None:
    """Add sign * (node << shift) to a sum of terms: two equal terms make one shifted, two
    opposite ones cancel."""
    while (node, shift) in terms:
        if terms.pop((node, shift)) != sign:
            return
        shift += 1
    terms[(node, shift)] = sign


def transposed(p: Program, levels: Sequence[int]) -> Program:
    """The transpose of p's linear map (the transposition principle): if p computes z = V u,
    the result computes y = V^T x, for x ready at `levels`. Every node v of p becomes the sum
    t(v) of its uses: g * (x_i << s) for a term (v, s, g) of output i, t(N) << s for an adder N
    reading v shifted by s (negated if N subtracts it); y_j = t(u_j). The sums of adders are
    built deepest node last (p's adders in reverse), each as the tree that adds the two terms
    ready first; the sums of p's inputs are the result's output terms. A node used k times
    costs k - 1 adders, so the count is p's plus (len(z) - len(u))."""
    n_x = len(p.outputs)
    uses: list[list[tuple[bool, int, int, int]]] = [[] for _ in range(p.n_inputs + len(p.adders))]
    for i, terms in enumerate(p.outputs):
        for node, shift, sign in terms:
            uses[node].append((True, i, shift, sign))
    for k, ad in enumerate(p.adders):
        uses[ad.a].append((False, p.n_inputs + k, ad.shift_a, 1))
        uses[ad.b].append((False, p.n_inputs + k, ad.shift_b, ad.sign))
    adders: list[Adder] = []
    lv = list(levels)
    value: dict[int, Term | None] = {}

    def sum_of(node: int) -> dict[tuple[int, int], int]:
        terms: dict[tuple[int, int], int] = {}
        for is_x, ref, shift, sign in uses[node]:
            t = (ref, 0, 1) if is_x else value[ref]
            if t is not None:
                _put(terms, t[0], t[1] + shift, t[2] * sign)
        return terms

    for node in range(p.n_inputs + len(p.adders) - 1, p.n_inputs - 1, -1):
        parts = sum_of(node)
        heap = [(lv[n], n, s, g) for (n, s), g in sorted(parts.items())]
        heapq.heapify(heap)
        while len(heap) > 1:
            la, a, sa, ga = heapq.heappop(heap)
            lb, b, sb, gb = heapq.heappop(heap)
            k = min(sa, sb)
            adders.append(Adder(a, b, sa - k, sb - k, ga * gb))
            lv.append(max(la, lb) + 1)
            heapq.heappush(heap, (lv[-1], n_x + len(adders) - 1, k, ga))
        value[node] = (heap[0][1], heap[0][2], heap[0][3]) if heap else None
    outputs = [sorted((n, s, g) for (n, s), g in sum_of(j).items()) for j in range(p.n_inputs)]
    return Program(n_x, adders, outputs, lv)


def _pruned(p: Program) -> Program:
    """p without the adders nothing reads, its nodes renumbered."""
    live = [False] * (p.n_inputs + len(p.adders))
    for terms in p.outputs:
        for n, _, _ in terms:
            live[n] = True
    for k in range(len(p.adders) - 1, -1, -1):
        if live[p.n_inputs + k]:
            live[p.adders[k].a] = live[p.adders[k].b] = True
    new = list(range(p.n_inputs))
    adders: list[Adder] = []
    levels = list(p.levels[:p.n_inputs])
    for k, ad in enumerate(p.adders):
        new.append(p.n_inputs + len(adders))
        if live[p.n_inputs + k]:
            adders.append(Adder(new[ad.a], new[ad.b], ad.shift_a, ad.shift_b, ad.sign))
            levels.append(p.levels[p.n_inputs + k])
    outputs = [[(new[n], s, g) for n, s, g in terms] for terms in p.outputs]
    return Program(p.n_inputs, adders, outputs, levels)


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
