"""An average over a window that is not a power of two (AveragePool, GlobalAveragePool,
ReduceMean): the quantizer that reads it divides the window's sum exactly, with its own
rounding (a DivQuant). Without such a quantizer, --requantize carries 1 / count into a float
factor (the deviation is reported); otherwise it is refused."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.graph import Graph
from ..ir.ops import Average, DivQuant, Quant, Scale
from ..ir.tensor import Factor
from .rewrite import Rewrite


@dataclass(frozen=True)
class LowerAverages:
    requantize: bool = False
    name: str = "lower_averages"

    def run(self, graph: Graph) -> Graph:
        if not any(isinstance(n.op, Average) for n in graph.nodes):
            return graph
        r = Rewrite(graph)
        into: dict[str, str] = {}            # quantizer -> the average it divides
        for n in graph.nodes:
            if n.name in into:
                avg = graph[into[n.name]]
                assert isinstance(avg.op, Average) and isinstance(n.op, Quant)
                q = n.op
                r.add(n.name, DivQuant(q.type, q.rounding, q.lo, q.hi, avg.op.count), avg.inputs, n.origin)
            elif isinstance(n.op, Average):
                readers = graph.consumers(n.name)
                src = r[n.inputs[0]].out
                if (len(readers) == 1 and isinstance(readers[0].op, Quant) and readers[0].op.step is None
                        and src.type is not None and src.factor is None and n.name not in graph.outputs):
                    into[readers[0].name] = n.name
                elif self.requantize:
                    r.add(n.name, Scale(Factor.of(np.array([1.0 / n.op.count]))), n.inputs, n.origin)
                else:
                    r.problem(n, f"averages windows of {n.op.count} values without a quantizer after it: dividing "
                                 f"by {n.op.count} (not a power of two) is exact only into a quantizer; add one "
                                 "after the pooling, or build with --requantize (the deviation is reported)")
            else:
                r.keep(n)
        return r.graph()
