"""The IR as text: a line a node, with fixed-point types, shapes, ranges and sparsity."""
from __future__ import annotations

import numpy as np

from .graph import Graph, Node
from .ops import Bipolar, Clip, Dense, Input, Quant, Relu, Requant


def _op_text(node: Node) -> str:
    op = node.op
    if isinstance(op, Input):
        return "input"
    if isinstance(op, Quant):
        scale = f" scale {op.input_scale:.9g}" if op.input_scale is not None else ""
        return f"quant {op.rounding.value} sat[{op.lo}, {op.hi}]{scale}"
    if isinstance(op, Requant):
        bits = int(op.multiplier.max()).bit_length()
        return (f"requant x{'[' + str(op.multiplier.size) + ']' if op.multiplier.size > 1 else ''} "
                f"{bits}-bit multiplier >> {op.shift} {op.rounding.value} sat[{op.lo}, {op.hi}]")
    if isinstance(op, Dense):
        nz = int(np.count_nonzero(op.weight))
        total = op.weight.size
        was = f" (model: {op.model_weights})" if op.model_weights != total else ""
        reuse = f" reuse {op.reuse}" if op.reuse != 1 else ""
        return (f"dense {op.weight.shape[1]}->{op.weight.shape[0]} nonzero {nz}/{total}{was} "
                f"({100 * (1 - nz / total):.1f}% sparse) w_frac {op.weight_frac}{reuse}")
    if isinstance(op, Relu):
        return "relu"
    if isinstance(op, Clip):
        return f"clip [{op.lo}, {op.hi}]"
    if isinstance(op, Bipolar):
        return f"bipolar frac {op.frac}"
    return type(op).__name__.lower()


def dump_text(graph: Graph) -> str:
    rows = []
    for n in graph.nodes:
        args = ", ".join(n.inputs)
        ty = str(n.type) if n.type is not None else "float"
        iv = f" codes {n.interval}" if n.interval is not None else ""
        rows.append(f"{n.name} = {_op_text(n)}({args}) : {ty}[{n.features}]{iv}  # {n.origin}")
    rows.append("outputs: " + ", ".join(graph.outputs))
    return "\n".join(rows) + "\n"
