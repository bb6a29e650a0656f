"""io_stream: the plan of a streaming Vitis HLS design, as plain data for the templates.

The layouts, the stages and the FIFO depths are the shared stream plan's (backends/stream_plan.py):
each layer is a DATAFLOW stage that reads a pixel, runs the same kernel as io_parallel on that
pixel's channels, and writes a pixel. This module adds what is HLS's own: ap_fixed types,
io_parallel's kernel contexts a pixel at a time, and the stages' delays.
"""
from __future__ import annotations

import math

from ...config import BuildConfig
from ...ir.cost import BRAM_BITS, LUTRAM_MAX_BITS
from ...ir.fixed import FixedType
from ...ir.graph import Graph, Node
from ...names import comment
from ..stream_plan import MAP_DELAY, MIN_DEPTH, Layout, StreamPlanner
from .context import ap_type, fabric, literal, modes_context, node_context

__all__ = ["Layout", "Planner", "MAP_DELAY", "MIN_DEPTH", "stream_context", "stream_fifos"]


class Planner(StreamPlanner):
    """The stream plan of a Vitis HLS design: ap_fixed types, io_parallel's kernel contexts on
    one pixel's channels, and the HLS stages' delays."""

    backend = "HLS"

    def type_text(self, t: FixedType) -> str:
        return ap_type(t)

    def kernel_plan(self, node: Node, layout: Layout) -> dict:
        """The io_parallel kernel plan of node, for one pixel: its parameters a channel."""
        ctx = node_context(node, self.graph)
        ctx["n"] = layout.channels
        if ctx["kernel"] == "dense":
            ctx["config"]["positions"] = 1
        for key, count in (("multipliers", "n_multipliers"), ("offsets", "n_offsets"), ("thresholds", "n_rows"),
                           ("start", None), ("slopes", "n_slopes"), ("elements", None)):
            if key in ctx and len(ctx[key]) > 1:
                ctx[key] = self._per_channel(node, ctx[key], layout)
                if count:
                    ctx["config"][count] = len(ctx[key])
        self.types[f"t_{node.name}"] = ctx["type"]      # with a quantizer's ap_fixed modes
        return ctx

    def pool_plan(self, node: Node, src: Node, taps: int, out: Layout) -> dict:
        assert node.type is not None and src.type is not None
        return {"name": node.name, "kernel": "max_taps", "n": out.channels, "type": ap_type(node.type),
                "origin": comment(str(node.origin)), "range": str(node.interval),
                "config": {"taps": taps, "wide_t": f"ap_int<{src.type.width + 2}>"}}

    def windows_extra(self, node: Node, src: Node, pad: int) -> dict:
        assert src.type is not None
        return {"pad": literal(pad, "padding code", node),
                "pad_t": f"ap_int<{max(src.type.width, abs(pad).bit_length() + 1) + 1}>"}

    def concat_extra(self, node: Node) -> dict:
        assert node.type is not None
        return {"wide_t": f"ap_int<{node.type.width + 2}>"}


def stream_context(graph: Graph, config: BuildConfig) -> dict:
    """Everything the io_stream templates need, as plain data."""
    plan = Planner(graph, config).plan()
    return {
        "top": config.name, "part": config.part, "clock_ns": config.clock_ns, "io": "io_stream",
        "model": comment(graph.name), **plan,
        "n_in_total": sum(i["n"] for i in plan["inputs"]), "n_out_total": sum(o["n"] for o in plan["outputs"]),
        "fifo_bits": sum(s["depth"] * s["channels"] * s["width"] for s in plan["streams"]),
        "fabric": fabric(graph), **modes_context(),
    }


def stream_fifos(graph: Graph, config: BuildConfig) -> dict:
    """The FIFOs between the stages, their computed depths, and what they cost: LUT RAM (64
    bits a LUT) up to LUTRAM_MAX_BITS, block RAM beyond."""
    plan = Planner(graph, config).plan()
    fifos, lut, bram = [], 0, 0
    for s in plan["streams"]:
        if s["port"]:
            continue
        bits = s["depth"] * s["channels"] * s["width"]
        lut += 0 if bits > LUTRAM_MAX_BITS else math.ceil(bits / 64)
        bram += math.ceil(bits / BRAM_BITS) if bits > LUTRAM_MAX_BITS else 0
        fifos.append({"stream": s["name"], "depth": s["depth"], "channels": s["channels"], "width": s["width"],
                      "bits": bits})
    return {"fifos": fifos, "lut": lut, "bram": bram}
