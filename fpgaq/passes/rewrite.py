"""Building a pass's output graph: nodes are re-made in order, so every tensor is derived
again from its (possibly new) inputs, and user problems are collected, each naming its node."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ..errors import ModelError
from ..ir.graph import Graph, Node, Origin, make_node
from ..ir.ops import Op
from ..names import identifier


class Rewrite:
    """The graph a pass is making: `keep` a node, `add` new ones, `rename` what reads a node."""

    def __init__(self, graph: Graph):
        self.old = graph
        self.nodes: dict[str, Node] = {}
        self.taken = {n.name for n in graph.nodes}
        self.problems: list[str] = []
        self._alias: dict[str, str] = {}

    def __getitem__(self, name: str) -> Node:
        return self.nodes[self._alias.get(name, name)]

    def fresh(self, base: str) -> str:
        """A new node name, unused in the old graph and the new one."""
        return identifier(base, self.taken, fallback=base)

    def add(self, name: str, op: Op, inputs: Sequence[str], origin: Origin) -> Node:
        try:
            node = make_node(name, op, [self[i] for i in inputs], origin)
        except ValueError as e:   # the rewritten node does not fit its new inputs: a user problem
            raise ModelError([*self.problems, f"{origin}: {e}"]) from None
        self.nodes[name] = node
        return node

    def keep(self, node: Node) -> Node:
        return self.add(node.name, node.op, node.inputs, node.origin)

    def alias(self, name: str, target: str) -> None:
        """Readers of `name` read `target` instead (the node `name` is gone)."""
        self._alias[name] = self._alias.get(target, target)

    def problem(self, node: Node, text: str) -> None:
        """A user problem with `node`, which stays as it was so the walk can go on; the pass
        raises all its problems at the end."""
        self.problems.append(f"{node.origin}: {text}")
        if node.name in self.old and node.name not in self.nodes:
            self.keep(node)

    def graph(self, **changes: Any) -> Graph:
        if self.problems:
            raise ModelError(self.problems)
        outputs = tuple(self._alias.get(o, o) for o in self.old.outputs)
        return replace(self.old, **{"nodes": tuple(self.nodes.values()), "outputs": outputs, **changes})
