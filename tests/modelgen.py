"""Builders of small quantized ONNX models for fpgaq's tests.

Every builder is a pure function of its arguments: all randomness comes from
``rng`` (a ``numpy.random.Generator`` or an int seed), so the same arguments
give the same model, byte for byte.  Builders return ``onnx.ModelProto``.

:class:`Net` adds one layer at a time, and the same calls give QONNX
(``fmt="qonnx"``: ``Quant``/``IntQuant`` as Brevitas 0.13 exports) or QDQ
(``fmt="qdq"``: ``QuantizeLinear -> DequantizeLinear``, int8 weights and int32
biases behind ``DequantizeLinear``; ``"qcdq"`` adds a ``Clip`` after every
activation QuantizeLinear)::

    m = (Net(rng=0, fmt="qonnx")
         .input(16, bits=8, frac=4)               # the float input and its quantizer
         .dense(64, w_bits=6, sparsity=0.7, bias="quant")
         .batchnorm()                             # folds to exact fixed point
         .relu()                                  # or .clip(lo, hi)
         .quant(bits=8, frac=None, signed=False)  # frac None: calibrated
         .dense(5)
         .model())

``net.here`` is a handle on the current tensor (``net.tag(name)`` names it),
for a residual ``net.add(handle or name)``.  Built on it, shaped like the
exports real clients send (the README's "Exporters"):

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
fraction bits), ``alpha``/``beta`` must be powers of two, and an exact
batch-norm folds to a power-of-two scale and a dyadic shift.  A float32
reference (onnxruntime, qonnx) then computes every layer *exactly* as long as
each sum, counted in units of its least significant bit, stays below ``2**24``
(the float32 significand).  The builder tracks a worst case per tensor and
raises ``ValueError`` when a dense layer (``sum_i |w_i| * max|x| + |b|``), a
batch-norm or an add reaches ``2**24`` (``check_exact=False`` turns the check
off).  With the defaults (8-bit activations, 6-bit weights) this holds for
fan-ins up to several thousand.  A batch-norm with real (PyTorch-like)
constants is not fixed point: nothing is checked until the next quantizer.

Activation fractions left as ``None`` are calibrated: a float64 forward pass of
the quantized network on standard-normal inputs (drawn from ``rng``) picks per
quantizer the largest power-of-two resolution at which the observed range does
not saturate (capped at the fraction bits of the last accumulator).
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass, replace
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = [
    "QONNX_DOMAIN", "FINN_DOMAIN", "BREVITAS_DOMAIN", "ROUNDING_MODES", "EXACT_LIMIT",
    "Net", "Tensor", "qonnx_mlp", "qdq_mlp",
    "with_op", "with_quant_param", "non_pow2_scale_model", "nonzero_zeropt_model", "dynamic_features_model", "save",
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


def _frac_of(values) -> int:
    """Fewest fraction bits (at least 0) that hold every finite float value exactly."""
    f = 0
    for v in np.ravel(np.asarray(values, np.float64)):
        m, e = math.frexp(float(v))
        while m != int(m):
            m, e = m * 2, e - 1
        f = max(f, -e)
    return f


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


class _Graph:
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
        self.tensor_names: set[str] = set()

    def tname(self, scope: str, op: str) -> str:
        return f"/{scope}/{op}_output_0" if self.brev else f"{scope}_{op.lower()}_out"

    def init(self, name: str, array: np.ndarray) -> str:
        assert name not in self.inits, name
        self.inits[name] = numpy_helper.from_array(np.asarray(array), name)
        self.tensor_names.add(name)
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
        base, k = output, 0
        while output in self.tensor_names:  # e.g. two Relus after one layer
            k += 1
            output = f"{base}_{k}"
        self.tensor_names.add(output)
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


# --------------------------------------------------------------------------- the two formats
# A format writes quantizers and quantized parameters (weights, biases); the rest is shared.


class _Qonnx:
    explicit_trans_a = True  # Gemm carries transA=0 too
    bias_bits = 16  # like Brevitas' Int16Bias

    def __init__(self, op_name: str, domain: str):
        if op_name not in ("Quant", "IntQuant"):
            raise ValueError(f"op_name must be 'Quant' or 'IntQuant', got {op_name!r}")
        self.op, self.domain = op_name, domain

    def opsets(self, opset: int) -> list:
        return [("", int(opset)), (self.domain, 1)]

    def quant(self, g: _Graph, x: str, q: _Q, scope: str) -> str:
        scope, op = f"{scope}/export_handler", self.op
        ins = [x, g.scalar(2.0**-q.frac, np.float32, op, "scale"), g.scalar(0.0, np.float32, op, "zeropt"),
               g.scalar(float(q.bits), np.float32, op, "bitwidth")]
        return g.node(op, ins, g.tname(scope, op), scope, domain=self.domain,
                      signed=int(q.signed), narrow=int(q.narrow), rounding_mode=q.rounding)

    def param(self, g: _Graph, layer: str, kind: str, codes: np.ndarray, q: _Q, quantized: bool) -> str:
        name = g.init(f"{layer}.{kind}", (codes * 2.0**-q.frac).astype(np.float32))
        return self.quant(g, name, q, f"{layer}/{kind}_quant") if quantized else name


class _Qdq:
    explicit_trans_a = False
    bias_bits = 32  # int32 biases

    def __init__(self, clip: bool):
        self.clip = clip

    def opsets(self, opset: int) -> list:
        return [("", int(opset))]

    def quant(self, g: _Graph, x: str, q: _Q, scope: str) -> str:
        if q.bits > 8:
            raise ValueError("qdq: bit widths above 8 do not fit int8/uint8 QDQ tensors")
        if not self.clip and (q.bits < 8 or q.narrow):
            raise ValueError("qdq: activation bit widths below 8 (or narrow) need clip=True (fmt='qcdq')")
        if q.rounding not in ("ROUND", "HALF_EVEN"):
            raise ValueError(f"qdq: QuantizeLinear rounds half to even (ROUND), not {q.rounding}")
        dt = np.int8 if q.signed else np.uint8
        s = g.scalar(2.0**-q.frac, np.float32, "QuantizeLinear", "scale")
        zp = g.scalar(0, dt, "QuantizeLinear", "zero_point")
        y = g.node("QuantizeLinear", [x, s, zp], g.tname(scope, "QuantizeLinear"), scope)
        if self.clip:
            lo = g.scalar(q.lo, dt, "Clip", "clip_min")
            hi = g.scalar(q.hi, dt, "Clip", "clip_max")
            y = g.node("Clip", [y, lo, hi], g.tname(scope, "Clip"), scope)
        return g.node("DequantizeLinear", [y, s, zp], g.tname(scope, "DequantizeLinear"), scope)

    def param(self, g: _Graph, layer: str, kind: str, codes: np.ndarray, q: _Q, quantized: bool) -> str:
        dt = np.int8 if kind == "weight" else np.int32
        if q.bits > 8 * dt().itemsize:
            raise ValueError(f"qdq: {q.bits}-bit {kind} codes do not fit {np.dtype(dt).name}")
        name = g.init(f"{layer}.{kind}", codes.astype(dt))
        s = g.scalar(2.0**-q.frac, np.float32, "DequantizeLinear", "scale")
        zp = g.scalar(0, dt, "DequantizeLinear", "zero_point")
        return g.node("DequantizeLinear", [name, s, zp], g.tname(f"{layer}/{kind}", "DequantizeLinear"), layer)


# --------------------------------------------------------------------------- the builder


@dataclass(frozen=True, eq=False)
class Tensor:
    """A tensor of a :class:`Net` (``net.here``): a handle for :meth:`Net.add`."""

    name: str  # ONNX name (Net.model renames the output)
    features: int
    z: np.ndarray  # float64 calibration values, (N, features)
    frac: int  # on the grid 2**-frac (nominal when bound is None)
    bound: int | None  # max |value| in units of 2**-frac; None: not fixed point
    cap: int  # most fraction bits a calibrated quantizer takes
    nonneg: bool = False


class Net:
    """A quantized model built one layer at a time (see the module docstring); every
    method but :meth:`model` returns the Net.  ``fmt``: ``"qonnx"``, ``"qdq"`` or
    ``"qcdq"``; the other arguments as in :func:`qonnx_mlp`."""

    def __init__(self, *, rng, fmt: str = "qonnx", op_name: str = "Quant", domain: str = QONNX_DOMAIN,
                 style: str = "brevitas", weights_as_inputs: bool | None = None, empty_names: bool | None = None,
                 share_scalars: bool | None = None, batch: int | str = 1, ir_version: int = 8, opset: int = 13,
                 input_name: str = "global_in", output_name: str = "global_out", check_exact: bool = True,
                 graph_name: str | None = None):
        self.rng = _rng(rng)
        _check_versions(ir_version, opset)
        if fmt not in ("qonnx", "qdq", "qcdq"):
            raise ValueError(f"fmt must be 'qonnx', 'qdq' or 'qcdq', got {fmt!r}")
        self.fmt = _Qonnx(op_name, domain) if fmt == "qonnx" else _Qdq(fmt == "qcdq")
        self.g = _Graph(style=style, weights_as_inputs=weights_as_inputs, empty_names=empty_names,
                        share_scalars=share_scalars)
        self.batch = batch if isinstance(batch, str) else int(batch)
        self.ir_version, self.opset, self.check_exact = ir_version, opset, bool(check_exact)
        self.input_name, self.output_name = input_name, output_name
        self.graph_name = graph_name or ("main_graph" if self.g.brev else f"{fmt}_net")
        self.cur: Tensor | None = None
        self.n_in = 0
        self.k = 0  # dense layers so far: fc3 is followed by relu3 and act3, as in torch exports
        self._count = {"bn": 0, "add": 0}
        self._tags: dict[str, Tensor] = {}
        self._by_name: dict[str, Tensor] = {}

    @property
    def here(self) -> Tensor:
        """The current tensor."""
        if self.cur is None:
            raise ValueError("call input() first")
        return self.cur

    def tag(self, name: str) -> Net:
        """Name the current tensor for a later ``add(name)``."""
        self._tags[name] = self.here
        return self

    def _push(self, t: Tensor) -> Net:
        self.cur = self._by_name[t.name] = t
        return self

    def _checked(self, bound: int | None, what: str) -> int | None:
        if self.check_exact and bound is not None and bound >= EXACT_LIMIT:
            raise ValueError(f"{what}: worst-case accumulator {bound} LSBs reaches 2**24, so a float32 reference "
                             "would not be exact; use fewer bits, a smaller fan-in, or check_exact=False")
        return bound

    def input(self, features: int, *, bits: int = 8, frac: int = 4, signed: bool = True, narrow: bool = False,
              rounding: str = "ROUND") -> Net:
        """The float model input of ``features`` values and its quantizer."""
        if self.cur is not None:
            raise ValueError("input() comes first, once")
        _round(np.zeros(1), rounding)
        self.g.tensor_names.add(self.input_name)
        self.n_in = int(features)
        q = _Q(int(bits), int(frac), bool(signed), bool(narrow), rounding)
        z = self.rng.standard_normal((_N_CALIB, self.n_in))
        self.cur = Tensor(self.input_name, self.n_in, z, q.frac, None, q.frac)
        return self._quantize(q, "input_quant")

    def quant(self, bits: int = 8, frac: int | None = None, signed: bool | None = None, *, narrow: bool = False,
              rounding: str = "ROUND") -> Net:
        """A quantizer; ``frac=None`` calibrates, ``signed=None`` is unsigned after a Relu."""
        t = self.here
        _round(np.zeros(1), rounding)
        q = _Q(int(bits), 0, not t.nonneg if signed is None else bool(signed), bool(narrow), rounding)
        if frac is None:
            m = float(np.abs(t.z).max()) if q.signed else float(t.z.max())
            frac = min(_pow2_frac_for(m, q.hi), t.cap) if m > 0 else t.cap
        return self._quantize(replace(q, frac=int(frac)), f"act{self.k}")

    def _quantize(self, q: _Q, scope: str) -> Net:
        t = self.here
        y = self.fmt.quant(self.g, t.name, q, scope)
        return self._push(Tensor(y, t.features, q(t.z), q.frac, q.maxabs, q.frac, t.nonneg or not q.signed))

    def dense(self, out: int, *, w_bits: int = 6, w_frac: int | None = None, w_narrow: bool = True,
              w_rounding: str = "ROUND", sparsity: float = 0.7, bias: str = "quant", bias_bits: int | None = None,
              gemm: bool = True, trans_a: int = 0, trans_b: int = 1, alpha: float = 1.0, beta: float = 1.0) -> Net:
        """A dense layer, options as in :func:`qonnx_mlp`; ``bias_bits=None``: 16 in QONNX,
        32 in QDQ (where ``bias='float'`` is ``'quant'``: an int32 bias)."""
        t, rng = self.here, self.rng
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        if bias not in ("quant", "float", "none"):
            raise ValueError(f"bias must be 'quant', 'float' or 'none', got {bias!r}")
        if trans_a not in (0, 1) or trans_b not in (0, 1):
            raise ValueError("trans_a and trans_b must be 0 or 1")
        if not gemm and (trans_a or alpha != 1.0 or beta != 1.0):
            raise ValueError("trans_a, alpha and beta apply to Gemm only (gemm=True)")
        log_alpha, log_beta = _log2_exact(alpha, "alpha"), _log2_exact(beta, "beta")
        _round(np.zeros(1), w_rounding)
        fan_in, fan_out = t.features, int(out)
        # weights: He-normal init, magnitude pruning, power-of-two quantization
        wf = rng.standard_normal((fan_out, fan_in)) * math.sqrt(2.0 / fan_in)
        n_zero = int(round(sparsity * wf.size))
        order = np.argsort(np.abs(wf).ravel(), kind="stable")
        keep = np.ones(wf.size, dtype=bool)
        keep[order[:n_zero]] = False
        keep = keep.reshape(wf.shape)
        if int(w_bits) < 2:
            raise ValueError(f"w_bits must be at least 2, got {w_bits}")
        wq = _Q(int(w_bits), 0, True, bool(w_narrow), w_rounding)
        if w_frac is None:
            w_frac = _pow2_frac_for(float(np.abs(wf[keep]).max()) if keep.any() else 0.0, wq.hi)
        wq = replace(wq, frac=int(w_frac))
        w = np.clip(np.round(wf * 2.0**wq.frac), wq.lo, wq.hi)
        w = np.where(keep & (w == 0), np.sign(wf), w)  # survivors of pruning stay non-zero
        w = np.where(keep, w, 0).astype(np.int64)
        acc_frac = t.frac + wq.frac
        z = 2.0**log_alpha * (t.z @ (w * 2.0**-wq.frac).T)
        # bias: dyadic, on the accumulator's grid
        b, bq = None, _Q(int(bias_bits or self.fmt.bias_bits), acc_frac, True, False, w_rounding)
        if bias != "none":
            spread = np.maximum(z.std(axis=0), 2.0**-t.frac)
            b_real = rng.standard_normal(fan_out) * 0.5 * spread
            bmax = 2 ** (bq.bits - 1) - 1
            b = np.clip(np.round(b_real * 2.0**acc_frac), -bmax, bmax).astype(np.int64)
            z = z + 2.0**log_beta * (b * 2.0**-acc_frac)
        # the worst case, in Python ints, in units of the finer of alpha's and beta's LSB
        e_a, e_b = log_alpha - acc_frac, log_beta - acc_frac
        e, bound = min(e_a, e_b), None
        if t.bound is not None:
            worst = np.abs(w).sum(axis=1).astype(object) * t.bound * 2 ** (e_a - e)
            if b is not None:
                worst = worst + np.abs(b).astype(object) * 2 ** (e_b - e)
            bound = self._checked(int(worst.max()), f"layer {self.k}")
        self.k += 1
        g, fc = self.g, f"fc{self.k}"
        w_in = self.fmt.param(g, fc, "weight", w if (gemm and trans_b) else w.T, wq, True)
        b_in = None if b is None else self.fmt.param(g, fc, "bias", b, bq, bias == "quant")
        if gemm:
            a = t.name
            if trans_a:
                a = g.node("Transpose", [a], g.tname(fc, "Transpose"), fc, perm=[1, 0])
            attrs = dict(alpha=float(alpha), beta=float(beta), transB=int(trans_b))
            if trans_a or self.fmt.explicit_trans_a:
                attrs["transA"] = int(trans_a)
            y = g.node("Gemm", [a, w_in] + ([b_in] if b_in else []), g.tname(fc, "Gemm"), fc, **attrs)
        else:
            y = g.node("MatMul", [t.name, w_in], g.tname(fc, "MatMul"), fc)
            if b_in is not None:
                y = g.node("Add", [y, b_in], g.tname(fc, "Add"), fc)
        return self._push(Tensor(y, fan_out, z, -e, bound, acc_frac))

    # A .conv(...) goes here: as dense, with (out, in, kh, kw) weights through self.fmt.param,
    # a Conv node, the worst case summed over the kernel window, and Tensor carrying a
    # (C, H, W) shape instead of `features`.  Not implemented yet.

    def batchnorm(self, *, exact: bool = True, gamma=None, beta=None, mean=None, var=None,
                  eps: float | None = None) -> Net:
        """BatchNormalization (fpgaq folds it into the dense layer before it).

        ``exact=True``: the folded scale ``gamma/sqrt(var+eps)`` is a power of two
        (about ``1/std`` of the data), ``var + eps`` a power of four exactly in
        float32 and the shift ``beta - mean*scale`` dyadic (raises if constants given
        are not so); ``exact=False``: PyTorch-like real constants, eps 1e-5.
        Constants given (scalars or one per feature) replace the random ones."""
        t, rng, n = self.here, self.rng, self.here.features
        mu, std = t.z.mean(axis=0), t.z.std(axis=0)
        if exact:
            m = np.clip(np.round(np.log2(np.where(std > 0, std, 1.0))), -4, 4).astype(np.int64)
            s = -m + rng.integers(-1, 2, n)  # scale 2**s, gamma 2**(s + m) in {1/2, 1, 2}
            eps = 4.0 ** (int(m.min()) - 1) if eps is None else eps
            f = t.frac - int(s.min())
            rand = (2.0 ** (s + m), np.round(rng.standard_normal(n) * 0.5 * 2.0**f) * 2.0**-f,
                    np.round(mu * 2.0**t.frac) * 2.0**-t.frac, 4.0**m - eps)
        else:
            eps = 1e-5 if eps is None else eps
            rand = (rng.uniform(0.5, 1.5, n), rng.normal(0.0, 0.5, n), mu + rng.normal(0.0, 0.1, n) * std,
                    np.maximum(std**2 * rng.uniform(0.8, 1.25, n), 1e-2))
        c = [np.broadcast_to(np.asarray(r if v is None else v, np.float32), (n,)).copy()
             for r, v in zip(rand, (gamma, beta, mean, var))]
        eps = float(np.float32(eps))
        fold = _bn_fold(t, *c, eps)
        if exact and fold is None:
            raise ValueError("batchnorm(exact=True): the input is not fixed point, or gamma/sqrt(var+eps) is "
                             "not a power of two with var+eps a power of four in float32, or the shift not dyadic")
        gamma, beta, mean, var = (v.astype(np.float64) for v in c)
        z = (t.z - mean) / np.sqrt((c[3] + np.float32(eps)).astype(np.float64)) * gamma + beta
        self._count["bn"] += 1
        bn = f"bn{self._count['bn']}"
        ins = [self.g.init(f"{bn}.{k}", v) for k, v in zip(("weight", "bias", "running_mean", "running_var"), c)]
        y = self.g.node("BatchNormalization", [t.name] + ins, self.g.tname(bn, "BatchNormalization"), bn,
                        epsilon=eps)
        if fold is None:
            return self._push(Tensor(y, n, z, t.frac, None, t.cap))
        return self._push(Tensor(y, n, z, fold[0], self._checked(fold[1], bn), fold[0]))

    def relu(self) -> Net:
        t, scope = self.here, f"relu{self.k}"
        y = self.g.node("Relu", [t.name], self.g.tname(scope, "Relu"), scope)
        return self._push(replace(t, name=y, z=np.maximum(t.z, 0.0), nonneg=True))

    def clip(self, lo: float = 0.0, hi: float = 6.0) -> Net:
        """A Clip activation (ReLU6 by default), float32 bounds."""
        t, scope = self.here, f"clip{self.k}"
        lo, hi = float(np.float32(lo)), float(np.float32(hi))
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"clip bounds must be finite with lo <= hi, got {lo}, {hi}")
        ins = [t.name, self.g.scalar(lo, np.float32, "Clip", "clip_min"),
               self.g.scalar(hi, np.float32, "Clip", "clip_max")]
        y = self.g.node("Clip", ins, self.g.tname(scope, "Clip"), scope)
        frac, bound = t.frac, None
        if t.bound is not None:  # clip is monotone: the range becomes [clip(-B), clip(B)]
            frac, big = max(t.frac, _frac_of([lo, hi])), t.bound * 2.0**-t.frac
            bound = int(max(abs(min(max(v, lo), hi)) for v in (-big, big)) * 2.0**frac)
        return self._push(Tensor(y, t.features, np.clip(t.z, lo, hi), frac, bound, t.cap, t.nonneg or lo >= 0))

    def add(self, other: Tensor | str) -> Net:
        """A residual connection: Add of the current tensor and ``other`` (a handle
        from ``net.here``, a ``tag`` or an ONNX tensor name)."""
        t = self.here
        o = other if isinstance(other, Tensor) else self._tags.get(other) or self._by_name.get(other)
        if o is None or self._by_name.get(o.name) is not o:
            raise ValueError(f"add: {other!r} is no tensor of this net")
        if o.features != t.features:
            raise ValueError(f"add: {t.features} features and {o.features} do not match")
        self._count["add"] += 1
        scope = f"add{self._count['add']}"
        y = self.g.node("Add", [t.name, o.name], self.g.tname(scope, "Add"), scope)
        frac, bound = max(t.frac, o.frac), None
        if t.bound is not None and o.bound is not None:
            bound = self._checked(t.bound * 2 ** (frac - t.frac) + o.bound * 2 ** (frac - o.frac), scope)
        return self._push(Tensor(y, t.features, t.z + o.z, frac, bound, max(t.cap, o.cap), t.nonneg and o.nonneg))

    def model(self) -> onnx.ModelProto:
        """The model so far: its output is the current tensor, renamed ``output_name``."""
        t = self.here
        model = self.g.model(in_name=self.input_name, in_shape=[self.batch, self.n_in], out_name=self.output_name,
                             out_shape=[self.batch, t.features], opsets=self.fmt.opsets(self.opset),
                             ir_version=self.ir_version, graph_name=self.graph_name)
        (node,) = [nd for nd in model.graph.node if t.name in nd.output]
        node.output[0] = self.output_name
        return model


def _bn_fold(t: Tensor, gamma, beta, mean, var, eps: float) -> tuple[int, int] | None:
    """(fraction bits, worst case) of BatchNormalization's output when float32 computes it
    exactly from fixed-point ``t``: var + eps a power of four, |gamma|/sqrt(var + eps) a
    power of two 2**s, mean and beta dyadic; None otherwise."""
    v = (var + np.float32(eps)).astype(np.float64)
    if t.bound is None or np.any(v != var.astype(np.float64) + eps):  # var + eps rounds
        return None
    s = []
    for g, vv in zip(gamma.astype(np.float64), v):
        root = math.sqrt(vv)
        if root * root != vv or math.frexp(root)[0] != 0.5 or g == 0 or math.frexp(abs(g) / root)[0] != 0.5:
            return None
        s.append(math.frexp(abs(g) / root)[1] - 1)
    mean, beta = mean.astype(np.float64), beta.astype(np.float64)
    f = max(max(t.frac, _frac_of(mean)) - min(s), _frac_of(beta))
    return f, max(t.bound * 2 ** (f - t.frac + k) + int(abs(m) * 2.0 ** (f + k)) + int(abs(b) * 2.0**f)
                  for k, m, b in zip(s, mean, beta))


# --------------------------------------------------------------------------- MLPs


def _mlp(net: Net, sizes, *, input_q: dict, w_bits, w_frac, act_bits, act_frac, act_signed, act_modes: list[str],
         relu: bool, final_relu: bool, final_quant: bool, **dense) -> onnx.ModelProto:
    """``Q(in) -> [dense -> Relu -> Q] * (L-1) -> dense [-> Relu] [-> Q]`` on ``net``."""
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"layer_sizes needs at least two positive sizes, got {sizes}")
    n = len(sizes) - 1
    w_bits, w_frac = _per_layer(w_bits, n, "w_bits"), _per_layer(w_frac, n, "w_frac")
    act_bits, act_frac = _per_layer(act_bits, n, "act_bits"), _per_layer(act_frac, n, "act_frac")
    if isinstance(act_signed, (list, tuple)):
        act_signed = _per_layer(act_signed, n, "act_signed")
    else:  # hidden quantizers follow act_signed; the logits' is signed unless final_relu
        act_signed = [bool(act_signed)] * (n - 1) + [bool(act_signed) if final_relu else True]
    net.input(int(sizes[0]), **input_q)
    for i in range(n):
        last = i == n - 1
        net.dense(int(sizes[i + 1]), w_bits=w_bits[i], w_frac=w_frac[i], **dense)
        if relu and (not last or final_relu):
            net.relu()
        if not last or final_quant:
            net.quant(act_bits[i], act_frac[i], bool(act_signed[i]), rounding=act_modes[i + 1])
    return net.model()


def qonnx_mlp(
    layer_sizes: Sequence[int], *, rng, in_bits: int = 8, in_frac: int = 4, in_signed: bool = True,
    w_bits: int | Sequence[int] = 6, w_frac: int | None | Sequence[int | None] = None, w_narrow: bool = True,
    act_bits: int | Sequence[int] = 8, act_frac: int | None | Sequence[int | None] = None,
    act_signed: bool | Sequence[bool] = False, rounding_mode: str | Sequence[str] = "ROUND",
    sparsity: float = 0.7, bias: str = "quant", bias_bits: int = 16, final_quant: bool = True,
    relu: bool = True, final_relu: bool = False, op_name: str = "Quant", domain: str = QONNX_DOMAIN,
    gemm: bool = True, trans_a: int = 0, trans_b: int = 1, alpha: float = 1.0, beta: float = 1.0,
    style: str = "brevitas", weights_as_inputs: bool | None = None, empty_names: bool | None = None,
    share_scalars: bool | None = None, batch: int | str = 1, ir_version: int = 8, opset: int = 13,
    input_name: str = "global_in", output_name: str = "global_out", check_exact: bool = True,
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
    net = Net(rng=rng, fmt="qonnx", op_name=op_name, domain=domain, style=style, weights_as_inputs=weights_as_inputs,
              empty_names=empty_names, share_scalars=share_scalars, batch=batch, ir_version=ir_version, opset=opset,
              input_name=input_name, output_name=output_name, check_exact=check_exact,
              graph_name="qonnx_mlp" if style == "clean" else None)
    act_modes, wb_mode = _rounding_list(rounding_mode, len(layer_sizes) - 1 + int(final_quant))
    return _mlp(net, layer_sizes, input_q=dict(bits=in_bits, frac=in_frac, signed=in_signed, rounding=act_modes[0]),
                w_bits=w_bits, w_frac=w_frac, act_bits=act_bits, act_frac=act_frac, act_signed=act_signed,
                act_modes=act_modes, relu=relu, final_relu=final_relu, final_quant=final_quant, w_narrow=w_narrow,
                w_rounding=wb_mode, sparsity=sparsity, bias=bias, bias_bits=bias_bits, gemm=gemm, trans_a=trans_a,
                trans_b=trans_b, alpha=alpha, beta=beta)


def qdq_mlp(
    layer_sizes: Sequence[int], *, rng, clip: bool = False, in_bits: int = 8, in_frac: int = 4,
    in_signed: bool = True, w_bits: int | Sequence[int] = 8, w_frac: int | None | Sequence[int | None] = None,
    act_bits: int | Sequence[int] = 8, act_frac: int | None | Sequence[int | None] = None,
    act_signed: bool | Sequence[bool] = False, sparsity: float = 0.7, bias: bool = True, final_quant: bool = True,
    relu: bool = True, gemm: bool = True, style: str = "brevitas", weights_as_inputs: bool | None = None,
    empty_names: bool | None = None, share_scalars: bool | None = None, batch: int | str = 1,
    ir_version: int = 8, opset: int = 13, input_name: str = "global_in", output_name: str = "global_out",
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
    net = Net(rng=rng, fmt="qcdq" if clip else "qdq", style=style, weights_as_inputs=weights_as_inputs,
              empty_names=empty_names, share_scalars=share_scalars, batch=batch, ir_version=ir_version, opset=opset,
              input_name=input_name, output_name=output_name, check_exact=check_exact,
              graph_name="qdq_mlp" if style == "clean" else None)
    n_layers = len(layer_sizes) - 1
    bits_used = [in_bits] + _per_layer(act_bits, n_layers, "act_bits")[: n_layers - 1 + int(final_quant)]
    if max(bits_used) > 8 or max(_per_layer(w_bits, n_layers, "w_bits")) > 8:
        raise ValueError("qdq_mlp: bit widths above 8 do not fit int8/uint8 QDQ tensors")
    if not clip and min(bits_used) < 8:
        raise ValueError("qdq_mlp: activation bit widths below 8 need clip=True (QCDQ)")
    return _mlp(net, layer_sizes, input_q=dict(bits=in_bits, frac=in_frac, signed=in_signed), w_bits=w_bits,
                w_frac=w_frac, act_bits=act_bits, act_frac=act_frac, act_signed=act_signed,
                act_modes=["ROUND"] * (n_layers + 1), relu=relu, final_relu=False, final_quant=final_quant,
                sparsity=sparsity, bias="float" if bias else "none", bias_bits=32, gemm=gemm)


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
