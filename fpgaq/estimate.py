"""Latency and resources of the generated firmware, per layer and in total: the sum of what
each op says it costs (`Op.cost`, with the one model of fpgaq.ir.cost)."""
from __future__ import annotations

import math

from .config import BuildConfig
from .ir.graph import Graph, Node
from .ir.cost import Cost
from .ir.ops import Dense, MaxPool, Windows

TOTALS = ("weights", "nonzero", "multipliers", "dsp", "lut", "ff", "bram")


def _pixels(node: Node, config: BuildConfig) -> int:
    """io_stream: the pixels an element-wise or pooling stage computes one after another with one
    pixel's hardware (its image's positions, channels first); 1 where the op counts that itself."""
    if config.io != "io_stream" or isinstance(node.op, (Dense, Windows)) or len(node.shape) < 2:
        return 1
    return math.prod(node.shape[1:])


def _pool_buffer(graph: Graph, node: Node, config: BuildConfig) -> Cost | None:
    """io_stream: a max pool's line buffer (its windows), priced as a convolution's."""
    if config.io != "io_stream" or not isinstance(node.op, MaxPool):
        return None
    op = node.op
    win = Windows(op.kernel, op.strides, op.pads, op.dilations)
    return win.cost([graph[node.inputs[0]].out], node.out, config.clock_ns)


def estimate(graph: Graph, config: BuildConfig) -> dict:
    """Per-layer and total estimates as plain data (the JSON of `fpgaq report --json`). A
    layer is an op whose cost has a report row; the others fold into the layers' output stages."""
    layers, extra_lut = [], 0
    for node in graph.nodes:
        buffer = _pool_buffer(graph, node, config)
        if buffer is not None and buffer.layer is not None:
            layers.append({"name": f"{node.name}_windows", "onnx_node": node.origin.onnx_name, **buffer.layer,
                           "latency_cycles": buffer.latency_cycles, "ii": buffer.ii, "dsp": 0,
                           "lut": buffer.lut, "ff": buffer.ff, "bram": buffer.bram})
        cost = node.op.cost([graph[i].out for i in node.inputs], node.out, config.clock_ns)
        if cost.layer is None:
            extra_lut += math.ceil(cost.lut / _pixels(node, config))
            continue
        layers.append({"name": node.name, "onnx_node": node.origin.onnx_name, **cost.layer,
                       "latency_cycles": cost.latency_cycles, "ii": cost.ii, "dsp": cost.dsp,
                       "lut": cost.lut, "ff": cost.ff, "bram": cost.bram})
    total = {k: sum(e[k] for e in layers) for k in TOTALS}
    total["lut"] += extra_lut
    total["ii"] = max((e["ii"] for e in layers), default=1)
    # io_parallel: the layers' pipelines in a row. io_stream: a frame's first pixel passes every
    # stage's delay (a line buffer's fill included), then the slowest stage takes its whole frame
    total["latency_cycles"] = sum(e["latency_cycles"] for e in layers) + (
        total["ii"] if config.io == "io_stream" else 0)
    total["latency_ns"] = round(total["latency_cycles"] * config.clock_ns, 3)
    total["accumulator_bits"] = sum(e["accumulator_bits"] for e in layers)
    return {"clock_ns": config.clock_ns, "part": config.part, "io": config.io, "layers": layers, "total": total}
