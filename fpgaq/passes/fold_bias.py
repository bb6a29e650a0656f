"""Bias into the accumulator: a MatMul becomes a Dense, and an Add of a constant after it
becomes that Dense's bias, on the accumulator's grid. Exactly, or (a float scale on the
accumulator, --requantize) rounded onto the grid, with the exact value kept for the float
model's reference."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir.fixed import compact_codes, exact_codes, regrid
from ..ir.graph import Graph, Node
from ..ir.ops import Add, Dense, MatMul
from ..ir.tensor import Factor, Tensor
from .rewrite import Rewrite


def _per_output(values: np.ndarray, out: int) -> np.ndarray:
    return np.broadcast_to(values.reshape(-1) if values.size == out else values, (out,))


def _exact_bias(r: Rewrite, add: Node, d: Dense, acc_frac: int, x_frac: int, c: Tensor) -> np.ndarray | None:
    """The bias codes on the accumulator's grid, or None (a problem is recorded)."""
    assert c.value is not None
    gemm = add.origin.onnx_op == "Gemm"
    if c.type is not None:
        bc, bf, what = c.value, c.type.frac, "bias"
    else:
        try:
            bc, bf = exact_codes(c.value, "the float bias" if gemm else "the added constant")
        except ValueError as e:
            r.problem(add, str(e))
            return None
        what = "float bias"
    on_grid = regrid(bc, bf, acc_frac)
    if on_grid is None:
        if gemm:
            r.problem(add, f"the {what} needs {bf} fraction bits but the accumulator has {acc_frac} (input "
                           f"{x_frac} + weight {d.weight_frac}), so it cannot be added exactly; quantize the bias "
                           "(Brevitas: bias_quant=Int16Bias or Int32Bias) or round it to the accumulator's grid")
        else:
            r.problem(add, f"the added bias needs {bf} fraction bits but the accumulator has {acc_frac}; "
                           "quantize the bias (Brevitas: Int16Bias) or round it to the accumulator's grid")
        return None
    return _per_output(on_grid, d.weight.shape[0])


def _rounded_bias(r: Rewrite, add: Node, acc: Tensor, acc_frac: int, c: Tensor) -> tuple | None:
    """--requantize: (codes, exact values) of the bias in units of the accumulator's float grid."""
    assert c.value is not None
    out = acc.shape[0]
    real = _per_output(c.real_values(c.value), out)
    if not np.all(np.isfinite(real)):
        r.problem(add, "the bias holds NaN or Inf")
        return None
    factor = np.ones(out) if acc.factor is None else np.broadcast_to(acc.factor.array, (out,))
    exact = real / (np.ldexp(1.0, -acc_frac) * factor)
    codes = np.rint(exact)
    if np.any(np.abs(codes) >= 2.0 ** 62):
        r.problem(add, "the bias is too large for the accumulator's grid")
        return None
    return codes.astype(np.int64), (None if np.array_equal(codes, exact) else exact)


@dataclass(frozen=True)
class FoldBias:
    name: str = "fold_bias"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        host = graph.host           # the host's pre-processing adds in float32: nothing to fold
        for n in graph.nodes:
            if isinstance(n.op, MatMul):
                r.add(n.name, n.op.dense([r[i].out for i in n.inputs]), n.inputs[:1], n.origin)
            elif isinstance(n.op, Add) and not n.out.const and n.name not in host:
                self._fold(r, n)
            else:
                r.keep(n)
        return r.graph()

    def _fold(self, r: Rewrite, add: Node) -> None:
        a, b = (r[i] for i in add.inputs)
        dn, c = (a, b) if b.out.const else (b, a)
        if not isinstance(dn.op, Dense):
            r.problem(add, "adds a constant to something other than a MatMul/Gemm result; fold the "
                           "constant into the layer before it")
            return
        d: Dense = dn.op
        x = r[dn.inputs[0]].out
        assert x.type is not None
        acc_frac = x.type.frac + d.weight_frac
        out = d.weight.shape[0]
        if dn.out.factor is None and c.out.factor is None:
            bias = _exact_bias(r, add, d, acc_frac, x.type.frac, c.out)
            if bias is not None:
                total = compact_codes([int(u) + int(v) for u, v in zip(d.bias, bias)])
                r.add(add.name, Dense(d.weight, d.weight_frac, total, factor=d.factor), dn.inputs, add.origin)
            return
        if d.bias_exact is not None or np.any(d.bias != 0):
            r.problem(add, "adds a constant to a float-scale (--requantize) tensor; export the bias inside the Gemm")
            return
        rounded = _rounded_bias(r, add, dn.out, acc_frac, c.out)
        if rounded is None:
            return
        codes, exact = rounded
        factor = d.factor if d.factor is not None else Factor.of(np.ones(out))
        r.add(add.name, replace(d, bias=codes, bias_exact=exact, factor=factor), dn.inputs, add.origin)
