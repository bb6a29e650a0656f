"""Scale folding: a Scale only relabels codes (a power of two moves the binary point, a float
factor rides along), so none needs to reach the firmware. Each Scale is merged with the next,
moved down through ops that work on codes alone (Clip, ReLU), absorbed where a consumer can
take it (a quantizer reads its input's binary point; a Dense's weights take it; a requantiser
already multiplies by it), or, at a graph output, handed to the host as a float factor. A power
of two left at an output (an integer QDQ tensor) is an error."""
from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import ModelError
from ..ir.graph import Graph, Node
from ..ir.ops import Clip, Dense, Quant, Relu, Requant, Scale
from ..ir.tensor import Factor
from .dead_nodes import EliminateDeadNodes
from .rewrite import Rewrite


def _times(a: Factor | None, b: Factor) -> Factor:
    return b if a is None else Factor.of(b.array * a.array)


@dataclass(frozen=True)
class FoldScales:
    name: str = "fold_scales"

    def run(self, graph: Graph) -> Graph:
        while True:
            step = self._step(graph)
            if step is None:
                return self._outputs(graph)
            graph = step

    def _step(self, graph: Graph) -> Graph | None:
        """The graph after one local rewrite of a Scale, or None when none applies."""
        for s in graph.nodes:
            if not isinstance(s.op, Scale) or s.out.const:
                continue
            readers = graph.consumers(s.name)
            if s.op.exponent() == 0:
                return self._bypass(graph, s, {})
            if len(readers) != 1 or s.name in graph.outputs:
                continue
            (c,) = readers
            if isinstance(c.op, Scale):                       # two relabels in a row: one
                return self._bypass(graph, s, {c.name: Scale(_times(s.op.factor, c.op.factor))})
            if isinstance(c.op, (Clip, Relu)):              # codes in, codes out: any factor commutes
                return self._bypass(graph, s, {}, after=(c, s.op))
            e = s.op.exponent()
            if isinstance(c.op, Requant):                     # its multiplier already includes it
                return self._bypass(graph, s, {})
            if isinstance(c.op, Quant) and e is not None and c.op.step is None:
                q = replace(c.op, type=c.op.type.relabel(-e))
                return self._bypass(graph, s, {c.name: q}, after=(c, Scale(s.op.factor)))
            if isinstance(c.op, Dense):
                if e is not None:
                    return self._bypass(graph, s, {c.name: replace(c.op, weight_frac=c.op.weight_frac - e)})
                if graph[s.inputs[0]].out.factor is None:
                    return self._bypass(graph, s, {c.name: replace(c.op, factor=c.out.factor)})
        return None

    def _bypass(self, graph: Graph, s: Node, ops: dict, after: tuple | None = None) -> Graph:
        """Readers of Scale `s` read its input; `ops` replaces their ops; `after` = (node, op):
        a relabel that now follows that node."""
        r = Rewrite(graph)
        for n in graph.nodes:
            if n.name == s.name:
                r.alias(s.name, s.inputs[0])
                continue
            node = r.add(n.name, ops.get(n.name, n.op), n.inputs, n.origin)
            if after is not None and n.name == after[0].name:
                moved = r.add(r.fresh(f"{n.name}_scale"), after[1], (node.name,), s.origin)
                r.alias(n.name, moved.name)
        return r.graph()

    def _outputs(self, graph: Graph) -> Graph:
        """Float Scales at the outputs go to the host; a power of two there is an error."""
        outputs, scales, problems = [], [], []
        for i, o in enumerate(graph.outputs):
            n, scale = graph[o], graph.output_scale(i)
            while isinstance(n.op, Scale) and n.op.exponent() is None:
                scale = _times(scale, n.op.factor)
                n = graph[n.inputs[0]]
            if isinstance(n.op, Scale):
                name = graph.output_names[i] if i < len(graph.output_names) else o
                if n.origin.onnx_op == "Trunc":
                    problems.append(f"graph output '{name}' comes from a 5-input Trunc, whose codes are read "
                                    "back at its input scale; fpgaq cannot end a model on it yet: use the "
                                    "6-input Trunc (qonnx opset 2) with an output scale, or add a layer after it")
                else:
                    problems.append(f"graph output '{name}' is an integer QDQ tensor; end the model with "
                                    "DequantizeLinear")
            outputs.append(n.name)
            scales.append(scale)
        if problems:
            raise ModelError(problems)
        if outputs == list(graph.outputs):
            return graph
        g = replace(graph, outputs=tuple(outputs),
                    output_scales=tuple(scales) if any(s is not None for s in scales) else ())
        return EliminateDeadNodes().run(g)
