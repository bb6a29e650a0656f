"""Batch-norm folding: y = s * acc + t per channel, folded into the Dense before it. Exactly
when s and t are fixed point (the weights times s, the bias times s plus t); otherwise, with
`requantize`, |s| joins the accumulator's float factor (a Scale after it, which a requantiser
absorbs; a channel with s < 0 negates its weights and bias) and t its bias, rounded onto the
grid with the exact value kept for the float model's reference. After a convolution (a Dense
behind a Reshape to channels first), each channel's s and t apply to all its positions; a
streamed convolution's Dense (channels last, then Transpose and Reshape) takes them as they are."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..ir.fixed import compact_codes, regrid
from ..ir.graph import Graph, Node
from ..ir.ops import BatchNorm, Dense, Reshape, Scale, Transpose
from ..ir.tensor import Factor
from .rewrite import Rewrite


@dataclass(frozen=True)
class FoldBatchNorm:
    requantize: bool = False
    name: str = "fold_batchnorm"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        for n in graph.nodes:
            if isinstance(n.op, BatchNorm):
                self._fold(r, n, n.op)
            else:
                r.keep(n)
        return r.graph()

    def _fold(self, r: Rewrite, bn: Node, op: BatchNorm) -> None:
        dn = r[bn.inputs[0]]
        name = bn.name
        shape = dn.shape
        streamed = self._streamed(r, dn, op)
        if streamed is not None:
            last = self._into(r, bn, op, streamed, r.fresh(f"{bn.name}_dense"))
            if last is not None:
                first = r.add(r.fresh(f"{bn.name}_cf"), Transpose((1, 0)), (last,), bn.origin)
                r.add(bn.name, Reshape(shape), (first.name,), bn.origin)
            return
        if (isinstance(dn.op, Reshape) and len(shape) >= 2 and op.gamma.size == shape[0]
                and isinstance(r[dn.inputs[0]].op, Dense)):
            positions = int(np.prod(shape[1:]))          # a convolution's output, channels first
            op = BatchNorm(np.repeat(op.gamma, positions), np.repeat(op.beta, positions), np.repeat(op.mean, positions),
                           np.repeat(op.var, positions), op.eps)
            dn, name = r[dn.inputs[0]], r.fresh(f"{bn.name}_dense")
        if not isinstance(dn.op, Dense):
            r.problem(bn, "BatchNormalization must follow a Gemm/MatMul or a Conv, into which it is folded")
            return
        last = self._into(r, bn, op, dn, name)
        if last is None:
            return
        if name != bn.name:
            r.add(bn.name, Reshape(shape), (last,), bn.origin)
        elif last != bn.name:
            r.alias(bn.name, last)

    @staticmethod
    def _streamed(r: Rewrite, dn: Node, op: BatchNorm) -> Node | None:
        """The Dense of a streamed convolution (Dense -> Transpose -> Reshape) before the
        batch-norm, with one output a channel; else None."""
        if not (isinstance(dn.op, Reshape) and len(dn.shape) >= 2 and op.gamma.size == dn.shape[0]):
            return None
        t = r[dn.inputs[0]]
        if not (isinstance(t.op, Transpose) and t.op.perm == (1, 0)):
            return None
        d = r[t.inputs[0]]
        return d if isinstance(d.op, Dense) and d.shape[-1] == dn.shape[0] else None

    def _into(self, r: Rewrite, bn: Node, op: BatchNorm, dn: Node, name: str) -> str | None:
        """The batch-norm folded into the Dense dn, as node `name`; the name of the last node made."""
        d = dn.op
        assert isinstance(d, Dense)
        exact = op.exact(dn.out)
        if exact is None:
            if self.requantize:
                return self._float(r, bn, op, dn, d, name)
            s, _ = op.folded()
            r.problem(bn, f"the folded scale gamma/sqrt(var+eps) ({float(np.ravel(s)[0]):g}) or shift is not "
                          "exactly fixed point; fold batch-norm into the weights before quantizing them "
                          "(Brevitas/qonnx: merge BN into the preceding layer, then quantize), or build with "
                          "--requantize to carry its scale into the next quantizer's integer requantisation")
            return None
        (sc, sf), (tc, tf) = exact
        assert dn.type is not None
        acc_frac = dn.type.frac + sf
        on_grid = regrid(tc, tf, acc_frac)
        if on_grid is None:
            r.problem(bn, f"the folded batch-norm shift needs {tf} fraction bits, more than the "
                          f"accumulator's {acc_frac}; fold it into a quantized bias before export")
            return None
        weight = d.weight.astype(object) * np.asarray(sc, dtype=object)[:, None]
        bias = [int(b) * int(k) + int(c) for b, k, c in zip(d.bias, sc, on_grid)]
        r.add(name, replace(d, weight=compact_codes(weight), weight_frac=d.weight_frac + sf, bias=compact_codes(bias)),
              dn.inputs, bn.origin)
        return name

    def _float(self, r: Rewrite, bn: Node, op: BatchNorm, dn: Node, d: Dense, name: str) -> str | None:
        """y = s * acc + t: the accumulator's codes stay exact; the shift joins its bias."""
        s, t = op.folded()
        assert dn.type is not None
        sign = np.where(s < 0, -1, 1)
        factor = 1.0 if dn.out.factor is None else np.broadcast_to(dn.out.factor.array, s.shape)
        old = d.bias.astype(np.float64) if d.bias_exact is None else d.bias_exact
        exact = sign * old + t / (np.ldexp(1.0, -dn.type.frac) * (np.abs(s) * factor))
        codes = np.rint(exact)
        if np.any(np.abs(codes) >= 2.0 ** 62):
            r.problem(bn, "the folded batch-norm shift is too large for the accumulator's grid")
            return None
        weight = compact_codes(d.weight.astype(object) * sign[:, None].astype(object))
        folded = replace(d, weight=weight, bias=codes.astype(np.int64),
                         bias_exact=None if np.array_equal(codes, exact) else exact)
        r.add(name, folded, dn.inputs, bn.origin)
        return r.add(r.fresh(f"{bn.name}_scale"), Scale(Factor.of(np.abs(s))), (name,), bn.origin).name
