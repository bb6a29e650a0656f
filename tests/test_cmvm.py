"""The shared adder graph of a constant matrix-vector product (fpgaq.backends.verilog.cmvm)."""
from __future__ import annotations

import numpy as np
import pytest

from fpgaq.backends.verilog import cmvm


def _random_matrix(rng: np.random.Generator, n_out: int, n_in: int, bits: int, zeros: float) -> list[list[int]]:
    w = rng.integers(-(1 << bits), 1 << bits, size=(n_out, n_in))
    w[rng.random(w.shape) < zeros] = 0
    return w.astype(object).tolist()


@pytest.mark.parametrize("seed", range(40))
def test_program_computes_w_x(seed):
    """The program equals W x exactly, uses no more adders than one tree per output, and no
    output's sum is deeper than its own tree of signed digits."""
    rng = np.random.default_rng(seed)
    n_out, n_in = int(rng.integers(1, 12)), int(rng.integers(1, 12))
    w = _random_matrix(rng, n_out, n_in, int(rng.integers(1, 9)), float(rng.random() * 0.5))
    levels = rng.integers(0, 3, size=n_in).tolist() if seed % 2 else None
    shared = cmvm.optimise(w, levels)
    plain = cmvm.optimise(w, levels, share=False)
    for _ in range(5):
        x = rng.integers(-1000, 1000, size=n_in).astype(object).tolist()
        want = (np.array(w, dtype=object) @ np.array(x, dtype=object)).tolist()
        assert cmvm.evaluate(shared, x) == want
        assert cmvm.evaluate(plain, x) == want
    assert shared.total_adders <= plain.total_adders
    for a, b in zip(shared.outputs, plain.outputs):
        assert cmvm.sum_depth([shared.levels[n] for n, _, _ in a]) <= cmvm.sum_depth([plain.levels[n] for n, _, _ in b])


def test_shares_common_pairs():
    """Two outputs with the same pair of terms (up to shift and sign) share one adder."""
    w = [[3, 5, 0], [-6, -10, 1], [12, 20, 7]]
    p = cmvm.optimise(w)
    assert p.total_adders < cmvm.optimise(w, share=False).total_adders
    assert cmvm.evaluate(p, [7, -3, 11]) == (np.array(w) @ np.array([7, -3, 11])).tolist()


def test_adders_are_well_formed():
    """Every adder reads earlier nodes, one of its shifts is zero, its level is its operands' + 1."""
    rng = np.random.default_rng(1)
    p = cmvm.optimise(_random_matrix(rng, 16, 16, 6, 0.2))
    assert p.adders
    for k, ad in enumerate(p.adders):
        node = p.n_inputs + k
        assert ad.a < node and ad.b < node and min(ad.shift_a, ad.shift_b) == 0 and ad.sign in (1, -1)
        assert p.levels[node] == max(p.levels[ad.a], p.levels[ad.b]) + 1


def test_deterministic():
    rng = np.random.default_rng(2)
    w = _random_matrix(rng, 20, 12, 7, 0.3)
    assert cmvm.optimise(w) == cmvm.optimise(w)


def test_coefficients():
    rng = np.random.default_rng(3)
    w = _random_matrix(rng, 6, 5, 5, 0.1)
    p = cmvm.optimise(w)
    coefs = cmvm.coefficients(p)
    for o, terms in enumerate(p.outputs):
        row = [0] * 5
        for n, s, g in terms:
            for i, c in coefs[n].items():
                row[i] += g * (c << s)
        assert row == w[o]


def test_sum_depth():
    assert cmvm.sum_depth([]) == 0
    assert cmvm.sum_depth([0]) == 0
    assert cmvm.sum_depth([0, 0, 0]) == 2
    assert cmvm.sum_depth([2, 0, 0]) == 3
    assert cmvm.sum_depth([1, 0, 0]) == 2


def test_empty_and_zero():
    assert cmvm.evaluate(cmvm.optimise([[0, 0], [0, 0]]), [3, 4]) == [0, 0]
    assert cmvm.optimise([]).outputs == []


@pytest.mark.parametrize("seed", range(10))
def test_even_depth_and_constants(seed):
    """With `even`, no output is deeper than the layer's deepest own tree; a constant to add
    counts in the depth target."""
    rng = np.random.default_rng(100 + seed)
    w = _random_matrix(rng, 8, 10, 6, 0.3)
    consts = rng.integers(0, 2, size=8).tolist()
    plain = cmvm.optimise(w, share=False)
    deepest = max(cmvm.sum_depth([0] * (len(t) + k)) for t, k in zip(plain.outputs, consts))
    for even in (False, True):
        p = cmvm.optimise(w, constants=consts, even=even)
        assert p.total_adders <= plain.total_adders
        for t, k, t0 in zip(p.outputs, consts, plain.outputs):
            depth = cmvm.sum_depth([p.levels[n] for n, _, _ in t] + [0] * k)
            assert depth <= (deepest if even else cmvm.sum_depth([0] * (len(t0) + k)))
        x = rng.integers(-50, 50, size=10).astype(object).tolist()
        assert cmvm.evaluate(p, x) == (np.array(w, dtype=object) @ np.array(x, dtype=object)).tolist()


def _all_minimal_forms(bits: int) -> dict[int, list[tuple[int, ...]]]:
    """Every signed-digit form of `bits` digits, by value, keeping those with the fewest
    non-zero digits: the digit positions of each, highest first."""
    import itertools
    forms: dict[int, list[tuple[int, ...]]] = {}
    for digits in itertools.product((-1, 0, 1), repeat=bits):
        value = sum(d << k for k, d in enumerate(digits))
        nz = tuple(k for k in range(bits - 1, -1, -1) if digits[k])
        if value not in forms or len(nz) < len(forms[value][0]):
            forms[value] = [nz]
        elif len(nz) == len(forms[value][0]):
            forms[value].append(nz)
    return forms


def test_low_digits_is_the_least_minimal_form():
    """low_digits(w) sums to w, has as few non-zero digits as the canonical form, and of all
    such forms its positions (highest first) are the lexicographically least (brute force)."""
    from fpgaq.ir.fixed import csd
    forms = _all_minimal_forms(10)
    for w in range(-255, 256):
        d = cmvm.low_digits(w)
        assert sum(g << s for s, g in d) == w
        assert len(d) == len(csd(w)) == len(forms[w][0])
        assert tuple(sorted((s for s, _ in d), reverse=True)) == min(forms[w])
    assert cmvm.low_digits(3) == ((0, 1), (1, 1))          # 2 + 1, where CSD has 4 - 1
    assert cmvm.low_digits(-6) == ((1, -1), (2, -1))


@pytest.mark.parametrize("seed", range(30))
def test_transposed_computes_the_transpose(seed):
    """A program for V turned by `transposed` computes V^T exactly, with as many more adders
    as V has non-zero rows less its non-zero columns (a node used k times is a sum of k terms;
    fewer where two uses meet at the same shift), adders reading earlier nodes, each one level
    above its operands."""
    rng = np.random.default_rng(300 + seed)
    n_out, n_in = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    v = _random_matrix(rng, n_out, n_in, int(rng.integers(1, 7)), float(rng.random() * 0.5))
    p = cmvm.optimise(v, variants=[(cmvm.csd, seed % 5, False)])
    levels = rng.integers(0, 3, size=n_out).tolist()
    t = cmvm._pruned(cmvm.transposed(p, levels))
    vt = np.array(v, dtype=object).T
    for _ in range(4):
        x = rng.integers(-500, 500, size=n_out).astype(object).tolist()
        assert cmvm.evaluate(t, x) == (vt @ np.array(x, dtype=object)).tolist()
    rows, cols = sum(1 for r in v if any(r)), sum(1 for c in zip(*v) if any(c))
    assert t.total_adders <= p.total_adders + rows - cols
    assert t.levels[:n_out] == levels
    for k, ad in enumerate(t.adders):
        node = t.n_inputs + k
        assert ad.a < node and ad.b < node and min(ad.shift_a, ad.shift_b) == 0
        assert t.levels[node] == max(t.levels[ad.a], t.levels[ad.b]) + 1


@pytest.mark.parametrize("variant", range(len(cmvm.VARIANTS)))
@pytest.mark.parametrize("seed", range(12))
def test_every_variant_is_exact_and_meets_depth_targets(variant, seed):
    """Each variant alone (canonical or least digits, look-ahead, W or its transpose, whose
    depth targets are kept while it is built) computes W x within every output's target;
    `optimise` keeps the variant with the fewest adders."""
    rng = np.random.default_rng(500 + seed)
    n_out, n_in = int(rng.integers(2, 14)), int(rng.integers(2, 14))
    w = _random_matrix(rng, n_out, n_in, int(rng.integers(2, 7)), float(rng.random() * 0.4))
    levels = rng.integers(0, 4, size=n_in).tolist()
    consts = rng.integers(0, 2, size=n_out).tolist()
    even = bool(seed % 2)
    plain = cmvm.optimise(w, levels, share=False)
    p = cmvm.optimise(w, levels, constants=consts, even=even, variants=[cmvm.VARIANTS[variant]])
    deepest = max(cmvm.sum_depth([levels[n] for n, _, _ in t] + [0] * k) for t, k in zip(plain.outputs, consts))
    for t, k, t0 in zip(p.outputs, consts, plain.outputs):
        own = cmvm.sum_depth([levels[n] for n, _, _ in t0] + [0] * k)
        assert cmvm.sum_depth([p.levels[n] for n, _, _ in t] + [0] * k) <= (deepest if even else own)
    x = rng.integers(-300, 300, size=n_in).astype(object).tolist()
    assert cmvm.evaluate(p, x) == (np.array(w, dtype=object) @ np.array(x, dtype=object)).tolist()
    best = cmvm.optimise(w, levels, constants=consts, even=even)
    assert best.total_adders == min(cmvm.optimise(w, levels, constants=consts, even=even, variants=[v]).total_adders
                                    for v in cmvm.VARIANTS)


def test_transpose_shares_what_the_rows_cannot():
    """A matrix where sharing pairs of outputs within columns (the transpose) takes two
    adders fewer than sharing pairs of inputs within rows; optimise keeps the better."""
    w = [[7, -6, -3, -6], [6, -7, -2, -3]]
    rows = cmvm.optimise(w, variants=[(cmvm.csd, 0, False)])
    cols = cmvm.optimise(w, variants=[(cmvm.csd, 0, True)])
    assert (rows.total_adders, cols.total_adders) == (11, 9)
    assert cmvm.optimise(w, variants=[(cmvm.csd, 0, False), (cmvm.csd, 0, True)]) == cols
    for x in ([5, -7, 3, 1], [-100, 99, 13, -64]):
        assert cmvm.evaluate(cols, x) == (np.array(w) @ np.array(x)).tolist()


def test_pruned_drops_unread_adders():
    p = cmvm.Program(2, [cmvm.Adder(0, 1, 0, 1, 1), cmvm.Adder(0, 1, 0, 0, -1), cmvm.Adder(3, 0, 0, 2, 1)],
                     [[(4, 0, 1)], [(1, 3, -1)]], [0, 0, 1, 1, 2])
    q = cmvm._pruned(p)
    assert len(q.adders) == 2 and q.adders[1] == cmvm.Adder(2, 0, 0, 2, 1)
    assert q.outputs == [[(3, 0, 1)], [(1, 3, -1)]] and q.levels == [0, 0, 1, 2]
    for x in ([3, 4], [-7, 11]):
        assert cmvm.evaluate(q, x) == cmvm.evaluate(p, x)


@pytest.mark.parametrize("seed", range(20))
def test_damage_counts_lost_occurrences(seed):
    """_damage equals, by recounting every pair from scratch, the occurrences that the other
    pairs occurring at least twice lose when the terms of a pair's occurrences are removed."""
    from collections import Counter
    rng = np.random.default_rng(700 + seed)
    n_out, n_in = int(rng.integers(2, 10)), int(rng.integers(2, 8))
    w = _random_matrix(rng, n_out, n_in, int(rng.integers(2, 7)), float(rng.random() * 0.4))
    rows = [cmvm.csd_terms(r) for r in w]
    st = cmvm._State([0] * n_in, [cmvm.UNBOUNDED] * n_out, [{} for _ in rows], [0] * n_out)
    cmvm._fill(st, rows, cmvm._pairs(rows))

    def pairs(terms: list[tuple[int, int, int]]) -> Counter:
        return Counter(cmvm._key(p, q) for i, p in enumerate(terms) for q in terms[i + 1:])

    before = sum((pairs(r) for r in rows), Counter())
    assert {k: c for k, c in before.items() if c} == st.count
    for key in sorted(k for k, c in before.items() if c >= 2):
        outs = sorted(set(st.holders[key[0]]) & set(st.holders[key[1]]))
        uses = [u for o in outs for u in cmvm._occurrences(st, key, o)]
        gone: dict[int, set[tuple[int, int]]] = {}
        for o, p, q in uses:
            gone.setdefault(o, set()).update({(p[0], p[1]), (q[0], q[1])})
        after = sum((pairs([t for t in r if (t[0], t[1]) not in gone.get(o, set())]) for o, r in enumerate(rows)),
                    Counter())
        want = sum(before[k] - after[k] for k in before if k != key and before[k] >= 2)
        assert cmvm._damage(st, key, uses) == want


@pytest.mark.parametrize("seed", range(8))
def test_remembered_equals_recomputed(seed, monkeypatch):
    """What the greedy remembers about a pair (its occurrences, look-ahead count, damage) is
    what a state without memory finds, for every pair it considers, in W and in W's transpose,
    with depth targets that refuse some occurrences."""
    import dataclasses
    rng = np.random.default_rng(900 + seed)
    n_out, n_in = int(rng.integers(4, 14)), int(rng.integers(4, 14))
    w = _random_matrix(rng, n_out, n_in, int(rng.integers(3, 8)), float(rng.random() * 0.3))
    levels = rng.integers(0, 3, size=n_in).tolist()
    valid, checked = cmvm._valid, []

    def checking(st, key, priority, done):
        uses = valid(st, key, priority, done)
        if uses is not None:
            fresh = dataclasses.replace(st, memo={}, grows={}, spoiled={})
            assert cmvm._evaluated(fresh, key) == cmvm._evaluated(st, key)
            assert cmvm._ahead(fresh, key) == cmvm._ahead(st, key)
            assert cmvm._damage(fresh, key, uses) == cmvm._damage(st, key, uses)
            checked.append(st.step)
        return uses

    monkeypatch.setattr(cmvm, "_valid", checking)
    for variant in ((cmvm.csd, 8, False), (cmvm.low_digits, 24, True)):
        cmvm.optimise(w, levels, even=bool(seed % 2), variants=[variant])
    assert len(set(checked)) > 1                    # checked at several steps, not only the first
