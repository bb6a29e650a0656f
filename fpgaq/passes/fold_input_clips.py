"""A Clip on the real model input (PQuantML's QDQ export) goes into the quantizer after it:
rounding is monotone, so clipping to [a, b] and then rounding is rounding and then clamping
to the codes of a and b. The firmware then starts at that quantizer, as usual."""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from ..ir.fixed import round_real
from ..ir.graph import Graph, Node
from ..ir.ops import Clip, Quant
from .rewrite import Rewrite


def _real_clip(graph: Graph, name: str) -> bool:
    n = graph[name]
    return isinstance(n.op, Clip) and n.type is None and len(graph.consumers(name)) == 1


@dataclass(frozen=True)
class FoldInputClips:
    name: str = "fold_input_clips"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            if _real_clip(graph, n.name) and isinstance(graph.consumers(n.name)[0].op, (Clip, Quant)):
                r.alias(n.name, n.inputs[0])
            elif isinstance(n.op, Quant) and n.op.step is None and _real_clip(graph, n.inputs[0]):
                r.add(n.name, self._narrowed(graph, n, n.op), n.inputs, n.origin)
            else:
                r.keep(n)
        return r.graph()

    def _narrowed(self, graph: Graph, n: Node, q: Quant) -> Quant:
        lo_r, hi_r = -math.inf, math.inf
        src = graph[n.inputs[0]]
        while _real_clip(graph, src.name):
            assert isinstance(src.op, Clip)
            lo_r = max(lo_r, -math.inf if src.op.lo is None else float(src.op.lo))
            hi_r = min(hi_r, math.inf if src.op.hi is None else float(src.op.hi))
            src = graph[src.inputs[0]]
        a, b = (min(max(int(round_real(np.ldexp(v, q.type.frac), q.rounding)), q.lo), q.hi)
                if math.isfinite(v) else None for v in (lo_r, hi_r))
        return replace(q, lo=q.lo if a is None else a, hi=q.hi if b is None else b)
