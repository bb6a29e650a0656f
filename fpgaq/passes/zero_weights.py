"""Zero-weight elimination beyond the per-product skipping every kernel does.

Structured sparsity, between a dense layer (the producer) and the next one (the consumer) that
alone reads it through element-wise ops and order-preserving relabels (Reshape, which ONNX's
Flatten, Squeeze and Unsqueeze import as, and Scale): a convolution is lowered to such a dense
layer (its unrolled matrix) between two Reshapes, so this reaches from one conv layer to the
next and from the last one to the dense head.

- An output neuron whose weights are all zero is a constant (its bias): it is pushed through
  the ops after it (each op's own rule) and folded into the consumer's bias, exactly.
- An input of the consumer that no non-zero weight reads is dropped.

Either way the neuron is gone: no accumulator in the producer, no element in the ops between,
no column in the consumer (and, on the next round, whatever only fed it).

Indices. A Reshape keeps the flat (C-order) element order, so element i of every tensor of the
chain is neuron i of the producer and column i of the consumer; a layer whose input has
positions (leading axes, computed alike: io_stream) is handled where nothing but element-wise
ops lie between (the neuron is the last axis, and a constant must be the same at every
position to fold into a bias shared by the positions).

Shapes, the rule. The elements left of a tensor of shape (C, ...) that a Reshape in the chain
makes keep that shape, (C - k, ...), where whole slices along its first axis (channels) went;
otherwise the Reshape makes the flat vector of the elements left, in their order. Either is a
valid tensor whose element i is still the same value as before the pass; only element-wise
ops read it before the consumer's flattening Reshape, so the passes after this one and both
back-ends (for which a Reshape is a copy) see nothing but smaller layers. Per-element
parameters of the ops between (a quantizer's float step, a per-element quantizer's grids, a
LeakyRelu's slopes, thresholds per channel, a Scale's factor) keep the elements left; an
element-wise op whose parameters this pass does not know leaves the segment whole, as does a
per-element quantizer whose finest grid would go, and a float-model bias (--requantize).

Transpose and other permuting ops, Concat, residual Adds and pools end a chain: a neuron that
only they read stays.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir.fixed import compact_codes
from ..ir.graph import Graph, Node, retype
from ..ir.ops import (Activation, Args, Average, Bipolar, ChannelQuant, Clip, Dense, DivQuant, LeakyRelu, Lut, Op,
                      Quant, Relu, Reshape, Scale, Threshold)
from ..ir.tensor import Factor, Tensor

RELABELS = (Reshape, Scale)                  # element i of the input is element i of the output
ANYWHERE = (Relu, Clip, Bipolar, Average, DivQuant, Activation)   # the same rule at every element


@dataclass(frozen=True)
class Segment:
    """producer (Dense) -> element-wise nodes and relabels -> consumer (Dense), read by nothing else."""
    producer: Node
    chain: tuple[Node, ...]
    consumer: Node

    @property
    def flat(self) -> bool:
        """Both layers without positions: element i of the chain is neuron i and column i."""
        return len(self.producer.shape) == 1 and len(self._consumer_input.shape) == 1

    @property
    def aligned(self) -> bool:
        """Element i is neuron i % n and column i % n: flat, or positions with nothing but
        element-wise ops between (the same shape throughout)."""
        return self.flat or (not any(isinstance(n.op, RELABELS) for n in self.chain)
                             and self.producer.shape == self._consumer_input.shape)

    @property
    def _consumer_input(self) -> Node:
        return self.chain[-1] if self.chain else self.producer


def _passes_through(op: Op) -> bool:
    return op.elementwise or isinstance(op, RELABELS)


def segments(graph: Graph) -> list[Segment]:
    outputs = set(graph.outputs)
    found = []
    for e in graph.nodes:
        if not isinstance(e.op, Dense):
            continue
        chain: list[Node] = []
        n = graph[e.inputs[0]]
        reader = e
        while True:
            if n.name in outputs or graph.consumers(n.name) != (reader,):
                break
            if isinstance(n.op, Dense):
                found.append(Segment(n, tuple(reversed(chain)), e))
                break
            if not _passes_through(n.op):
                break
            chain.append(n)
            reader, n = n, graph[n.inputs[0]]
    return found


def _constants(seg: Segment) -> np.ndarray:
    """Each element of the chain's output were its neuron's weights all zero: the producer's
    bias through every op of the chain (each op's own rule), shaped as the producer's output."""
    d = seg.producer.op
    assert isinstance(d, Dense)
    x = np.broadcast_to(d.bias.astype(object), seg.producer.shape)[None]
    src = seg.producer
    for n in seg.chain:
        x = np.asarray(n.op.emulate([x], Args((src.out,), n.out, False, (True,))), dtype=object)
        src = n
    return x.reshape(seg.producer.shape)


def _drop(seg: Segment) -> np.ndarray:
    """The producer's neurons to remove: constants (where one value at every position) and
    those the consumer does not read; at least one stays."""
    d, e = seg.producer.op, seg.consumer.op
    assert isinstance(d, Dense) and isinstance(e, Dense)
    constant = ~np.any(d.weight != 0, axis=1)
    unused = ~np.any(e.weight != 0, axis=0)
    if np.any(constant & ~unused):
        values = _constants(seg).reshape(-1, len(constant))
        constant &= np.all(values == values[:1], axis=0)
    drop = constant | unused
    if drop.all():
        drop[0] = False                                  # keep one: arrays stay non-empty
    return drop


def _select(values: np.ndarray, keep: np.ndarray, old: tuple[int, ...], new: tuple[int, ...]) -> np.ndarray:
    """The kept elements of per-element values (flat, or broadcast to `old`), shaped `new`."""
    a = np.asarray(values)
    full = a.reshape(old) if a.size == keep.size else np.broadcast_to(a, old)
    return full.ravel()[keep].reshape(new)


def _factor(f: Factor | None, keep: np.ndarray, old: tuple[int, ...], new: tuple[int, ...]) -> Factor | None:
    if f is None or f.uniform:
        return f
    return Factor.of(_select(f.array, keep, old, new))


def _tensor(t: Tensor, keep: np.ndarray, new: tuple[int, ...]) -> Tensor:
    """A tensor description (a threshold's source) of the kept elements."""
    return Tensor(new, t.type, t.interval, None, _factor(t.factor, keep, t.shape, new))


def _per_element(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Rows a flat element (or one row for all): the kept elements' rows."""
    return values if len(values) == 1 else values[keep]


def _restrict(op: Op, keep: np.ndarray, old: tuple[int, ...], new: tuple[int, ...]) -> Op | None:
    """`op` on the kept elements of its input (shape `old` before, `new` after), or None where
    this pass does not know its parameters."""
    if isinstance(op, ANYWHERE):
        return op
    if isinstance(op, Quant):
        return replace(op, step=_factor(op.step, keep, old, new))
    if isinstance(op, Scale):
        return op if op.factor.uniform else replace(op, factor=Factor.of(_select(op.factor.array, keep, old, new)))
    if isinstance(op, Lut):
        return op if op.quant is None or op.quant.step is None or op.quant.step.uniform else None
    if isinstance(op, LeakyRelu):
        return replace(op, slope=_per_element(op.slope, keep))
    if isinstance(op, ChannelQuant):
        fracs = op.fracs[keep]
        if int(fracs.max()) != op.type.frac:
            return None                       # the common grid would change: the consumer's bias with it
        return ChannelQuant(op.type, op.rounding, fracs, op.lo[keep], op.hi[keep])
    if isinstance(op, Threshold):
        model = _restrict(op.model, keep, old, new)
        if model is None:
            return None
        return replace(op, thresholds=_per_element(op.thresholds, keep), start=_per_element(op.start, keep),
                       model=model, source=_tensor(op.source, keep, new))
    return None


def _reshaped(shape: tuple[int, ...], keep: np.ndarray) -> tuple[int, ...]:
    """The shape a Reshape to `shape` makes of the kept elements: whole slices along the first
    axis gone, the same shape with fewer of them; else the flat vector."""
    if len(shape) >= 2:
        slices = keep.reshape(shape[0], -1)
        if np.all(slices == slices[:, :1]):
            return (int(slices[:, 0].sum()),) + shape[1:]
    return (int(keep.sum()),)


def _chain_ops(seg: Segment, keep: np.ndarray) -> dict[str, Op] | None:
    """The chain's ops on the kept elements (`keep`: a flag an element), or None."""
    old: tuple[int, ...] = seg.producer.shape
    new = old[:-1] + (int(keep.sum()) // max(1, int(np.prod(old[:-1], dtype=np.int64))),)
    ops: dict[str, Op] = {}
    for n in seg.chain:
        if isinstance(n.op, Reshape):
            old, new = n.op.shape, _reshaped(n.op.shape, keep)
            ops[n.name] = Reshape(new)
            continue
        op = _restrict(n.op, keep, old, new)
        if op is None:
            return None
        ops[n.name] = op
    return ops


def _shrink(graph: Graph, seg: Segment) -> Graph | None:
    d, e = seg.producer.op, seg.consumer.op
    assert isinstance(d, Dense) and isinstance(e, Dense)
    if d.bias_exact is not None or e.bias_exact is not None or not seg.aligned:
        return None   # a float-model bias rides along (--requantize), or indices do not line up
    drop = _drop(seg)
    if not drop.any():
        return None
    keep = ~drop
    elements = np.broadcast_to(keep, seg.producer.shape).ravel()
    ops = _chain_ops(seg, elements)
    if ops is None:
        return None
    bias = e.bias.astype(object).copy()
    unused = ~np.any(e.weight != 0, axis=0)
    if np.any(drop & ~unused):
        constant = _constants(seg).reshape(-1, len(keep))[0]
        for o in np.flatnonzero(drop & ~unused):
            bias = bias + e.weight[:, o].astype(object) * constant[o]
    factor = d.factor
    if factor is not None and not factor.uniform:     # a float scale per neuron: the kept ones'
        factor = Factor.of(np.broadcast_to(factor.array, keep.shape)[keep])
    ops[seg.producer.name] = replace(d, weight=compact_codes(d.weight[keep]), bias=compact_codes(d.bias[keep]),
                                     factor=factor)
    ops[seg.consumer.name] = replace(e, weight=compact_codes(e.weight[:, keep]), bias=compact_codes(bias))
    return retype(graph.replace_nodes(replace(n, op=ops[n.name]) if n.name in ops else n for n in graph.nodes))


@dataclass(frozen=True)
class EliminateZeroWeights:
    name: str = "eliminate_zero_weights"

    def run(self, graph: Graph) -> Graph:
        while True:
            for seg in segments(graph):
                smaller = _shrink(graph, seg)
                if smaller is not None:
                    graph = smaller
                    break
            else:
                return graph
