"""Bias and constants into the accumulator: a MatMul becomes a Dense, and the constants added,
subtracted, multiplied or divided after it (a bias; PyTorch's batch-norm written as Sub, Div,
Mul, Add; a TensorNorm) go into its bias and weights. Exactly where they are fixed point;
otherwise, with `requantize`, a multiplier joins the accumulator's float factor and an added
constant is rounded onto its grid, with the exact value kept for the float model's reference."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..ir.fixed import compact_codes, exact_codes, regrid
from ..ir.graph import Graph, Node
from ..ir.ops import Add, Dense, Div, MatMul, Mul, Sub
from ..ir.ops.linear import BatchNorm
from ..ir.tensor import Factor, Tensor
from .fold_affine_forward import MAX_FRAC
from .rewrite import Rewrite

FLOAT32_EPS = 2.0 ** -23     # float32's machine epsilon: its relative spacing at 1


def _per_output(values: np.ndarray, out: int) -> np.ndarray:
    return np.broadcast_to(values.reshape(-1) if values.size == out else values, (out,))


def _exact_bias(problem: Callable[[Node, str], None], add: Node, d: Dense, acc_frac: int, x_frac: int, c: Tensor) -> np.ndarray | None:
    """The bias codes on the accumulator's grid, or None (after telling `problem` why not)."""
    assert c.value is not None
    gemm = add.origin.onnx_op == "Gemm"
    if c.type is not None:
        bc, bf, what = c.value, c.type.frac, "bias"
    else:
        try:
            bc, bf = exact_codes(c.value, "the float bias" if gemm else "the added constant")
        except ValueError as e:
            problem(add, str(e))
            return None
        what = "float bias"
    on_grid = regrid(bc, bf, acc_frac)
    if on_grid is None:
        if gemm:
            problem(add, f"the {what} needs {bf} fraction bits but the accumulator has {acc_frac} (input "
                         f"{x_frac} + weight {d.weight_frac}), so it cannot be added exactly; quantize the bias "
                         "(Brevitas: bias_quant=Int16Bias or Int32Bias) or round it to the accumulator's grid")
        else:
            problem(add, f"the constant needs {bf} fraction bits but the accumulator has {acc_frac} (input "
                         f"{x_frac} + weight {d.weight_frac}), so it cannot be added exactly; quantize it "
                         "(Brevitas: Int16Bias), or build with --requantize to round it onto the accumulator's grid")
        return None
    return _per_output(on_grid, d.weight.shape[0])


def _rounded(r: Rewrite, node: Node, acc: Tensor, d: Dense, acc_frac: int, real: np.ndarray) -> tuple | None:
    """--requantize: (codes, exact values) of the bias plus `real` in units of the accumulator's
    float grid."""
    out = acc.shape[0]
    if not np.all(np.isfinite(real)):
        r.problem(node, "the bias holds NaN or Inf")
        return None
    factor = np.ones(out) if acc.factor is None else np.broadcast_to(acc.factor.array, (out,))
    old = d.bias.astype(np.float64) if d.bias_exact is None else d.bias_exact
    exact = old + real / (np.ldexp(1.0, -acc_frac) * factor)
    codes = np.rint(exact)
    if np.any(np.abs(codes) >= 2.0 ** 62):
        r.problem(node, "the bias is too large for the accumulator's grid")
        return None
    # on the grid within float32's precision (2**-23 of the value) counts as exact: a QDQ int32
    # bias has the float32 scale float32(x_scale * w_scale), the accumulator the exact product,
    # which differ by float32's rounding only; the model's float32 arithmetic cannot tell them apart
    exact = np.where(np.abs(exact - codes) <= np.abs(codes) * FLOAT32_EPS, codes, exact)
    return codes.astype(np.int64), (None if np.array_equal(codes, exact) else exact)


def _real(c: Tensor, out: int) -> np.ndarray:
    assert c.value is not None
    return _per_output(np.asarray(c.real_values(c.value), dtype=np.float64), out)


@dataclass(frozen=True)
class FoldAffine:
    requantize: bool = False
    name: str = "fold_affine"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        host = graph.host           # the host's pre-processing computes in float32: nothing to fold
        refused: set[str] = set()   # nodes with a problem: what follows them is not reported again
        for n in graph.nodes:
            if isinstance(n.op, MatMul):
                if refused.intersection(n.inputs):
                    r.keep(n)
                    refused.add(n.name)
                    continue
                try:
                    dense = n.op.dense([r[i].out for i in n.inputs])
                except ValueError as e:
                    r.problem(n, str(e))
                    refused.add(n.name)
                    continue
                r.add(n.name, dense, n.inputs[:1], n.origin)
            elif isinstance(n.op, (Add, Sub, Mul, Div)) and not n.out.const and n.name not in host:
                if refused.intersection(n.inputs):
                    r.keep(n)
                    refused.add(n.name)
                    continue
                before = len(r.problems)
                self._fold(r, n)
                if len(r.problems) > before:
                    refused.add(n.name)
            else:
                r.keep(n)
        return r.graph()

    def _fold(self, r: Rewrite, n: Node) -> None:
        a, b = (r[i] for i in n.inputs)
        if isinstance(n.op, Add) and not a.out.const and not b.out.const:
            if a.type is None or b.type is None or n.type is None:
                r.problem(n, "adds run-time tensors that are not both fixed point (a float scale on one); "
                             "quantize both with the same power-of-two scale before the Add")
            else:
                r.keep(n)        # a residual connection: exact on codes
            return
        dn, c = (a, b) if b.out.const else (b, a)
        verb = {"Add": "adds", "Sub": "subtracts", "Mul": "multiplies", "Div": "divides"}[type(n.op).__name__]
        if not isinstance(dn.op, Dense) or not c.out.const:
            if isinstance(n.op, Div) and dn.type is not None:
                r.problem(n, f"{verb} a quantized tensor by a constant that is not a power of two; its "
                             "reciprocal is not a fixed-point number, so fpgaq cannot fold it into the next "
                             "layer: multiply by a fixed-point constant instead, or divide after the layer")
                return
            if dn.type is not None and not self.requantize:
                r.problem(n, f"{verb} a quantized tensor by a constant that is not fixed point (more than "
                             f"{MAX_FRAC} fraction bits); build with --requantize to fold it into the next layer "
                             "exactly, or quantize it")
                return
            r.problem(n, f"{verb} with a constant something other than a MatMul/Gemm result or what a layer "
                         "reads; fpgaq folds such constants into the layer before or after them; move the "
                         "constant there, or quantize here")
            return
        if c is a and isinstance(n.op, (Sub, Div)):
            r.problem(n, f"{verb} a MatMul/Gemm result from a constant (c - x, c / x); fpgaq folds only "
                         "x - c and x / c")
            return
        d: Dense = dn.op
        x = r[dn.inputs[0]].out
        assert x.type is not None
        acc_frac = x.type.frac + d.weight_frac
        out = d.weight.shape[0]
        if isinstance(n.op, (Add, Sub)):
            self._add(r, n, dn, d, c.out, x.type.frac, acc_frac, -1 if isinstance(n.op, Sub) else 1)
        else:
            real = _real(c.out, out)
            self._scale(r, n, dn, d, 1.0 / real if isinstance(n.op, Div) else real, isinstance(n.op, Div))

    def _add(self, r: Rewrite, n: Node, dn: Node, d: Dense, c: Tensor, x_frac: int, acc_frac: int, sign: int) -> None:
        """A float scale on the accumulator (imported with --requantize) rounds the constant onto
        its grid; so does --requantize for a float constant finer than the grid."""
        out = d.weight.shape[0]
        if dn.out.factor is None and c.factor is None and d.bias_exact is None:
            exact = c if sign > 0 else Tensor(c.shape, c.type, None if c.interval is None else c.interval.scale(-1),
                                               value=None if c.value is None else -c.value)
            bias = _exact_bias((lambda *_: None) if self.requantize else r.problem, n, d, acc_frac, x_frac, exact)
            if bias is not None:
                total = compact_codes([int(u) + int(v) for u, v in zip(d.bias, bias)])
                r.add(n.name, replace(d, bias=total), dn.inputs, n.origin)
                return
            if not self.requantize:
                return
        rounded = _rounded(r, n, dn.out, d, acc_frac, sign * _real(c, out))
        if rounded is None:
            return
        codes, exact = rounded
        factor = d.factor if d.factor is not None else Factor.of(np.ones(out))
        r.add(n.name, replace(d, bias=codes, bias_exact=exact, factor=factor), dn.inputs, n.origin)

    def _scale(self, r: Rewrite, n: Node, dn: Node, d: Dense, k: np.ndarray, divides: bool) -> None:
        """The layer times k per output: exactly (k fixed point), or with k in its float factor."""
        if not np.all(np.isfinite(k)) or np.any(k == 0):
            r.problem(n, "scales the layer by zero, NaN or Inf for some output")
            return
        try:
            kc, kf = exact_codes(k, "the constant")
        except ValueError:
            kc, kf = None, 0
        if kc is not None and kf <= BatchNorm.MAX_SCALE_FRAC and dn.out.factor is None and d.bias_exact is None:
            weight = d.weight.astype(object) * np.asarray(kc, dtype=object)[:, None]
            bias = d.bias.astype(object) * np.asarray(kc, dtype=object)
            r.add(n.name, replace(d, weight=compact_codes(weight), weight_frac=d.weight_frac + kf, bias=compact_codes(bias)),
                  dn.inputs, n.origin)
            return
        if not self.requantize:
            r.problem(n, f"{'divides' if divides else 'multiplies'} by a constant that is not exactly fixed point "
                         f"({float(np.ravel(1.0 / k if divides else k)[0]):g}); fold it into the weights before "
                         "quantizing them, or build with --requantize to carry it into the next quantizer's "
                         "integer requantisation")
            return
        sign = np.where(k < 0, -1, 1)
        rows = np.ones(k.shape) if d.factor is None else np.broadcast_to(d.factor.array, k.shape)
        exact = None if d.bias_exact is None else sign * d.bias_exact
        folded = replace(d, weight=compact_codes(d.weight.astype(object) * sign[:, None].astype(object)),
                         bias=compact_codes(d.bias.astype(object) * sign.astype(object)), bias_exact=exact,
                         factor=Factor.of(np.abs(k) * rows))
        r.add(n.name, folded, dn.inputs, n.origin)

