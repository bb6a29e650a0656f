"""The IR graph: an immutable, topologically ordered tuple of nodes, each one op with any
number of inputs and one output tensor."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .fixed import FixedType
from .interval import Interval
from .ops import Args, Input, Op
from .ops.base import as_codes, code_bits
from .tensor import Factor, Tensor


@dataclass(frozen=True)
class Origin:
    """Where a node came from, for messages: the ONNX node's name and op type."""
    onnx_name: str
    onnx_op: str
    output: str = ""                 # the tensor it writes, to find an unnamed node

    def __str__(self) -> str:
        if self.onnx_name.startswith("#"):  # the importer numbers unnamed nodes
            writes = f" (writes '{self.output}')" if self.output else ""
            return f"unnamed {self.onnx_op} node {self.onnx_name}{writes}"
        return f"node '{self.onnx_name}' ({self.onnx_op})"


@dataclass(frozen=True)
class Node:
    name: str                       # unique identifier in the IR (a C/Verilog-safe identifier)
    op: Op
    inputs: tuple[str, ...]
    out: Tensor
    origin: Origin

    @property
    def type(self) -> FixedType | None:
        return self.out.type

    @property
    def interval(self) -> Interval | None:
        return self.out.interval

    @property
    def shape(self) -> tuple[int, ...]:
        return self.out.shape

    @property
    def size(self) -> int:
        return self.out.size


@dataclass(frozen=True)
class Graph:
    nodes: tuple[Node, ...]
    outputs: tuple[str, ...]
    name: str = "model"
    # per output: None, or float factors the host applies to its real values (a float scale
    # after the firmware's last quantizer, --requantize): real = code * 2**-frac * factor
    output_scales: tuple[Factor | None, ...] = ()
    output_names: tuple[str, ...] = ()    # the ONNX names of the outputs, for messages
    quantized_outputs: tuple[int, ...] = ()   # outputs whose quantizer fpgaq chose (a float tail)
    skipped: tuple[str, ...] = ()             # ONNX nodes dropped by choice (softmax: skip)
    _index: dict[str, Node] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {n.name: n for n in self.nodes})

    def __getitem__(self, name: str) -> Node:
        return self._index[name]

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def output_scale(self, i: int) -> Factor | None:
        return self.output_scales[i] if i < len(self.output_scales) else None

    @property
    def inputs(self) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if isinstance(n.op, Input))

    @property
    def host(self) -> frozenset[str]:
        """What the host computes: the model inputs, and the real-valued pre-processing between
        them and the first quantizers (with the constants only it reads). The firmware starts at
        the quantizers that read them."""
        host: set[str] = set()
        for n in self.nodes:
            if isinstance(n.op, Input) or (n.out.type is None and n.out.value is None
                                           and any(i in host for i in n.inputs)):
                host.add(n.name)
        readers = {i for n in self.nodes if n.name not in host for i in n.inputs}
        return frozenset(host | {n.name for n in self.nodes if not n.inputs and n.out.value is not None
                                 and n.name not in readers})

    @property
    def preprocessing(self) -> tuple[Node, ...]:
        """The host's operations on the model inputs, in order (outside the firmware)."""
        host = self.host
        return tuple(n for n in self.nodes if n.name in host and n.inputs)

    def input_quantizer(self, inp: Node) -> Node:
        """The quantizer that reads a model input (through its pre-processing): where the
        firmware starts."""
        host = self.host
        reach, found = {inp.name}, []
        for n in self.nodes:
            if any(i in reach for i in n.inputs):
                if n.name in host:
                    reach.add(n.name)
                else:
                    found.append(n)
        (q,) = found
        return q

    @property
    def firmware_inputs(self) -> tuple[Node, ...]:
        """The input quantizers, one a model input: the firmware receives their codes."""
        return tuple(self.input_quantizer(i) for i in self.inputs)

    def consumers(self, name: str) -> tuple[Node, ...]:
        return tuple(n for n in self.nodes if name in n.inputs)

    def sources(self, node: Node) -> tuple[Node, ...]:
        return tuple(self[i] for i in node.inputs)

    def replace_nodes(self, nodes: Iterable[Node], outputs: Sequence[str] | None = None) -> Graph:
        return replace(self, nodes=tuple(nodes), outputs=tuple(self.outputs if outputs is None else outputs))

    def real_outputs(self, i: int, codes: np.ndarray) -> np.ndarray:
        """Real values of output i from its codes (int64, object or float64 integers)."""
        out = self[self.outputs[i]].out.real_values(codes)
        scale = self.output_scale(i)
        return out if scale is None else out * scale.array


def infer(op: Op, inputs: Sequence[Tensor]) -> Tensor:
    """The output tensor of `op` on `inputs`: the op's rule, and the value itself when every
    input is a constant (constant propagation, so that e.g. a layer sees its quantized weights)."""
    out = op.infer(inputs)
    if inputs and all(x.value is not None for x in inputs):
        a = Args(tuple(inputs), out, floats=False, batched=(False,) * len(inputs))
        value = np.asarray(op.emulate([x.value for x in inputs], a))   # type: ignore[misc]
        if out.type is not None:
            value = as_codes(value, code_bits(out))
        out = replace(out, value=value)
    return out


def make_node(name: str, op: Op, inputs: Sequence[Node], origin: Origin) -> Node:
    """A node with its output tensor derived from its inputs."""
    return Node(name, op, tuple(n.name for n in inputs), infer(op, [n.out for n in inputs]), origin)


def retype(graph: Graph) -> Graph:
    """Recompute every node's tensor from its inputs, in order (after a pass changed ops)."""
    done: dict[str, Node] = {}
    for n in graph.nodes:
        done[n.name] = make_node(n.name, n.op, [done[i] for i in n.inputs], n.origin)
    return graph.replace_nodes(done.values())


def verify(graph: Graph, verified: Graph | None = None) -> None:
    """Internal invariants: names unique, inputs defined before use, tensors as the ops derive.
    A node that `verified` (a graph this function passed before) holds too, as the same object
    reading the same objects, keeps its tensor: nodes are immutable, so it is not derived
    again (a pass changes a few nodes and keeps the rest)."""
    before = {n.name: n for n in verified.nodes} if verified is not None else {}
    seen: dict[str, Node] = {}
    for n in graph.nodes:
        assert n.name not in seen, f"duplicate node name {n.name}"
        assert n.name.isidentifier(), f"node name {n.name!r} is not an identifier"
        for i in n.inputs:
            assert i in seen, f"{n.name} reads {i}, which is not defined before it"
        if before.get(n.name) is not n or any(seen[i] is not before.get(i) for i in n.inputs):
            expect = infer(n.op, [seen[i].out for i in n.inputs])
            assert expect == n.out, f"{n.name}: stored tensor {n.out} but its inputs give {expect}"
        if n.type is not None and n.interval is not None:
            assert n.type.interval.contains(n.interval), f"{n.name}: {n.interval} overflows {n.type}"
        seen[n.name] = n
    for o in graph.outputs:
        assert o in seen, f"output {o} is not a node"

