"""Builders of small quantized ONNX models for fpgaq's tests.

Every builder is a pure function of its arguments: all randomness comes from
``rng`` (a ``numpy.random.Generator`` or an int seed), so the same arguments
give the same model, byte for byte.  Builders return ``onnx.ModelProto``.

Models are shaped like the exports real clients send (see DESIGN.md, "What real
clients send"):

* :func:`qonnx_mlp` -- QONNX as Brevitas 0.13 exports it: an input ``Quant``,
  then per layer ``Gemm(transB=1)`` whose weight initializer sits behind a
  weight ``Quant`` (narrow), ``Relu``, ``Quant`` (unsigned); float biases or
  biases behind their own ``Quant``; optionally no ``Quant`` on the logits.
* :func:`qdq_mlp` -- standard QDQ / QCDQ: ``QuantizeLinear -> (Clip) ->
  DequantizeLinear`` on activations, int8 weights and int32 biases behind
  ``DequantizeLinear``.
* small "bad input" builders for error tests: :func:`with_op`,
  :func:`with_quant_param`, :func:`non_pow2_scale_model`,
  :func:`nonzero_zeropt_model`, :func:`dynamic_features_model`; and
  :func:`save`.

Exactness
---------
All scales are powers of two and all zero points are zero, so every model is
exactly fixed point: weights are ``code * 2**-w_frac`` (stored exactly in
float32), biases are ``code * 2**-(x_frac + w_frac)`` (the accumulator's
fraction bits), and ``alpha``/``beta`` must be powers of two.  A float32
reference (onnxruntime, qonnx) then computes every layer *exactly* as long as
the accumulator, counted in units of its least significant bit, stays below
``2**24`` (the float32 significand): every partial sum of the dot product is
then an integer multiple of that unit no larger than the worst case.  The
builders check the worst case ``sum_i |w_i| * max|x| + |b|`` per output and
raise ``ValueError`` if it reaches ``2**24`` (``check_exact=False`` turns the
check off).  With the defaults (8-bit activations, 6-bit weights) this holds
for fan-ins up to several thousand.

Activation fractions left as ``None`` are calibrated: a float64 forward pass of
the quantized network on standard-normal inputs (drawn from ``rng``) picks per
layer the largest power-of-two resolution at which the observed range does not
saturate (capped at the accumulator's fraction bits).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "QONNX_DOMAIN",
    "FINN_DOMAIN",
    "BREVITAS_DOMAIN",
    "ROUNDING_MODES",
    "EXACT_LIMIT",
    "qonnx_mlp",
    "qdq_mlp",
    "with_op",
    "with_quant_param",
    "non_pow2_scale_model",
    "nonzero_zeropt_model",
    "dynamic_features_model",
    "save",
]

QONNX_DOMAIN = "qonnx.custom_op.general"
FINN_DOMAIN = "finn.custom_op.general"
BREVITAS_DOMAIN = "onnx.brevitas"
ROUNDING_MODES = ("ROUND", "HALF_EVEN", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "DOWN", "UP")
EXACT_LIMIT = 2**24
_N_CALIB = 512
_QUANT_OPS = ("Quant", "IntQuant", "QuantizeLinear", "DequantizeLinear")


# --------------------------------------------------------------------------- numbers


def _rng(rng) -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    raise TypeError(f"rng must be a numpy Generator or an int seed, got {type(rng).__name__}")


def _round(x: np.ndarray, mode: str) -> np.ndarray:
    """Round float64 values as QONNX ``rounding_mode`` says (qonnx's int_quant)."""
    mode = mode.upper()
    if mode in ("ROUND", "HALF_EVEN"):
        return np.round(x)
    if mode == "HALF_UP":  # half away from zero (qonnx's meaning)
        return np.sign(x) * np.floor(np.abs(x) + 0.5)
    if mode == "HALF_DOWN":  # half toward zero
        return np.sign(x) * np.ceil(np.abs(x) - 0.5)
    if mode == "FLOOR":
        return np.floor(x)
    if mode == "CEIL":
        return np.ceil(x)
    if mode == "DOWN":
        return np.trunc(x)
    if mode == "UP":
        return np.sign(x) * np.ceil(np.abs(x))
    raise ValueError(f"unknown rounding_mode {mode!r}; expected one of {ROUNDING_MODES}")


def _log2_exact(v: float, what: str) -> int:
    m, e = math.frexp(float(v))
    if v <= 0 or m != 0.5:
        raise ValueError(f"{what} must be a positive power of two so the model stays exact, got {v}")
    return e - 1


@dataclass(frozen=True)
class _Q:
    """A fixed-point quantizer: scale 2**-frac, zero point 0."""

    bits: int
    frac: int
    signed: bool
    narrow: bool = False
    rounding: str = "ROUND"

    @property
    def lo(self) -> int:
        if not self.signed:
            return 0
        return -(2 ** (self.bits - 1)) + (1 if self.narrow else 0)

    @property
    def hi(self) -> int:
        if self.signed:
            return 2 ** (self.bits - 1) - 1
        return 2**self.bits - (2 if self.narrow else 1)

    @property
    def maxabs(self) -> int:
        return max(-self.lo, self.hi)

    def codes(self, x: np.ndarray) -> np.ndarray:
        y = np.clip(np.asarray(x, np.float64) * 2.0**self.frac, self.lo, self.hi)
        return _round(y, self.rounding)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.codes(x) * 2.0**-self.frac


@dataclass
class _Layer:
    w: np.ndarray  # int64 codes, shape (out, in)
    wq: _Q
    b: np.ndarray | None  # int64 codes at scale 2**-b_frac, or None
    b_frac: int
    bq: _Q | None  # quantizer of the bias, when the bias has one
    x_frac: int  # fraction bits of the layer's input
    relu: bool
    out_q: _Q | None  # quantizer on the output (None: float output)


def _per_layer(value, n: int, what: str) -> list:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{what}: expected {n} values (one per layer), got {len(value)}")
        return list(value)
    return [value] * n


def _pow2_frac_for(maxabs: float, qmax: int) -> int:
    """Largest f with maxabs * 2**f <= qmax."""
    if maxabs <= 0:
        return 0
    f = math.floor(math.log2(qmax / maxabs))
    while maxabs * 2.0 ** (f + 1) <= qmax:
        f += 1
    while maxabs * 2.0**f > qmax:
        f -= 1
    return f


def _plan(
    layer_sizes: Sequence[int],
    rng: np.random.Generator,
    *,
    in_q: _Q,
    w_bits,
    w_frac,
    w_narrow: bool,
    w_rounding: str,
    act_bits,
    act_frac,
    act_signed,
    act_rounding: list[str],
    sparsity: float,
    bias: str,
    bias_bits: int,
    final_quant: bool,
    relu: bool,
    final_relu: bool,
    alpha: float,
    beta: float,
    check_exact: bool,
) -> list[_Layer]:
    sizes = [int(s) for s in layer_sizes]
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least two positive sizes, got {layer_sizes}")
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if bias not in ("quant", "float", "none"):
        raise ValueError(f"bias must be 'quant', 'float' or 'none', got {bias!r}")
    n = len(sizes) - 1
    log_alpha = _log2_exact(alpha, "alpha")
    log_beta = _log2_exact(beta, "beta")
    w_bits_l = _per_layer(w_bits, n, "w_bits")
    w_frac_l = _per_layer(w_frac, n, "w_frac")
    a_bits_l = _per_layer(act_bits, n, "act_bits")
    a_frac_l = _per_layer(act_frac, n, "act_frac")
    if isinstance(act_signed, (list, tuple)):
        a_signed_l = _per_layer(act_signed, n, "act_signed")
    else:  # hidden quantizers follow act_signed; the logits' is signed unless final_relu
        a_signed_l = [bool(act_signed)] * (n - 1) + [bool(act_signed) if final_relu else True]
    x = in_q(rng.standard_normal((_N_CALIB, sizes[0])))
    x_q, layers = in_q, []
    for i in range(n):
        fan_in, fan_out = sizes[i], sizes[i + 1]
        last = i == n - 1
        # weights: He-normal init, magnitude pruning, power-of-two quantization
        wf = rng.standard_normal((fan_out, fan_in)) * math.sqrt(2.0 / fan_in)
        n_zero = int(round(sparsity * wf.size))
        order = np.argsort(np.abs(wf).ravel(), kind="stable")
        keep = np.ones(wf.size, dtype=bool)
        keep[order[:n_zero]] = False
        keep = keep.reshape(wf.shape)
        if int(w_bits_l[i]) < 2:
            raise ValueError(f"w_bits must be at least 2, got {w_bits_l[i]}")
        wq = _Q(int(w_bits_l[i]), 0, True, bool(w_narrow), w_rounding)
        wfrac = w_frac_l[i]
        if wfrac is None:
            wfrac = _pow2_frac_for(float(np.abs(wf[keep]).max()) if keep.any() else 0.0, wq.hi)
        wq = _Q(wq.bits, int(wfrac), True, wq.narrow, w_rounding)
        w = np.clip(np.round(wf * 2.0**wq.frac), wq.lo, wq.hi)
        w = np.where(keep & (w == 0), np.sign(wf), w)  # survivors of pruning stay non-zero
        w = np.where(keep, w, 0).astype(np.int64)
        acc_frac = x_q.frac + wq.frac
        z = 2.0**log_alpha * (x @ (w * 2.0**-wq.frac).T)
        # bias: dyadic, on the accumulator's grid
        b, bq = None, None
        if bias != "none":
            spread = np.maximum(z.std(axis=0), 2.0**-x_q.frac)
            b_real = rng.standard_normal(fan_out) * 0.5 * spread
            bmax = 2 ** (bias_bits - 1) - 1
            b = np.clip(np.round(b_real * 2.0**acc_frac), -bmax, bmax).astype(np.int64)
            if bias == "quant":
                bq = _Q(int(bias_bits), acc_frac, True, False, w_rounding)
            z = z + 2.0**log_beta * (b * 2.0**-acc_frac)
        if check_exact:
            e_a, e_b = log_alpha - acc_frac, log_beta - acc_frac
            e = min(e_a, e_b)
            worst = np.abs(w).sum(axis=1) * x_q.maxabs * 2 ** (e_a - e)
            if b is not None:
                worst = worst + np.abs(b) * 2 ** (e_b - e)
            if int(worst.max()) >= EXACT_LIMIT:
                raise ValueError(
                    f"layer {i}: worst-case accumulator {int(worst.max())} LSBs reaches 2**24, so a "
                    "float32 reference would not be exact; use fewer bits, a smaller fan-in, "
                    "or check_exact=False"
                )
        has_relu = relu and (not last or final_relu)
        if has_relu:
            z = np.maximum(z, 0.0)
        out_q = None
        if not last or final_quant:
            k = len(layers) + 1  # index into act_rounding (0 is the input quantizer)
            oq = _Q(int(a_bits_l[i]), 0, bool(a_signed_l[i]), False, act_rounding[k])
            afrac = a_frac_l[i]
            if afrac is None:
                m = float(np.abs(z).max()) if oq.signed else float(z.max())
                afrac = min(_pow2_frac_for(m, oq.hi), acc_frac) if m > 0 else acc_frac
            out_q = _Q(oq.bits, int(afrac), oq.signed, False, oq.rounding)
            z = out_q(z)
            x_q = out_q
        layers.append(_Layer(w, wq, b, acc_frac, bq, acc_frac - wq.frac, has_relu, out_q))
        x = z
    return layers


def _rounding_list(rounding_mode, n_act: int) -> tuple[list[str], str]:
    """(modes of the activation quantizers, mode of weight/bias quantizers)."""
    if isinstance(rounding_mode, str):
        _round(np.zeros(1), rounding_mode)  # validates
        return [rounding_mode] * n_act, rounding_mode
    modes = list(rounding_mode)
    if len(modes) != n_act:
        raise ValueError(
            f"rounding_mode list: expected {n_act} modes (input quantizer, then each layer's "
            f"output quantizer), got {len(modes)}"
        )
    for m in modes:
        _round(np.zeros(1), m)
    return modes, "ROUND"


# --------------------------------------------------------------------------- graph assembly


class _Builder:
    def __init__(self, *, style, weights_as_inputs, empty_names, share_scalars):
        if style not in ("brevitas", "clean"):
            raise ValueError(f"style must be 'brevitas' or 'clean', got {style!r}")
        brev = style == "brevitas"
        self.weights_as_inputs = brev if weights_as_inputs is None else bool(weights_as_inputs)
        self.empty_names = brev if empty_names is None else bool(empty_names)
        self.share = brev if share_scalars is None else bool(share_scalars)
        self.brev = brev
        self.nodes: list[onnx.NodeProto] = []
        self.inits: dict[str, onnx.TensorProto] = {}
        self._scalars: dict[tuple, str] = {}
        self._count = 0
        self._node_names: set[str] = set()

    def init(self, name: str, array: np.ndarray) -> str:
        assert name not in self.inits, name
        self.inits[name] = numpy_helper.from_array(np.asarray(array), name)
        return name

    def scalar(self, value, dtype, consumer: str, label: str) -> str:
        arr = np.asarray(value, dtype=dtype)
        key = (arr.dtype.str, arr.tobytes())
        if self.share and key in self._scalars:
            return self._scalars[key]
        self._count += 1
        name = f"onnx::{consumer}_{self._count}" if self.brev else f"{label}_{self._count}"
        self.init(name, arr)
        self._scalars[key] = name
        return name

    def node(self, op, inputs, output, scope, domain=None, **attrs) -> str:
        name = ""
        if not self.empty_names:
            name = base = f"/{scope}/{op}"
            k = 0
            while name in self._node_names:
                k += 1
                name = f"{base}_{k}"
            self._node_names.add(name)
        node = helper.make_node(op, list(inputs), [output], name=name, **attrs)
        if domain:
            node.domain = domain
        self.nodes.append(node)
        return output

    def model(self, *, in_name, in_shape, out_name, out_shape, opsets, ir_version, graph_name):
        inputs = [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)]
        if self.weights_as_inputs:
            for t in self.inits.values():
                inputs.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
        outputs = [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, out_shape)]
        graph = helper.make_graph(self.nodes, graph_name, inputs, outputs, list(self.inits.values()))
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
            producer_name="fpgaq.tests.modelgen",
        )
        model.ir_version = int(ir_version)
        return model


def _check_versions(ir_version: int, opset: int) -> None:
    if not 3 <= int(ir_version) <= 11:
        raise ValueError(f"ir_version {ir_version} outside 3..11")
    if not 13 <= int(opset) <= 21:
        raise ValueError(f"opset {opset} outside 13..21")


# --------------------------------------------------------------------------- QONNX


def qonnx_mlp(
    layer_sizes: Sequence[int],
    *,
    rng,
    in_bits: int = 8,
    in_frac: int = 4,
    in_signed: bool = True,
    w_bits: int | Sequence[int] = 6,
    w_frac: int | None | Sequence[int | None] = None,
    w_narrow: bool = True,
    act_bits: int | Sequence[int] = 8,
    act_frac: int | None | Sequence[int | None] = None,
    act_signed: bool | Sequence[bool] = False,
    rounding_mode: str | Sequence[str] = "ROUND",
    sparsity: float = 0.7,
    bias: str = "quant",
    bias_bits: int = 16,
    final_quant: bool = True,
    relu: bool = True,
    final_relu: bool = False,
    op_name: str = "Quant",
    domain: str = QONNX_DOMAIN,
    gemm: bool = True,
    trans_a: int = 0,
    trans_b: int = 1,
    alpha: float = 1.0,
    beta: float = 1.0,
    style: str = "brevitas",
    weights_as_inputs: bool | None = None,
    empty_names: bool | None = None,
    share_scalars: bool | None = None,
    batch: int | str = 1,
    ir_version: int = 8,
    opset: int = 13,
    input_name: str = "global_in",
    output_name: str = "global_out",
    check_exact: bool = True,
) -> onnx.ModelProto:
    """A QONNX ReLU MLP shaped like a Brevitas 0.13 export.

    Graph: ``Quant(in) -> [Gemm -> Relu -> Quant] * (L-1) -> Gemm [-> Quant]``,
    every Gemm's weight an initializer behind a weight ``Quant``.

    Args:
      layer_sizes: ``[in, h1, ..., out]``.
      rng: numpy Generator or int seed (the only source of randomness).
      in_bits, in_frac, in_signed: the input quantizer (``narrow=0``).
      w_bits, w_frac: weight quantizers, an int or one per layer; ``w_frac=None``
        picks per layer the finest power of two that holds the largest weight.
        Weights are He-normal, magnitude-pruned to exactly ``round(sparsity *
        size)`` zeros per layer (survivors never round to zero).
      w_narrow: ``narrow`` attribute of the weight quantizers.
      act_bits, act_frac, act_signed: the quantizer after each layer, an int /
        bool or one per layer (the last entry is used only with
        ``final_quant``).  ``act_frac=None`` calibrates (see module docstring).
        With a scalar ``act_signed`` the logits' quantizer is signed unless
        ``final_relu``.
      rounding_mode: one mode for every Quant, or a list with one mode per
        activation quantizer, in graph order: the input quantizer, then each
        layer's output quantizer (weight and bias Quants then use ``ROUND``;
        their values are exact, so rounding never changes them).
      bias: ``'quant'`` (float initializer behind a signed ``bias_bits`` Quant
        with scale ``2**-(x_frac + w_frac)``, like Brevitas' Int16Bias),
        ``'float'`` (plain float initializer on the same grid) or ``'none'``.
      final_quant: quantize the logits (``False``: float output, as often seen).
      relu, final_relu: Relu after hidden layers / after the last layer.
      op_name, domain: ``'Quant'`` or ``'IntQuant'``; ``QONNX_DOMAIN``,
        ``FINN_DOMAIN`` (or ``BREVITAS_DOMAIN``).  Opset import version 1.
      gemm: ``False`` gives ``MatMul`` (weight stored ``(in, out)``) ``+ Add``.
      trans_a: 1 inserts ``Transpose(perm=[1, 0])`` before each Gemm and sets
        ``transA=1``.  trans_b: 1 stores weights ``(out, in)``, 0 ``(in, out)``.
      alpha, beta: Gemm attributes, powers of two (the result stays exact).
      style: ``'brevitas'`` (defaults: weights_as_inputs, empty_names and
        share_scalars all True, torch-like tensor names) or ``'clean'``
        (all False, descriptive names).
      weights_as_inputs: also list every initializer as a graph input.
      empty_names: leave node names empty.
      share_scalars: one float32 scalar initializer per distinct value of
        scale / zeropt / bitwidth, reused by every Quant that needs it.
      batch: the batch dimension: an int, or a string for a symbolic one.
      ir_version, opset: model IR version (6..10 as clients send) and default
        opset (13..20).
      check_exact: raise if a worst-case accumulator reaches ``2**24`` LSBs.
    """
    r = _rng(rng)
    _check_versions(ir_version, opset)
    if op_name not in ("Quant", "IntQuant"):
        raise ValueError(f"op_name must be 'Quant' or 'IntQuant', got {op_name!r}")
    if trans_a not in (0, 1) or trans_b not in (0, 1):
        raise ValueError("trans_a and trans_b must be 0 or 1")
    if not gemm and (trans_a or alpha != 1.0 or beta != 1.0):
        raise ValueError("trans_a, alpha and beta apply to Gemm only (gemm=True)")
    n_layers = len(layer_sizes) - 1
    n_act = 1 + (n_layers - 1) + (1 if final_quant else 0)
    act_modes, wb_mode = _rounding_list(rounding_mode, n_act)
    in_q = _Q(int(in_bits), int(in_frac), bool(in_signed), False, act_modes[0])
    layers = _plan(
        layer_sizes, r, in_q=in_q, w_bits=w_bits, w_frac=w_frac, w_narrow=w_narrow,
        w_rounding=wb_mode, act_bits=act_bits, act_frac=act_frac, act_signed=act_signed,
        act_rounding=act_modes, sparsity=sparsity, bias=bias, bias_bits=bias_bits,
        final_quant=final_quant, relu=relu, final_relu=final_relu, alpha=alpha, beta=beta,
        check_exact=check_exact,
    )
    B = _Builder(style=style, weights_as_inputs=weights_as_inputs, empty_names=empty_names,
                 share_scalars=share_scalars)

    def tname(scope, op):
        return f"/{scope}/{op}_output_0" if B.brev else f"{scope}_{op.lower()}_out"

    def quant(x, q: _Q, scope, out=None):
        ins = [
            x,
            B.scalar(2.0**-q.frac, np.float32, op_name, "scale"),
            B.scalar(0.0, np.float32, op_name, "zeropt"),
            B.scalar(float(q.bits), np.float32, op_name, "bitwidth"),
        ]
        return B.node(op_name, ins, out or tname(scope, op_name), scope, domain=domain,
                      signed=int(q.signed), narrow=int(q.narrow), rounding_mode=q.rounding)

    x = quant(input_name, in_q, "input_quant/export_handler")
    for i, L in enumerate(layers):
        fc = f"fc{i + 1}"
        last = i == len(layers) - 1
        w_store = L.w if (gemm and trans_b) else L.w.T  # Gemm(transB=1): (out, in)
        w_float = (w_store * 2.0**-L.wq.frac).astype(np.float32)
        w_name = B.init(f"{fc}.weight", w_float)
        wq_out = quant(w_name, L.wq, f"{fc}/weight_quant/export_handler")
        b_in = None
        if L.b is not None:
            b_name = B.init(f"{fc}.bias", (L.b * 2.0**-L.b_frac).astype(np.float32))
            b_in = quant(b_name, L.bq, f"{fc}/bias_quant/export_handler") if L.bq else b_name
        tail_done = not L.relu and L.out_q is None and last
        if gemm:
            a = x
            if trans_a:
                a = B.node("Transpose", [x], tname(fc, "Transpose"), fc, perm=[1, 0])
            ins = [a, wq_out] + ([b_in] if b_in else [])
            y = B.node("Gemm", ins, output_name if tail_done else tname(fc, "Gemm"), fc,
                       alpha=float(alpha), beta=float(beta), transA=int(trans_a),
                       transB=int(trans_b))
        else:
            mm_last = tail_done and b_in is None
            y = B.node("MatMul", [x, wq_out], output_name if mm_last else tname(fc, "MatMul"), fc)
            if b_in is not None:
                y = B.node("Add", [y, b_in], output_name if tail_done else tname(fc, "Add"), fc)
        if L.relu:
            relu_last = last and L.out_q is None
            y = B.node("Relu", [y], output_name if relu_last else tname(f"relu{i + 1}", "Relu"),
                       f"relu{i + 1}")
        if L.out_q is not None:
            scope = f"act{i + 1}/export_handler"
            y = quant(y, L.out_q, scope, out=output_name if last else None)
        x = y
    batch_dim = batch if isinstance(batch, str) else int(batch)
    return B.model(
        in_name=input_name,
        in_shape=[batch_dim, int(layer_sizes[0])],
        out_name=output_name,
        out_shape=[batch_dim, int(layer_sizes[-1])],
        opsets=[("", int(opset)), (domain, 1)],
        ir_version=ir_version,
        graph_name="main_graph" if B.brev else "qonnx_mlp",
    )


# --------------------------------------------------------------------------- QDQ


def qdq_mlp(
    layer_sizes: Sequence[int],
    *,
    rng,
    clip: bool = False,
    in_bits: int = 8,
    in_frac: int = 4,
    in_signed: bool = True,
    w_bits: int | Sequence[int] = 8,
    w_frac: int | None | Sequence[int | None] = None,
    act_bits: int | Sequence[int] = 8,
    act_frac: int | None | Sequence[int | None] = None,
    act_signed: bool | Sequence[bool] = False,
    sparsity: float = 0.7,
    bias: bool = True,
    final_quant: bool = True,
    relu: bool = True,
    gemm: bool = True,
    style: str = "brevitas",
    weights_as_inputs: bool | None = None,
    empty_names: bool | None = None,
    share_scalars: bool | None = None,
    batch: int | str = 1,
    ir_version: int = 8,
    opset: int = 13,
    input_name: str = "global_in",
    output_name: str = "global_out",
    check_exact: bool = True,
) -> onnx.ModelProto:
    """A ReLU MLP in standard QDQ / QCDQ form (runs on onnxruntime).

    Activations: ``QuantizeLinear -> [Clip] -> DequantizeLinear`` with a
    float32 power-of-two scale and a zero zero point (int8 when signed, uint8
    when not); weights: int8 initializers (narrow, ``w_bits``-bit codes, stored
    ``(out, in)`` for ``Gemm(transB=1)``, ``(in, out)`` for ``MatMul``) behind
    ``DequantizeLinear`` with a power-of-two scale and int8 zero point 0;
    biases: int32 initializers behind ``DequantizeLinear`` with scale
    ``s_x * s_w`` and int32 zero point 0.  ``Relu`` after hidden layers.

    ``clip=True`` puts a ``Clip`` (int8/uint8 scalar bounds from the bit
    width) after every activation QuantizeLinear (QCDQ, as Brevitas exports
    sub-8-bit activations); activation bit widths below 8 require it.
    QuantizeLinear rounds half to even, so the equivalent QONNX rounding is
    ``ROUND``.  Other arguments as in :func:`qonnx_mlp`.
    """
    r = _rng(rng)
    _check_versions(ir_version, opset)
    n_layers = len(layer_sizes) - 1
    bits_used = [in_bits] + _per_layer(act_bits, n_layers, "act_bits")[: n_layers - 1 + int(final_quant)]
    if max(bits_used) > 8 or max(_per_layer(w_bits, n_layers, "w_bits")) > 8:
        raise ValueError("qdq_mlp: bit widths above 8 do not fit int8/uint8 QDQ tensors")
    if not clip and min(bits_used) < 8:
        raise ValueError("qdq_mlp: activation bit widths below 8 need clip=True (QCDQ)")
    n_act = 1 + (n_layers - 1) + (1 if final_quant else 0)
    in_q = _Q(int(in_bits), int(in_frac), bool(in_signed))
    layers = _plan(
        layer_sizes, r, in_q=in_q, w_bits=w_bits, w_frac=w_frac, w_narrow=True,
        w_rounding="ROUND", act_bits=act_bits, act_frac=act_frac, act_signed=act_signed,
        act_rounding=["ROUND"] * n_act, sparsity=sparsity, bias="float" if bias else "none",
        bias_bits=32, final_quant=final_quant, relu=relu, final_relu=False, alpha=1.0,
        beta=1.0, check_exact=check_exact,
    )
    B = _Builder(style=style, weights_as_inputs=weights_as_inputs, empty_names=empty_names,
                 share_scalars=share_scalars)

    def tname(scope, op):
        return f"/{scope}/{op}_output_0" if B.brev else f"{scope}_{op.lower()}_out"

    def qcdq(x, q: _Q, scope, out=None):
        dt = np.int8 if q.signed else np.uint8
        s = B.scalar(2.0**-q.frac, np.float32, "QuantizeLinear", "scale")
        zp = B.scalar(0, dt, "QuantizeLinear", "zero_point")
        y = B.node("QuantizeLinear", [x, s, zp], tname(scope, "QuantizeLinear"), scope)
        if clip:
            lo = B.scalar(q.lo, dt, "Clip", "clip_min")
            hi = B.scalar(q.hi, dt, "Clip", "clip_max")
            y = B.node("Clip", [y, lo, hi], tname(scope, "Clip"), scope)
        return B.node("DequantizeLinear", [y, s, zp], out or tname(scope, "DequantizeLinear"), scope)

    x = qcdq(input_name, in_q, "input_quant")
    for i, L in enumerate(layers):
        fc = f"fc{i + 1}"
        last = i == len(layers) - 1
        w_store = L.w if gemm else L.w.T
        w_name = B.init(f"{fc}.weight", w_store.astype(np.int8))
        w_s = B.scalar(2.0**-L.wq.frac, np.float32, "DequantizeLinear", "scale")
        w_zp = B.scalar(0, np.int8, "DequantizeLinear", "zero_point")
        w = B.node("DequantizeLinear", [w_name, w_s, w_zp], tname(f"{fc}/weight", "DequantizeLinear"), fc)
        b = None
        if L.b is not None:
            b_name = B.init(f"{fc}.bias", L.b.astype(np.int32))
            b_s = B.scalar(2.0**-L.b_frac, np.float32, "DequantizeLinear", "scale")
            b_zp = B.scalar(0, np.int32, "DequantizeLinear", "zero_point")
            b = B.node("DequantizeLinear", [b_name, b_s, b_zp], tname(f"{fc}/bias", "DequantizeLinear"), fc)
        bare_last = last and not L.relu and L.out_q is None
        if gemm:
            y = B.node("Gemm", [x, w] + ([b] if b else []),
                       output_name if bare_last else tname(fc, "Gemm"), fc,
                       alpha=1.0, beta=1.0, transB=1)
        else:
            y = B.node("MatMul", [x, w], output_name if bare_last and b is None else tname(fc, "MatMul"), fc)
            if b is not None:
                y = B.node("Add", [y, b], output_name if bare_last else tname(fc, "Add"), fc)
        if L.relu:
            y = B.node("Relu", [y], tname(f"relu{i + 1}", "Relu"), f"relu{i + 1}")
        if L.out_q is not None:
            y = qcdq(y, L.out_q, f"act{i + 1}", out=output_name if last else None)
        x = y
    batch_dim = batch if isinstance(batch, str) else int(batch)
    return B.model(
        in_name=input_name,
        in_shape=[batch_dim, int(layer_sizes[0])],
        out_name=output_name,
        out_shape=[batch_dim, int(layer_sizes[-1])],
        opsets=[("", int(opset))],
        ir_version=ir_version,
        graph_name="main_graph" if B.brev else "qdq_mlp",
    )


# --------------------------------------------------------------------------- bad inputs


def with_op(model: onnx.ModelProto, op_type: str = "Softmax", *, domain: str = "", **attrs) -> onnx.ModelProto:
    """A copy of ``model`` with ``op_type`` appended to its (first) output.

    The graph output keeps its name and shape; the old producer now writes
    ``<output>_pre``.  The appended node is named ``"appended_<op_type>"``.
    """
    m = copy.deepcopy(model)
    out = m.graph.output[0].name
    pre = f"{out}_pre"
    for node in m.graph.node:
        node.output[:] = [pre if o == out else o for o in node.output]
    node = helper.make_node(op_type, [pre], [out], name=f"appended_{op_type}", **attrs)
    if domain:
        node.domain = domain
    m.graph.node.append(node)
    return m


def _quant_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for n in model.graph.node if n.op_type in _QUANT_OPS]


def with_quant_param(
    model: onnx.ModelProto,
    index: int = 0,
    *,
    scale=None,
    zeropt=None,
    bitwidth=None,
    pair: bool = True,
) -> onnx.ModelProto:
    """A copy of ``model`` with new parameters on one quantizer node.

    ``index`` counts the nodes of type Quant / IntQuant / QuantizeLinear /
    DequantizeLinear in graph order.  The node gets a fresh (unshared)
    initializer of the same dtype and shape for each parameter given, so
    other nodes sharing the old one are unchanged.  With ``pair`` a
    QuantizeLinear's DequantizeLinear (directly or through a Clip) gets the
    same new parameters.  ``bitwidth`` applies to Quant / IntQuant only.
    """
    m = copy.deepcopy(model)
    qnodes = _quant_nodes(m)
    target = qnodes[index]
    targets = [target]
    if pair and target.op_type == "QuantizeLinear":
        consumers = {t: n for n in m.graph.node for t in n.input}
        nxt = consumers.get(target.output[0])
        if nxt is not None and nxt.op_type == "Clip":
            nxt = consumers.get(nxt.output[0])
        if nxt is not None and nxt.op_type == "DequantizeLinear":
            targets.append(nxt)
    inits = {t.name: t for t in m.graph.initializer}
    graph_inputs = {i.name for i in m.graph.input}
    changes = {1: scale, 2: zeropt, 3: bitwidth}
    for slot, value in changes.items():
        if value is None:
            continue
        if slot >= len(target.input) or not target.input[slot]:
            raise ValueError(f"{target.op_type} node {index} has no input {slot} to replace")
        old_name = target.input[slot]
        old = numpy_helper.to_array(inits[old_name])
        new_name = f"{old_name}__modified_{index}_{slot}"
        arr = np.full(old.shape, value).astype(old.dtype)
        m.graph.initializer.append(numpy_helper.from_array(arr, new_name))
        if old_name in graph_inputs:
            m.graph.input.append(
                helper.make_tensor_value_info(new_name, inits[old_name].data_type, list(arr.shape)))
        for node in targets:
            if len(node.input) > slot:
                node.input[slot] = new_name
    return m


def _find_quant(model: onnx.ModelProto, target: str) -> int:
    """Index (as in with_quant_param) of the first quantizer of a kind."""
    inits = {t.name: t for t in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    graph_in = model.graph.input[0].name
    for k, n in enumerate(_quant_nodes(model)):
        if n.op_type == "DequantizeLinear" and n.input[0] not in inits:
            continue  # activation DQs follow their Q
        src = n.input[0]
        kind = "act"
        if src == graph_in:
            kind = "input"
        elif src in inits:
            kind = "weight" if len(inits[src].dims) == 2 else "bias"
        elif src in producers and producers[src].op_type != "Relu":
            kind = "output" if producers[src].op_type in ("Gemm", "Add", "MatMul") else "act"
        if kind == target:
            return k
    raise ValueError(f"no {target!r} quantizer in the model")


def non_pow2_scale_model(*, rng=0, scale: float = 0.3, target: str = "act", qdq: bool = False,
                         layer_sizes=(8, 16, 4), **kw) -> onnx.ModelProto:
    """A small MLP whose first ``target`` quantizer ('input', 'weight', 'bias'
    or 'act') has a non-power-of-two scale (default 0.3)."""
    m = (qdq_mlp if qdq else qonnx_mlp)(list(layer_sizes), rng=rng, **kw)
    return with_quant_param(m, _find_quant(m, target), scale=scale)


def nonzero_zeropt_model(*, rng=0, zeropt: float = 3.0, target: str = "input", qdq: bool = False,
                         layer_sizes=(8, 16, 4), **kw) -> onnx.ModelProto:
    """A small MLP whose first ``target`` quantizer has a non-zero zero point."""
    m = (qdq_mlp if qdq else qonnx_mlp)(list(layer_sizes), rng=rng, **kw)
    return with_quant_param(m, _find_quant(m, target), zeropt=zeropt)


def dynamic_features_model(*, rng=0, qdq: bool = False, layer_sizes=(8, 16, 4), **kw) -> onnx.ModelProto:
    """A small MLP whose input shape is ``['batch', 'F']`` (feature dim unknown)."""
    m = (qdq_mlp if qdq else qonnx_mlp)(list(layer_sizes), rng=rng, batch="batch", **kw)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[1].Clear()
    dims[1].dim_param = "F"
    return m


def save(model: onnx.ModelProto, path, *, external_data: bool = False) -> str:
    """Write ``model`` to ``path`` (creating folders); with ``external_data``
    the tensors go to ``<file name>.data`` beside it, as some exports do."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    if external_data:
        m = copy.deepcopy(model)
        onnx.save_model(m, path, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(path) + ".data", size_threshold=0)
    else:
        onnx.save_model(model, path)
    return path
