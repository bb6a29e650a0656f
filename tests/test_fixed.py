"""Property tests of fpgaq.ir.fixed: rounding of codes, minimal types, exact dyadic constants.

QONNX defines rounding on floats (qonnx.custom_op.general.intquant.resolve_rounding_mode on
value / scale). fpgaq rounds integer codes exactly (`shift_round`). They must agree wherever
the float computation is exact; past float precision we compare with the same definitions
evaluated on exact rationals (checked against QONNX's float functions where both apply).
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from qonnx.custom_op.general.intquant import resolve_rounding_mode

from fpgaq.ir.fixed import (INT64_SAFE_BITS, FixedType, Rounding, code_array, dyadic,
                            round_real, shift_round)
from fpgaq.ir.interval import Interval
from probe_inputs import exact_round

ROUNDINGS = list(Rounding)
FAST = settings(max_examples=200, deadline=None)


def qonnx_round(values: np.ndarray, mode: Rounding) -> np.ndarray:
    return resolve_rounding_mode(mode.name)(np.asarray(values, dtype=np.float64))


@st.composite
def code_and_shift(draw, mag_bits: int = 53, max_shift: int = 40):
    """A code and a shift, with ties (code exactly halfway between two results), exact
    multiples and values just beside a tie drawn often, of either sign."""
    shift = draw(st.integers(1, max_shift))
    q = draw(st.integers(-(1 << max(mag_bits - shift, 1)), 1 << max(mag_bits - shift, 1)))
    half = 1 << (shift - 1)
    offset = draw(st.sampled_from(["tie", "exact", "tie-1", "tie+1", "any"]))
    if offset == "tie":
        rem = half
    elif offset == "exact":
        rem = 0
    elif offset == "tie-1":
        rem = half - 1
    elif offset == "tie+1":
        rem = min(half + 1, (1 << shift) - 1)
    else:
        rem = draw(st.integers(0, (1 << shift) - 1))
    code = (q << shift) + rem
    code = max(-(1 << mag_bits), min(code, (1 << mag_bits) - 1))
    return code, shift


# --- shift_round against QONNX's float rounding ------------------------------------------------

@FAST
@given(code_and_shift(), st.sampled_from(ROUNDINGS))
def test_shift_round_python_int_matches_qonnx(cs, mode):
    code, shift = cs
    real = np.float64(code) / 2.0 ** shift            # exact: |code| < 2**53
    want = int(qonnx_round(real, mode))
    assert int(round_real(np.float64(real), mode)) == want
    got = shift_round(code, shift, mode)
    assert type(got) is int
    assert got == want


@FAST
@given(code_and_shift(), st.sampled_from(ROUNDINGS))
def test_shift_round_numpy_scalar_matches_qonnx(cs, mode):
    code, shift = cs
    want = int(qonnx_round(np.float64(code) / 2.0 ** shift, mode))
    assert shift_round(np.int64(code), shift, mode) == want


@FAST
@given(st.lists(code_and_shift(max_shift=30), min_size=1, max_size=40),
       st.integers(1, 30), st.sampled_from(ROUNDINGS))
def test_shift_round_int64_array_matches_qonnx(pairs, shift, mode):
    codes = np.array([c for c, _ in pairs], dtype=np.int64)
    got = shift_round(codes, shift, mode)
    assert got.dtype == np.int64 and got.shape == codes.shape
    want = qonnx_round(codes.astype(np.float64) / 2.0 ** shift, mode)
    np.testing.assert_array_equal(got, want.astype(np.int64))
    np.testing.assert_array_equal(round_real(codes.astype(np.float64) / 2.0 ** shift, mode),
                                  want)


@FAST
@given(st.lists(st.integers(-(1 << 62), (1 << 62) - 1), min_size=1, max_size=20),
       st.integers(1, 62), st.sampled_from(ROUNDINGS))
def test_shift_round_int64_array_full_range(codes, shift, mode):
    """Codes up to the int64 limit (past float precision): against the exact definitions."""
    arr = np.array(codes, dtype=np.int64)
    got = shift_round(arr, shift, mode)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [exact_round(Fraction(c, 1 << shift), mode) for c in codes])


@FAST
@given(code_and_shift(mag_bits=200, max_shift=150), st.sampled_from(ROUNDINGS))
def test_shift_round_object_array_past_62_bits(cs, mode):
    code, shift = cs
    codes = np.array([code, -code, code + 1, 0, (1 << 63) + code], dtype=object)
    got = shift_round(codes, shift, mode)
    assert got.dtype == object
    want = [exact_round(Fraction(int(c), 1 << shift), mode) for c in codes]
    assert [int(v) for v in got] == want


@FAST
@given(st.integers(-(1 << 52), 1 << 52), st.integers(0, 80), st.integers(1, 60),
       st.sampled_from(ROUNDINGS))
def test_shift_round_object_array_matches_float_where_exact(mant, k, shift, mode):
    """Big codes with few significant bits are exact floats: compare with QONNX directly."""
    code = mant << k           # k < shift: a fraction (a tie when mant is odd and k == shift - 1)
    codes = np.array([code << 20, (-code) << 20, code, (2 * (mant >> 1) + 1) << (shift + 19)], dtype=object)
    got = shift_round(codes, shift, mode)
    assert got.dtype == object
    want = qonnx_round(np.array([float(c) for c in codes]) / 2.0 ** shift, mode)
    assert [int(v) for v in got] == [int(v) for v in want]


@given(st.integers(-(1 << 70), 1 << 70), st.integers(-40, 0), st.sampled_from(ROUNDINGS))
def test_shift_round_non_positive_shift_is_exact_scaling(code, shift, mode):
    assert shift_round(code, shift, mode) == code * (1 << -shift)
    arr = np.array([code], dtype=object)
    assert int(shift_round(arr, shift, mode)[0]) == code * (1 << -shift)


@pytest.mark.parametrize("mode, expect", [
    # codes -6..6 at one fraction bit: -3, -2.5, ..., 3
    (Rounding.ROUND,     [-3, -2, -2, -2, -1, 0, 0, 0, 1, 2, 2, 2, 3]),
    (Rounding.HALF_UP,   [-3, -3, -2, -2, -1, -1, 0, 1, 1, 2, 2, 3, 3]),
    (Rounding.HALF_DOWN, [-3, -2, -2, -1, -1, 0, 0, 0, 1, 1, 2, 2, 3]),
    (Rounding.FLOOR,     [-3, -3, -2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3]),
    (Rounding.CEIL,      [-3, -2, -2, -1, -1, 0, 0, 1, 1, 2, 2, 3, 3]),
    (Rounding.DOWN,      [-3, -2, -2, -1, -1, 0, 0, 0, 1, 1, 2, 2, 3]),
    (Rounding.UP,        [-3, -3, -2, -2, -1, -1, 0, 1, 1, 2, 2, 3, 3]),
])
def test_shift_round_table(mode, expect):
    """The README's rounding table, spelled out on every tie and exact value from -3 to 3."""
    codes = list(range(-6, 7))
    assert [shift_round(c, 1, mode) for c in codes] == expect
    np.testing.assert_array_equal(shift_round(np.array(codes), 1, mode), expect)
    np.testing.assert_array_equal(shift_round(np.array(codes, dtype=object), 1, mode), expect)
    np.testing.assert_array_equal(qonnx_round(np.array(codes) / 2.0, mode), expect)


def test_rounding_parse_accepts_qonnx_names():
    assert Rounding.parse("half_even") is Rounding.ROUND
    assert Rounding.parse("Round") is Rounding.ROUND
    for mode in Rounding:
        assert Rounding.parse(mode.name.lower()) is mode
    with pytest.raises(ValueError):
        Rounding.parse("STOCHASTIC")


# --- FixedType.holding: sound and minimal ------------------------------------------------------

def _interval(a: int, b: int) -> Interval:
    return Interval(min(a, b), max(a, b))


BOUNDS = st.one_of(st.integers(-(1 << 80), 1 << 80),
                   st.integers(-4, 4),
                   st.integers(0, 100).map(lambda k: (1 << k) - 1),
                   st.integers(0, 100).map(lambda k: 1 << k),
                   st.integers(0, 100).map(lambda k: -(1 << k)),
                   st.integers(0, 100).map(lambda k: -(1 << k) - 1))


@settings(max_examples=500, deadline=None)
@given(BOUNDS, BOUNDS, st.integers(-40, 40))
def test_holding_is_sound_and_minimal(a, b, frac):
    iv = _interval(a, b)
    ty = FixedType.holding(iv, frac)
    assert ty.frac == frac
    assert ty.interval.contains(iv)
    assert ty.signed == (iv.lo < 0)
    # one bit fewer, of either signedness, cannot hold it
    for signed in (False, True):
        if ty.width > 1:
            assert not FixedType(signed, ty.width - 1, frac).interval.contains(iv)
    if not ty.signed:
        assert ty.width == 1 or not FixedType(True, ty.width, frac).interval.contains(iv)


@given(st.integers(1, 200), st.booleans(), st.integers(-50, 50))
def test_fixed_type_codes(width, signed, frac):
    ty = FixedType(signed, width, frac)
    assert ty.max_code - ty.min_code == (1 << width) - 1
    assert ty.integer == width - frac
    assert FixedType.holding(ty.interval, frac) == ty


def test_fixed_type_rejects_bad_widths():
    with pytest.raises(ValueError, match=r"^FixedType width must be a positive int, got 0$"):
        FixedType(True, 0, 0)
    with pytest.raises(ValueError, match=r"^FixedType frac must be an int, got 1\.5$"):
        FixedType(True, 8, 1.5)
    assert str(FixedType(True, 16, 10)) == "fixed<16,6>"
    assert str(FixedType(False, 8, 8)) == "ufixed<8,0>"


# --- dyadic: exact, minimal ---------------------------------------------------------------------

FLOATS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-(1 << 20), 1 << 20).map(lambda k: k / 1024.0),
    st.integers(-1100, 1000).map(lambda e: math.ldexp(1.0, e)),
)


def _needed_frac(values) -> int:
    """Smallest f >= 0 with every value an integer multiple of 2**-f."""
    return max([Fraction(float(v)).denominator.bit_length() - 1 for v in values] + [0])


@settings(max_examples=300, deadline=None)
@given(st.lists(FLOATS, min_size=1, max_size=12), st.sampled_from([24, 64, 200]))
def test_dyadic_is_exact_and_minimal(values, max_frac):
    arr = np.array(values, dtype=np.float64)
    need = _needed_frac(values)
    got = dyadic(arr, max_frac=max_frac)
    if need > max_frac:
        assert got is None
        return
    assert got is not None
    codes, frac = got
    assert frac == need
    assert codes.shape == arr.shape
    for v, c in zip(values, codes.ravel()):
        assert Fraction(float(v)) == Fraction(int(c), 1 << frac)
    bits = max(abs(int(c)).bit_length() for c in codes.ravel()) + 1
    assert codes.dtype == (np.int64 if bits <= INT64_SAFE_BITS else object)


def test_dyadic_keeps_shape_and_zeros():
    codes, frac = dyadic(np.array([[0.0, 0.5], [-0.25, 3.0]]))
    assert frac == 2
    np.testing.assert_array_equal(codes, [[0, 2], [-1, 12]])
    codes, frac = dyadic(np.zeros((2, 3)))
    assert frac == 0 and codes.shape == (2, 3) and not codes.any()


def test_dyadic_huge_and_tiny_together():
    """A value near the float maximum with one that needs many fraction bits: still exact."""
    got = dyadic(np.array([2.0 ** -100, 1e300]))
    assert got is not None
    codes, frac = got
    assert frac == 100
    assert int(codes[0]) == 1
    assert Fraction(int(codes[1]), 1 << 100) == Fraction(1e300)


@given(st.lists(st.integers(-(1 << 70), 1 << 70), min_size=1, max_size=8))
def test_code_array_falls_back_to_objects_past_62_bits(values):
    bits = max(abs(v).bit_length() for v in values) + 1
    arr = code_array(values, bits)
    assert arr.dtype == (np.int64 if bits <= INT64_SAFE_BITS else object)
    assert [int(v) for v in arr] == values
