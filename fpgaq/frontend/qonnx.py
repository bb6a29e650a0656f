"""QONNX quantizers: Quant / IntQuant, BipolarQuant, Trunc."""
from __future__ import annotations

import math

import numpy as np

from ..ir.fixed import FixedType, Rounding, round_real, shift_round
from ..ir.interval import Interval
from ..ir.ops import Bipolar
from .attributes import Attributes
from .onnx_import import Importer, power_of_two_frac
from .values import Const, Problem, Tensor

MAX_BITS = 64




def _rounding(attrs: Attributes, default: str) -> Rounding:
    text = attrs.str("rounding_mode", default)
    try:
        return Rounding.parse(text)
    except ValueError:
        raise Problem(f"rounding_mode '{text}' is unknown; use one of "
                      + ", ".join(r.value for r in Rounding)) from None


def _bitwidth(imp: Importer, onode, i: int, what: str = "bitwidth") -> int:
    bw = imp.scalar(onode, i, what)
    if not math.isfinite(bw) or bw != int(bw) or not 1 <= bw <= MAX_BITS:
        raise Problem(f"{what} {bw:g} is not a whole number of bits from 1 to {MAX_BITS}")
    return int(bw)


def _no_zero_point(imp: Importer, onode, i: int) -> None:
    z = imp.const(onode, i, "zero-point").value
    if np.any(z != 0):
        raise Problem(f"zero-point {np.unique(z)[:4].tolist()} is not zero; fixed point needs a "
                      "zero-point of 0 (Brevitas: use symmetric quantizers, or fold the offset into the bias)")


def int_range(signed: bool, narrow: bool, bits: int) -> tuple[int, int]:
    """QONNX's min_int / max_int."""
    if signed:
        return -(1 << (bits - 1)) + (1 if narrow else 0), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - (2 if narrow else 1)


def quant(imp: Importer, onode) -> list:
    a = Attributes(onode)
    signed, narrow = a.flag("signed", True), a.flag("narrow", False)
    rounding = _rounding(a, "ROUND")
    bits = _bitwidth(imp, onode, 3)
    _no_zero_point(imp, onode, 2)
    scale = imp.const(onode, 1, "scale").value
    frac, float_scale = imp.scale_split(scale, "scale")
    x = imp.get(onode, 0)
    if signed and bits == 1:
        # QONNX executes a 1-bit signed quantizer as bipolar (+-scale)
        if float_scale is not None:
            raise Problem("a bipolar quantizer needs a power-of-two scale")
        return _bipolar(imp, onode, x, scale, frac)
    lo, hi = int_range(signed, narrow, bits)
    if isinstance(x, Const):
        if not np.all(np.isfinite(x.value)):
            raise Problem("the quantized constant holds NaN or Inf; export the model again with finite weights")
        try:
            codes = np.clip(round_real(x.value / scale, rounding), lo, hi).astype(np.int64)
            if float_scale is not None:
                return [Const(codes * float_scale, codes, 0, scale=np.broadcast_to(float_scale, codes.shape))]
            return [_const_codes(codes, frac)]
        except ValueError:
            raise Problem(f"scale of shape {list(np.shape(scale))} does not broadcast to the quantized "
                          f"constant of shape {list(x.value.shape)}") from None
    if np.unique(frac).size != 1 or (float_scale is not None and np.unique(float_scale).size != 1):
        raise Problem("per-channel scales on an activation are not supported; use one scale per tensor")
    f = int(frac.ravel()[0])
    t = imp.tensor(onode, 0)
    if float_scale is not None or t.scale is not None:
        out_scale = None if float_scale is None else float(float_scale.ravel()[0])
        step = 2.0 ** -f * (1.0 if out_scale is None else out_scale)
        return [imp.requant("requant", t, FixedType(signed, bits, f), rounding, lo, hi, step, out_scale)]
    lo, hi = clipped_range(t, f, rounding, lo, hi)
    return [imp.quantize("quant", t, FixedType(signed, bits, f), rounding, lo, hi)]


def clipped_range(t: Tensor, frac: int, rounding: Rounding, lo: int, hi: int) -> tuple[int, int]:
    """The codes [lo, hi] of a quantizer narrowed by a Clip on its real input (t.bounds):
    rounding is monotone, so clipping to [a, b] and then rounding is rounding and then
    clamping to the codes of a and b."""
    a, b = (min(max(int(round_real(np.ldexp(v, frac), rounding)), lo), hi) if math.isfinite(v) else None
            for v in t.bounds)
    return lo if a is None else a, hi if b is None else b


def _const_codes(codes: np.ndarray, frac: np.ndarray) -> Const:
    """Codes with per-element fraction bits, brought to one (the largest) exactly."""
    frac = np.broadcast_to(frac, codes.shape) if np.ndim(frac) else np.full(codes.shape, int(frac))
    top = int(frac.max()) if codes.size else 0
    aligned = codes * (np.int64(1) << (top - frac).astype(np.int64))
    return Const(np.ldexp(aligned.astype(np.float64), -top), aligned.astype(np.int64), top)


def _bipolar(imp, onode, x, scale, frac) -> list:
    if np.unique(frac).size != 1:
        raise Problem("per-channel scales on a bipolar quantizer are not supported")
    f = int(np.ravel(frac)[0])
    if isinstance(x, Const):
        codes = np.where(x.value >= 0, 1, -1).astype(np.int64)
        return [_const_codes(codes, np.asarray(f))]
    t = imp.tensor(onode, 0)
    if any(map(math.isfinite, t.bounds)):
        raise Problem("reads a clipped model input; a Clip before a bipolar quantizer is not supported, remove it")
    node = imp.add("bipolar", Bipolar(f), (t.node,))
    return [Tensor(node, f)]


def bipolar_quant(imp: Importer, onode) -> list:
    scale = imp.const(onode, 1, "scale").value
    return _bipolar(imp, onode, imp.get(onode, 0), scale, power_of_two_frac(scale, "scale"))


def trunc(imp: Importer, onode) -> list:
    """Trunc: round x to the grid of `scale` (half to even), drop low bits with rounding_mode.

    Version 1, 5 inputs (x, scale, zeropt, in_bits, out_bits): the result keeps `scale`, unclamped.
    Version 2, 6 inputs (x, scale, zeropt, in_bits, out_scale, out_bits): the result has `out_scale`
    and is clamped to out_bits (attributes signed, narrow).
    """
    a = Attributes(onode)
    rounding = _rounding(a, "FLOOR")
    t = imp.fixed_tensor(onode, 0)
    _no_zero_point(imp, onode, 2)
    f_in = int(power_of_two_frac(imp.scalar(onode, 1, "scale"), "scale"))
    in_bits = _bitwidth(imp, onode, 3, "input bit width")
    # QONNX picks the Trunc version from the domain's opset version, not from the inputs
    v2 = imp.opset.get(onode.domain, 1) >= 2
    if len(onode.input) != (6 if v2 else 5):
        raise Problem(f"has {len(onode.input)} inputs but opset {imp.opset.get(onode.domain, 1)} of "
                      f"'{onode.domain}' defines Trunc with {6 if v2 else 5}; set the domain's opset "
                      "version to 2 for the 6-input form, 1 for the 5-input form")
    out_bits = _bitwidth(imp, onode, 5 if v2 else 4, "output bit width")
    if t.view_frac > f_in:  # onto the grid of `scale`, as QONNX's np.round does
        iv = t.node.interval
        wide = FixedType.holding(Interval(iv.lo >> 1, iv.hi), f_in)   # ample: rounding only shrinks
        wide = FixedType(True, wide.width + 2, f_in)
        t = imp.quantize("trunc_grid", t, wide, Rounding.ROUND, wide.min_code, wide.max_code)
    if v2:
        f_out = int(power_of_two_frac(imp.scalar(onode, 4, "output scale"), "output scale"))
        signed, narrow = a.flag("signed", True), a.flag("narrow", False)
        lo, hi = int_range(signed, narrow, out_bits)
        return [imp.quantize("trunc", t, FixedType(signed, out_bits, f_out), rounding, lo, hi)]
    # v1: the codes lose in_bits - out_bits low bits but keep `scale`, unclamped
    k = in_bits - out_bits
    offset = t.node.type.frac - t.view_frac
    iv = t.node.interval
    shift = t.node.type.frac - (f_in - k + offset)
    lo, hi = shift_round(iv.lo, shift, rounding), shift_round(iv.hi, shift, rounding)
    ty = FixedType.holding(Interval(lo, hi), f_in - k)
    return [imp.quantize("trunc", t, ty, rounding, ty.min_code, ty.max_code, view_frac=f_in)]
