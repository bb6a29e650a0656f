"""Bit-width propagation: every tensor between quantizers gets the smallest type holding its
exact range, derived by interval arithmetic over the actual weight codes (`ir.ops.infer`)."""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.graph import Graph, retype


@dataclass(frozen=True)
class PropagateWidths:
    name: str = "propagate_widths"

    def run(self, graph: Graph) -> Graph:
        # Quantizers keep the types the model gives them; everything else is re-derived from
        # the (possibly narrower, after earlier passes) ranges of its inputs.
        return retype(graph)
