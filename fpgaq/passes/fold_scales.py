"""Scale folding: a Scale only relabels codes (a power of two moves the binary point, a float
factor rides along), so none needs to reach the firmware. In one walk, each Scale becomes a
relabel pending on its input's codes, and every reader takes it in: a quantizer reads its
input's binary point and a Clip divides its bounds (both pass the relabel on), a Reshape or Transpose, a
ReLU and a LeakyRelu are indifferent to a positive factor (and pass it on), a Dense takes it into its
weights' binary point or float factor; a requantiser, thresholds and a bipolar quantizer are
indifferent to it (the multiplier or the thresholds already hold it; a positive factor keeps
the sign). At a graph output a float factor goes to the host; a power of two there is an
integer tensor the model never dequantizes: an error. A reader that can take neither gets the
Scale back, just before it."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ModelError
from ..ir.graph import Graph, Node, Origin
from ..ir.ops import Bipolar, Clip, Dense, LeakyRelu, Op, Quant, Relu, Requant, Reshape, Scale, Threshold, Transpose
from ..ir.ops.linear import output_factor
from ..ir.tensor import Factor
from .rewrite import Rewrite


@dataclass(frozen=True)
class Relabel:
    """What Scales left pending on a tensor: value = code * 2**-(frac - exponent) * factor."""
    exponent: int = 0
    factor: Factor | None = None
    origin: Origin | None = None       # the node that made it, for messages

    def then(self, s: Scale, origin: Origin) -> Relabel:
        e = s.exponent()
        if e is not None:
            return Relabel(self.exponent + e, self.factor, origin)
        factor = s.factor if self.factor is None else Factor.of(s.factor.array * self.factor.array)
        return Relabel(self.exponent, factor, origin)

    @property
    def empty(self) -> bool:
        return self.exponent == 0 and self.factor is None


NONE = Relabel()


@dataclass(frozen=True)
class FoldScales:
    name: str = "fold_scales"

    def run(self, graph: Graph) -> Graph:
        r = Rewrite(graph)
        pending: dict[str, Relabel] = {}
        for n in graph.nodes:
            if isinstance(n.op, Scale) and n.out.value is None:
                pending[n.name] = pending.get(n.inputs[0], NONE).then(n.op, n.origin)
                r.alias(n.name, n.inputs[0])
                continue
            relabels = [pending.get(i, NONE) for i in n.inputs]
            if all(p.empty for p in relabels):
                r.keep(n)
                continue
            taken = self._take(r, n, relabels[0]) if len(relabels) == 1 else None
            if taken is None:            # put the Scales back before this reader
                ins = [self._restore(r, i, p) for i, p in zip(n.inputs, relabels)]
                r.add(n.name, n.op, ins, n.origin)
                continue
            op, passed = taken
            if n.name in r.nodes:          # a problem kept it as it was
                continue
            r.add(n.name, op, n.inputs, n.origin)
            if not passed.empty:
                pending[n.name] = passed
        return self._outputs(r, graph, pending)

    def _take(self, r: Rewrite, n: Node, p: Relabel) -> tuple[Op, Relabel] | None:
        """(the reader's new op, the relabel left on its output), or None if it cannot."""
        op = n.op
        if isinstance(op, (Requant, Threshold, Bipolar)):
            return op, NONE
        if isinstance(op, (Relu, LeakyRelu)):        # homogeneous: f(k x) = k f(x) for k > 0
            return op, replace(p, origin=n.origin)
        if isinstance(op, (Reshape, Transpose)):      # the same codes; a factor an element moves with them
            factor = p.factor
            if factor is not None and not factor.uniform:
                every = np.broadcast_to(factor.array, r[n.inputs[0]].out.shape)
                factor = Factor.of(every.reshape(op.shape) if isinstance(op, Reshape) else every.transpose(op.perm))
            return op, replace(p, factor=factor, origin=n.origin)
        if isinstance(op, Clip):              # its bounds are values: on the codes before the relabel, divided
            if p.factor is not None and not p.factor.uniform:
                r.problem(n, "a Clip on a tensor with per-channel float scales is not supported")
                return op, NONE
            k = 2.0 ** p.exponent
            f = 1.0 if p.factor is None else p.factor.values[0]
            lo, hi = (None if v is None else v / f / k for v in (op.lo, op.hi))
            return Clip(lo, hi), replace(p, origin=n.origin)
        if isinstance(op, Quant) and p.factor is None and op.step is None:
            return replace(op, type=op.type.relabel(-p.exponent)), replace(p, origin=n.origin)
        if isinstance(op, Dense):
            if p.factor is not None:
                x = r[n.inputs[0]].out
                rows = None if op.factor is None else op.factor.array
                op = replace(op, factor=output_factor(replace(x, factor=p.factor), rows, op.weight.shape[0]))
            return replace(op, weight_frac=op.weight_frac - p.exponent), NONE
        return None

    def _restore(self, r: Rewrite, name: str, p: Relabel) -> str:
        """The Scales of relabel p again, after `name`; the name of the last."""
        if p.empty:
            return name
        origin = p.origin or r[name].origin
        if p.exponent:
            name = r.add(r.fresh(f"{name}_scale"), Scale(Factor.of(2.0 ** p.exponent)), (name,), origin).name
        if p.factor is not None:
            name = r.add(r.fresh(f"{name}_scale"), Scale(p.factor), (name,), origin).name
        return name

    def _outputs(self, r: Rewrite, graph: Graph, pending: dict[str, Relabel]) -> Graph:
        """Float factors at the outputs go to the host; a power of two there is an error."""
        scales, problems = [], []
        for i, o in enumerate(graph.outputs):
            p = pending.get(o, NONE)
            scale = graph.output_scale(i)
            if p.factor is not None:
                scale = p.factor if scale is None else Factor.of(scale.array * p.factor.array)
            scales.append(scale)
            if p.exponent:
                name = graph.output_names[i] if i < len(graph.output_names) else o
                if p.origin is not None and p.origin.onnx_op == "Trunc":
                    problems.append(f"graph output '{name}' comes from a 5-input Trunc, whose codes are read "
                                    "back at its input scale; fpgaq cannot end a model on it yet: use the "
                                    "6-input Trunc (qonnx opset 2) with an output scale, or add a layer after it")
                else:
                    problems.append(f"graph output '{name}' is an integer QDQ tensor; end the model with "
                                    "DequantizeLinear")
        if problems:
            raise ModelError(problems)
        return r.graph(output_scales=tuple(scales) if any(s is not None for s in scales) else ())
