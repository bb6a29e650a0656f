"""How far a requantised graph (--requantize) is from the float model it approximates."""
from __future__ import annotations

import numpy as np

from . import emulate
from .ir.graph import Graph
from .ir.ops import Argmax, Lut, Requant, SoftmaxTable, Threshold


def requantizers(graph: Graph) -> list[dict]:
    """Each quantizer of a float-scaled value and the lowering it got: an integer multiplier
    (its width and shift, as chosen) or thresholds (exact)."""
    out = []
    model_outputs = {graph.outputs[i] for i in graph.quantized_outputs}
    for n in graph.nodes:
        if not isinstance(n.op, (Requant, Threshold)) or n.type is None:
            continue
        entry = {"name": n.name, "onnx_node": n.origin.onnx_name, "fpgaq_output": n.name in model_outputs,
                 "output": {"signed": n.type.signed, "width": n.type.width, "frac": n.type.frac}}
        if isinstance(n.op, Requant):
            entry.update(lowering="multiplier", channels=int(n.op.multiplier.size),
                         multiplier_bits=int(n.op.multiplier.max()).bit_length(), shift=n.op.shift,
                         offset=n.op.offset is not None,
                         largest_ratio_error=float(np.max(np.abs(
                             np.ldexp(n.op.multiplier.astype(np.float64), -n.op.shift) / n.op.ratio - 1))))
        else:
            entry.update(lowering="thresholds", channels=int(n.op.start.size),
                         thresholds=int(n.op.thresholds.shape[1]))
        out.append(entry)
    return out


def tables(graph: Graph) -> list[dict]:
    """Each Softmax and table activation and what it became: tables (exact or not), thresholds,
    an argmax, or nothing (the logits)."""
    out = []
    for n in graph.nodes:
        op = n.op
        if isinstance(op, Threshold) and isinstance(op.model, Lut):
            entry = {"lowering": "thresholds", "function": op.model.model.fn, "exact": True,
                     "thresholds": int(op.thresholds.shape[1])}
        elif isinstance(op, Lut):
            entry = {"lowering": "table", "function": op.model.fn, "exact": op.exact(), "entries": len(op.table)}
        elif isinstance(op, SoftmaxTable):
            entry = {"lowering": "softmax tables", "function": "softmax", "exact": False,
                     "entries": len(op.exp_table) + len(op.inv_table)}
        elif isinstance(op, Argmax):
            entry = {"lowering": "argmax", "function": "softmax", "exact": True}
        else:
            continue
        out.append({"name": n.name, "onnx_node": n.origin.onnx_name, **entry})
    out += [{"name": "", "onnx_node": s, "lowering": "skipped: the logits", "function": "softmax", "exact": True}
            for s in graph.skipped]
    return out


def describe_table(t: dict) -> str:
    """One table in words."""
    how = {"table": f"a table of {t.get('entries')} entries", "thresholds": f"{t.get('thresholds')} threshold(s) "
           "a channel", "softmax tables": f"exp and 1/sum tables ({t.get('entries')} entries)",
           "argmax": "the index of the largest logit"}.get(t["lowering"], t["lowering"])
    exact = ", exact" if t["exact"] and t["lowering"] in ("table", "thresholds") else ""
    return f"{t['function']} {t['onnx_node']}: {how}{exact}"


def describe(q: dict) -> str:
    """One requantiser in words."""
    if q["lowering"] == "thresholds":
        how = f"{q['thresholds']} threshold(s) a channel, exact"
    else:
        how = f"{q['multiplier_bits']}-bit multiplier, shift {q['shift']}" + (", bias offset" if q["offset"] else "")
    o = q["output"]
    out = f"{'' if o['signed'] else 'u'}fixed<{o['width']},{o['width'] - o['frac']}>"
    chosen = " (an output fpgaq quantized: a float tail)" if q["fpgaq_output"] else ""
    return f"requantiser {q['name']} ({q['onnx_node']}): {how}, {q['channels']} channel(s), to {out}{chosen}"


def is_requantised(graph: Graph) -> bool:
    return any(n.op.approximates() for n in graph.nodes)


def deviation(graph: Graph, x: np.ndarray) -> dict:
    """Per output, against the float model on inputs x: the largest absolute error, the share
    of outputs that differ, and how often the argmax agrees."""
    got = emulate.run(graph, x)
    ref = emulate.run_reference(graph, x)
    outs = []
    for name, g, r in zip(graph.outputs, got, ref):
        t = graph[name].type
        entry = {"output": name, "max_abs_error": float(np.max(np.abs(g - r), initial=0.0)),
                 "share_differ": float(np.mean(g != r)) if g.size else 0.0,
                 "step": None if t is None else 2.0 ** -t.frac}
        if g.ndim == 2 and g.shape[1] > 1:
            entry["argmax_agreement"] = float(np.mean(g.argmax(axis=1) == r.argmax(axis=1)))
        outs.append(entry)
    return {"n": int(len(x)), "outputs": outs}


def deviation_text(dev: dict) -> str:
    """The deviation in words: how far, in the output's own steps, and how often the argmax agrees.
    Integer requantisation rounds where the float model does not, so outputs that are not
    identical are expected; the size of the deviation is what matters."""
    lines = []
    for o in dev["outputs"]:
        err, step = o["max_abs_error"], o.get("step")
        steps = f" ({err / step:.3g} step{'' if err == step else 's'} of the output's {step:g})" if step else ""
        agree = f"; argmax agrees on {100 * o['argmax_agreement']:.2f}%" if "argmax_agreement" in o else ""
        lines.append(f"deviation from the float model on {dev['n']:,} inputs ({o['output']}): at most {err:.3g}"
                     f"{steps}, from requantisation's integer rounding ({100 * o['share_differ']:.1f}% of values "
                     f"not identical to the float model's){agree}")
    return "\n".join(lines)
