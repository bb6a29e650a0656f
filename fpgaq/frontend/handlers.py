"""The table of supported ONNX ops and the lowering of the standard ones.

Each handler takes the importer and one ONNX node and returns the values of its outputs.
"""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..ir.fixed import compact_codes
from ..ir.ops import Clip, Dense, Relu
from . import qdq, qonnx
from .onnx_import import (QONNX_DOMAINS, Importer, feature_count, fixed_const, regrid)
from .attributes import Attributes
from .values import Const, Problem, Tensor

MAX_WEIGHT_FRAC = 64




def _weight_codes(w: Const, what: str = "weight") -> tuple[np.ndarray, int]:
    """(codes, frac) of a weight constant: from its quantizer, or exact if plain float."""
    if w.codes is not None:
        return w.codes, w.frac
    codes, frac = fixed_const(w.value, what)
    if frac > 24:
        raise Problem(f"the {what} is a float tensor that is not quantized (it would need {frac} "
                      "fraction bits); put a weight quantizer (QONNX Quant) on it")
    return codes, frac


def _float_factor(x: Tensor, wscale: np.ndarray | None, out: int) -> np.ndarray | None:
    """Per output, the float factor of the accumulator (--requantize), or None."""
    if wscale is None and x.scale is None:
        return None
    if wscale is not None and not np.all(wscale == wscale[:, :1]):
        raise Problem("weight scales vary within an output neuron; use per-tensor or per-output-channel scales")
    if x.scale is not None and np.unique(np.asarray(x.scale)).size > 1:
        raise Problem("the layer's input carries per-channel float scales; put a per-tensor quantizer before it")
    row = np.ones(out) if wscale is None else wscale[:, 0].astype(np.float64)
    return row * (1.0 if x.scale is None else float(np.ravel(x.scale)[0]))


def _float_dense(imp: Importer, x: Tensor, wcodes, wfrac: int, bias, factor: np.ndarray) -> list:
    """Dense under --requantize: codes are exact; a bias off the accumulator's grid is rounded
    onto it, and its exact value is kept for the float-model reference."""
    acc_frac = x.view_frac + wfrac
    out = wcodes.shape[0]
    exact = np.zeros(out)
    if bias is not None:
        try:
            real = np.broadcast_to(np.asarray(bias.value, dtype=np.float64).reshape(-1)
                                   if np.size(bias.value) == out else bias.value, (out,))
        except ValueError:
            raise Problem(f"bias shape {list(np.shape(bias.value))} does not match {out} outputs") from None
        if not np.all(np.isfinite(real)):
            raise Problem("the bias holds NaN or Inf")
        exact = real / (np.ldexp(1.0, -acc_frac) * factor)
    codes = np.rint(exact)
    if np.any(np.abs(codes) >= 2.0 ** 62):
        raise Problem("the bias is too large for the accumulator's grid")
    node = imp.add("dense", Dense(wcodes, acc_frac - x.node.type.frac, codes.astype(np.int64),
                                  bias_exact=None if np.array_equal(codes, exact) else exact), (x.node,))
    return [Tensor(node, acc_frac, scale=factor)]


def dense(imp: Importer, onode, x: Tensor, wcodes: np.ndarray, wfrac: int, bias, wscale=None) -> list:
    """A Dense node computing the ONNX value of x @ W.T + bias exactly.

    W is (out, in) codes at `wfrac`; the accumulator's fraction bits are x's view frac + wfrac,
    and the IR weight frac absorbs any difference between x's view and its codes. `wscale`
    (--requantize): the weights' float scales, shaped like W.
    """
    if wcodes.ndim != 2 or wcodes.shape[1] != x.node.features:
        raise Problem(f"weight shape {list(wcodes.shape)} does not match {x.node.features} input features")
    if wcodes.size == 0:
        raise Problem(f"the weight has shape {list(wcodes.shape)}, with no elements: a layer without outputs")
    acc_frac = x.view_frac + wfrac
    out = wcodes.shape[0]
    factor = _float_factor(x, wscale, out)
    if factor is None and bias is not None and bias.scale is not None:
        factor = np.ones(out)   # only the bias has a float scale: round it onto the grid
    if factor is not None:
        return _float_dense(imp, x, wcodes, wfrac, bias, factor)
    if bias is None:
        bcodes = np.zeros(out, dtype=np.int64)
    else:
        if bias.codes is not None:
            bc, bf, what = bias.codes, bias.frac, "bias"
        else:
            bc, bf = fixed_const(bias.value, "bias")
            what = "float bias"
        bc = regrid(bc, bf, acc_frac)
        if bc is None:
            raise Problem(
                f"the {what} needs {bf} fraction bits but the accumulator has {acc_frac} "
                f"(input {x.view_frac} + weight {wfrac}), so it cannot be added exactly; quantize "
                "the bias (Brevitas: bias_quant=Int16Bias or Int32Bias) or round it to the accumulator's grid")
        try:
            bcodes = np.broadcast_to(bc.reshape(-1) if bc.size == out else bc, (out,))
        except ValueError:
            raise Problem(f"bias shape {list(np.shape(bias.value))} does not match {out} outputs") from None
        bcodes = compact_codes([int(v) for v in bcodes])
    ir_wfrac = acc_frac - x.node.type.frac
    node = imp.add("dense", Dense(wcodes, ir_wfrac, bcodes), (x.node,))
    return [Tensor(node, acc_frac)]


def gemm(imp: Importer, onode) -> list:
    a = Attributes(onode)
    x = imp.fixed_tensor(onode, 0)
    if a.flag("transA", False) != x.transposed:
        raise Problem(f"transA={a.int('transA', 0)} but the activation is in "
                      f"{'(features, batch)' if x.transposed else '(batch, features)'} layout; "
                      "fpgaq needs Gemm to read (batch, features)")
    w = imp.const(onode, 1, "the weight (B)")
    codes, frac = _weight_codes(w)
    if codes.ndim != 2:
        raise Problem(f"weight B has shape {list(codes.shape)}; expected a matrix")
    wcodes = codes if a.flag("transB", False) else codes.T
    wscale = None if w.scale is None else np.broadcast_to(w.scale, codes.shape)
    wscale = wscale if wscale is None or a.flag("transB", False) else wscale.T
    alpha, beta = a.float("alpha", 1.0), a.float("beta", 1.0)
    k = _pow2_exponent(alpha, "alpha")
    if k > 0:   # scale the codes, not the grid: the bias sits on the grid of x @ W
        wcodes = wcodes * (1 << k)
    else:
        frac -= k
    bias = imp.get(onode, 2)
    if bias is not None:
        if not isinstance(bias, Const):
            raise Problem("the bias (C) is computed at run time; fpgaq needs a constant bias")
        if beta != 1.0:
            k = _pow2_exponent(beta, "beta")
            if bias.scale is not None:   # --requantize: the float factor carries beta
                bias = Const(bias.value * beta, bias.codes, bias.frac, bias.onnx_type, bias.scale * beta)
            elif bias.codes is not None:
                bias = Const(bias.value * beta, bias.codes, bias.frac - k)
            else:
                bias = Const(bias.value * beta)
    return dense(imp, onode, x, wcodes, frac, bias, wscale)


def _pow2_exponent(v: float, what: str) -> int:
    if v > 0 and math.frexp(v)[0] == 0.5:
        return math.frexp(v)[1] - 1
    raise Problem(f"{what}={v:g} is not a power of two; fold it into the weights before export")


def matmul(imp: Importer, onode) -> list:
    if isinstance(imp.get(onode, 0), Const):
        raise Problem("constant @ activation is not supported; write it as activation @ weight")
    x = imp.fixed_tensor(onode, 0)
    if x.transposed:
        raise Problem("multiplies a transposed activation; fpgaq needs (batch, features) @ weight")
    w = imp.const(onode, 1, "the weight")
    codes, frac = _weight_codes(w)
    if codes.ndim != 2:
        raise Problem(f"weight has shape {list(codes.shape)}; expected a matrix")
    wscale = None if w.scale is None else np.broadcast_to(w.scale, codes.shape).T
    return dense(imp, onode, x, codes.T, frac, None, wscale)


def add(imp: Importer, onode) -> list:
    a, b = imp.get(onode, 0), imp.get(onode, 1)
    if isinstance(a, Const) and isinstance(b, Const):
        try:
            return [Const(a.value + b.value)]
        except ValueError:
            raise Problem(f"adds constants of shapes {list(a.value.shape)} and {list(b.value.shape)}, "
                          "which do not broadcast") from None
    t, c = (a, b) if isinstance(a, Tensor) else (b, a)
    if isinstance(t, Tensor) and t.scale is not None:
        raise Problem("adds a constant to a float-scale (--requantize) tensor; export the bias inside the Gemm")
    if not isinstance(c, Const):
        raise Problem("adds two run-time tensors (a residual connection); fpgaq supports only "
                      "Add of a constant bias after MatMul/Gemm for now")
    if not isinstance(t.node.op, Dense) or t.view_frac != t.node.type.frac:
        raise Problem("adds a constant to something other than a MatMul/Gemm result; fold the "
                      "constant into the layer before it")
    d: Dense = t.node.op
    bc, bf = (c.codes, c.frac) if c.codes is not None else fixed_const(c.value, "the added constant")
    on_grid = regrid(bc, bf, t.view_frac)
    if on_grid is None:
        raise Problem(f"the added bias needs {bf} fraction bits but the accumulator has {t.view_frac}; "
                      "quantize the bias (Brevitas: Int16Bias) or round it to the accumulator's grid")
    out = len(d.bias)
    try:
        extra = np.broadcast_to(on_grid.reshape(-1) if on_grid.size == out else on_grid, (out,))
    except ValueError:
        raise Problem(f"the added constant of shape {list(np.shape(c.value))} does not match {out} outputs") from None
    total = [int(u) + int(v) for u, v in zip(d.bias, extra)]
    return _redo_dense(imp, onode, t.node, d.weight, d.weight_frac, total)


def _redo_dense(imp: Importer, onode, old, wcodes, ir_wfrac: int, bias: list[int]) -> list:
    """A new Dense on the same input as `old`, with new weights and bias (the old one is dropped
    if nothing else reads it)."""
    xin = imp_node(imp, old.inputs[0])
    acc_frac = xin.type.frac + ir_wfrac
    bias_const = Const(np.zeros(len(bias)), np.array(bias, dtype=object), acc_frac)
    return dense(imp, onode, Tensor(xin, xin.type.frac), compact_codes(wcodes), ir_wfrac, bias_const)


def imp_node(imp: Importer, name: str):
    return next(n for n in imp.nodes if n.name == name)


def batchnorm(imp: Importer, onode) -> list:
    t = imp.fixed_tensor(onode, 0)
    if not isinstance(t.node.op, Dense) or t.view_frac != t.node.type.frac:
        raise Problem("BatchNormalization must follow a Gemm/MatMul, into which it is folded")
    eps = Attributes(onode).float("epsilon", 1e-5)
    gamma, beta, mean, var = (imp.const(onode, i, w).value.astype(np.float64)
                              for i, w in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    if not all(np.size(v) == t.node.features for v in (gamma, beta, mean, var)):
        raise Problem(f"its parameters do not have one value for each of the {t.node.features} channels")
    s = gamma / np.sqrt(var + eps)
    shift = beta - mean * s
    if not np.all(np.isfinite(s) & np.isfinite(shift)) or np.any(s == 0):
        raise Problem("its scale gamma/sqrt(var+eps) is zero, NaN or Inf for some channel")
    ds = fixed_const(s, "the batch-norm scale")
    dt = fixed_const(shift, "the batch-norm shift")
    if t.scale is not None or ds[1] > 24 or dt[1] > 32:
        if imp.requantize:
            return _float_batchnorm(imp, t, s, shift)
        raise Problem(f"the folded scale gamma/sqrt(var+eps) ({_first(s)}) or shift is not exactly fixed "
                      "point; fold batch-norm into the weights before quantizing them "
                      "(Brevitas/qonnx: merge BN into the preceding layer, then quantize), or build with "
                      "--requantize to carry its scale into the next quantizer's integer requantisation")
    d: Dense = t.node.op
    sc, sf = ds
    acc_frac = t.view_frac + sf
    tc, tf = dt
    on_grid = regrid(tc, tf, acc_frac)
    if on_grid is None:
        raise Problem(f"the folded batch-norm shift needs {tf} fraction bits, more than the "
                      f"accumulator's {acc_frac}; fold it into a quantized bias before export")
    wcodes = d.weight.astype(object) * np.asarray(sc, dtype=object)[:, None]
    bias = [int(b) * int(k) + int(c) for b, k, c in zip(d.bias, sc, on_grid)]
    return _redo_dense(imp, onode, t.node, wcodes, d.weight_frac + sf, bias)


def _float_batchnorm(imp: Importer, t: Tensor, s: np.ndarray, shift: np.ndarray) -> list:
    """--requantize: y = s * acc + shift. The accumulator's codes stay exact; |s| joins its
    float factor (a channel with s < 0 negates its weights and bias), the shift its bias."""
    d: Dense = t.node.op
    sign = np.where(s < 0, -1, 1)
    factor = np.abs(s) * (1.0 if t.scale is None else np.asarray(t.scale, dtype=np.float64))
    old = d.bias.astype(np.float64) if d.bias_exact is None else d.bias_exact
    exact = sign * old + shift / (np.ldexp(1.0, -t.view_frac) * factor)
    codes = np.rint(exact)
    if np.any(np.abs(codes) >= 2.0 ** 62):
        raise Problem("the folded batch-norm shift is too large for the accumulator's grid")
    xin = imp_node(imp, t.node.inputs[0])
    node = imp.add("dense", Dense(compact_codes(d.weight.astype(object) * sign[:, None].astype(object)), d.weight_frac,
                                  codes.astype(np.int64), bias_exact=None if np.array_equal(codes, exact) else exact),
                   (xin,))
    return [replace(t, node=node, scale=factor)]


def _first(a) -> str:
    return f"{float(np.ravel(a)[0]):g}"


def relu(imp: Importer, onode) -> list:
    t = imp.fixed_tensor(onode, 0)
    return [replace(t, node=imp.add("relu", Relu(), (t.node,)))]


def _clip_bound(imp: Importer, onode, i: int, a: Attributes, name: str) -> float | None:
    """A Clip bound: input i (opset 11+) or attribute `name` (opset 6); None when absent."""
    if len(onode.input) > i and onode.input[i]:
        c = imp.const(onode, i, f"the {name} bound")
        if c.value.size != 1:
            raise Problem(f"the {name} bound has {c.value.size} values; expected one")
        v = float(c.value.ravel()[0])
        if math.isnan(v):
            raise Problem(f"the {name} bound is NaN")
        return v
    return a.float(name, None)


def _code_bound(v: float | None, frac: int, to_int, iv) -> int | None:
    """A real Clip bound in codes (None: no bound)."""
    if v is None or math.isinf(v):
        return None
    from fractions import Fraction
    code = to_int(Fraction(v) * Fraction(2) ** frac)     # exact: floats are dyadic
    if code < iv.lo - (1 << 64) or code > iv.hi + (1 << 64):
        raise Problem(f"the bound {v:g} lies far outside the values it clips; remove the Clip or fix the bound")
    return code


def clip(imp: Importer, onode) -> list:
    a = Attributes(onode)
    lo_v = _clip_bound(imp, onode, 1, a, "min")
    hi_v = _clip_bound(imp, onode, 2, a, "max")
    x = imp.get(onode, 0)
    if isinstance(x, Const) and lo_v is None and hi_v is None:
        return [x]
    if isinstance(x, Const):   # QCDQ weights: int8 initializer -> Clip -> DequantizeLinear
        clipped = np.clip(x.value, lo_v, hi_v)
        if np.issubdtype(x.value.dtype, np.integer):   # int bounds on an int tensor stay ints
            clipped = np.clip(x.value, math.ceil(lo_v) if lo_v is not None else None,
                              math.floor(hi_v) if hi_v is not None else None)
        return [Const(clipped, onnx_type=x.onnx_type)]
    t = imp.tensor(onode, 0)
    if t.view_frac is None:   # PQuantML QDQ: Clip on the model input; its quantizer applies it
        lo_r = max(t.bounds[0], -math.inf if lo_v is None else lo_v)
        hi_r = min(t.bounds[1], math.inf if hi_v is None else hi_v)
        if lo_r > hi_r:
            raise Problem(f"min {lo_r:g} is above max {hi_r:g}")
        return [replace(t, bounds=(lo_r, hi_r))]
    if t.scale is not None:   # --requantize: bounds in units of the float factor
        s = np.unique(np.asarray(t.scale, dtype=np.float64))
        if s.size != 1:
            raise Problem("a Clip on a tensor with per-channel float scales is not supported")
        lo_v, hi_v = (None if v is None else v / float(s[0]) for v in (lo_v, hi_v))
    iv = t.node.interval
    lo_c, hi_c = _code_bound(lo_v, t.view_frac, math.ceil, iv), _code_bound(hi_v, t.view_frac, math.floor, iv)
    if lo_c is not None and hi_c is not None and lo_c > hi_c:
        raise Problem(f"min {lo_v:g} is above max {hi_v:g}")
    if (lo_c is None or lo_c <= iv.lo) and (hi_c is None or hi_c >= iv.hi):
        return [t]  # the bounds never bite
    return [replace(t, node=imp.add("clip", Clip(lo_c, hi_c), (t.node,)))]


def passthrough(imp: Importer, onode) -> list:
    """Identity, and reshapes that only add or drop unit axes."""
    v = imp.get(onode, 0)
    if isinstance(v, Const):
        return [_const_reshape(imp, onode, v)]
    dims = imp.shapes.get(onode.output[0])
    if v.transposed:
        raise Problem("reshapes a transposed activation; transpose it back first")
    if dims:
        n = feature_count(dims, f"its output '{onode.output[0]}'")
        if n != v.node.features:
            raise Problem(f"changes {v.node.features} features into shape {dims}")
    return [v]


def _const_reshape(imp: Importer, onode, v: Const) -> Const:
    op = onode.op_type
    a = Attributes(onode)
    val = v.value
    if op == "Identity":
        f = lambda x: x  # noqa: E731
    elif op == "Reshape":
        shape = imp.const(onode, 1, "shape").value.astype(np.int64)
        shape = [val.shape[i] if s == 0 else int(s) for i, s in enumerate(shape)]
        f = lambda x: x.reshape(shape)  # noqa: E731
    elif op == "Flatten":
        ax = a.int("axis", 1)
        f = lambda x: x.reshape(int(np.prod(x.shape[:ax])), -1)  # noqa: E731
    elif op in ("Squeeze", "Unsqueeze"):
        axes = a.ints("axes", None)
        if axes is None and len(onode.input) > 1:
            axes = imp.const(onode, 1, "axes").value.astype(int).tolist()
        if op == "Squeeze":
            f = lambda x: np.squeeze(x, axis=tuple(axes) if axes else None)  # noqa: E731
        else:
            f = lambda x: np.expand_dims(x, tuple(axes))  # noqa: E731
    elif op == "Transpose":
        f = lambda x: np.transpose(x, a.ints("perm", None))  # noqa: E731
    else:
        raise Problem(f"cannot evaluate {op} on a constant")
    try:
        return Const(f(val), None if v.codes is None else f(v.codes), v.frac, v.onnx_type)
    except (ValueError, TypeError, IndexError, np.exceptions.AxisError) as e:
        raise Problem(f"cannot apply {op} to the constant of shape {list(val.shape)}: {e}") from None


def transpose(imp: Importer, onode) -> list:
    v = imp.get(onode, 0)
    if isinstance(v, Const):
        return [_const_reshape(imp, onode, v)]
    perm = Attributes(onode).ints("perm", [1, 0])
    if perm != [1, 0]:
        raise Problem(f"Transpose perm={perm} on an activation; only a 2-D transpose (perm [1, 0]) "
                      "feeding a Gemm with transA=1 is supported")
    return [replace(v, transposed=not v.transposed)]


def constant(imp: Importer, onode) -> list:
    t = Attributes(onode).tensor("value")
    if t is None:
        raise Problem("Constant without a 'value' tensor is not supported")
    from onnx import numpy_helper
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:   # a damaged tensor: protobuf and numpy raise many kinds
        raise Problem(f"its value tensor is unreadable ({e})") from None
    return [Const(arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64), onnx_type=t.data_type)]


STANDARD = {
    "Gemm": gemm, "MatMul": matmul, "Add": add, "BatchNormalization": batchnorm,
    "Relu": relu, "Clip": clip, "Identity": passthrough, "Flatten": passthrough,
    "Reshape": passthrough, "Squeeze": passthrough, "Unsqueeze": passthrough,
    "Dropout": passthrough, "Transpose": transpose, "Constant": constant,
    "QuantizeLinear": qdq.quantize_linear, "DequantizeLinear": qdq.dequantize_linear,
}
QONNX = {"Quant": qonnx.quant, "IntQuant": qonnx.quant, "BipolarQuant": qonnx.bipolar_quant,
         "Trunc": qonnx.trunc}


def _handler(onode):
    domain = onode.domain or ""
    if domain in ("", "ai.onnx"):
        return STANDARD.get(onode.op_type)
    return QONNX.get(onode.op_type) if domain in QONNX_DOMAINS else None


def unsupported(onode) -> str | None:
    """Why fpgaq has no lowering for this node's op at all (known without its inputs), or None."""
    if _handler(onode) is not None:
        return None
    domain = onode.domain or ""
    where = f" in domain '{domain}'" if domain not in ("", "ai.onnx") else ""
    return (f"op {onode.op_type}{where} is not supported. fpgaq supports "
            + ", ".join(sorted(STANDARD)) + " and QONNX " + ", ".join(sorted(QONNX))
            + "; replace or remove this node before export")


def lower(imp: Importer, onode) -> list:
    why = unsupported(onode)
    if why:
        raise Problem(why)
    return _handler(onode)(imp, onode)
