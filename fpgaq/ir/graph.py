"""The IR graph: an immutable, topologically ordered tuple of single-output nodes."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .fixed import FixedType
from .interval import Interval
from .ops import Dense, Input, Op, Requant, Typed, infer


@dataclass(frozen=True)
class Origin:
    """Where a node came from, for messages: the ONNX node's name and op type."""
    onnx_name: str
    onnx_op: str
    output: str = ""                 # the tensor it writes, to find an unnamed node

    def __str__(self):
        if self.onnx_name.startswith("#"):  # the importer numbers unnamed nodes
            writes = f" (writes '{self.output}')" if self.output else ""
            return f"unnamed {self.onnx_op} node {self.onnx_name}{writes}"
        return f"node '{self.onnx_name}' ({self.onnx_op})"


@dataclass(frozen=True)
class Node:
    name: str                       # unique identifier in the IR (a C/Verilog-safe identifier)
    op: Op
    inputs: tuple[str, ...]
    features: int                   # the tensor is (batch, features)
    typed: Typed
    origin: Origin

    @property
    def type(self) -> FixedType | None:
        return self.typed.type

    @property
    def interval(self) -> Interval | None:
        return self.typed.interval


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    name: str = "model"
    # per output: None, or per-channel float factors (float scales under --requantize): the
    # real value is code * 2**-frac * factor
    output_scales: tuple = ()

    def output_scale(self, i: int):
        return self.output_scales[i] if i < len(self.output_scales) else None

    def __post_init__(self):
        object.__setattr__(self, "_index", {n.name: n for n in self.nodes})

    def __getitem__(self, name: str) -> Node:
        return self._index[name]

    @property
    def inputs(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if isinstance(n.op, Input))

    def consumers(self, name: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if name in n.inputs)

    def replace_nodes(self, nodes, outputs=None) -> Graph:
        return replace(self, nodes=tuple(nodes), outputs=tuple(outputs or self.outputs))


def make_node(name: str, op: Op, inputs: tuple[Node, ...], origin: Origin, features: int | None = None) -> Node:
    """A node with its type and interval derived from its inputs."""
    if features is None:
        features = op.weight.shape[0] if isinstance(op, Dense) else inputs[0].features
    typed = infer(op, [n.typed for n in inputs])
    return Node(name, op, tuple(n.name for n in inputs), features, typed, origin)


def retype(graph: Graph) -> Graph:
    """Recompute every node's type from its inputs, in order (after a pass changed ops)."""
    done: dict[str, Node] = {}
    for n in graph.nodes:
        done[n.name] = make_node(n.name, n.op, tuple(done[i] for i in n.inputs), n.origin, n.features)
    return graph.replace_nodes(done.values())


def verify(graph: Graph) -> None:
    """Internal invariants: names unique, inputs defined before use, types and shapes consistent."""
    seen: dict[str, Node] = {}
    for n in graph.nodes:
        assert n.name not in seen, f"duplicate node name {n.name}"
        assert n.name.isidentifier(), f"node name {n.name!r} is not an identifier"
        for i in n.inputs:
            assert i in seen, f"{n.name} reads {i}, which is not defined before it"
        ins = [seen[i] for i in n.inputs]
        if isinstance(n.op, Dense):
            assert n.op.weight.shape == (n.features, ins[0].features), f"{n.name}: weight shape"
        elif ins:
            assert n.features == ins[0].features, f"{n.name}: shape changes"
        if isinstance(n.op, Requant):
            assert n.op.multiplier.size in (1, n.features), f"{n.name}: multipliers"
        expect = infer(n.op, [x.typed for x in ins])
        assert expect == n.typed, f"{n.name}: stored type {n.typed} but inputs give {expect}"
        if n.type is not None:
            assert n.type.interval.contains(n.interval), f"{n.name}: {n.interval} overflows {n.type}"
        seen[n.name] = n
    for o in graph.outputs:
        assert o in seen, f"output {o} is not a node"
        assert seen[o].type is not None, f"output {o} is not quantized"


def sparsity(node: Node) -> float:
    if not isinstance(node.op, Dense):
        return 0.0
    w = node.op.weight
    return 1.0 - np.count_nonzero(w) / w.size
