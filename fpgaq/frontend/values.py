"""What the importer knows about each ONNX tensor while it walks the graph."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir.graph import Node


@dataclass(frozen=True)
class Const:
    """An initializer or a Constant node's value, not yet an IR node: quantizer parameters
    are read from it; it becomes a Constant node where a node reads it as data."""
    value: np.ndarray                 # as ONNX holds it (float64 or int64)
    onnx_type: int                    # TensorProto element type (QDQ zero-points name the output type)


@dataclass(frozen=True)
class Value:
    """An ONNX tensor the IR computes: the node whose output it is."""
    node: Node
    transposed: bool = False          # (features, batch) layout, after Transpose(perm=[1, 0])

    @property
    def const(self) -> bool:
        """Computed from constants only: its value is known."""
        return self.node.out.value is not None


class Poison:
    """The output of a node that already failed; its readers report nothing more."""


POISON = Poison()


class Problem(Exception):
    """One problem with one ONNX node; the importer collects them all."""
