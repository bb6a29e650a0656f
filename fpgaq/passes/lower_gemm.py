"""Gemm's alpha, beta and transposed weight: a Gemm becomes a MatMul on alpha * B' and an Add
of beta * C, with the constants rewritten exactly (powers of two move the binary point)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph
from ..ir.ops import Add, Gemm, MatMul
from .rewrite import Rewrite


@dataclass(frozen=True)
class LowerGemm:
    name: str = "lower_gemm"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            if not isinstance(n.op, Gemm):
                r.keep(n)
                continue
            weight, bias = n.op.parts([r[i].out for i in n.inputs])
            w = r.add(r.fresh(f"{n.name}_w"), weight, (), n.origin)
            if bias is None:
                r.add(n.name, MatMul(), (n.inputs[0], w.name), n.origin)
                continue
            # the Add computes the Gemm's value, so it takes the Gemm's name
            mm = r.add(r.fresh(f"{n.name}_mm"), MatMul(), (n.inputs[0], w.name), n.origin)
            b = r.add(r.fresh(f"{n.name}_b"), bias, (), n.origin)
            r.add(n.name, Add(), (mm.name, b.name), n.origin)
        return r.graph()
