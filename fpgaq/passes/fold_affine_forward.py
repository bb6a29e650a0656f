"""Constants between a quantizer and the layer after it: `x * a + b` (Mul, Div by a power of two,
Add, Sub by constants, in any chain, per tensor or per feature) read only by MatMuls goes into
each: W (a x + b) = (W diag(a)) x + W b. Every float constant is a dyadic number, so the new
weights and the new bias are exact (the weights take the fraction bits they need, and more
where the bias is finer than the accumulator); the bias is an Add after the MatMul, which
fold_affine folds as any bias. Constants of more than MAX_FRAC fraction bits (0.3: its float32 has
24) are folded only with `requantize`: the model computes with them in float32, which the
exact result differs from where float32 rounds onto a tie. A Div by anything but a power of
two has no exact reciprocal and is refused."""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..ir.graph import Graph, Node
from ..ir.ops import Add, Constant, Div, MatMul, Mul, Sub
from ..ir.ops.linear import row_factor, weight_codes
from ..ir.tensor import Factor
from .rewrite import Rewrite

Affine = tuple[str, list[Fraction], list[Fraction]]    # (source, a, b) an element: y = a x + b
MAX_FRAC = 16        # a fixed-point constant: at most this many fraction bits


def _fractions(values: np.ndarray) -> list[Fraction]:
    return [Fraction(float(v)) for v in np.ravel(values)]


def _power_of_two(f: Fraction) -> bool:
    n, d = abs(f.numerator), f.denominator        # reduced: one of them is 1 for a power of two
    return n != 0 and (n & (n - 1)) == 0 and (d & (d - 1)) == 0


def _step(graph: Graph, n: Node) -> tuple[str, list[Fraction], list[Fraction]] | None:
    """(x, a, b) with n = a x + b on the run-time input x, per element of x; None where n is not
    such a step (a Div by anything but a power of two has no exact reciprocal)."""
    (p, q) = (graph[i] for i in n.inputs)
    if p.out.const == q.out.const:
        return None
    x, c, const_first = (q, p, True) if p.out.const else (p, q, False)
    if len(x.shape) != 1 or c.out.value is None:
        return None
    try:
        values = np.broadcast_to(np.asarray(c.out.real_values(c.out.value), dtype=np.float64), x.shape)
    except ValueError:
        return None
    if not np.all(np.isfinite(values)):
        return None
    k = _fractions(values)
    one, zero = [Fraction(1)] * x.size, [Fraction(0)] * x.size
    if isinstance(n.op, Add):
        return x.name, one, k
    if isinstance(n.op, Sub):
        return (x.name, [-v for v in one], k) if const_first else (x.name, one, [-v for v in k])
    if isinstance(n.op, Mul):
        return x.name, k, zero
    if isinstance(n.op, Div) and not const_first and all(_power_of_two(v) for v in k):
        return x.name, [1 / v for v in k], zero
    return None


def _frac(values: list[Fraction]) -> int:
    """The fraction bits that hold every (dyadic) value."""
    return max((v.denominator.bit_length() - 1 for v in values), default=0)


@dataclass(frozen=True)
class FoldAffineForward:
    requantize: bool = False
    name: str = "fold_affine_forward"

    def run(self, graph: Graph) -> Graph:
        host = graph.host
        affine: dict[str, Affine] = {}
        for n in graph.nodes:
            if not isinstance(n.op, (Add, Sub, Mul, Div)) or n.name in host or n.out.const:
                continue
            step = _step(graph, n)
            if step is None:
                continue
            x, a, b = step
            if not self.requantize and max(_frac(a), _frac(b)) > MAX_FRAC:
                continue                         # fold_affine says what to do
            if x in affine:                      # a chain: compose a2 (a1 x + b1) + b2
                src, a1, b1 = affine[x]
                affine[n.name] = (src, [p * q for p, q in zip(a1, a)], [p * q + r for p, q, r in zip(b1, a, b)])
            elif graph[x].type is not None and graph[x].out.factor is None and not isinstance(graph[x].op, MatMul):
                affine[n.name] = (x, a, b)       # after a quantizer (a MatMul's result: fold_affine's)
        dropped = self._dropped(graph, affine)
        if not dropped:
            return graph
        r = Rewrite(graph)
        for n in graph.nodes:
            if n.name in dropped:
                continue
            if isinstance(n.op, MatMul) and n.inputs[0] in dropped:
                self._fold(r, n, affine[n.inputs[0]])
            else:
                r.keep(n)
        return r.graph()

    @staticmethod
    def _dropped(graph: Graph, affine: dict[str, Affine]) -> set[str]:
        """The affine steps every reader of which is a MatMul's data input or a dropped step."""
        dropped: set[str] = set()
        for n in reversed(graph.nodes):
            if n.name not in affine or n.name in graph.outputs:
                continue
            readers = graph.consumers(n.name)
            if readers and all((isinstance(c.op, MatMul) and c.inputs[0] == n.name and n.name not in c.inputs[1:])
                               or c.name in dropped for c in readers):
                dropped.add(n.name)
        return dropped

    def _fold(self, r: Rewrite, n: Node, step: Affine) -> None:
        src, a, b = step
        x = r[src].out
        assert x.type is not None
        w = r[n.inputs[1]].out
        codes, wf = weight_codes(w)                       # (in, out)
        rows = row_factor(w, 0)
        af = _frac(a)
        scaled = [[Fraction(int(codes[i, o])) * a[i] * (1 << af) for o in range(codes.shape[1])]
                  for i in range(codes.shape[0])]
        bias = [sum((Fraction(int(codes[i, o]), 1 << wf) * b[i] for i in range(codes.shape[0])), Fraction(0))
                for o in range(codes.shape[1])]
        if rows is not None:
            bias = [v * Fraction(float(f)) for v, f in zip(bias, rows)]
        # the bias must be on the accumulator's grid: finer weights where it is not
        extra = max(0, _frac(bias) - (x.type.frac + wf + af)) if rows is None else 0
        frac = wf + af + extra
        w_codes = np.array([[int(v * (1 << extra)) for v in row] for row in scaled], dtype=object)
        weight = Constant.codes(w_codes, frac, None if rows is None else Factor.of(np.broadcast_to(rows, w_codes.shape[1:])))
        wn = r.add(r.fresh(f"{n.name}_w"), weight, (), n.origin)
        if not any(bias):
            r.add(n.name, MatMul(), (src, wn.name), n.origin)
            return
        mm = r.add(r.fresh(f"{n.name}_mm"), MatMul(), (src, wn.name), n.origin)
        if rows is None:
            bf = _frac(bias)
            c = Constant.codes(np.array([int(v * (1 << bf)) for v in bias], dtype=object), bf)
        else:
            c = Constant(np.array([float(v) for v in bias]))
        bn = r.add(r.fresh(f"{n.name}_b"), c, (), n.origin)
        r.add(n.name, Add(), (mm.name, bn.name), n.origin)
