"""Standard ONNX QDQ: QuantizeLinear / DequantizeLinear with power-of-two scales."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
from onnx import TensorProto

from ..ir.fixed import FixedType, Rounding
from .attributes import Attributes
from .onnx_import import Importer, type_name
from .qonnx import _const_codes, clipped_range
from .values import Const, Problem

_INT_TYPES = {
    TensorProto.INT8: (True, 8), TensorProto.UINT8: (False, 8),
    TensorProto.INT16: (True, 16), TensorProto.UINT16: (False, 16),
    TensorProto.INT32: (True, 32), TensorProto.UINT32: (False, 32),
    TensorProto.INT4: (True, 4), TensorProto.UINT4: (False, 4),
}


def _axis_scale(scale: np.ndarray, rank: int, axis: int, shape_of=None) -> np.ndarray:
    """A 1-D per-axis scale reshaped to broadcast along `axis` of a rank-`rank` tensor."""
    if scale.ndim == 0 or scale.size == 1:
        return scale.reshape(())
    if rank == 0 or not -rank <= axis < rank or (shape_of is not None and shape_of[axis % rank] != scale.size):
        raise Problem(f"a per-axis scale of {scale.size} values does not fit axis {axis} of a "
                      f"tensor of shape {list(shape_of) if shape_of is not None else rank}")
    shape = [1] * rank
    shape[axis % rank] = scale.size
    return scale.reshape(shape)


def _zero_point(imp: Importer, onode, what: str):
    z = imp.get(onode, 2)
    if z is None:
        return None
    if not isinstance(z, Const):
        raise Problem(f"{what} zero-point must be a constant")
    if np.any(z.value != 0):
        raise Problem(f"zero-point {np.unique(z.value)[:4].tolist()} is not zero; fixed point needs "
                      "symmetric quantization (zero-point 0)")
    return z


def quantize_linear(imp: Importer, onode) -> list:
    attrs = Attributes(onode)
    z = _zero_point(imp, onode, "QuantizeLinear")
    elem = attrs.int("output_dtype", 0) or (z.onnx_type if z is not None else TensorProto.UINT8)
    if elem not in _INT_TYPES:
        raise Problem(f"quantizes to {type_name(elem)}; fpgaq supports integer QDQ types "
                      "(int4/uint4, int8/uint8, int16/uint16, int32/uint32)")
    signed, bits = _INT_TYPES[elem]
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    scale = imp.const(onode, 1, "scale").value
    frac, float_scale = imp.scale_split(scale, "scale")
    x = imp.get(onode, 0)
    if isinstance(x, Const):
        s = _axis_scale(scale, x.value.ndim, attrs.int("axis", 1), x.value.shape)
        codes = np.clip(np.round(x.value / s), lo, hi).astype(np.int64)
        return [Const(codes, codes, 0, elem)]
    if np.unique(frac).size != 1 or (float_scale is not None and np.unique(float_scale).size != 1):
        raise Problem("per-axis scales on an activation are not supported; use one scale per tensor")
    t = imp.tensor(onode, 0)
    f = int(np.ravel(frac)[0])
    if float_scale is not None or t.scale is not None:   # --requantize; the result is the integer
        step = 2.0 ** -f if float_scale is None else float(np.ravel(float_scale)[0])
        # codes at f fraction bits for a power-of-two step, so a DequantizeLinear reads them as usual
        return [imp.requant("quant", t, FixedType(signed, bits, f), Rounding.ROUND, lo, hi, step, None, view_frac=0)]
    lo, hi = clipped_range(t, f, Rounding.ROUND, lo, hi)
    # the ONNX result is the integer code itself: read it at 0 fraction bits
    return [imp.quantize("quant", t, FixedType(signed, bits, f), Rounding.ROUND, lo, hi, view_frac=0)]


def dequantize_linear(imp: Importer, onode) -> list:
    attrs = Attributes(onode)
    _zero_point(imp, onode, "DequantizeLinear")
    scale = imp.const(onode, 1, "scale").value
    frac, float_scale = imp.scale_split(scale, "scale")
    x = imp.get(onode, 0)
    if isinstance(x, Const):
        if x.codes is None and not np.issubdtype(x.value.dtype, np.integer):
            raise Problem("dequantizes a float constant; expected an integer initializer")
        codes = x.value.astype(np.int64)
        if float_scale is not None:   # --requantize: the codes keep their float factor
            s = np.broadcast_to(_axis_scale(float_scale, codes.ndim, attrs.int("axis", 1), codes.shape), codes.shape)
            return [Const(codes * s, codes, 0, scale=s)]
        f = _axis_scale(frac, codes.ndim, attrs.int("axis", 1), codes.shape)
        return [_const_codes(codes, np.asarray(f))]
    t = imp.tensor(onode, 0)
    if t.view_frac is None:
        raise Problem("dequantizes a float tensor; expected the output of QuantizeLinear")
    if np.unique(frac).size != 1:
        raise Problem("per-axis scales on an activation are not supported; use one scale per tensor")
    if float_scale is not None:   # --requantize: value = integer * float scale
        factor = float(np.ravel(float_scale)[0]) * (1.0 if t.scale is None else np.asarray(t.scale))
        return [replace(t, scale=factor)]
    # value = integer * scale: the same codes, read at more fraction bits
    return [replace(t, view_frac=t.view_frac + int(np.ravel(frac)[0]))]
