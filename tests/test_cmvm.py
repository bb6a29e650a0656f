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
