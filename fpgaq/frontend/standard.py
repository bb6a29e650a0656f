"""Lowering of the standard ONNX ops: one ONNX node into the IR ops that mirror it.

Each lowering takes the importer and one ONNX node, checks what it can about that node alone,
and returns the values of its outputs. Rewrites (folding biases, batch-norm, transposes of
weights) are passes, not done here.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import onnx
from onnx import numpy_helper

from ..ir.fixed import is_power_of_two
from ..ir.graph import Node
from ..ir.ops import (Activation, Add, Average, BatchNorm, Clip, Concat, Constant, Conv, Gemm, LeakyRelu, MatMul, MaxPool, Op, Reshape,
                      Softmax, Transpose)
from .attributes import Attributes
from .context import Importer
from .values import Const, Problem, Value


def ir_shape(dims: list, where: str) -> tuple[int, ...]:
    """The IR shape of an ONNX (batch, ...) shape: the batch axis dropped; a tensor with at most
    one axis longer than 1 is a vector of its features."""
    if not dims:
        raise Problem(f"{where} has no shape; give the model input a static shape such as [1, 16]")
    rest = dims[1:] if len(dims) > 1 else dims
    if len(dims) > 1 and not (dims[0] == 1 or isinstance(dims[0], str)):
        raise Problem(f"{where} has batch dimension {dims[0]}; fpgaq needs it to be 1 or symbolic")
    if any(d == 0 for d in dims if not isinstance(d, str)):
        raise Problem(f"{where} has shape {dims}, with no elements; export the model with real shapes")
    if any(isinstance(d, str) for d in rest):
        raise Problem(f"{where} has shape {dims} with a dynamic feature dimension; "
                      "export the model with a fixed number of input features")
    if sum(1 for d in rest if d != 1) <= 1:
        return (int(np.prod(rest)),)
    return tuple(int(d) for d in rest)


def _pow2(v: float, what: str) -> float:
    if not is_power_of_two(v):
        raise Problem(f"{what}={v:g} is not a power of two; fold it into the weights before export")
    return v


def gemm(imp: Importer, onode) -> list:
    a = Attributes(onode)
    x = imp.fixed_tensor(onode, 0)
    if a.flag("transA", False) != x.transposed:
        raise Problem(f"transA={a.integer('transA', 0)} but the activation is in "
                      f"{'(features, batch)' if x.transposed else '(batch, features)'} layout; "
                      "fpgaq needs Gemm to read (batch, features)")
    shape = imp.data(onode, 1).shape
    imp.const(onode, 1, "the weight (B)")
    if len(shape) != 2:
        raise Problem(f"weight B has shape {list(shape)}; expected a matrix")
    if 0 in shape:
        raise Problem(f"the weight has shape {list(shape)}, with no elements: a layer without outputs")
    alpha, beta = _pow2(a.number("alpha", 1.0), "alpha"), a.number("beta", 1.0)
    ins = [x.node, imp.data(onode, 1)]
    if imp.get(onode, 2) is not None:
        if not imp.is_const(onode, 2):
            raise Problem("the bias (C) is computed at run time; fpgaq needs a constant bias")
        _pow2(beta, "beta")
        b = ins[1].shape
        outputs = b[0 if a.flag("transB", False) else -1] if len(b) == 2 else 1
        ins.append(_like(imp, onode, 2, (outputs,), "bias shape"))
    return [Value(imp.add("dense", Gemm(alpha, beta, a.flag("transB", False)), ins))]


def matmul(imp: Importer, onode) -> list:
    if imp.is_const(onode, 0):
        raise Problem("constant @ activation is not supported; write it as activation @ weight")
    x = imp.fixed_tensor(onode, 0)
    if x.transposed:
        raise Problem("multiplies a transposed activation; fpgaq needs (batch, features) @ weight")
    imp.const(onode, 1, "the weight")
    return [Value(imp.add("dense", MatMul(), (x.node, imp.data(onode, 1))))]


def _like(imp: Importer, onode, i: int, shape: tuple[int, ...], what: str = "the added constant of shape"):
    """Constant input i, broadcast against a run-time tensor of `shape` (batch excluded): its
    leading axes that stand for the batch axis (size 1) are dropped."""
    node = imp.data(onode, i)
    have = node.shape
    extra = len(have) - len(shape)
    try:
        ok = extra <= 0 or all(d == 1 for d in have[:extra])
        np.broadcast_shapes(have[max(extra, 0):], shape)
    except ValueError:
        ok = False
    if not ok:
        raise Problem(f"{what} {list(have)} does not match {math.prod(shape)} outputs")
    if extra > 0:
        node = imp.add("reshape", Reshape(have[extra:]), (node,))
    return node


def _host(imp: Importer, v: object) -> bool:
    """A run-time tensor of the host's pre-processing: real, before any quantizer."""
    return isinstance(v, Value) and not v.const and v.node.type is None and v.node.name not in imp.quantized


def arithmetic(make: Callable[[], Op]) -> Callable[[Importer, object], list]:
    """The lowering of Add, Sub, Mul, Div (ONNX broadcasting): on constants, on the host's real
    pre-processing, or on quantized tensors (for a pass to fold into a layer)."""
    def lower(imp: Importer, onode) -> list:
        op = make()
        if imp.is_const(onode, 0) and imp.is_const(onode, 1):
            x, y = imp.data(onode, 0), imp.data(onode, 1)
            try:
                np.broadcast_shapes(x.shape, y.shape)
            except ValueError:
                raise Problem(f"{op.kind}s constants of shapes {list(x.shape)} and {list(y.shape)}, which do "
                              "not broadcast") from None
            return [Value(imp.add(op.kind, op, (x, y)))]
        t_i = 1 if imp.is_const(onode, 0) else 0
        t = imp.tensor(onode, t_i)
        other = (imp.data(onode, 1 - t_i) if not imp.is_const(onode, 1 - t_i)
                 else _like(imp, onode, 1 - t_i, t.node.shape, f"the {op.kind} constant of shape"))
        ins = (t.node, other) if t_i == 0 else (other, t.node)
        return [replace(t, node=imp.add(op.kind, op, ins))]
    return lower


def add(imp: Importer, onode) -> list:
    """Add: of a constant (a bias, a shift), on the host's pre-processing, or of two quantized
    run-time tensors (a residual connection: both aligned to the finer grid, exactly)."""
    if not (imp.is_const(onode, 0) or imp.is_const(onode, 1) or _host(imp, imp.get(onode, 0))
            or _host(imp, imp.get(onode, 1))):
        a, b = imp.fixed_tensor(onode, 0), imp.fixed_tensor(onode, 1)
        if a.node.shape != b.node.shape:
            raise Problem(f"adds tensors of shapes {list(a.node.shape)} and {list(b.node.shape)}; fpgaq adds "
                          "run-time tensors of the same shape")
        return [replace(a, node=imp.add("add", Add(), (a.node, b.node)))]
    return arithmetic(Add)(imp, onode)


def batchnorm(imp: Importer, onode) -> list:
    t = imp.fixed_tensor(onode, 0)
    eps = Attributes(onode).number("epsilon", 1e-5)
    gamma, beta, mean, var = (imp.const(onode, i, w).value.astype(np.float64)
                              for i, w in ((1, "scale"), (2, "bias"), (3, "mean"), (4, "var")))
    return [Value(imp.add("dense", BatchNorm(gamma, beta, mean, var, eps), (t.node,)))]


def elementwise(make: Callable[[Attributes], Op]) -> Callable[[Importer, object], list]:
    """The lowering of an element-wise op on a quantized tensor: `make` builds the IR op from
    the node's attributes (a new element-wise op is one line of the table)."""
    def lower(imp: Importer, onode) -> list:
        op = make(Attributes(onode))
        t = imp.fixed_tensor(onode, 0)
        return [replace(t, node=imp.add(op.kind, op, (t.node,)))]
    return lower


def hard_sigmoid(a: Attributes) -> Activation:
    alpha, beta = a.number("alpha", 0.2), a.number("beta", 0.5)
    if not alpha > 0:
        raise Problem(f"HardSigmoid with alpha {alpha} is not increasing; fpgaq tabulates increasing functions")
    return Activation("hardsigmoid", alpha, beta)


def leaky_relu(imp: Importer, onode) -> list:
    """LeakyRelu (attribute alpha) and PRelu (a constant slope input, broadcast)."""
    t = imp.fixed_tensor(onode, 0)
    if onode.op_type == "PRelu":
        slope = imp.const(onode, 1, "the slope").value
    else:
        slope = np.float32(Attributes(onode).number("alpha", 0.01))
    try:
        op = LeakyRelu.of(np.asarray(slope, dtype=np.float32), t.node.shape)
    except ValueError as e:
        raise Problem(str(e)) from None
    return [replace(t, node=imp.add(op.kind, op, (t.node,)))]


def _window(a: Attributes, shape: tuple[int, ...], kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Strides, pads (begins, then ends; auto_pad resolved) and dilations of a sliding window
    (Conv, AveragePool, MaxPool) of `kernel` over a channels-first tensor of `shape`."""
    nd = len(shape) - 1
    strides = a.integers("strides", [1] * nd) or [1] * nd
    dilations = a.integers("dilations", [1] * nd) or [1] * nd
    pads = a.integers("pads", [0] * (2 * nd)) or [0] * (2 * nd)
    auto = a.text("auto_pad", "NOTSET")
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        pads = [0] * (2 * nd)
        for i in range(min(nd, len(strides), len(dilations), len(kernel))):
            size = shape[1 + i]
            total = max((-(-size // strides[i]) - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - size, 0)
            small = total // 2
            pads[i], pads[nd + i] = (small, total - small) if auto == "SAME_UPPER" else (total - small, small)
    elif auto == "VALID":
        pads = [0] * (2 * nd)
    elif auto != "NOTSET":
        raise Problem(f"auto_pad '{auto}' is unknown; use NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    if (len(kernel) != nd or len(strides) != nd or len(dilations) != nd or len(pads) != 2 * nd
            or min(strides + dilations) < 1 or min(pads) < 0):
        raise Problem(f"kernel {kernel}, strides {strides}, dilations {dilations} or pads {pads} do not fit a "
                      f"{nd}-D window")
    if a.flag("ceil_mode", False):
        raise Problem("ceil_mode 1 is not supported; pad explicitly instead")
    return strides, pads, dilations


def _image(imp: Importer, onode, t: Value, channels: int | None = None, rank: int | None = None) -> Value:
    """Input 0 of a window op channels first as ONNX shapes it: a tensor whose unit axes the
    import read as a vector (one channel of a 1-D signal, (N, 1, L)) gets them back, from the
    inferred ONNX shape, or for a 1-D convolution from its weight's input channels."""
    if len(t.node.shape) != 1:
        return t
    dims = imp.shapes.get(onode.input[0])
    shape: tuple[int, ...] | None = None
    if dims and len(dims) >= 3 and not any(isinstance(d, str) for d in dims[1:]):
        shape = tuple(int(d) for d in dims[1:])
    elif channels and rank == 1 and t.node.size % channels == 0:
        shape = (channels, t.node.size // channels)
    if shape is None or math.prod(shape) != t.node.size:
        return t
    return replace(t, node=imp.add("image", Reshape(shape), (t.node,)))


def conv(imp: Importer, onode) -> list:
    """Conv, any rank: strides, explicit or automatic padding, dilations, groups."""
    w = imp.data(onode, 1, "the weight")
    if w.out.value is None:
        raise Problem("the weight is computed at run time; fpgaq needs a constant weight")
    nd = len(w.shape) - 2
    group = Attributes(onode).integer("group", 1)
    t = _image(imp, onode, imp.fixed_tensor(onode, 0), w.shape[1] * group if nd >= 1 else None, nd)
    if nd < 1 or len(t.node.shape) != nd + 1:
        raise Problem(f"a Conv of weight shape {list(w.shape)} on a tensor of shape {list(t.node.shape)} (batch "
                      "excluded); fpgaq takes 1-D and 2-D (any rank) convolutions, channels first")
    a = Attributes(onode)
    kernel = list(w.shape[2:])
    given = a.integers("kernel_shape", None)
    if given is not None and list(given) != kernel:
        raise Problem(f"kernel_shape {list(given)} does not match the weight's {kernel}")
    strides, pads, dilations = _window(a, t.node.shape, kernel)
    op = Conv(tuple(strides), tuple(pads), tuple(dilations), a.integer("group", 1))
    ins = (t.node, w) + ((imp.data(onode, 2, "the bias"),) if len(onode.input) > 2 and onode.input[2] else ())
    return [replace(t, node=imp.add("conv", op, ins))]


def _ones(imp: Importer, channels: int, kernel: list[int], frac: int = 0) -> Node:
    """The weight of a depthwise convolution that sums each window: 2**-frac, exact codes."""
    return imp.add("c", Constant.codes(np.ones((channels, 1, *kernel), dtype=np.int64), frac), ())


def average_pool(imp: Importer, onode) -> list:
    """AveragePool, GlobalAveragePool and ReduceMean over the spatial axes: a depthwise
    convolution: by 1 / window where that is a power of two (the average, exactly); otherwise
    by ones (the window's sum, exact), then the division, which the quantizer after it does
    exactly (lower_averages)."""
    t = _image(imp, onode, imp.fixed_tensor(onode, 0))
    shape = t.node.shape
    nd = len(shape) - 1
    a = Attributes(onode)
    if onode.op_type == "AveragePool":
        kernel = a.integers("kernel_shape", None)
        if kernel is None:
            raise Problem("AveragePool without kernel_shape")
        strides, pads, dilations = _window(a, shape, list(kernel))
        if any(pads) and not a.flag("count_include_pad", False):
            raise Problem("AveragePool over padding that does not count the pad (count_include_pad 0) divides "
                          "each border window by another number; pad explicitly (a Pad node) or set "
                          "count_include_pad 1")
    else:
        if onode.op_type == "ReduceMean":
            axes = a.integers("axes", None)
            if axes is None and len(onode.input) > 1 and onode.input[1]:
                axes = [int(v) for v in np.ravel(imp.const(onode, 1, "axes").value)]
            rank = nd + 2
            if axes is None or sorted(v % rank for v in axes) != list(range(2, rank)):
                raise Problem(f"ReduceMean over axes {axes}; fpgaq averages over all spatial axes (2 and after)")
            if not a.flag("keepdims", True):
                raise Problem("ReduceMean with keepdims 0 is not supported; keep the dimensions and Flatten after")
        kernel, strides, pads, dilations = list(shape[1:]), [1] * nd, [0] * (2 * nd), [1] * nd
    window = int(np.prod(kernel))
    conv = Conv(tuple(strides), tuple(pads), tuple(dilations), shape[0])
    if is_power_of_two(float(window)):          # weights of 1 / window: the average, exactly
        ones = _ones(imp, shape[0], kernel, window.bit_length() - 1)
        return [replace(t, node=imp.add("pool", conv, (t.node, ones)))]
    summed = imp.add("pool_sum", conv, (t.node, _ones(imp, shape[0], kernel)))
    return [replace(t, node=imp.add("pool", Average(window), (summed,)))]


def max_pool(imp: Importer, onode) -> list:
    """MaxPool and GlobalMaxPool: the largest code of each window (padding never wins)."""
    t = _image(imp, onode, imp.fixed_tensor(onode, 0))
    shape = t.node.shape
    if len(shape) < 2:
        raise Problem(f"a pooling of a tensor of shape {list(shape)}; fpgaq pools channels-first tensors")
    a = Attributes(onode)
    if onode.op_type == "GlobalMaxPool":
        kernel, strides, pads, dilations = list(shape[1:]), [1] * (len(shape) - 1), [0] * (2 * len(shape) - 2), \
            [1] * (len(shape) - 1)
    else:
        given = a.integers("kernel_shape", None)
        if given is None:
            raise Problem("MaxPool without kernel_shape")
        kernel = list(given)
        if len(onode.output) > 1 and onode.output[1]:
            raise Problem("MaxPool's Indices output is not supported")
        strides, pads, dilations = _window(a, shape, list(kernel))
    op = MaxPool(tuple(kernel), tuple(strides), tuple(pads), tuple(dilations))
    return [replace(t, node=imp.add("maxpool", op, (t.node,)))]


def concat(imp: Importer, onode) -> list:
    """Concat of quantized run-time tensors (inception-like branches) along a non-batch axis."""
    ts = [imp.fixed_tensor(onode, i) for i in range(len(onode.input))]
    rank = len(ts[0].node.shape) + 1
    axis = Attributes(onode).integer("axis", 1)
    axis = axis + rank if axis < 0 else axis
    if axis < 1 or axis >= rank:
        raise Problem(f"Concat along axis {axis} of rank-{rank} tensors; fpgaq concatenates along a non-batch axis")
    return [replace(ts[0], node=imp.add("concat", Concat(axis - 1), tuple(t.node for t in ts)))]


def pad(imp: Importer, onode) -> list:
    """Pad with zeros (constant mode) on the spatial axes: a depthwise 1x1 convolution by one
    with those pads."""
    t = _image(imp, onode, imp.fixed_tensor(onode, 0))
    shape = t.node.shape
    a = Attributes(onode)
    if a.text("mode", "constant") != "constant":
        raise Problem(f"Pad mode '{a.text('mode', 'constant')}' is not supported; use constant (zero) padding")
    pads = a.integers("pads", None)
    if pads is None and len(onode.input) > 1 and onode.input[1]:
        pads = [int(v) for v in np.ravel(imp.const(onode, 1, "pads").value)]
    if len(onode.input) > 2 and onode.input[2] and np.any(imp.const(onode, 2, "constant_value").value != 0):
        raise Problem("Pad with a value other than zero is not supported")
    if len(onode.input) > 3 and onode.input[3]:
        raise Problem("Pad with axes is not supported; give pads for every axis")
    rank = len(shape) + 1
    if pads is None or len(pads) != 2 * rank or any(pads[i] or pads[rank + i] for i in (0, 1)):
        raise Problem(f"pads {pads}: fpgaq pads the spatial axes only (not the batch or the channels)")
    if min(pads) < 0:
        raise Problem("negative pads (cropping) are not supported")
    spatial = pads[2:rank] + pads[rank + 2:]
    nd = rank - 2
    conv = Conv((1,) * nd, tuple(spatial), (1,) * nd, shape[0])
    return [replace(t, node=imp.add("pad", conv, (t.node, _ones(imp, shape[0], [1] * nd))))]


def softmax(imp: Importer, onode) -> list:
    """Softmax over the last axis (opset 13's default; before 13, axis 1 of a vector)."""
    t = imp.fixed_tensor(onode, 0)
    rank = len(t.node.shape) + 1                      # with the batch axis
    before13 = imp.opset.get("ai.onnx", 13) < 13
    axis = Attributes(onode).integer("axis", 1 if before13 else -1)
    axis = axis + rank if axis < 0 else axis
    if axis != rank - 1 and not (before13 and axis == 1):
        raise Problem(f"Softmax over axis {axis} of a rank-{rank} tensor; fpgaq computes Softmax over the "
                      "last axis (Transpose the model so the classes come last)")
    if before13 and axis != rank - 1:
        raise Problem(f"Softmax of opset {imp.opset['ai.onnx']} over all of a rank-{rank} tensor; Flatten "
                      "it first or export with opset 13 or later")
    return [replace(t, node=imp.add("softmax", Softmax(), (t.node,)))]


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
    return a.optional_number(name)


def _like_input(x, node) -> Value:
    """The Value of `node`, in the layout of the run-time (or constant) input x."""
    return replace(x, node=node) if isinstance(x, Value) else Value(node)


def clip(imp: Importer, onode) -> list:
    a = Attributes(onode)
    lo_v = _clip_bound(imp, onode, 1, a, "min")
    hi_v = _clip_bound(imp, onode, 2, a, "max")
    x = imp.get(onode, 0)
    const = imp.is_const(onode, 0)
    if lo_v is None and hi_v is None and const:
        return [x]
    node = imp.data(onode, 0)
    op = Clip(lo_v, hi_v)
    if node.type is None and not const:    # a real tensor: the model input (its quantizer takes the
        lo_r, hi_r = -math.inf, math.inf   # bounds), or a float-scaled sum not folded yet (--requantize)
        for n in _clip_chain(imp, node):
            lo_r, hi_r = max(lo_r, n.lo if n.lo is not None else -math.inf), min(hi_r, n.hi if n.hi is not None else math.inf)
        lo_r, hi_r = max(lo_r, -math.inf if lo_v is None else lo_v), min(hi_r, math.inf if hi_v is None else hi_v)
        if lo_r > hi_r:
            raise Problem(f"min {lo_r:g} is above max {hi_r:g}")
        return [_like_input(x, imp.add("input_clip" if node.name not in imp.quantized else "clip", op, (node,)))]
    if node.type is None:                  # a real constant: clipped as ONNX does
        return [_like_input(x, imp.add("clip", op, (node,)))]
    try:
        lo_c, hi_c = op.raw_code_bounds(node.out)
    except ValueError as e:
        raise Problem(str(e)) from None
    iv = node.interval
    assert iv is not None
    for v, c in ((lo_v, lo_c), (hi_v, hi_c)):
        if v is not None and (c < iv.lo - (1 << 64) or c > iv.hi + (1 << 64)):
            raise Problem(f"the bound {v:g} lies far outside the values it clips; remove the Clip or fix the bound")
    if const:                              # constants (QCDQ weights) clip as ONNX and numpy do
        return [_like_input(x, imp.add("clip", op, (node,)))]
    if lo_c > hi_c:
        raise Problem(f"min {lo_v:g} is above max {hi_v:g}")
    if lo_c <= iv.lo and hi_c >= iv.hi:
        return [x]  # the bounds never bite: the identity
    return [_like_input(x, imp.add("clip", op, (node,)))]


def _clip_chain(imp: Importer, node) -> list:
    """The Clips on a real run-time tensor right before `node` (itself included), whose ranges
    one quantizer will apply together."""
    chain = []
    while isinstance(node.op, Clip) and node.type is None:
        chain.append(node.op)
        node = next(n for n in imp.nodes if n.name == node.inputs[0])
    return chain


def passthrough(imp: Importer, onode) -> list:
    """Identity, Dropout, and Reshape, Flatten, Squeeze, Unsqueeze of an activation: a reshape
    node where the shape really changes (an N-d tensor flattened), else the tensor itself."""
    v = imp.get(onode, 0)
    if imp.is_const(onode, 0):
        return [_const_reshape(imp, onode)]
    assert isinstance(v, Value)
    if onode.op_type in ("Identity", "Dropout"):
        return [v]
    if v.transposed:
        raise Problem("reshapes a transposed activation; transpose it back first")
    dims = imp.shapes.get(onode.output[0]) or _reshaped(imp, onode, v)
    if not dims:
        if len(v.node.shape) == 1:
            return [v]      # a vector stays one, whatever unit axes are added or dropped
        raise Problem(f"cannot tell the shape of its output from a tensor of shape {list(v.node.shape)}; "
                      "export the model with static shapes")
    shape = ir_shape(dims, f"its output '{onode.output[0]}'")
    if math.prod(shape) != v.node.size:
        raise Problem(f"changes {v.node.size} features into shape {dims}")
    if shape == v.node.shape:
        return [v]
    return [replace(v, node=imp.add("reshape", Reshape(shape), (v.node,)))]


def _reshaped(imp: Importer, onode, v: Value) -> list | None:
    """The ONNX shape of the reshape's output (batch 1), computed from its input's; None if
    that cannot be known."""
    have = imp.shapes.get(onode.input[0]) or [1, *v.node.shape]
    have = [1 if isinstance(d, str) else int(d) for d in have]
    a = Attributes(onode)
    probe = np.empty(have, dtype=np.int8)
    try:
        if onode.op_type == "Reshape":
            want = imp.const(onode, 1, "shape").value.astype(np.int64)
            target = [have[i] if s == 0 else int(s) for i, s in enumerate(want)]
            return list(probe.reshape(target).shape)
        if onode.op_type == "Flatten":
            ax = a.integer("axis", 1)
            return [int(np.prod(have[:ax])), int(np.prod(have[ax:]))]
        axes = a.integers("axes", None)
        if axes is None and len(onode.input) > 1:
            axes = imp.const(onode, 1, "axes").value.astype(int).tolist()
        if onode.op_type == "Squeeze":
            return list(np.squeeze(probe, axis=tuple(axes) if axes else None).shape)
        return list(np.expand_dims(probe, tuple(axes or ())).shape)
    except (ValueError, TypeError, IndexError, np.exceptions.AxisError):
        return None


def _const_reshape(imp: Importer, onode) -> Value | Const:
    op = onode.op_type
    a = Attributes(onode)
    v = imp.get(onode, 0)
    if op in ("Identity", "Dropout"):
        assert v is not None
        return v
    node = imp.data(onode, 0)
    shape = node.shape
    new: tuple[int, ...]
    try:
        if op == "Reshape":
            want = imp.const(onode, 1, "shape").value.astype(np.int64)
            target = [shape[i] if s == 0 else int(s) for i, s in enumerate(want)]
            new = np.empty(shape, dtype=np.int8).reshape(target).shape
        elif op == "Flatten":
            ax = a.integer("axis", 1)
            new = (int(np.prod(shape[:ax])), int(np.prod(shape[ax:])))
        elif op in ("Squeeze", "Unsqueeze"):
            axes = a.integers("axes", None)
            if axes is None and len(onode.input) > 1:
                axes = imp.const(onode, 1, "axes").value.astype(int).tolist()
            probe = np.empty(shape, dtype=np.int8)
            new = (np.squeeze(probe, axis=tuple(axes) if axes else None) if op == "Squeeze"
                   else np.expand_dims(probe, tuple(axes or ()))).shape
        else:
            raise Problem(f"cannot evaluate {op} on a constant")
    except (ValueError, TypeError, IndexError, np.exceptions.AxisError) as e:
        raise Problem(f"cannot apply {op} to the constant of shape {list(shape)}: {e}") from None
    return Value(imp.add("reshape", Reshape(tuple(int(d) for d in new)), (node,)))


def transpose(imp: Importer, onode) -> list:
    v = imp.get(onode, 0)
    perm = Attributes(onode).integers("perm", None)
    if imp.is_const(onode, 0):
        node = imp.data(onode, 0)
        perm = list(reversed(range(len(node.shape)))) if perm is None else perm
        if sorted(perm) != list(range(len(node.shape))):
            raise Problem(f"cannot apply Transpose to the constant of shape {list(node.shape)}: "
                          f"perm {perm} does not fit it")
        return [Value(imp.add("transpose", Transpose(tuple(perm)), (node,)))]
    assert isinstance(v, Value)
    rank = len(v.node.shape) + 1
    perm = list(reversed(range(rank))) if perm is None else perm
    if rank > 2 and sorted(perm) == list(range(rank)) and perm[0] == 0:
        # the batch axis stays first: a permutation of each input's values (channels last, ...)
        return [replace(v, node=imp.add("transpose", Transpose(tuple(p - 1 for p in perm[1:])), (v.node,)))]
    if perm != [1, 0]:
        raise Problem(f"Transpose perm={perm} on an activation; fpgaq takes a permutation that keeps the batch "
                      "axis first, or a 2-D transpose (perm [1, 0]) feeding a Gemm with transA=1")
    return [replace(v, transposed=not v.transposed)]


def constant(imp: Importer, onode) -> list:
    t = Attributes(onode).tensor("value")
    if t is None:
        raise Problem("Constant without a 'value' tensor is not supported")
    try:
        arr = numpy_helper.to_array(t)
    except Exception as e:   # a damaged tensor: protobuf and numpy raise many kinds
        raise Problem(f"its value tensor is unreadable ({e})") from None
    return [Const(arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64), t.data_type)]


def shape(imp: Importer, onode) -> list:
    """Shape and Size of a tensor whose shape is static: constants (batch 1)."""
    v = imp.get(onode, 0)
    if v is None:
        raise Problem("its input is missing")
    if isinstance(v, Const):
        dims = list(v.value.shape)
    else:
        dims = imp.shapes.get(onode.input[0]) or [1, *v.node.shape]
        dims = [1 if k == 0 and isinstance(d, str) else d for k, d in enumerate(dims)]
        if any(isinstance(d, str) for d in dims):
            raise Problem(f"reads the shape {dims} of '{onode.input[0]}', which is not static; export the "
                          "model with static shapes")
    if onode.op_type == "Size":
        return [Const(np.array(int(np.prod(dims)), dtype=np.int64), onnx.TensorProto.INT64)]
    a = Attributes(onode)
    start, end = a.integer("start", 0), a.optional_number("end")
    picked = dims[start:None if end is None else int(end)]
    return [Const(np.array(picked, dtype=np.int64), onnx.TensorProto.INT64)]
