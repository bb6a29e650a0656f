"""Zero-weight elimination beyond the per-product skipping every kernel does.

Structured sparsity: an output neuron whose weights are all zero is a constant (its bias); it
is pushed through the element-wise ops after it and folded into the bias of the next layer.
An input channel that no non-zero weight reads is dropped, with whatever only fed it.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir.fixed import compact_codes
from ..ir.graph import Graph, Node, retype
from ..ir.ops import Args, Dense
from ..ir.tensor import Factor



@dataclass(frozen=True)
class Segment:
    """producer (Dense) -> element-wise nodes -> consumer (Dense), read by nothing else."""
    producer: Node
    chain: tuple[Node, ...]
    consumer: Node


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
            if not n.op.elementwise:
                break
            chain.append(n)
            reader, n = n, graph[n.inputs[0]]
    return found


def _constant_through(seg: Segment, code: int) -> int:
    """The code a constant neuron has after the element-wise chain (each op's own rule)."""
    x = compact_codes([[code]]).astype(object)
    src = seg.producer
    for n in seg.chain:
        x = np.asarray(n.op.emulate([x], Args((src.out,), n.out, False, (True,))), dtype=object)
        src = n
    return int(x[0, 0])


def _shrink(graph: Graph, seg: Segment) -> Graph | None:
    d, e = seg.producer.op, seg.consumer.op
    assert isinstance(d, Dense) and isinstance(e, Dense)
    if d.bias_exact is not None or e.bias_exact is not None:
        return None   # a float-model bias rides along (--requantize): leave the layer whole
    constant = ~np.any(d.weight != 0, axis=1)          # neurons with no non-zero weight
    unused = ~np.any(e.weight != 0, axis=0)             # channels no non-zero weight reads
    drop = constant | unused
    if drop.all():
        drop[0] = False                                  # keep one channel: arrays stay non-empty
    if not drop.any():
        return None
    keep = ~drop
    bias = e.bias.astype(object).copy()
    for o in np.flatnonzero(drop & ~unused):
        c = _constant_through(seg, int(d.bias[o]))
        bias = bias + e.weight[:, o].astype(object) * c
    factor = d.factor
    if factor is not None and not factor.uniform:     # a float scale per neuron: the kept ones'
        factor = Factor.of(np.broadcast_to(factor.array, keep.shape)[keep])
    new_d = replace(d, weight=compact_codes(d.weight[keep]), bias=compact_codes(d.bias[keep]), factor=factor)
    new_e = replace(e, weight=compact_codes(e.weight[:, keep]), bias=compact_codes(bias))
    changed = {seg.producer.name: replace(seg.producer, op=new_d), seg.consumer.name: replace(seg.consumer, op=new_e)}
    return retype(graph.replace_nodes(changed.get(n.name, n) for n in graph.nodes))


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
