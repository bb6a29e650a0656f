"""Table activations: each real-valued Sigmoid, Tanh or HardSigmoid becomes a lookup table on
its input's codes (into the quantizer that reads it, when one does: then exact wherever the
input's range fits the table); each Softmax becomes exp and reciprocal tables (`softmax:
table`), the index of the largest logit (`argmax`), or is dropped to give the logits (`skip`)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

from ..errors import ModelError
from ..ir.graph import Graph, Node
from ..ir.ops import Activation, Argmax, Lut, Op, Quant, Softmax, SoftmaxTable, Threshold
from ..ir.tensor import Tensor
from .rewrite import Rewrite

SOFTMAX_MODES = ("table", "argmax", "skip")


@dataclass(frozen=True)
class LowerTables:
    softmax: str = "table"
    bits: int = 10            # a table has at most 2**bits entries
    frac: int = 15            # fraction bits of a table's output where no quantizer follows
    name: str = "lower_tables"

    def run(self, graph: Graph) -> Graph:
        if not any(isinstance(n.op, (Activation, Softmax)) for n in graph.nodes):
            return graph
        r = Rewrite(graph)
        fused: dict[str, Node] = {}            # quantizer name -> the activation folded into it
        skipped = list(graph.skipped)
        for n in graph.nodes:
            if n.name in fused:
                act = fused[n.name]
                assert isinstance(act.op, Activation) and isinstance(n.op, Quant)
                x = r[act.inputs[0]].out
                self._add(r, n, partial(self._into_quant, act.op, x, n.op), act.inputs)
            elif isinstance(n.op, Activation):
                readers = graph.consumers(n.name)
                if (len(readers) == 1 and isinstance(readers[0].op, Quant) and n.name not in graph.outputs):
                    fused[readers[0].name] = n
                    continue
                x = r[n.inputs[0]].out
                self._add(r, n, partial(Lut.lower, n.op, x, None, self.frac, self.bits), n.inputs)
            elif isinstance(n.op, Softmax):
                x = r[n.inputs[0]].out
                if self.softmax == "skip":
                    r.alias(n.name, n.inputs[0])
                    skipped.append(n.origin.onnx_name)
                elif self.softmax == "argmax":
                    r.add(n.name, Argmax(), n.inputs, n.origin)
                else:
                    self._add(r, n, partial(SoftmaxTable.lower, x, self.frac, self.bits), n.inputs)
            else:
                r.keep(n)
        return r.graph(skipped=tuple(skipped))

    def _into_quant(self, model: Activation, x: Tensor, quant: Quant) -> Op:
        """A table with an entry a code (exact); where the input's range is wider than that,
        thresholds (exact) where they are no more than the table's entries, else a table of
        bins."""
        table = Lut.lower(model, x, quant, self.frac, self.bits)
        if table.exact():
            return table
        thresholds = Threshold.lower(table, x, most=(1 << self.bits) * x.size)
        if thresholds is not None and thresholds.thresholds.shape[1] <= 1 << self.bits:
            return thresholds
        return table

    @staticmethod
    def _add(r: Rewrite, n: Node, make: Callable[[], Op], inputs: Sequence[str]) -> None:
        try:
            op = make()
        except ValueError as e:          # the input does not fit a table: a user problem
            raise ModelError([*r.problems, f"{n.origin}: {e}"]) from None
        r.add(n.name, op, inputs, n.origin)
