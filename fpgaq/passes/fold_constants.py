"""Constant folding: a node whose inputs are all constants is replaced by a Constant holding
its value (quantized weights and biases, their transposes and reshapes), computed by the
op's own emulation rule."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph
from ..ir.ops import Constant, Input
from .rewrite import Rewrite


@dataclass(frozen=True)
class FoldConstants:
    name: str = "fold_constants"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            t = n.out
            if t.value is None or isinstance(n.op, (Input, Constant)):
                r.keep(n)
            elif t.type is None:
                r.add(n.name, Constant(t.value), (), n.origin)
            else:
                r.add(n.name, Constant.codes(t.value, t.type.frac, t.factor), (), n.origin)
        return r.graph()
