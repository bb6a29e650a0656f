"""Zero-weight elimination beyond the per-product skipping every kernel does.

Structured sparsity, between a dense layer (the producer) and the next one (the consumer) that
alone reads it through a chain of ops that move, copy or map its outputs one by one:
element-wise ops (quantizers, activations, thresholds, requantisers), relabels (Reshape, which
ONNX's Flatten, Squeeze and Unsqueeze import as; Scale), Transpose, and the per-channel window
ops of a streamed convolution (MaxPool, Windows). A convolution is lowered to such a dense layer
(io_parallel: its unrolled matrix between two Reshapes; io_stream: its kernel's matrix over the
positions of a Windows, channels last, then Transpose and Reshape back to channels first), so
this reaches from one conv layer to the next and from the last one to the dense head.

The unit removed is a channel: an output neuron of the producer, which is every element of its
output's last axis at every position (a streamed conv's output channel; io_parallel: one
element). Which channel each element of every tensor of the chain holds is found by pushing the
producer's channel index through the chain (its `channel map`); a column of the consumer must
read one channel at every position (a Windows' feature t*C + c reads channel c at every tap t;
a Flatten's c*P + p reads channel c; a tap on the padding reads no channel), else the segment is
left alone.

- A channel whose weights are all zero is a constant (its bias): pushed through the ops of the
  chain (each op's own rule; the padding of a Windows reads its pad code), it gives each of the
  consumer's columns a value at each position. Where every column of the channel that a
  non-zero weight reads has one value at every position, the channel is folded into the
  consumer's bias exactly (weight * value, a sum over a Flatten's positions, since each is a
  column of its own). A padded window is where it can fail: the constant reaches the interior
  taps and the pad code the border ones, so a constant read through padding is folded only when
  the chain maps it to the pad code (0); otherwise it stays.
- A channel that no non-zero weight of the consumer reads (at any tap, any position) is dropped.

Either way the channel is gone: no accumulator (a row, its bias, its float factor) in the
producer, no elements in the ops between, no columns in the consumer (every tap's), and, on the
next round, whatever only fed it. At least one channel stays, so no tensor is empty. Groups
need no rule of their own: a depthwise consumer's columns t*C + c have non-zero weights in its
output channel c alone, so where that channel's weights are all zero its input channel c is
unread here, and the output channel itself a constant of the next segment.

Shapes. A tensor of the chain whose map holds the channel along one axis (positions x channels
after the producer, channels x positions after the Transpose, (C, *spatial) for the image, the
pooled image) keeps its shape with fewer along that axis; the Transpose permutes its input's,
MaxPool and Windows compute theirs from their (channels-first) input: Windows sees C - k
channels, its output (positions, taps * (C - k)). A Reshape whose output has no channel axis
(io_parallel, a channel an element) makes of the elements left a tensor of its shape with whole
slices along its first axis gone, or else their flat vector, which only element-wise ops read
before the consumer's flattening Reshape; a Transpose, MaxPool or Windows that would read such a
tensor leaves the segment whole. Every tensor's element i is still the same value as before
the pass, so the passes after this one and both back-ends see nothing but smaller layers.

Per-element parameters of the ops between (a quantizer's float step, a per-element quantizer's
grids, a LeakyRelu's slopes, thresholds and requantiser multipliers a row an element, a Scale's
factor) keep the elements left; an op whose parameters this pass does not know leaves the
segment whole, as does a per-element quantizer whose finest grid would go, and a float-model
bias (--requantize). Concat, residual Adds and averaging pools end a chain: a channel that only
they read stays.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir.fixed import compact_codes
from ..ir.graph import Graph, Node, retype
from ..ir.ops import (Activation, Args, Average, Bipolar, ChannelQuant, Clip, Dense, DivQuant, LeakyRelu, Lut,
                      MaxPool, Op, Quant, Relu, Requant, Reshape, Scale, Threshold, Transpose, Windows)
from ..ir.tensor import Factor, Tensor

MOVES = (Reshape, Scale, Transpose, Requant)  # element for element (beside the element-wise ops)
GATHERS = (MaxPool, Windows)                  # per channel, over a channels-first image
ANYWHERE = (Relu, Clip, Bipolar, Average, DivQuant, Activation)   # the same rule at every element


@dataclass(frozen=True)
class Segment:
    """producer (Dense) -> nodes that pass channels through -> consumer (Dense), read by nothing
    else."""
    producer: Node
    chain: tuple[Node, ...]
    consumer: Node

    @property
    def channels(self) -> int:
        return int(self.producer.shape[-1])

    @property
    def reads(self) -> Node:
        """The node the consumer reads."""
        return self.chain[-1] if self.chain else self.producer


def _passes_through(op: Op) -> bool:
    return op.elementwise or isinstance(op, MOVES + GATHERS)


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


# --- which channel every element holds -----------------------------------------------------------

def _along(channels: int, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The channel map of a tensor of `shape` holding the channels along `axis`."""
    index = [1] * len(shape)
    index[axis] = channels
    return np.broadcast_to(np.arange(channels).reshape(index), shape)


def channel_axis(m: np.ndarray, channels: int) -> int | None:
    """The axis along which the map `m` holds the channels (and only they vary), or None."""
    for k, n in enumerate(m.shape):
        if n == channels and np.array_equal(m, _along(channels, m.shape, k)):
            return k
    return None


def _gathered(node: Node, m: np.ndarray, channels: int) -> np.ndarray | None:
    """The channel map of a MaxPool's or a Windows' output, from its input's (channels first),
    or None where the input does not hold whole channels along its first axis."""
    if channel_axis(m, channels) != 0:
        return None
    if isinstance(node.op, MaxPool):
        return _along(channels, node.shape, 0)
    taps = node.shape[1] // channels                   # feature t * C + c reads channel c
    return np.broadcast_to(np.tile(np.arange(channels), taps), node.shape)


def channel_maps(seg: Segment) -> dict[str, np.ndarray] | None:
    """For the producer and each node of the chain: the channel each element of its output
    holds; None where a window op would read something other than a channels-first image."""
    m = _along(seg.channels, seg.producer.shape, len(seg.producer.shape) - 1)
    maps = {seg.producer.name: m}
    for n in seg.chain:
        if isinstance(n.op, Reshape):
            m = m.reshape(n.shape)
        elif isinstance(n.op, Transpose):
            m = m.transpose(n.op.perm)
        elif isinstance(n.op, GATHERS):
            g = _gathered(n, m, seg.channels)
            if g is None:
                return None
            m = g
        maps[n.name] = m
    return maps


def columns(seg: Segment, maps: dict[str, np.ndarray]) -> np.ndarray | None:
    """The channel each column of the consumer reads (the same at every position), or None."""
    rows = maps[seg.reads.name].reshape(-1, seg.reads.shape[-1])
    return rows[0] if np.all(rows == rows[:1]) else None


# --- which channels go ----------------------------------------------------------------------------

def _constants(seg: Segment) -> np.ndarray:
    """The consumer's input, (positions, columns), were every channel its bias: the producer's
    bias through every op of the chain (each op's own rule; padding reads the pad code)."""
    d = seg.producer.op
    assert isinstance(d, Dense)
    x = np.broadcast_to(d.bias.astype(object), seg.producer.shape)[None]
    src = seg.producer
    for n in seg.chain:
        x = np.asarray(n.op.emulate([x], Args((src.out,), n.out, False, (True,))), dtype=object)
        src = n
    return x.reshape(-1, seg.reads.shape[-1])


@dataclass(frozen=True)
class Plan:
    """What a segment keeps: `keep` a flag a channel; `bias` the consumer's, the dropped
    constant channels folded in."""
    keep: np.ndarray
    bias: np.ndarray


def plan(seg: Segment, column: np.ndarray) -> Plan | None:
    """The channels to remove: constants whose every read column has one value at every
    position (folded into the consumer's bias), and those no non-zero weight reads; at least one
    stays. None where nothing goes."""
    d, e = seg.producer.op, seg.consumer.op
    assert isinstance(d, Dense) and isinstance(e, Dense)
    read = np.any(e.weight != 0, axis=0)                     # a flag a column
    unused = np.ones(seg.channels, dtype=bool)
    unused[column[read]] = False
    constant = ~np.any(d.weight != 0, axis=1)
    values = _constants(seg) if np.any(constant & ~unused) else None
    if values is not None:
        uniform = np.all(values == values[:1], axis=0)      # a column: one value at every position
        constant[column[read & ~uniform]] = False
    drop = constant | unused
    if drop.all():
        drop[0] = False                                  # keep one: arrays stay non-empty
    if not drop.any():
        return None
    bias = e.bias.astype(object).copy()
    for j in np.flatnonzero(read & drop[column]):
        assert values is not None
        bias = bias + e.weight[:, j].astype(object) * values[0, j]
    return Plan(~drop, bias)


# --- the ops on what is left ---------------------------------------------------------------------

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
    """`op` on the kept elements of its input (`keep`: a flag an element, flat; shape `old`
    before, `new` after), or None where this pass does not know its parameters."""
    if isinstance(op, ANYWHERE + (Transpose,) + GATHERS):
        return op
    if isinstance(op, Quant):
        return replace(op, step=_factor(op.step, keep, old, new))
    if isinstance(op, Scale):
        return op if op.factor.uniform else replace(op, factor=Factor.of(_select(op.factor.array, keep, old, new)))
    if isinstance(op, Lut):
        return op if op.quant is None or op.quant.step is None or op.quant.step.uniform else None
    if isinstance(op, LeakyRelu):
        return replace(op, slope=_per_element(op.slope, keep))
    if isinstance(op, Requant):
        offset = None if op.offset is None else _per_element(op.offset, keep)
        return replace(op, multiplier=_per_element(op.multiplier, keep), ratio=_per_element(op.ratio, keep),
                       offset=offset)
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
    """The shape a Reshape to `shape` makes of the kept elements where no axis holds the
    channels: whole slices along the first axis gone, the same shape with fewer of them; else
    the flat vector."""
    if len(shape) >= 2:
        slices = keep.reshape(shape[0], -1)
        if np.all(slices == slices[:, :1]):
            return (int(slices[:, 0].sum()),) + shape[1:]
    return (int(keep.sum()),)


def _new_shape(n: Node, m: np.ndarray, before: tuple[int, ...], keep: np.ndarray,
               channels: int) -> tuple[int, ...] | None:
    """The shape of node n's output on the kept channels (`before`: its input's), or None
    where the op cannot take its input's new shape."""
    left = int(keep.sum())
    k = channel_axis(m, channels)
    if k is not None:
        return n.shape[:k] + (left,) + n.shape[k + 1:]
    if isinstance(n.op, Reshape):
        return _reshaped(n.shape, keep[m].ravel())
    if isinstance(n.op, Transpose):
        return tuple(before[p] for p in n.op.perm) if len(before) == len(n.op.perm) else None
    if isinstance(n.op, Windows):
        return (n.shape[0], n.op.taps * left)
    return before                                        # element for element


def _chain_ops(seg: Segment, maps: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, Op] | None:
    """The chain's ops on the kept channels, or None."""
    src = seg.producer
    before = src.shape[:-1] + (int(keep.sum()),)
    ops: dict[str, Op] = {}
    for n in seg.chain:
        new = _new_shape(n, maps[n.name], before, keep, seg.channels)
        if new is None:
            return None
        op = Reshape(new) if isinstance(n.op, Reshape) else _restrict(n.op, keep[maps[src.name]].ravel(),
                                                                        src.shape, before)
        if op is None:
            return None
        ops[n.name] = op
        src, before = n, new
    return ops


def _producer(d: Dense, keep: np.ndarray) -> Dense:
    """The producer's kept rows, their bias and float factors."""
    factor = d.factor
    if factor is not None and not factor.uniform and factor.shape[-1:] == keep.shape:
        factor = Factor.of(factor.array[..., keep])          # a float scale a neuron: the kept ones'
    return replace(d, weight=compact_codes(d.weight[keep]), bias=compact_codes(d.bias[keep]), factor=factor)


def _shrink(graph: Graph, seg: Segment) -> Graph | None:
    d, e = seg.producer.op, seg.consumer.op
    assert isinstance(d, Dense) and isinstance(e, Dense)
    if d.bias_exact is not None or e.bias_exact is not None:
        return None   # a float-model bias rides along (--requantize)
    maps = channel_maps(seg)
    column = None if maps is None else columns(seg, maps)
    if maps is None or column is None:
        return None
    p = plan(seg, column)
    if p is None:
        return None
    ops = _chain_ops(seg, maps, p.keep)
    if ops is None:
        return None
    ops[seg.producer.name] = _producer(d, p.keep)
    ops[seg.consumer.name] = replace(e, weight=compact_codes(e.weight[:, p.keep[column]]), bias=compact_codes(p.bias))
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
