"""QONNX quantizers: Quant / IntQuant, BipolarQuant, Trunc, lowered to the IR's quantizers."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..ir.fixed import FixedType, Rounding, round_real, shift_round
from ..ir.interval import Interval
from ..ir.ops import Bipolar, ChannelQuant, Constant, Quant, Scale
from ..ir.tensor import Factor
from .attributes import Attributes
from .context import Importer, clipped_input, power_of_two_frac, show
from .values import Problem, Value

MAX_BITS = 64
# QONNX's rounding modes, in the order its documentation lists them
ROUNDING_NAMES = ("ROUND", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "DOWN", "UP")



def _single(values) -> bool:
    """Whether an array holds one value, repeated (np.unique would load numpy.ma, a tenth of
    a build's start-up)."""
    a = np.asarray(values).ravel()
    return a.size > 0 and bool((a == a[0]).all())

def _rounding(attrs: Attributes, default: str) -> Rounding:
    text = attrs.text("rounding_mode", default)
    try:
        return Rounding.parse(text)
    except ValueError:
        raise Problem(f"rounding_mode '{text}' is unknown; use one of " + ", ".join(ROUNDING_NAMES)) from None


def _bitwidth(imp: Importer, onode, i: int, what: str = "bitwidth") -> int:
    bw = imp.scalar(onode, i, what)
    if not math.isfinite(bw) or bw != int(bw) or not 1 <= bw <= MAX_BITS:
        raise Problem(f"{what} {bw:g} is not a whole number of bits from 1 to {MAX_BITS}")
    return int(bw)


def _bitwidths(imp: Importer, onode, i: int) -> np.ndarray:
    """Quant's bit width: one value, or a tensor of them (HGQ, PQuantML: a width an element)."""
    bw = np.asarray(imp.const(onode, i, "bitwidth").value, dtype=np.float64)
    if bw.size == 0:
        raise Problem("bitwidth is empty; give one value, or one an element")
    bad = bw[~(np.isfinite(bw) & (bw == np.round(bw)) & (bw >= 1) & (bw <= MAX_BITS))]
    if bad.size:
        raise Problem(f"bitwidth {show(np.unique(bad))} is not a whole number of bits from 1 to {MAX_BITS}")
    return bw.astype(np.int64)


def _per_element(a: np.ndarray, shape: tuple[int, ...], what: str) -> np.ndarray:
    """A quantizer parameter broadcast to a tensor's shape (ONNX's, with or without its batch
    axis)."""
    a = np.asarray(a)
    try:
        if a.ndim > len(shape):
            return np.broadcast_to(a, (1,) + shape)[0]
        return np.broadcast_to(a, shape)
    except ValueError:
        raise Problem(f"{what} of shape {list(a.shape)} does not broadcast to the tensor of shape "
                      f"{list(shape)}") from None


def _heterogeneous(imp: Importer, onode, signed: bool, narrow: bool, rounding: Rounding, bits: np.ndarray,
                   frac: np.ndarray, float_scale: np.ndarray | None) -> list:
    """A Quant with a grid and bounds of its own for each element (bit widths or power-of-two
    scales that are tensors): folded into codes on a constant, a ChannelQuant on a tensor."""
    if float_scale is not None:
        raise Problem("per-element bit widths or scales with float (non-power-of-two) scales are not "
                      "supported; use power-of-two scales (as HGQ and PQuantML train them)")
    x = imp.data(onode, 0)
    shape = x.shape
    fr = _per_element(frac, shape, "scale").astype(np.int64)
    bw = _per_element(bits, shape, "bitwidth").astype(np.int64)
    if signed and np.any(bw == 1):
        raise Problem("a signed 1-bit element among per-element bit widths (QONNX runs it as bipolar) is "
                      "not supported; give it 2 bits or make the quantizer unsigned")
    lo = np.where(signed, -(1 << (bw - 1)) + (1 if narrow else 0), 0)
    hi = np.where(signed, (1 << (bw - 1)) - 1, (1 << bw) - (2 if narrow else 1))
    if x.out.value is not None:
        if x.type is not None or not np.all(np.isfinite(x.out.value)):
            raise Problem("a per-element quantizer of a constant needs finite float values")
        v = np.asarray(x.out.value, np.float32).astype(np.float64)
        codes = np.clip(round_real(np.ldexp(v, fr), rounding), lo, hi).astype(np.int64)
        return [Value(imp.add("c", Constant.codes(codes, 0, Factor.of(np.ldexp(1.0, -fr))), ()))]
    t = imp.tensor(onode, 0)
    node = imp.add("quant", ChannelQuant.of(rounding, fr.ravel(), lo.ravel(), hi.ravel()), (t.node,))
    imp.quantized.add(node.name)            # a quantizer: what reads it reads codes
    return [replace(t, node=node)]


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


def constant_quant(imp: Importer, onode, ty: FixedType, rounding: Rounding, lo: int, hi: int,
                   scale: np.ndarray, frac: np.ndarray, float_scale: np.ndarray | None) -> Value:
    """A quantizer on a constant (weights, biases): one grid, or one per channel."""
    x = imp.data(onode, 0)
    if x.out.value is not None and x.type is None and not np.all(np.isfinite(x.out.value)):
        raise Problem("the quantized constant holds NaN or Inf; export the model again with finite weights")
    try:
        np.broadcast_shapes(np.shape(scale), x.shape)
    except ValueError:
        raise Problem(f"scale of shape {list(np.shape(scale))} does not broadcast to the quantized "
                      f"constant of shape {list(x.shape)}") from None
    if float_scale is None and _single(frac):
        return Value(imp.add("quant", Quant(FixedType(ty.signed, ty.width, int(np.ravel(frac)[0])), rounding, lo, hi), (x,)))
    step = Factor.of(float_scale if float_scale is not None else np.ldexp(1.0, -frac))
    q = imp.add("quant", Quant(FixedType(ty.signed, ty.width, 0), rounding, lo, hi, step), (x,))
    return Value(imp.add("scale", Scale(step), (q,)))


def quant(imp: Importer, onode) -> list:
    a = Attributes(onode)
    signed, narrow = a.flag("signed", True), a.flag("narrow", False)
    rounding = _rounding(a, "ROUND")
    widths = _bitwidths(imp, onode, 3)
    _no_zero_point(imp, onode, 2)
    scale = imp.const(onode, 1, "scale").value
    if np.size(scale) == 0:
        raise Problem("scale is empty; give one value, or one a channel")
    frac, float_scale = imp.scale_split(scale, "scale")
    if not _single(widths) or (not _single(frac) and not imp.is_const(onode, 0)
                                      and float_scale is None):
        return _heterogeneous(imp, onode, signed, narrow, rounding, widths, frac, float_scale)
    bits = int(widths.ravel()[0])
    if signed and bits == 1:
        # QONNX executes a 1-bit signed quantizer as bipolar (+-scale)
        if float_scale is not None:
            raise Problem("a bipolar quantizer needs a power-of-two scale")
        return _bipolar(imp, onode, frac)
    lo, hi = int_range(signed, narrow, bits)
    if imp.is_const(onode, 0):
        return [constant_quant(imp, onode, FixedType(signed, bits, 0), rounding, lo, hi, scale, frac, float_scale)]
    if not _single(frac) or (float_scale is not None and not _single(float_scale)):
        raise Problem("per-channel scales on an activation are not supported; use one scale per tensor")
    f = int(frac.ravel()[0])
    t = imp.tensor(onode, 0)
    ty = FixedType(signed, bits, f)
    # a float factor on the input, or a float-scaled sum not folded yet (it is real until then)
    scaled = t.node.out.factor is not None or (t.node.type is None and t.node.name in imp.quantized)
    if float_scale is None and not scaled:
        return [replace(t, node=imp.add("quant", Quant(ty, rounding, lo, hi), (t.node,)))]
    # a float scale here or on the input: a requantiser pass lowers it to integers
    if float_scale is not None and clipped_input(imp, t.node):
        raise Problem("a Clip before a float-scale input quantizer is not supported")
    step = None if float_scale is None else Factor.of(float(float_scale.ravel()[0]))
    q = imp.add("requant", Quant(ty, rounding, lo, hi, step), (t.node,))
    return [replace(t, node=q if step is None else imp.add("scale", Scale(step), (q,)))]


def _bipolar(imp: Importer, onode, frac: np.ndarray) -> list:
    if not _single(frac):
        raise Problem("per-channel scales on a bipolar quantizer are not supported")
    f = int(np.ravel(frac)[0])
    if imp.is_const(onode, 0):
        return [Value(imp.add("bipolar", Bipolar(f), (imp.data(onode, 0),)))]
    t = imp.tensor(onode, 0)
    if clipped_input(imp, t.node):
        raise Problem("reads a clipped model input; a Clip before a bipolar quantizer is not supported, remove it")
    return [replace(t, node=imp.add("bipolar", Bipolar(f), (t.node,)))]


def bipolar_quant(imp: Importer, onode) -> list:
    scale = imp.const(onode, 1, "scale").value
    return _bipolar(imp, onode, power_of_two_frac(scale, "scale"))


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
    if t.node.out.factor is not None:
        raise Problem("quantizes a float-scale (--requantize) tensor, which only QONNX Quant handles so far")
    node = t.node
    assert node.type is not None and node.interval is not None
    if node.type.frac > f_in:  # onto the grid of `scale`, as QONNX's np.round does
        iv = node.interval
        wide = FixedType.holding(Interval(iv.lo >> 1, iv.hi), f_in)   # ample: rounding only shrinks
        wide = FixedType(True, wide.width + 2, f_in)
        node = imp.add("trunc_grid", Quant(wide, Rounding.ROUND, wide.min_code, wide.max_code), (node,))
    if v2:
        f_out = int(power_of_two_frac(imp.scalar(onode, 4, "output scale"), "output scale"))
        signed, narrow = a.flag("signed", True), a.flag("narrow", False)
        lo, hi = int_range(signed, narrow, out_bits)
        return [replace(t, node=imp.add("trunc", Quant(FixedType(signed, out_bits, f_out), rounding, lo, hi), (node,)))]
    # v1: the codes lose in_bits - out_bits low bits but keep `scale`, unclamped
    k = in_bits - out_bits
    assert node.type is not None and node.interval is not None
    iv = node.interval
    shift = node.type.frac - (f_in - k)
    lo, hi = shift_round(iv.lo, shift, rounding), shift_round(iv.hi, shift, rounding)
    ty = FixedType.holding(Interval(lo, hi), f_in - k)
    q = imp.add("trunc", Quant(ty, rounding, ty.min_code, ty.max_code), (node,))
    return [replace(t, node=imp.add("scale", Scale(Factor.of(2.0 ** -k)), (q,)))]
