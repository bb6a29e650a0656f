"""IR -> the plain template context of a Vitis HLS project. Every decision is made here;
the templates only lay it out."""
from __future__ import annotations

import numpy as np

from ...config import BuildConfig
from ...errors import FpgaqError
from ...ir.fixed import FixedType, Rounding, shift_round
from ...ir.graph import Graph, Node
from ...ir.ops import Bipolar, Clip, Dense, Input, Quant, Relu, Requant
from ...names import comment

# ap_fixed quantization modes that match a rounding exactly (CEIL and UP have none).
AP_ROUNDING = {
    Rounding.ROUND: "AP_RND_CONV",
    Rounding.HALF_UP: "AP_RND_INF",
    Rounding.HALF_DOWN: "AP_RND_ZERO",
    Rounding.FLOOR: "AP_TRN",
    Rounding.DOWN: "AP_TRN_ZERO",
}
EXPLICIT_ROUNDING = {
    Rounding.FLOOR: "RND_FLOOR", Rounding.CEIL: "RND_CEIL", Rounding.DOWN: "RND_DOWN",
    Rounding.UP: "RND_UP", Rounding.ROUND: "RND_HALF_EVEN", Rounding.HALF_UP: "RND_HALF_UP",
    Rounding.HALF_DOWN: "RND_HALF_DOWN",
}
MAX_LITERAL_BITS = 63


def ap_type(t: FixedType, q: str | None = None, o: str | None = None) -> str:
    base = "ap_fixed" if t.signed else "ap_ufixed"
    modes = f", {q}, {o}" if q else ""
    return f"{base}<{t.width}, {t.integer}{modes}>"


def literal(v: int, what: str, node: Node) -> str:
    v = int(v)
    if abs(v).bit_length() > MAX_LITERAL_BITS:
        raise FpgaqError(f"{node.origin}: a {what} code needs {abs(v).bit_length() + 1} bits; "
                         "the HLS back-end handles up to 64-bit constants. Use narrower quantizers")
    return str(v)


def _quant_plan(node: Node, src: Node) -> dict:
    """How the HLS code performs a Quant: by ap_fixed's modes when they match, else explicitly."""
    op: Quant = node.op
    t = op.type
    shift = src.type.frac - t.frac
    q = AP_ROUNDING.get(op.rounding) if shift > 0 else "AP_TRN"   # no bits dropped: no rounding
    lo = shift_round(src.interval.lo, shift, op.rounding)
    hi = shift_round(src.interval.hi, shift, op.rounding)
    if op.lo <= lo and hi <= op.hi:
        o = "AP_WRAP"                   # proved never to saturate
    elif (op.lo, op.hi) == (t.min_code, t.max_code):
        o = "AP_SAT"
    elif t.signed and op.lo == -op.hi == -t.max_code:
        o = "AP_SAT_SYM"
    else:
        o = None
    if q and o:
        return {"kernel": "quantize_ap", "type": ap_type(t, q, o)}
    wide = max(src.type.width + 1 + max(-shift, 0), shift + 2, t.width + 1)
    return {"kernel": "quantize_explicit", "type": ap_type(t),
            "config": {"shift": shift, "mode": EXPLICIT_ROUNDING[op.rounding],
                       "lo": literal(op.lo, "saturation bound", node),
                       "hi": literal(op.hi, "saturation bound", node),
                       "wide_t": f"ap_int<{wide}>"}}


def c_integer(bits: int) -> str:
    """The smallest built-in signed integer type of at least `bits` bits."""
    for width, name in ((8, "signed char"), (16, "short"), (32, "int")):
        if bits <= width:
            return name
    return "long long"


def _dense_plan(node: Node) -> dict:
    op: Dense = node.op
    if max(op.weight.shape) > 32767:
        raise FpgaqError(f"{node.origin}: a layer of {op.weight.shape[1]} inputs and {op.weight.shape[0]} "
                         "outputs; the HLS kernels index at most 32,767 a side")
    rows, cols = np.nonzero(op.weight)
    weights = op.weight[rows, cols]
    wbits = max((abs(int(w)).bit_length() for w in weights), default=1) + 1
    acc = node.type.width + (0 if node.type.signed else 1)
    return {
        "kernel": "dense", "type": ap_type(node.type),
        "config": {"n_in": op.weight.shape[1], "n_out": op.weight.shape[0],
                   "n_nonzero": max(len(weights), 1), "acc_t": f"ap_int<{acc}>",
                   "weight_t": f"ap_int<{wbits}>", "reuse": op.reuse,
                   "weight_store_t": c_integer(wbits), "bias_store_t": c_integer(_bias_bits(op)),
                   "multipliers": max(1, -(-len(weights) // op.reuse))},
        # an all-zero layer still needs one (zero) product for the C++ arrays to be non-empty
        "weights": [literal(w, "weight", node) for w in weights] or ["0"],
        "rows": [int(r) for r in rows] or [0],
        "cols": [int(c) for c in cols] or [0],
        "bias": [literal(b, "bias", node) for b in op.bias],
        "nonzero": len(weights),
        "total": int(op.weight.size),
    }


def _requant_plan(node: Node, src: Node) -> dict:
    """Integer requantisation: code * multiplier[c], rounded right by `shift`, saturated."""
    op: Requant = node.op
    mbits = int(op.multiplier.max()).bit_length() + 1
    product = src.type.width + 1 + mbits
    wide = max(product + max(-op.shift, 0), op.shift + 2, node.type.width + 1)
    return {"kernel": "requantize", "type": ap_type(node.type),
            "multipliers": [literal(m, "multiplier", node) for m in op.multiplier],
            "config": {"shift": op.shift, "mode": EXPLICIT_ROUNDING[op.rounding],
                       "lo": literal(op.lo, "saturation bound", node), "hi": literal(op.hi, "saturation bound", node),
                       "wide_t": f"ap_int<{wide}>", "n_multipliers": int(op.multiplier.size),
                       "multiplier_store_t": c_integer(mbits)}}


def _bias_bits(op: Dense) -> int:
    return max((abs(int(b)).bit_length() for b in op.bias), default=0) + 1


def node_context(node: Node, graph: Graph) -> dict:
    src = graph[node.inputs[0]]
    ctx = {"name": node.name, "input": src.name, "n": node.features,
           "origin": comment(str(node.origin)), "range": str(node.interval)}
    op = node.op
    wide = f"ap_int<{src.type.width + 2}>" if src.type is not None else None
    if isinstance(op, Quant):
        ctx.update(_quant_plan(node, src))
    elif isinstance(op, Dense):
        ctx.update(_dense_plan(node))
    elif isinstance(op, Relu):
        ctx.update(kernel="relu", type=ap_type(node.type), config={"wide_t": wide})
    elif isinstance(op, Clip):
        ctx.update(kernel="clip", type=ap_type(node.type),
                   config={"wide_t": wide, "lo": literal(node.interval.lo, "clip bound", node),
                           "hi": literal(node.interval.hi, "clip bound", node)})
    elif isinstance(op, Bipolar):
        ctx.update(kernel="bipolar", type=ap_type(node.type))
    elif isinstance(op, Requant):
        ctx.update(_requant_plan(node, src))
    else:  # pragma: no cover - verify() only admits the ops above
        raise AssertionError(f"HLS back-end has no kernel for {op!r}")
    ctx.setdefault("config", {})
    return ctx


def project_context(graph: Graph, config: BuildConfig) -> dict:
    """Everything the templates need, as plain data."""
    inputs, layers = [], []
    boundary = set()
    for node in graph.nodes:
        if isinstance(node.op, Input):
            (q,) = graph.consumers(node.name)
            boundary.add(q.name)
            inputs.append({"name": q.name, "n": q.features, "type": ap_type(q.type),
                           "frac": q.type.frac, "width": q.type.width, "signed": q.type.signed,
                           "origin": comment(str(node.origin))})
    for node in graph.nodes:
        if isinstance(node.op, Input) or node.name in boundary:
            continue
        layers.append(node_context(node, graph))
    outputs = []
    for i, name in enumerate(graph.outputs):
        node = graph[name]
        outputs.append({"name": name, "port": f"out{i}_{name}", "n": node.features,
                        "type": f"t_{name}", "frac": node.type.frac, "width": node.type.width,
                        "signed": node.type.signed})
    return {
        "top": config.name, "part": config.part, "clock_ns": config.clock_ns,
        "model": comment(graph.name), "inputs": inputs, "layers": layers, "outputs": outputs,
        "ii": max([n.op.reuse for n in graph.nodes if isinstance(n.op, Dense)] + [1]),
        "n_in_total": sum(i["n"] for i in inputs), "n_out_total": sum(o["n"] for o in outputs),
    }
