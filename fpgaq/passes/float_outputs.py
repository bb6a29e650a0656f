"""A float tail after the last quantizer (--requantize): a graph output whose codes carry a
float scale or a rounded bias (a layer followed by a batch-norm or Brevitas' TensorNorm and no
quantizer) gets a quantizer of its own, so the firmware gives fixed-point values. Its type has
`bits` bits, signed unless no value is negative, and the most fraction bits that still hold the
exact range of the float model; it rounds half to even. The requantiser pass lowers it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.fixed import FixedType, Rounding
from ..ir.graph import Graph, Node
from ..ir.ops import Dense, Quant, Scale
from .rewrite import Rewrite


def fitting_type(lo: float, hi: float, bits: int) -> FixedType:
    """The `bits`-bit type with the most fraction bits whose codes hold [lo, hi] after rounding."""
    signed = lo < 0
    t = FixedType(signed, bits, 0)
    big = max(abs(lo), abs(hi))
    frac = bits - int(signed) - (math.frexp(big)[1] if big > 0 else 0)
    while True:
        t = FixedType(signed, bits, frac)
        if round(lo * 2.0 ** frac) >= t.min_code and round(hi * 2.0 ** frac) <= t.max_code:
            return t
        frac -= 1


def _tail(graph: Graph, name: str) -> tuple[Node, Node] | None:
    """(the layer, the output node) when output `name` is a dense layer's float-scaled or
    approximated sum, through relabels; None otherwise."""
    node = graph[name]
    src = node
    while isinstance(src.op, Scale):
        src = graph[src.inputs[0]]
    if not isinstance(src.op, Dense) or node.type is None:
        return None
    if node.out.factor is None and src.op.bias_exact is None:
        return None
    return src, node


@dataclass(frozen=True)
class QuantizeFloatOutputs:
    requantize: bool = False
    bits: int = 16
    name: str = "quantize_float_outputs"

    def run(self, graph: Graph) -> Graph:
        if not self.requantize:
            return graph
        tails = {o: tail for o in graph.outputs if (tail := _tail(graph, o)) is not None}
        if not tails:
            return graph
        r = Rewrite(graph)
        for n in graph.nodes:
            r.keep(n)
        outputs, quantized = list(graph.outputs), set(graph.quantized_outputs)
        for i, o in enumerate(graph.outputs):
            if o not in tails:
                continue
            dense, node = tails[o]
            assert dense.op.__class__ is Dense and node.type is not None
            delta = np.zeros(node.size) if dense.op.bias_exact is None else dense.op.bias_exact - dense.op.bias
            if node.out.channels is not None and len(node.out.channels) == node.size:
                lo = np.array([c.lo for c in node.out.channels], dtype=np.float64)
                hi = np.array([c.hi for c in node.out.channels], dtype=np.float64)
            else:
                assert node.interval is not None
                lo, hi = np.full(node.size, float(node.interval.lo)), np.full(node.size, float(node.interval.hi))
            scale = np.ldexp(np.ones(node.size), -node.type.frac) * (
                1.0 if node.out.factor is None else np.broadcast_to(node.out.factor.array, (node.size,)))
            ends = np.concatenate([(lo + delta) * scale, (hi + delta) * scale])
            t = fitting_type(float(ends.min()), float(ends.max()), self.bits)
            q = r.add(r.fresh(f"{o}_out"), Quant(t, Rounding.ROUND, t.min_code, t.max_code), (o,), node.origin)
            outputs[i] = q.name
            quantized.add(i)
        return r.graph(outputs=tuple(outputs), quantized_outputs=tuple(sorted(quantized)))
