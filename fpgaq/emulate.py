"""The bit-exact integer interpreter of the IR: the specification every back-end must meet.

Codes are int64 numpy arrays, or Python ints in object arrays where a range needs more than
62 bits. Everything is vectorised over the batch (axis 0).
"""
from __future__ import annotations

import numpy as np

from .errors import FpgaqError
from .ir.fixed import INT64_SAFE_BITS, Rounding, round_real, shift_round
from .ir.graph import Graph, Node
from .ir.ops import Bipolar, Clip, Dense, Input, Quant, Relu

FLOAT64_EXACT_BITS = 53


def _bits(node: Node) -> int:
    return node.interval.magnitude.bit_length() + 1


def _as_codes(x: np.ndarray, bits: int) -> np.ndarray:
    if bits <= INT64_SAFE_BITS:
        return x.astype(np.int64)
    return x.astype(object)


def _quant_real(op: Quant, x: np.ndarray) -> np.ndarray:
    # The model's input is float32: quantize what the model would see, exactly.
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    scaled = np.ldexp(x, op.type.frac)
    codes = np.clip(round_real(scaled, op.rounding), op.lo, op.hi)
    if op.type.width <= INT64_SAFE_BITS:
        return codes.astype(np.int64)
    return np.array([int(v) for v in codes.ravel()], dtype=object).reshape(codes.shape)


def _dense(node: Node, x: np.ndarray, x_node: Node) -> np.ndarray:
    op: Dense = node.op
    # A sum of integer products is exact in float64 while every partial sum stays below 2**53;
    # the input interval bounds them, so BLAS can do the work.
    bound = int(np.abs(op.weight).sum(axis=1).max(initial=0)) * x_node.interval.magnitude
    bound += int(np.abs(op.bias).max(initial=0))
    if bound.bit_length() < FLOAT64_EXACT_BITS and x.dtype != object:
        acc = x.astype(np.float64) @ op.weight.T.astype(np.float64) + op.bias.astype(np.float64)
        return acc.astype(np.int64)
    if bound.bit_length() < INT64_SAFE_BITS and x.dtype != object:
        return x.astype(np.int64) @ op.weight.T.astype(np.int64) + op.bias.astype(np.int64)
    w = op.weight.astype(object)
    return x.astype(object) @ w.T + op.bias.astype(object)


def run_codes(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Codes of every node for a batch of real inputs {input name: (N, features) array}."""
    values: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        op = node.op
        if isinstance(op, Input):
            x = np.asarray(inputs[node.name])
            if x.ndim != 2 or x.shape[1] != node.features:
                raise FpgaqError(f"input '{node.name}' needs shape (N, {node.features}), got {x.shape}")
            if np.isnan(x).any():
                raise FpgaqError(f"input '{node.name}' holds NaN; the model cannot quantize it")
            values[node.name] = x
            continue
        src = graph[node.inputs[0]]
        x = values[node.inputs[0]]
        if isinstance(op, Quant):
            if src.type is None:
                y = _quant_real(op, x)
            else:
                y = shift_round(x, src.type.frac - op.type.frac, op.rounding)
                y = np.clip(y, op.lo, op.hi)
        elif isinstance(op, Bipolar):
            y = np.where(x >= 0, 1, -1).astype(np.int64)
        elif isinstance(op, Dense):
            y = _dense(node, x, src)
        elif isinstance(op, Relu):
            y = np.maximum(x, 0)
        elif isinstance(op, Clip):
            y = np.clip(x, op.lo if op.lo is not None else src.interval.lo,
                        op.hi if op.hi is not None else src.interval.hi)
        else:  # pragma: no cover - verify() rejects unknown ops
            raise AssertionError(f"emulator has no rule for {op!r}")
        values[node.name] = _as_codes(np.asarray(y), _bits(node))
    return values


def to_real(codes: np.ndarray, frac: int) -> np.ndarray:
    """Real values (float64) of codes; exact while codes fit in 53 bits."""
    if codes.dtype == object:
        return np.array([float(c) for c in codes.ravel()]).reshape(codes.shape) * 2.0 ** -frac
    return np.ldexp(codes.astype(np.float64), -frac)


def run(graph: Graph, inputs) -> list[np.ndarray]:
    """Real-valued outputs (float64) for real inputs: an array for a one-input graph, or a dict."""
    if not isinstance(inputs, dict):
        (inp,) = graph.inputs
        inputs = {inp.name: inputs}
    codes = run_codes(graph, inputs)
    return [to_real(codes[o], graph[o].type.frac) for o in graph.outputs]


def output_codes(graph: Graph, inputs) -> list[np.ndarray]:
    if not isinstance(inputs, dict):
        (inp,) = graph.inputs
        inputs = {inp.name: inputs}
    codes = run_codes(graph, inputs)
    return [codes[o] for o in graph.outputs]


def input_codes(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Codes the input quantizer gives for real inputs (what the firmware receives)."""
    (inp,) = graph.inputs
    (q,) = graph.consumers(inp.name)
    return run_codes(graph.replace_nodes([inp, q], [q.name]), {inp.name: x})[q.name]


__all__ = ["run", "run_codes", "output_codes", "input_codes", "to_real", "Rounding"]
