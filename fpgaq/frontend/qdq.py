"""Standard ONNX QDQ: QuantizeLinear / DequantizeLinear, lowered to the IR's quantizers and
scales. A QuantizeLinear's result is the integer code itself, so its scale comes back as a
Scale that a pass cancels against the DequantizeLinear that follows.

Zero-points are integer offsets, folded exactly at import. ONNX computes q = sat(round(x / s) + z)
and DequantizeLinear (q - z) * s, so the IR holds the centred code c = q - z =
clamp(round(x / s), qmin - z, qmax - z): the zero-point only moves the quantizer's saturation
bounds (an asymmetric uint8 activation with z = 132 is a 9-bit signed code in [-132, 123]; an
int8 one with z = -128 after a dropped ReLU is ufixed<8,8>). A DequantizeLinear must use the
zero-point of the QuantizeLinear it reads (checked); a constant's codes (weights, biases) have
their zero-points, per axis too, subtracted here."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from onnx import TensorProto

from ..ir.fixed import FixedType, Rounding, compact_codes
from ..ir.graph import Node
from ..ir.interval import Interval
from ..ir.ops import Clip, Constant, Quant, Reshape, Scale, Transpose
from ..ir.tensor import Factor
from .attributes import Attributes
from .context import FLOAT_TYPES, Importer, clipped_input, type_name
from .values import Const, Problem, Value

_INT_TYPES: dict[int, tuple[bool, int]] = {
    TensorProto.INT8: (True, 8), TensorProto.UINT8: (False, 8),
    TensorProto.INT16: (True, 16), TensorProto.UINT16: (False, 16),
    TensorProto.INT32: (True, 32), TensorProto.UINT32: (False, 32),
    TensorProto.INT4: (True, 4), TensorProto.UINT4: (False, 4),
}


def _axis_scale(scale: np.ndarray, shape: tuple[int, ...], axis: int, what: str = "scale") -> np.ndarray:
    """A 1-D per-axis scale (or zero-point) reshaped to broadcast along `axis` of a tensor of `shape`."""
    if scale.ndim == 0 or scale.size == 1:
        return scale.reshape(())
    rank = len(shape)
    if rank == 0 or not -rank <= axis < rank or shape[axis % rank] != scale.size:
        raise Problem(f"a per-axis {what} of {scale.size} values does not fit axis {axis} of a "
                      f"tensor of shape {list(shape)}")
    out = [1] * rank
    out[axis % rank] = scale.size
    return scale.reshape(out)


def _zero_point(imp: Importer, onode, what: str) -> tuple[Const | None, np.ndarray]:
    """The zero-point input (None when absent) and its values as integers (0 when absent)."""
    if imp.get(onode, 2) is None:
        return None, np.zeros((), dtype=np.int64)
    if not imp.is_const(onode, 2):
        raise Problem(f"{what} zero-point must be a constant")
    z = imp.const(onode, 2, "zero-point")
    v = np.asarray(z.value)
    if not np.all(np.isfinite(v)) or np.any(v != np.rint(v)):
        raise Problem(f"zero-point {show_values(v)} is not an integer")
    return z, v.astype(np.int64)


def show_values(v: np.ndarray) -> str:
    """A zero-point for messages: its one value, or its distinct values."""
    vals = np.unique(v)
    if vals.size == 1:
        return str(vals[0])
    return str(vals[:4].tolist())[:-1] + (", ...]" if vals.size > 4 else "]")


def _one_zero_point(z: np.ndarray) -> int:
    """The zero-point of a run-time tensor: one value for the whole tensor."""
    vals = np.unique(z)
    if vals.size > 1:
        raise Problem(f"per-axis zero-points on an activation ({show_values(z)}) are not supported; "
                      "use one zero-point per tensor")
    return int(vals[0]) if vals.size else 0


def _source(imp: Importer, node: Node) -> tuple[Node, list[Node]] | None:
    """(the QuantizeLinear result whose codes `node` holds, the nodes on the way), looking back
    through reshapes, transposes and Clips (QCDQ); None when the codes come from elsewhere."""
    path = []
    while node.name not in imp.zero_points:
        if not isinstance(node.op, (Clip, Reshape, Transpose)) or len(node.inputs) != 1:
            return None
        path.append(node)
        node = imp.by_name[node.inputs[0]]
    return node, path


def _check_zero_point(imp: Importer, node: Node, z: np.ndarray) -> bool:
    """Whether `node` holds the centred codes of a QuantizeLinear (after checking that it has
    the zero-point z of this DequantizeLinear); False for raw integer codes."""
    found = _source(imp, node)
    if found is None:
        return False
    q, path = found
    zq = imp.zero_points[q.name]
    if any(isinstance(p.op, (Reshape, Transpose)) for p in path) and np.unique(zq).size > 1:
        raise Problem(f"reads the reshaped or transposed codes of a QuantizeLinear with per-axis zero-points "
                      f"({q.origin}); fpgaq supports per-axis zero-points only where the two meet directly")
    try:
        shape = np.broadcast_shapes(np.shape(z), zq.shape)
    except ValueError:
        shape = None
    if shape is None or not np.array_equal(np.broadcast_to(z, shape), np.broadcast_to(zq, shape)):
        raise Problem(f"zero-point {show_values(z)} differs from the zero-point {show_values(zq)} of the "
                      f"QuantizeLinear it reads ({q.origin}); give both the same zero-point")
    clip = next((p for p in path if isinstance(p.op, Clip)), None)
    if clip is not None and np.any(zq != 0):
        raise Problem(f"reads a Clip ({clip.origin}) of a QuantizeLinear with zero-point {show_values(zq)}; "
                      "fpgaq supports Clip between QuantizeLinear and DequantizeLinear only with zero-point 0")
    return True


def _centred(imp: Importer, onode, z: np.ndarray) -> Node:
    """A constant integer input (raw codes q, as the initializer holds them) as codes q - z."""
    v = imp.get(onode, 0)
    if isinstance(v, Const):
        if v.onnx_type in FLOAT_TYPES or v.value.dtype.kind == "f":
            raise Problem("dequantizes a float constant; expected an integer initializer")
        raw = v.value
    else:
        assert isinstance(v, Value)
        t = v.node.out
        assert t.value is not None
        if t.type is None:
            raise Problem("dequantizes a float constant; expected an integer initializer")
        if t.factor is not None or t.type.frac != 0:
            raise Problem("a zero-point on a constant that is not integer codes is not supported")
        raw = t.value
    codes = np.asarray(raw).astype(object) - np.broadcast_to(z, np.shape(raw)).astype(object)
    return imp.add("c", Constant.codes(compact_codes(codes), 0), ())


def _quantize_constant(imp: Importer, onode, scale: np.ndarray, signed: bool, bits: int,
                       z: np.ndarray) -> Node:
    """A QuantizeLinear of a constant (QCDQ weights): its centred codes."""
    attrs = Attributes(onode)
    qlo, qhi = _code_range(signed, bits)
    shape = _const_shape(imp, onode)
    axis = attrs.integer("axis", 1)
    s = _axis_scale(np.asarray(scale, dtype=np.float64), shape, axis)
    zz = _axis_scale(z, shape, axis, "zero-point")
    if np.unique(zz).size == 1:
        zs = int(np.ravel(zz)[0])
        lo, hi = qlo - zs, qhi - zs
        # the code itself is the result: quantize with the scale as the step, at 0 fraction bits
        node = imp.add("quant", Quant(FixedType.holding(Interval(lo, hi), 0), Rounding.ROUND, lo, hi,
                                      Factor.of(s)), (imp.data(onode, 0),))
    else:
        # per-axis zero-points: per-axis saturation bounds, which a Quant does not hold; the
        # codes computed here as ONNX (and Quant) does: x / s in float32, half to even, clamped
        x = imp.const(onode, 0, "the data input").value.astype(np.float32)
        codes = np.rint((x / np.broadcast_to(s, x.shape).astype(np.float32)).astype(np.float64))
        codes = np.clip(codes, qlo - zz, qhi - zz).astype(np.int64)
        node = imp.add("c_quant", Constant.codes(codes, 0), ())
    imp.zero_points[node.name] = np.asarray(zz, dtype=np.int64)
    return node


def _const_shape(imp: Importer, onode) -> tuple[int, ...]:
    """The shape of constant input 0, without making it an IR node."""
    v = imp.get(onode, 0)
    assert v is not None
    return tuple(v.value.shape) if isinstance(v, Const) else v.node.shape


def _code_range(signed: bool, bits: int) -> tuple[int, int]:
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def quantize_linear(imp: Importer, onode) -> list:
    attrs = Attributes(onode)
    zc, z = _zero_point(imp, onode, "QuantizeLinear")
    elem = attrs.integer("output_dtype", 0) or (zc.onnx_type if zc is not None else TensorProto.UINT8)
    if elem not in _INT_TYPES:
        raise Problem(f"quantizes to {type_name(elem)}; fpgaq supports integer QDQ types "
                      "(int4/uint4, int8/uint8, int16/uint16, int32/uint32)")
    signed, bits = _INT_TYPES[elem]
    scale = imp.const(onode, 1, "scale").value
    frac, float_scale = imp.scale_split(scale, "scale")
    if imp.is_const(onode, 0):
        return [Value(_quantize_constant(imp, onode, scale, signed, bits, z))]
    if np.unique(frac).size != 1 or (float_scale is not None and np.unique(float_scale).size != 1):
        raise Problem("per-axis scales on an activation are not supported; use one scale per tensor")
    zs = _one_zero_point(z)
    if zs != 0 and onode.output[0] in imp.graph_outputs:
        raise Problem(f"the graph output '{onode.output[0]}' is the integer result of a QuantizeLinear with "
                      f"zero-point {zs}; end the model with its DequantizeLinear")
    # The centred code q - z, in the narrowest type holding [qmin - z, qmax - z]. On the model
    # input this is what the firmware receives: the host (the emulator's input quantizer, the
    # C-simulation and RTL test benches, which take their input codes from it) quantizes and
    # subtracts z; the firmware never sees the raw q.
    qlo, qhi = _code_range(signed, bits)
    lo, hi = qlo - zs, qhi - zs
    t = imp.tensor(onode, 0)
    f = int(np.ravel(frac)[0])
    if float_scale is not None:   # --requantize: the host or a requantiser divides by the step
        if clipped_input(imp, t.node):
            raise Problem("a Clip before a float-scale input quantizer is not supported")
        step = Factor.of(float(np.ravel(float_scale)[0]))
        node = imp.add("quant", Quant(FixedType.holding(Interval(lo, hi), 0), Rounding.ROUND, lo, hi, step),
                       (t.node,))
    else:
        q = imp.add("quant", Quant(FixedType.holding(Interval(lo, hi), f), Rounding.ROUND, lo, hi), (t.node,))
        # the ONNX result is the integer code itself: the same codes at 0 fraction bits
        node = imp.add("scale", Scale(Factor.of(2.0 ** f)), (q,))
    imp.zero_points[node.name] = np.array(zs, dtype=np.int64)
    return [replace(t, node=node)]


def dequantize_linear(imp: Importer, onode) -> list:
    attrs = Attributes(onode)
    _, z = _zero_point(imp, onode, "DequantizeLinear")
    scale = imp.const(onode, 1, "scale").value
    frac, float_scale = imp.scale_split(scale, "scale")
    if imp.is_const(onode, 0):
        v = imp.get(onode, 0)
        shape = _const_shape(imp, onode)
        axis = attrs.integer("axis", 1)
        s = _axis_scale(np.asarray(scale, dtype=np.float64), shape, axis)
        zz = _axis_scale(z, shape, axis, "zero-point")
        if isinstance(v, Value) and _check_zero_point(imp, v.node, zz):
            node = v.node                       # a QuantizeLinear's codes: centred already
        elif np.any(zz != 0):
            node = _centred(imp, onode, zz)     # raw codes of an integer initializer: q - z
        else:
            node = imp.data(onode, 0)
        if node.type is None:
            raise Problem("dequantizes a float constant; expected an integer initializer")
        return [Value(imp.add("scale", Scale(Factor.of(s)), (node,)))]
    t = imp.tensor(onode, 0)
    if t.node.type is None:
        raise Problem("dequantizes a float tensor; expected the output of QuantizeLinear")
    if np.unique(frac).size != 1 or (float_scale is not None and np.unique(float_scale).size != 1):
        raise Problem("per-axis scales on an activation are not supported; use one scale per tensor")
    zs = _one_zero_point(z)
    if not _check_zero_point(imp, t.node, np.array(zs)) and zs != 0:
        raise Problem(f"has zero-point {zs} but reads '{onode.input[0]}', which is not the result of a "
                      "QuantizeLinear; fpgaq folds a zero-point only between a QuantizeLinear and its "
                      "DequantizeLinear")
    factor = float(np.ravel(scale)[0]) if float_scale is not None else 2.0 ** -int(np.ravel(frac)[0])
    return [replace(t, node=imp.add("scale", Scale(Factor.of(factor)), (t.node,)))]
