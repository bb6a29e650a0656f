"""A float tail after the last quantizer (--requantize): a graph output, or the input of a
Softmax or a table activation, whose codes carry a float scale or a rounded bias (a layer
followed by a batch-norm or Brevitas' TensorNorm and no quantizer) gets a quantizer of its own,
so the firmware gives (or tabulates) fixed-point values. Its type has
`bits` bits, signed unless no value is negative, and the most fraction bits that still hold the
exact range of the float model; it rounds half to even. The requantiser pass lowers it."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.fixed import FixedType, Rounding
from ..ir.graph import Graph, Node
from ..ir.ops import Activation, Dense, Quant, Scale, Softmax
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
        tables = {n.inputs[0] for n in graph.nodes if isinstance(n.op, (Softmax, Activation))}
        tails = {o: tail for o in set(graph.outputs) | tables if (tail := _tail(graph, o)) is not None}
        if not tails:
            return graph
        r = Rewrite(graph)
        quantized: dict[str, str] = {}        # tail -> its quantizer

        def quantize(o: str) -> str:
            if o not in quantized:
                dense, node = tails[o]
                t = self._type(dense, node)
                quantized[o] = r.add(r.fresh(f"{o}_out"), Quant(t, Rounding.ROUND, t.min_code, t.max_code),
                                     (o,), node.origin).name
            return quantized[o]

        for n in graph.nodes:
            if isinstance(n.op, (Softmax, Activation)) and n.inputs[0] in tails:
                r.add(n.name, n.op, (quantize(n.inputs[0]),), n.origin)
            else:
                r.keep(n)
        outputs, chosen = list(graph.outputs), set(graph.quantized_outputs)
        for i, o in enumerate(graph.outputs):
            if o in tails:
                outputs[i] = quantize(o)
                chosen.add(i)
        return r.graph(outputs=tuple(outputs), quantized_outputs=tuple(sorted(chosen)))

    def _type(self, dense: Node, node: Node) -> FixedType:
        """`bits` bits holding the float model's exact range of the tail."""
        assert isinstance(dense.op, Dense) and node.type is not None
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
        return fitting_type(float(ends.min()), float(ends.max()), self.bits)
