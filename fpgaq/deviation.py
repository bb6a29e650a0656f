"""How far a requantised graph (--requantize) is from the float model it approximates."""
from __future__ import annotations

import numpy as np

from . import emulate
from .ir.graph import Graph
from .ir.ops import Requant


def requantizers(graph: Graph) -> list[dict]:
    """Each integer requantisation: its multiplier width and shift, as chosen."""
    out = []
    for n in graph.nodes:
        if isinstance(n.op, Requant) and n.type is not None:
            out.append({"name": n.name, "onnx_node": n.origin.onnx_name, "channels": int(n.op.multiplier.size),
                        "multiplier_bits": int(n.op.multiplier.max()).bit_length(), "shift": n.op.shift,
                        "output": {"signed": n.type.signed, "width": n.type.width, "frac": n.type.frac},
                        "largest_ratio_error": float(np.max(np.abs(
                            np.ldexp(n.op.multiplier.astype(np.float64), -n.op.shift) / n.op.ratio - 1)))})
    return out


def is_requantised(graph: Graph) -> bool:
    return any(n.op.approximates() for n in graph.nodes)


def deviation(graph: Graph, x: np.ndarray) -> dict:
    """Per output, against the float model on inputs x: the largest absolute error, the share
    of outputs that differ, and how often the argmax agrees."""
    got = emulate.run(graph, x)
    ref = emulate.run_reference(graph, x)
    outs = []
    for name, g, r in zip(graph.outputs, got, ref):
        entry = {"output": name, "max_abs_error": float(np.max(np.abs(g - r), initial=0.0)),
                 "share_differ": float(np.mean(g != r)) if g.size else 0.0}
        if g.ndim == 2 and g.shape[1] > 1:
            entry["argmax_agreement"] = float(np.mean(g.argmax(axis=1) == r.argmax(axis=1)))
        outs.append(entry)
    return {"n": int(len(x)), "outputs": outs}


def deviation_text(dev: dict) -> str:
    lines = []
    for o in dev["outputs"]:
        agree = f", argmax agrees on {100 * o['argmax_agreement']:.2f}%" if "argmax_agreement" in o else ""
        lines.append(f"deviation from the float model on {dev['n']} inputs ({o['output']}): largest absolute "
                     f"error {o['max_abs_error']:.6g}, {100 * o['share_differ']:.2f}% of outputs differ{agree}")
    return "\n".join(lines)
