"""Inputs that probe a quantized model where rounding and saturation decide the result.

`probe_inputs(graph, rng)` reads the input quantizer of an imported graph and returns float32
rows holding: every code of the input type (or a sample with both ends, for wide types), the
values exactly halfway between neighbouring codes (ties), the nearest float32 on either side
of each tie and of zero, codes just past both ends, values far beyond the range (up to
float32's largest, and infinity), zeros of both signs, and random values over the range.
`exact_round` is the rounding modes' definition on exact rationals.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from fpgaq.ir.fixed import Rounding
from fpgaq.ir.ops import Quant

FAR = np.array([1e4, 1e9, 1e30, np.finfo(np.float32).max, np.inf], dtype=np.float64)


def exact_round(q: Fraction, mode: Rounding) -> int:
    """QONNX's rounding functions, evaluated on an exact rational."""
    sign = (q > 0) - (q < 0)
    a = abs(q)
    if mode is Rounding.ROUND:
        return round(q)                      # Python rounds a Fraction half to even, like np.round
    if mode is Rounding.FLOOR:
        return math.floor(q)
    if mode is Rounding.CEIL:
        return math.ceil(q)
    if mode is Rounding.DOWN:
        return math.trunc(q)
    if mode is Rounding.UP:
        return sign * math.ceil(a)
    if mode is Rounding.HALF_UP:
        return sign * math.floor(a + Fraction(1, 2))
    if mode is Rounding.HALF_DOWN:
        return sign * math.ceil(a - Fraction(1, 2))
    raise AssertionError(mode)


def input_quantizer(graph) -> Quant:
    (inp,) = graph.inputs
    (q,) = graph.consumers(inp.name)
    assert isinstance(q.op, Quant), q
    return q.op


def float32_reference_exact_for(q: Quant) -> dict:
    """Which probes qonnx's float32 arithmetic quantizes exactly, as `probe_values` options.

    - beside_ties: qonnx rounds HALF_UP as floor(|x| + 0.5) and HALF_DOWN as ceil(|x| - 0.5)
      in float32. For the float32 just below a tie (0.49999997, say) the sum rounds up to the
      next integer (0.49999997 + 0.5 == 1.0 in float32), so qonnx gives 1 where the rounding
      mode says 0.
    - subnormals: with a scale above 1 (negative fraction bits), x / scale underflows to 0 in
      float32 for the smallest subnormals, so FLOOR, CEIL and UP give 0 where they should
      give -1 or 1.
    The emulator follows the definitions; test_input_quantizer_follows_the_definition checks
    those inputs against them instead."""
    return dict(beside_ties=q.rounding not in (Rounding.HALF_UP, Rounding.HALF_DOWN),
                subnormals=q.type.frac >= 0 or q.rounding not in (Rounding.FLOOR, Rounding.CEIL,
                                                                  Rounding.UP))


def probe_values(lo: int, hi: int, frac: int, rng: np.random.Generator, max_codes: int = 600,
                 beside_ties: bool = True, subnormals: bool = True) -> np.ndarray:
    """A pool of float32 values for a quantizer with codes [lo, hi] at `frac` fraction bits."""
    if hi - lo + 5 <= max_codes:
        codes = np.arange(lo - 2, hi + 3)
    else:
        inner = rng.integers(lo, hi, size=max_codes - 10, endpoint=True)
        codes = np.concatenate([np.arange(lo - 2, lo + 3), np.arange(hi - 2, hi + 3), inner])
    codes = codes.astype(np.float64)
    ties = codes + 0.5
    step = 2.0 ** -frac
    exact = np.concatenate([codes, ties]) * step
    vals = exact.astype(np.float32)
    assert np.array_equal(vals.astype(np.float64), exact), "probe values must be exact in float32"
    beside = np.concatenate([np.nextafter(vals, np.float32(np.inf)),
                             np.nextafter(vals, np.float32(-np.inf))])
    if not beside_ties:
        beside = beside[np.tile(vals == 0, 2)]    # keep the smallest subnormals beside zero
    if not subnormals:
        beside = beside[np.abs(beside) >= np.finfo(np.float32).tiny]
    spread = max(abs(lo), abs(hi), 1) * step
    rand = rng.uniform(-1.5 * spread, 1.5 * spread, size=max(64, len(codes) // 2))
    special = np.concatenate([FAR, -FAR, [0.0, -0.0]])
    pool = np.concatenate([vals, beside, rand.astype(np.float32), special.astype(np.float32)])
    return pool.astype(np.float32)


def probe_inputs(graph, rng, rows_min: int = 16, all_probes: bool = False) -> np.ndarray:
    """(N, features) float32 inputs; every column sees every probe value. Unless `all_probes`,
    the values qonnx's float32 arithmetic does not quantize exactly are left out."""
    rng = np.random.default_rng(rng)
    q = input_quantizer(graph)
    (inp,) = graph.inputs
    options = {} if all_probes else float32_reference_exact_for(q)
    pool = probe_values(q.lo, q.hi, q.type.frac, rng, **options)
    n = max(len(pool), rows_min)
    cols = [np.resize(rng.permutation(pool), n) for _ in range(inp.size)]
    return np.stack(cols, axis=1)
