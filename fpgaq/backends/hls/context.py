"""IR -> the plain template context of a Vitis HLS project. Every decision is made here, one
kernel plan an op (KERNELS); the templates only lay it out."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ...config import BuildConfig
from ...errors import FpgaqError
from ...ir.fixed import FixedType, Rounding, Saturation, shift_round
from ...ir.graph import Graph, Node
from ...ir.interval import Interval
from ...ir.ops import Add, Argmax, Bipolar, ChannelQuant, Concat, DivQuant, Clip, Dense, LeakyRelu, Lut, MaxPool, Quant, Relu, Requant, Reshape, SoftmaxTable, Threshold, Transpose
from ...names import comment

# ap_fixed quantization modes that match a rounding exactly (CEIL and UP have none).
AP_ROUNDING = {
    Rounding.ROUND: "AP_RND_CONV",
    Rounding.HALF_UP: "AP_RND_INF",
    Rounding.HALF_DOWN: "AP_RND_ZERO",
    Rounding.FLOOR: "AP_TRN",
    Rounding.DOWN: "AP_TRN_ZERO",
}
AP_OVERFLOW = {Saturation.NONE: "AP_WRAP", Saturation.TYPE: "AP_SAT", Saturation.SYMMETRIC: "AP_SAT_SYM"}
MAX_LITERAL_BITS = 63


def mode(r: Rounding) -> str:
    """The name of a rounding in fpgaq_modes.h (generated from fpgaq.ir.fixed.Rounding)."""
    return f"RND_{r.name}"


def ap_type(t: FixedType, q: str | None = None, o: str | None = None) -> str:
    base = "ap_fixed" if t.signed else "ap_ufixed"
    modes = f", {q}, {o}" if q else ""
    return f"{base}<{t.width}, {t.integer}{modes}>"


def literal(v: int, what: str, node: Node) -> str:
    v = int(v)
    bits = Interval.around(v).width(signed=True)
    if bits > MAX_LITERAL_BITS + 1:
        raise FpgaqError(f"{node.origin}: a {what} code needs {bits} bits; "
                         "the HLS back-end handles up to 64-bit constants. Use narrower quantizers")
    return str(v)


def c_integer(bits: int) -> str:
    """The smallest built-in signed integer type of at least `bits` bits."""
    for width, name in ((8, "signed char"), (16, "short"), (32, "int")):
        if bits <= width:
            return name
    return "long long"


def _code_width(values) -> int:
    """Signed bits holding every value and its negation: the width of a constant's code type."""
    return Interval.around(max((abs(int(v)) for v in np.ravel(values)), default=0)).width(signed=True)


def _quant(node: Node, src: Node) -> dict:
    """A Quant by ap_fixed's modes when they match, else by explicit integer rounding."""
    op = node.op
    assert isinstance(op, Quant) and src.type is not None and src.interval is not None
    t = op.type
    shift = src.type.frac - t.frac
    q = AP_ROUNDING.get(op.rounding) if shift > 0 else "AP_TRN"   # no bits dropped: no rounding
    reach = Interval(shift_round(src.interval.lo, shift, op.rounding), shift_round(src.interval.hi, shift, op.rounding))
    o = AP_OVERFLOW.get(Saturation.of(op.lo, op.hi, t, reach))
    if q and o:
        return {"kernel": "quantize_ap", "type": ap_type(t, q, o)}
    wide = max(src.type.width + 1 + max(-shift, 0), shift + 2, t.width + 1)
    return {"kernel": "quantize_explicit", "type": ap_type(t),
            "config": {"shift": shift, "mode": mode(op.rounding),
                       "lo": literal(op.lo, "saturation bound", node),
                       "hi": literal(op.hi, "saturation bound", node),
                       "wide_t": f"ap_int<{wide}>"}}


def _dense(node: Node, src: Node) -> dict:
    op = node.op
    assert isinstance(op, Dense) and node.type is not None
    if max(op.weight.shape) > 32767:
        raise FpgaqError(f"{node.origin}: a layer of {op.weight.shape[1]} inputs and {op.weight.shape[0]} "
                         "outputs; the HLS kernels index at most 32,767 a side")
    rows, cols = np.nonzero(op.weight)
    weights = op.weight[rows, cols]
    wbits = _code_width(weights) if len(weights) else 2
    acc = node.type.signed_width
    return {
        "kernel": "dense", "type": ap_type(node.type),
        "config": {"n_in": op.weight.shape[1], "n_out": op.weight.shape[0], "positions": Dense.positions(src.out),
                   "n_nonzero": max(len(weights), 1), "acc_t": f"ap_int<{acc}>",
                   "weight_t": f"ap_int<{wbits}>", "reuse": op.reuse,
                   "weight_store_t": c_integer(wbits), "bias_store_t": c_integer(_code_width(op.bias)),
                   "multipliers": max(1, -(-len(weights) // op.reuse))},
        # an all-zero layer still needs one (zero) product for the C++ arrays to be non-empty
        "weights": [literal(w, "weight", node) for w in weights] or ["0"],
        "rows": [int(r) for r in rows] or [0],
        "cols": [int(c) for c in cols] or [0],
        "bias": [literal(b, "bias", node) for b in op.bias],
        "nonzero": len(weights),
        "total": int(op.weight.size),
    }


def _requant(node: Node, src: Node) -> dict:
    """Integer requantisation: code * multiplier[c], rounded right by `shift`, saturated."""
    op = node.op
    assert isinstance(op, Requant) and node.type is not None and src.type is not None
    mbits = _code_width(op.multiplier)
    offsets = op.offsets(1) if op.offset is None else op.offset
    obits = _code_width(offsets)
    product = max(src.type.width + 1 + mbits, obits) + 1
    wide = max(product + max(-op.shift, 0), op.shift + 2, node.type.width + 1)
    return {"kernel": "requantize", "type": ap_type(node.type),
            "multipliers": [literal(m, "multiplier", node) for m in op.multiplier],
            "offsets": [literal(o, "offset", node) for o in offsets],
            "config": {"shift": op.shift, "mode": mode(op.rounding),
                       "lo": literal(op.lo, "saturation bound", node), "hi": literal(op.hi, "saturation bound", node),
                       "wide_t": f"ap_int<{wide}>", "n_multipliers": int(op.multiplier.size),
                       "n_offsets": int(offsets.size), "multiplier_store_t": c_integer(mbits),
                       "offset_store_t": c_integer(obits)}}


def _threshold(node: Node, src: Node) -> dict:
    """Comparisons of the code with constant thresholds, counted."""
    op = node.op
    assert isinstance(op, Threshold) and node.type is not None and src.type is not None
    tbits = _code_width(op.thresholds)
    sbits = _code_width(op.start)
    k = op.thresholds.shape[1]
    wide = max(src.type.width + 1, tbits, sbits, node.type.width) + 2 + (k * op.step).bit_length()
    return {"kernel": "threshold", "type": ap_type(node.type),
            "thresholds": [[literal(t, "threshold", node) for t in row] for row in op.thresholds],
            "start": [literal(v, "threshold start", node) for v in op.start],
            "config": {"n_rows": int(op.start.size), "k": k, "step": op.step, "wide_t": f"ap_int<{wide}>",
                       "count_t": f"ap_uint<{k.bit_length()}>", "threshold_store_t": c_integer(tbits),
                       "start_store_t": c_integer(sbits)}}


def _unsigned(values) -> str:
    return f"ap_uint<{max(1, max(int(v) for v in np.ravel(values)).bit_length())}>"


def _lut(node: Node, src: Node) -> dict:
    """A tabulated activation: the input clamped to the table's codes, shifted, looked up."""
    op = node.op
    assert isinstance(op, Lut) and node.type is not None and src.type is not None
    wide = max(src.type.width, Interval(op.lo, op.hi).width(signed=True)) + 2
    return {"kernel": "lut", "type": ap_type(node.type),
            "table": [literal(v, "table entry", node) for v in op.table],
            "config": {"lo": literal(op.lo, "table bound", node), "hi": literal(op.hi, "table bound", node),
                       "shift": op.shift, "entries": len(op.table), "wide_t": f"ap_int<{wide}>",
                       "index_t": f"ap_uint<{max(1, (len(op.table) - 1).bit_length())}>",
                       "table_store_t": c_integer(_code_width(op.table)),
                       "out_t": f"ap_int<{node.type.width + 1}>"}}


def _softmax_table(node: Node, src: Node) -> dict:
    """Exp and 1/sum tables on the codes of each row."""
    op = node.op
    assert isinstance(op, SoftmaxTable) and node.type is not None and src.type is not None
    n_classes = src.out.shape[-1]
    e_max, r_max = int(op.exp_table.max()), int(op.inv_table.max())
    return {"kernel": "softmax_table", "type": ap_type(node.type),
            "exp_table": [literal(v, "exp table entry", node) for v in op.exp_table],
            "inv_table": [literal(v, "1/sum table entry", node) for v in op.inv_table],
            "config": {"n_classes": n_classes, "wide_t": f"ap_int<{src.type.width + 2}>",
                       "exp_t": _unsigned([e_max]), "sum_t": _unsigned([max(n_classes * e_max, op.s_hi)]),
                       "inv_t": _unsigned([r_max]),
                       "product_t": _unsigned([e_max * r_max + (1 << (op.out_shift - 1))]),
                       "d_hi": op.d_hi, "exp_shift": op.exp_shift, "exp_entries": len(op.exp_table),
                       "s_lo": op.s_lo, "s_hi": op.s_hi, "inv_shift": op.inv_shift,
                       "inv_entries": len(op.inv_table), "out_shift": op.out_shift,
                       "exp_store_t": c_integer(_code_width(op.exp_table)),
                       "inv_store_t": c_integer(_code_width(op.inv_table)),
                       "out_t": f"ap_int<{node.type.width + 1}>"}}


def _argmax(node: Node, src: Node) -> dict:
    assert node.type is not None and src.type is not None
    return {"kernel": "argmax", "type": ap_type(node.type),
            "config": {"n_classes": src.out.shape[-1], "wide_t": _wide(src),
                       "out_t": f"ap_int<{node.type.width + 1}>"}}


def _leaky_relu(node: Node, src: Node) -> dict:
    op = node.op
    assert isinstance(op, LeakyRelu) and node.type is not None and src.type is not None
    wide = max(node.type.width, src.type.width + max(op.shift, int(op.slope.max()).bit_length())) + 2
    return {"kernel": "leaky_relu", "type": ap_type(node.type),
            "slopes": [literal(m, "slope", node) for m in op.slope],
            "config": {"shift": op.shift, "n_slopes": int(op.slope.size), "wide_t": f"ap_int<{wide}>",
                       "slope_store_t": c_integer(_code_width(op.slope))}}


def _channel_quant(node: Node, src: Node) -> dict:
    """A quantizer with a grid and bounds an element: one call a element, all constant."""
    op = node.op
    assert isinstance(op, ChannelQuant) and node.type is not None and src.type is not None
    shifts = src.type.frac - op.fracs
    ups = op.type.frac - op.fracs
    bound = max(_code_width(op.lo), _code_width(op.hi))
    wide = max(src.type.width + max(0, int(-shifts.min())), bound, node.type.width) + 2
    return {"kernel": "quantize_channels", "type": ap_type(node.type),
            "elements": [{"shift": int(s), "up": int(u), "lo": literal(lo, "saturation bound", node),
                          "hi": literal(hi, "saturation bound", node)}
                         for s, u, lo, hi in zip(shifts, ups, op.lo, op.hi)],
            "config": {"mode": mode(op.rounding), "wide_t": f"ap_int<{wide}>"}}


def _max_pool(node: Node, src: Node) -> dict:
    op = node.op
    assert isinstance(op, MaxPool) and node.type is not None
    windows = op.windows(src.out.shape)
    return {"kernel": "max_windows", "type": ap_type(node.type),
            "index": [[int(i) for i in row] for row in windows],
            "config": {"n_in": src.size, "taps": int(windows.shape[1]), "wide_t": _wide(src)}}


def _transpose(node: Node, src: Node) -> dict:
    """A permutation of the elements: a copy each."""
    op = node.op
    assert isinstance(op, Transpose) and node.type is not None
    order = np.arange(src.size).reshape(src.out.shape).transpose(op.perm).ravel()
    return {"kernel": "concat", "type": ap_type(node.type),
            "elements": [{"input": src.name, "index": int(i), "shift": 0} for i in order],
            "config": {"wide_t": f"ap_int<{node.type.width + 2}>"}}


def _div_quant(node: Node, src: Node) -> dict:
    """The exact division of an average's sum, with the quantizer's rounding."""
    op = node.op
    assert isinstance(op, DivQuant) and node.type is not None and src.type is not None
    up, den = op.scaling(src.out)
    wide = max(src.type.width + up, (2 * den).bit_length(), node.type.width) + 2
    return {"kernel": "divide_quantize", "type": ap_type(node.type),
            "config": {"up": up, "den": literal(den, "divisor", node), "mode": mode(op.rounding),
                       "lo": literal(op.lo, "saturation bound", node), "hi": literal(op.hi, "saturation bound", node),
                       "wide_t": f"ap_int<{wide}>"}}


def _wide(src: Node) -> str:
    assert src.type is not None
    return f"ap_int<{src.type.width + 2}>"


def _relu(node: Node, src: Node) -> dict:
    assert node.type is not None
    return {"kernel": "relu", "type": ap_type(node.type), "config": {"wide_t": _wide(src)}}


def _clip(node: Node, src: Node) -> dict:
    assert node.type is not None and node.interval is not None
    return {"kernel": "clip", "type": ap_type(node.type),
            "config": {"wide_t": _wide(src), "lo": literal(node.interval.lo, "clip bound", node),
                       "hi": literal(node.interval.hi, "clip bound", node)}}


def _bipolar(node: Node, src: Node) -> dict:
    assert node.type is not None
    return {"kernel": "bipolar", "type": ap_type(node.type)}


def _copy(node: Node, src: Node) -> dict:
    assert node.type is not None
    return {"kernel": "copy", "type": ap_type(node.type)}


# one kernel plan an op; a node whose op is not here is refused (HlsBackend.check)
KERNELS: dict[type, Callable[[Node, Node], dict]] = {
    Quant: _quant, Dense: _dense, Requant: _requant, Relu: _relu, Clip: _clip, Bipolar: _bipolar,
    Reshape: _copy, Threshold: _threshold, Lut: _lut, SoftmaxTable: _softmax_table, Argmax: _argmax,
    LeakyRelu: _leaky_relu, ChannelQuant: _channel_quant, MaxPool: _max_pool, Transpose: _transpose,
    DivQuant: _div_quant,
}


def _add2(node: Node, srcs: list[Node]) -> dict:
    """Two run-time tensors, each shifted onto the output's grid, added."""
    src, other = srcs
    assert node.type is not None and src.type is not None and other.type is not None
    return {"kernel": "add2", "type": ap_type(node.type), "second": other.name,
            "config": {"shift_a": node.type.frac - src.type.frac, "shift_b": node.type.frac - other.type.frac,
                       "wide_t": f"ap_int<{node.type.width + 2}>"}}


def _concat(node: Node, srcs: list[Node]) -> dict:
    """Each output element a copy of one input's, shifted onto the output's grid."""
    op = node.op
    assert isinstance(op, Concat) and node.type is not None
    shifts = [node.type.frac - s.type.frac for s in srcs if s.type is not None]
    return {"kernel": "concat", "type": ap_type(node.type),
            "elements": [{"input": srcs[int(j)].name, "index": int(k), "shift": shifts[int(j)]}
                         for j, k in op.sources([s.out for s in srcs])],
            "config": {"wide_t": f"ap_int<{node.type.width + 2}>"}}


# ops of several run-time inputs: one kernel plan each, given all of them
MULTI: dict[type, Callable[[Node, list[Node]], dict]] = {Add: _add2, Concat: _concat}


def node_context(node: Node, graph: Graph) -> dict:
    src = graph[node.inputs[0]]
    if type(node.op) in MULTI and (len(node.inputs) > 1 or isinstance(node.op, Concat)):
        ctx = {"name": node.name, "input": src.name, "n": node.size,
               "origin": comment(str(node.origin)), "range": str(node.interval)}
        ctx.update(MULTI[type(node.op)](node, [graph[i] for i in node.inputs]))
        ctx.setdefault("config", {})
        return ctx
    ctx = {"name": node.name, "input": src.name, "n": node.size,
           "origin": comment(str(node.origin)), "range": str(node.interval)}
    ctx.update(KERNELS[type(node.op)](node, src))
    ctx.setdefault("config", {})
    return ctx


def modes_context() -> dict:
    return {"roundings": [{"name": mode(r), "value": r.value, "qonnx": r.name} for r in Rounding]}


def fabric(graph: Graph) -> bool:
    """Whether every dense layer puts its products in LUTs (a design without DSPs)."""
    dense = [n.op for n in graph.nodes if isinstance(n.op, Dense)]
    return bool(dense) and all(d.fabric for d in dense)


def project_context(graph: Graph, config: BuildConfig) -> dict:
    """Everything the templates need, as plain data."""
    inputs, layers = [], []
    edge = graph.host | {q.name for q in graph.firmware_inputs}
    for inp in graph.inputs:
        q = graph.input_quantizer(inp)
        assert q.type is not None
        inputs.append({"name": q.name, "n": q.size, "type": ap_type(q.type),
                       "frac": q.type.frac, "width": q.type.width, "signed": q.type.signed,
                       "origin": comment(str(inp.origin))})
    for node in graph.nodes:
        if node.inputs and node.name not in edge:
            layers.append(node_context(node, graph))
    outputs = []
    for i, name in enumerate(graph.outputs):
        node = graph[name]
        assert node.type is not None
        outputs.append({"name": name, "port": f"out{i}_{name}", "n": node.size,
                        "type": f"t_{name}", "frac": node.type.frac, "width": node.type.width,
                        "signed": node.type.signed})
    return {
        "top": config.name, "part": config.part, "clock_ns": config.clock_ns, "io": "io_parallel", "stages": [],
        "model": comment(graph.name), "inputs": inputs, "layers": layers, "outputs": outputs,
        "ii": max([n.op.reuse for n in graph.nodes if isinstance(n.op, Dense)] + [1]), "fabric": fabric(graph),
        "n_in_total": sum(i["n"] for i in inputs), "n_out_total": sum(o["n"] for o in outputs),
        **modes_context(),
    }
