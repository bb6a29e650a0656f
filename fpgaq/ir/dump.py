"""The IR as text: a line a node, with its op, inputs, output tensor and ONNX origin."""
from __future__ import annotations

from .graph import Graph


def dump_text(graph: Graph) -> str:
    rows = []
    for n in graph.nodes:
        const = " const" if n.out.value is not None and n.inputs else ""
        rows.append(f"{n.name} = {n.op.describe()}({', '.join(n.inputs)}) : {n.out}{const}  # {n.origin}")
    scales = [f"{o} {s}" for o, s in zip(graph.outputs, graph.output_scales) if s is not None]
    rows.append("outputs: " + ", ".join(graph.outputs) + (f" (host scales: {'; '.join(scales)})" if scales else ""))
    return "\n".join(rows) + "\n"
