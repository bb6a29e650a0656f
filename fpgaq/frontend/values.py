"""What the importer knows about each ONNX tensor while it walks the graph."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..ir.graph import Node


@dataclass(frozen=True)
class Const:
    """A constant. `codes`/`frac` are set when it is exactly fixed point (a quantized weight)."""
    value: np.ndarray                 # the ONNX value (float64 or int64)
    codes: np.ndarray | None = None
    frac: int | None = None
    onnx_type: int | None = None      # TensorProto element type, where it matters (QDQ zero-points)
    scale: np.ndarray | None = None   # float scale factor of the codes (--requantize), broadcastable


@dataclass(frozen=True)
class Tensor:
    """A run-time tensor: an IR node, whose ONNX value is code * 2**-view_frac.

    view_frac equals the node's type frac except for the integer tensors of QDQ models
    (QuantizeLinear's output), whose ONNX value is the code itself (view_frac 0).
    """
    node: Node
    view_frac: int | None             # None for a real (float) tensor before the input quantizer
    transposed: bool = False          # (features, batch) layout, after Transpose(perm=[1, 0])
    bounds: tuple[float, float] = (-math.inf, math.inf)   # a Clip on a real tensor, applied by its quantizer
    scale: float | np.ndarray | None = None   # float factor (--requantize): value = code * 2**-view_frac * scale


class Poison:
    """The output of a node that already failed; its readers report nothing more."""


POISON = Poison()


class Problem(Exception):
    """One problem with one ONNX node; the importer collects them all."""
