"""Remove nodes whose values no output needs (what folding left behind)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph
from ..ir.ops import Input


@dataclass(frozen=True)
class EliminateDeadNodes:
    name: str = "eliminate_dead_nodes"

    def run(self, graph: Graph) -> Graph:
        needed = set(graph.outputs)
        for n in reversed(graph.nodes):
            if n.name in needed:
                needed.update(n.inputs)
        return graph.replace_nodes(n for n in graph.nodes if n.name in needed or isinstance(n.op, Input))
