"""ReLU + quantizer fusion: quant(max(x, 0)) == clamp(round(x), max(lo, 0), hi), since rounding
is monotone and keeps 0, so a ReLU read only by a quantizer goes into the quantizer's lower
bound (one requantizer in hardware instead of two)."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..ir.graph import Graph
from ..ir.ops import Quant, Relu
from .dead_nodes import EliminateDeadNodes
from .rewrite import Rewrite


@dataclass(frozen=True)
class FuseReluQuant:
    name: str = "fuse_relu_quant"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            src = graph[n.inputs[0]] if n.inputs else None
            if (isinstance(n.op, Quant) and src is not None and isinstance(src.op, Relu) and src.type is not None
                    and n.op.integer(src.out) and n.op.hi >= 0 and len(graph.consumers(src.name)) == 1
                    and src.name not in graph.outputs):
                r.add(n.name, replace(n.op, lo=max(n.op.lo, 0), relu=True), src.inputs, n.origin)
            else:
                r.keep(n)
        return EliminateDeadNodes().run(r.graph())
