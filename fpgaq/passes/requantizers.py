"""Choosing the requantiser for float scales (--requantize): a quantizer whose input carries a
float factor, or that divides by a float step, becomes either

- thresholds (`Threshold`): its input's codes compared with constants computed once from the
  float model, exact on every code (the float model's own rounding aside), as FINN lowers a
  batch-norm before a few-level activation; or
- an integer multiplier and a shift per channel, with `bits` significant bits in each
  multiplier; the float ratio stays on the op, so the deviation can be measured.

`thresholds`: "auto" takes the cheaper of the two in LUTs, "always" thresholds wherever they
apply, "never" the multiplier."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.cost import compare_luts
from ..ir.graph import Graph, Node
from ..ir.ops import Bipolar, Dense, Quant, Requant, Scale, Threshold
from ..ir.ops.threshold import MAX_THRESHOLDS
from ..ir.tensor import Tensor
from .rewrite import Rewrite

COST_CLOCK_NS = 5.0     # LUT counts do not depend on the clock


@dataclass(frozen=True)
class ChooseRequantizers:
    bits: int = 16
    thresholds: str = "auto"
    name: str = "choose_requantizers"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            x = r[n.inputs[0]].out if n.inputs else None
            if x is None or x.type is None:
                r.keep(n)
            elif isinstance(n.op, Quant) and not n.op.integer(x):
                self._requantizer(r, n, n.op, x)
            elif isinstance(n.op, Bipolar) and _rounded_bias(r, n) is not None and self.thresholds != "never":
                # the sign of a sum whose bias the accumulator holds rounded: exact as one threshold
                t = Threshold.lower(n.op, x, _rounded_bias(r, n))
                if t is None:
                    r.keep(n)
                else:
                    r.add(n.name, t, n.inputs, n.origin)
            else:
                r.keep(n)
        return r.graph()

    def _requantizer(self, r: Rewrite, n: Node, q: Quant, x: Tensor) -> None:
        ratio = q.ratio(x)
        if ratio.size not in (1, x.size):
            r.problem(n, f"{ratio.size} scale factors for {x.size} channels")
            return
        shift = self.bits - 1 - math.floor(math.log2(float(ratio.max())))
        multiplier = np.rint(np.ldexp(ratio, shift)).astype(np.int64)
        if np.any(multiplier < 1):
            r.problem(n, "a scale ratio is too small for the requantisation multiplier; raise --requant-bits")
            return
        delta = _rounded_bias(r, n)
        # the bias the accumulator holds rounded, added back at the multiplier's precision
        offset = None if delta is None else np.rint(np.broadcast_to(delta, (x.size,)) * np.broadcast_to(
            multiplier, (x.size,))).astype(np.int64)
        requant = Requant(q.type, q.rounding, q.lo, q.hi, multiplier, shift, ratio, offset)
        r.add(n.name, self._cheaper(requant, q, x, delta), n.inputs, n.origin)

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


def _rounded_bias(r: Rewrite, n: Node) -> np.ndarray | None:
    """What the float model adds to the codes n reads: the part of a dense layer's bias that its
    accumulator holds rounded (--requantize), looking through relabels; None if nothing."""
    src = r[n.inputs[0]]
    while isinstance(src.op, Scale):
        src = r[src.inputs[0]]
    if not isinstance(src.op, Dense) or src.op.bias_exact is None:
        return None
    return np.asarray(src.op.bias_exact - src.op.bias.astype(np.float64))
