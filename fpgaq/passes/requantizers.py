"""Choosing the requantiser for float scales (--requantize): a quantizer whose input carries a
float factor, or that divides by a float step, becomes an integer multiplier and a shift per
channel, with `bits` significant bits in each multiplier. The float ratio stays on the op, so
the deviation from the float model can be measured."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph
from ..ir.ops import Quant, Requant
from .rewrite import Rewrite


@dataclass(frozen=True)
class ChooseRequantizers:
    bits: int = 16
    name: str = "choose_requantizers"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            x = r[n.inputs[0]].out if n.inputs else None
            if not (isinstance(n.op, Quant) and x is not None and x.type is not None and not n.op.integer(x)):
                r.keep(n)
                continue
            q: Quant = n.op
            ratio = q.ratio(x)
            if ratio.size not in (1, x.size):
                r.problem(n, f"{ratio.size} scale factors for {x.size} channels")
                continue
            shift = self.bits - 1 - math.floor(math.log2(float(ratio.max())))
            multiplier = np.rint(np.ldexp(ratio, shift)).astype(np.int64)
            if np.any(multiplier < 1):
                r.problem(n, "a scale ratio is too small for the requantisation multiplier; raise --requant-bits")
                continue
            r.add(n.name, Requant(q.type, q.rounding, q.lo, q.hi, multiplier, shift, ratio), n.inputs, n.origin)
        return r.graph()
