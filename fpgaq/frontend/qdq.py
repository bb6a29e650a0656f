"""Standard ONNX QDQ: QuantizeLinear / DequantizeLinear, lowered to the IR's quantizers and
scales. A QuantizeLinear's result is the integer code itself, so its scale comes back as a
Scale that a pass cancels against the DequantizeLinear that follows."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from onnx import TensorProto

from ..ir.fixed import FixedType, Rounding
from ..ir.ops import Quant, Scale
from ..ir.tensor import Factor
from .attributes import Attributes
from .context import Importer, clipped_input, type_name
from .values import Const, Problem, Value

_INT_TYPES: dict[int, tuple[bool, int]] = {
    TensorProto.INT8: (True, 8), TensorProto.UINT8: (False, 8),
    TensorProto.INT16: (True, 16), TensorProto.UINT16: (False, 16),
    TensorProto.INT32: (True, 32), TensorProto.UINT32: (False, 32),
    TensorProto.INT4: (True, 4), TensorProto.UINT4: (False, 4),
}


def _axis_scale(scale: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """A 1-D per-axis scale reshaped to broadcast along `axis` of a tensor of `shape`."""
    if scale.ndim == 0 or scale.size == 1:
        return scale.reshape(())
    rank = len(shape)
    if rank == 0 or not -rank <= axis < rank or shape[axis % rank] != scale.size:
        raise Problem(f"a per-axis scale of {scale.size} values does not fit axis {axis} of a "
                      f"tensor of shape {list(shape)}")
    out = [1] * rank
    out[axis % rank] = scale.size
    return scale.reshape(out)


def _zero_point(imp: Importer, onode, what: str) -> Const | None:
    if imp.get(onode, 2) is None:
        return None
    if not imp.is_const(onode, 2):
        raise Problem(f"{what} zero-point must be a constant")
    z = imp.const(onode, 2, "zero-point")
    if np.any(z.value != 0):
        raise Problem(f"zero-point {np.unique(z.value)[:4].tolist()} is not zero; fixed point needs "
                      "symmetric quantization (zero-point 0)")
    return z


def quantize_linear(imp: Importer, onode) -> list:
    attrs = Attributes(onode)
    z = _zero_point(imp, onode, "QuantizeLinear")
    elem = attrs.integer("output_dtype", 0) or (z.onnx_type if z is not None else TensorProto.UINT8)
    if elem not in _INT_TYPES:
        raise Problem(f"quantizes to {type_name(elem)}; fpgaq supports integer QDQ types "
                      "(int4/uint4, int8/uint8, int16/uint16, int32/uint32)")
    signed, bits = _INT_TYPES[elem]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    scale = imp.const(onode, 1, "scale").value
    frac, float_scale = imp.scale_split(scale, "scale")
    if imp.is_const(onode, 0):
        shape = imp.data(onode, 0).shape
        axis = attrs.integer("axis", 1)
        s = _axis_scale(np.asarray(scale, dtype=np.float64), shape, axis)
        # the code itself is the result: quantize with the scale as the step, at 0 fraction bits
        step = Factor.of(s)
        return [Value(imp.add("quant", Quant(FixedType(signed, bits, 0), Rounding.ROUND, lo, hi, step),
                              (imp.data(onode, 0),)))]
    if np.unique(frac).size != 1 or (float_scale is not None and np.unique(float_scale).size != 1):
        raise Problem("per-axis scales on an activation are not supported; use one scale per tensor")
    t = imp.tensor(onode, 0)
    f = int(np.ravel(frac)[0])
    if float_scale is not None:   # --requantize: the host or a requantiser divides by the step
        if clipped_input(imp, t.node):
            raise Problem("a Clip before a float-scale input quantizer is not supported")
        step = Factor.of(float(np.ravel(float_scale)[0]))
        return [replace(t, node=imp.add("quant", Quant(FixedType(signed, bits, 0), Rounding.ROUND, lo, hi, step),
                                        (t.node,)))]
    q = imp.add("quant", Quant(FixedType(signed, bits, f), Rounding.ROUND, lo, hi), (t.node,))
    # the ONNX result is the integer code itself: the same codes at 0 fraction bits
    return [replace(t, node=imp.add("scale", Scale(Factor.of(2.0 ** f)), (q,)))]


def dequantize_linear(imp: Importer, onode) -> list:
    attrs = Attributes(onode)
    _zero_point(imp, onode, "DequantizeLinear")
    scale = imp.const(onode, 1, "scale").value
    frac, float_scale = imp.scale_split(scale, "scale")
    if imp.is_const(onode, 0):
        node = imp.data(onode, 0)
        if node.type is None:
            raise Problem("dequantizes a float constant; expected an integer initializer")
        s = _axis_scale(np.asarray(scale, dtype=np.float64), node.shape, attrs.integer("axis", 1))
        return [Value(imp.add("scale", Scale(Factor.of(s)), (node,)))]
    t = imp.tensor(onode, 0)
    if t.node.type is None:
        raise Problem("dequantizes a float tensor; expected the output of QuantizeLinear")
    if np.unique(frac).size != 1 or (float_scale is not None and np.unique(float_scale).size != 1):
        raise Problem("per-axis scales on an activation are not supported; use one scale per tensor")
    factor = float(np.ravel(scale)[0]) if float_scale is not None else 2.0 ** -int(np.ravel(frac)[0])
    return [replace(t, node=imp.add("scale", Scale(Factor.of(factor)), (t.node,)))]



