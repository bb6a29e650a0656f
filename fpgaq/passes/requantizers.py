"""Choosing the requantiser for float scales (--requantize): a quantizer whose input carries a
float factor, or that divides by a float step, becomes either

- thresholds (`Threshold`): its input's codes compared with constants computed once from the
  float model, exact on every code (the float model's own rounding aside), as FINN lowers a
  batch-norm before a few-level activation; or
- an integer multiplier and a shift per channel, with `bits` significant bits in each
  multiplier; the float ratio stays on the op, so the deviation can be measured.

`bits` "auto" (the default) chooses the width per requantiser: a ratio that is an exact power of
two on every channel (a DequantizeLinear -> Relu -> QuantizeLinear of one float scale: ratio 1)
with no rounded bias is an exact shift (multipliers of one significant bit); otherwise the
smallest width from 8 to 32 bits whose integer result equals the float model's rounding on
every accumulator code that does not saturate, except where the float model lies within
float32's noise of a rounding boundary (there the exported model's own float32 arithmetic may
go either way). Where too many codes would have to be checked, 24 bits (float32's significand).

`thresholds`: "auto" takes the cheaper of the two in LUTs, "always" thresholds wherever they
apply, "never" the multiplier."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.cost import compare_luts
from ..ir.fixed import INT64_SAFE_BITS, Rounding, is_power_of_two, log2_exact, round_real, shift_round
from ..ir.graph import Graph, Node
from ..ir.ops import Bipolar, Dense, Quant, Relu, Requant, Reshape, Scale, Threshold, Transpose
from ..ir.ops.threshold import MAX_THRESHOLDS
from ..ir.tensor import Tensor
from .rewrite import Rewrite

COST_CLOCK_NS = 5.0     # LUT counts do not depend on the clock
AUTO_BITS = range(8, 33)        # widths "auto" tries, smallest first
AUTO_FALLBACK_BITS = 24         # float32's significand: where the codes are too many to check
AUTO_MAX_CHANNEL_CODES = 1 << 22    # accumulator codes checked one by one, per channel
AUTO_MAX_CODES = 1 << 24            # ... and per requantiser
FLOAT32_NOISE = 2.0 ** -22      # relative: a float32 result this near a rounding boundary may fall either side
HALF_WAY = (Rounding.ROUND, Rounding.HALF_UP, Rounding.HALF_DOWN)
AUTO_TAIL_BITS = 16             # under "auto", the width of an output fpgaq quantizes (a float tail)


def tail_bits(bits: int | str) -> int:
    """The width of the quantizer fpgaq gives a float tail (QuantizeFloatOutputs): `bits`, or
    AUTO_TAIL_BITS for "auto"."""
    return AUTO_TAIL_BITS if bits == "auto" else int(bits)


@dataclass(frozen=True)
class ChooseRequantizers:
    bits: int | str = "auto"        # significant bits of each multiplier, or "auto"
    thresholds: str = "auto"
    name: str = "choose_requantizers"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            x = r[n.inputs[0]].out if n.inputs else None
            if x is None or x.type is None:
                r.keep(n)
            elif isinstance(n.op, Quant) and not n.op.integer(x):
                relu = _relu_over_rounded_bias(r, n, graph)
                if relu is None:
                    self._requantizer(r, n, n.op, x, n.name, n.inputs)
                else:
                    # q(relu(v)) = max(q(v), q(0)): the requantiser reads the ReLU's input, where the
                    # accumulator's rounded bias is known, and a ReLU on its codes follows if q(0) = 0
                    # is not already its least code (the ReLU itself is left dead)
                    plain = n.op.lo >= 0
                    first = n.name if plain else r.fresh(f"{n.name}_q")
                    self._requantizer(r, n, n.op, r[relu.inputs[0]].out, first, relu.inputs)
                    if not plain and first in r.nodes:
                        r.add(n.name, Relu(), (first,), n.origin)
            elif isinstance(n.op, Bipolar) and _rounded_bias(r, n.inputs[0]) is not None and self.thresholds != "never":
                # the sign of a sum whose bias the accumulator holds rounded: exact as one threshold
                t = Threshold.lower(n.op, x, _rounded_bias(r, n.inputs[0]))
                if t is None:
                    r.keep(n)
                else:
                    r.add(n.name, t, n.inputs, n.origin)
            else:
                r.keep(n)
        return r.graph()

    def _requantizer(self, r: Rewrite, n: Node, q: Quant, x: Tensor, name: str, inputs: tuple[str, ...]) -> None:
        """The requantiser of quantizer n on x (its input `inputs[0]`), as node `name`."""
        ratio = q.ratio(x).ravel()          # one a channel, or one an element of an N-d tensor
        if ratio.size not in (1, x.size):
            r.problem(n, f"{ratio.size} scale factors for {x.size} channels")
            return
        delta = _rounded_bias(r, inputs[0])
        if self.bits == "auto":
            requant = _exact_shift(q, ratio, delta) or _auto_width(q, x, ratio, delta)
        else:
            requant = _with_width(q, x, ratio, delta, int(self.bits))
        if requant is None:
            r.problem(n, "a scale ratio is too small for the requantisation multiplier; raise --requant-bits")
            return
        r.add(name, self._cheaper(requant, q, x, delta), inputs, n.origin)

    def _cheaper(self, requant: Requant, q: Quant, x: Tensor, delta: np.ndarray | None) -> Requant | Threshold:
        if self.thresholds == "never":
            return requant
        assert x.type is not None
        out = requant.infer([x])
        budget = requant.cost([x], out, COST_CLOCK_NS).lut
        # in "auto", no more thresholds than the multiplier's LUTs would pay for
        most = MAX_THRESHOLDS if self.thresholds == "always" else budget // compare_luts(x.type.width)
        t = Threshold.lower(q, x, delta, most)
        if t is None:
            return requant
        if self.thresholds == "always":
            return t
        return t if t.cost([x], out, COST_CLOCK_NS).lut <= budget else requant


RELABELS = (Scale, Reshape, Transpose)


def _rounded_bias(r: Rewrite, name: str) -> np.ndarray | None:
    """What the float model adds to the codes of node `name`: the part of a dense layer's bias
    that its accumulator holds rounded (--requantize), looking through relabels; one value a
    channel, or, past a Reshape or Transpose (a convolution's output), one an element, moved
    with the elements. None if nothing is held rounded."""
    chain = []
    src = r[name]
    while isinstance(src.op, RELABELS):
        chain.append(src)
        src = r[src.inputs[0]]
    if not isinstance(src.op, Dense) or src.op.bias_exact is None:
        return None
    delta = np.asarray(src.op.bias_exact - src.op.bias.astype(np.float64))
    if not any(isinstance(c.op, (Reshape, Transpose)) for c in chain):
        return delta
    every = np.broadcast_to(delta, src.shape)
    for c in reversed(chain):
        if isinstance(c.op, Reshape):
            every = every.reshape(c.op.shape)
        elif isinstance(c.op, Transpose):
            every = every.transpose(c.op.perm)
    return np.ascontiguousarray(every).ravel()


def _relu_over_rounded_bias(r: Rewrite, n: Node, graph: Graph) -> Node | None:
    """The ReLU quantizer n reads, when n is its only reader and a rounded bias lies behind it
    (which the requantiser must see); else None."""
    relu = r[n.inputs[0]]
    if not isinstance(relu.op, Relu) or len(graph.consumers(relu.name)) != 1:
        return None
    q = n.op
    assert isinstance(q, Quant)
    if not q.lo <= 0 <= q.hi:
        return None
    return relu if _rounded_bias(r, relu.inputs[0]) is not None else None


def _with_width(q: Quant, x: Tensor, ratio: np.ndarray, delta: np.ndarray | None, bits: int) -> Requant | None:
    """The requantiser whose largest multiplier has `bits` significant bits; None when a ratio
    is too small for it."""
    shift = bits - 1 - math.floor(math.log2(float(ratio.max())))
    multiplier = np.rint(np.ldexp(ratio, shift)).astype(np.int64)
    if np.any(multiplier < 1):
        return None
    # the bias the accumulator holds rounded, added back at the multiplier's precision
    offset = None if delta is None else np.rint(np.broadcast_to(delta, (x.size,)) * np.broadcast_to(
        multiplier, (x.size,))).astype(np.int64)
    return Requant(q.type, q.rounding, q.lo, q.hi, multiplier, shift, ratio, offset)


def _exact_shift(q: Quant, ratio: np.ndarray, delta: np.ndarray | None) -> Requant | None:
    """An exact requantiser where every ratio is a power of two and no bias is held rounded:
    multipliers 2**(k[c] + shift) with one significant bit (a wire), then the shift."""
    if (delta is not None and np.any(delta != 0)) or not all(is_power_of_two(float(v)) for v in ratio):
        return None
    k = np.array([log2_exact(float(v)) for v in ratio], dtype=np.int64)
    shift = max(0, -int(k.min()))
    if int(k.max()) + shift > 30:
        return None
    multiplier = np.left_shift(np.ones_like(k), k + shift)
    return Requant(q.type, q.rounding, q.lo, q.hi, multiplier, shift, ratio)


def _auto_width(q: Quant, x: Tensor, ratio: np.ndarray, delta: np.ndarray | None) -> Requant | None:
    """The requantiser of the smallest width in AUTO_BITS that computes the float model's
    rounding on every non-saturating code (see the module's doc); AUTO_FALLBACK_BITS when there
    are too many codes to check, the widest when no width agrees."""
    assert x.interval is not None
    n = x.size
    ratios = np.broadcast_to(ratio, (n,))
    deltas = np.zeros(n) if delta is None else np.broadcast_to(np.asarray(delta, dtype=np.float64), (n,))
    ivs = list(x.channels) if x.channels is not None and len(x.channels) == n else [x.interval] * n
    # one check per distinct (interval, ratio, bias) channel
    channels = sorted({(iv.lo, iv.hi, float(rt), float(d)) for iv, rt, d in zip(ivs, ratios, deltas)})
    bands = [_band(q, lo, hi, rt, d) for lo, hi, rt, d in channels]
    sizes = [b.size for b in bands]
    if max(sizes) > AUTO_MAX_CHANNEL_CODES or sum(sizes) > AUTO_MAX_CODES:
        return _with_width(q, x, ratio, delta, AUTO_FALLBACK_BITS)
    top = math.floor(math.log2(float(ratio.max())))
    alive = np.ones(len(AUTO_BITS), dtype=bool)     # widths that agree on every channel so far
    for (_, _, rt, d), codes in zip(channels, bands):
        _Channel(q, codes, rt, d).narrow(alive, top)
        if not alive.any():
            return _with_width(q, x, ratio, delta, AUTO_BITS[-1])
    return _with_width(q, x, ratio, delta, AUTO_BITS[int(np.argmax(alive))])


def _band(q: Quant, lo: int, hi: int, ratio: float, delta: float) -> np.ndarray:
    """The codes of [lo, hi] worth checking: those whose output does not saturate, with a margin.
    Beyond them, both the float model and the integer design (monotone in the code) saturate:
    their agreement at the band's ends carries over. A channel that always saturates: its ends."""
    a = max(lo, math.floor((q.lo - 1) / ratio - delta) - 2)
    b = min(hi, math.ceil((q.hi + 1) / ratio - delta) + 2)
    if a > b:
        return np.array([lo, hi], dtype=np.int64)
    return np.arange(a, b + 1, dtype=np.int64)


class _Channel:
    """One channel's codes and the float model's results on them, checked against the integer
    requantiser of each width. The integer result is the float model's value v plus an error
    linear in the code, (code * m + offset) / 2**shift - v, so only codes whose v lies within
    that error's bound of a rounding boundary can differ; those are computed exactly."""
    FAIL_FAST = 4096        # codes checked first, where a narrow width fails on many

    def __init__(self, q: Quant, codes: np.ndarray, ratio: float, delta: float):
        self.q, self.ratio, self.delta = q, ratio, delta
        v = (codes + delta) * ratio                 # the float model, as the reference computes it
        frac = v - np.floor(v)
        dist = np.abs(frac - 0.5) if q.rounding in HALF_WAY else np.minimum(frac, 1.0 - frac)
        # within float32 noise of a boundary: the exported model itself may round either way
        firm = dist > FLOAT32_NOISE * np.maximum(np.abs(v), 1.0)
        self.codes, self.dist = codes[firm], dist[firm]
        self.want = np.clip(round_real(v[firm], q.rounding), q.lo, q.hi)
        self.magnitude = int(np.abs(codes).max(initial=0))
        self.slack = 2.0 ** -40 * (1.0 + float(np.abs(v).max(initial=0.0)))   # float64 error in the bound

    def narrow(self, alive: np.ndarray, top: int) -> None:
        """Clear the widths of `alive` (AUTO_BITS) at which this channel disagrees."""
        for j, bits in enumerate(AUTO_BITS):
            if not alive[j]:
                continue
            shift = bits - 1 - top
            m = int(np.rint(np.ldexp(self.ratio, shift)))
            if m < 1:
                alive[j] = False
                continue
            offset = int(np.rint(self.delta * m))
            bound = (self.magnitude * abs(math.ldexp(m, -shift) - self.ratio)
                     + abs(math.ldexp(offset, -shift) - self.delta * self.ratio) + self.slack)
            near = np.flatnonzero(self.dist <= bound)
            alive[j] = self._agrees(near[:self.FAIL_FAST], m, offset, shift) and self._agrees(
                near[self.FAIL_FAST:], m, offset, shift)

    def _agrees(self, idx: np.ndarray, m: int, offset: int, shift: int) -> bool:
        if idx.size == 0:
            return True
        codes = self.codes[idx]
        peak = self.magnitude * m + abs(offset)
        wide = codes.astype(object) if peak.bit_length() + 1 > INT64_SAFE_BITS else codes
        got = np.clip(shift_round(wide * m + offset, shift, self.q.rounding), self.q.lo, self.q.hi)
        return bool(np.array_equal(got.astype(np.float64), self.want[idx]))
