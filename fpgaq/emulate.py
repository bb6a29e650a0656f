"""The bit-exact integer interpreter of the IR: the specification every back-end must meet.

Values are integer codes, vectorised over the batch (axis 0). When every value and every
partial sum of a graph is below 2**53 in magnitude (the intervals prove it), codes are held
in float64, where integer arithmetic is exact and matrix products run on BLAS; otherwise
int64, or Python ints in object arrays past 62 bits. Results are the same integers either way.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .errors import FpgaqError
from .ir.fixed import INT64_SAFE_BITS, round_real, shift_round
from .ir.graph import Graph, Node
from .ir.ops import Bipolar, Clip, Dense, Input, Quant, Relu, Requant

FLOAT64_EXACT_BITS = 52   # integers and their halves are exact in float64 below 2**52


def _bits(node: Node) -> int:
    return node.interval.magnitude.bit_length() + 1


@lru_cache(maxsize=256)
def _dense_bound(op: Dense, x: Node) -> int:
    """A bound on every partial sum of the dot products (order of summation is free)."""
    w = np.abs(op.weight).astype(object)
    return int(w.sum(axis=1).max(initial=0)) * x.interval.magnitude + int(np.abs(op.bias.astype(object)).max(initial=0))


@lru_cache(maxsize=64)
def _float_exact(graph: Graph) -> bool:
    for n in graph.nodes:
        if n.interval is not None and _bits(n) >= FLOAT64_EXACT_BITS:
            return False
        if isinstance(n.op, Dense) and _dense_bound(n.op, graph[n.inputs[0]]).bit_length() >= FLOAT64_EXACT_BITS:
            return False
        if isinstance(n.op, Quant) and n.type.width >= FLOAT64_EXACT_BITS:
            return False
        if isinstance(n.op, Requant) and (graph[n.inputs[0]].interval.magnitude
                                          * int(n.op.multiplier.max())).bit_length() >= FLOAT64_EXACT_BITS:
            return False
    return True


@lru_cache(maxsize=256)
def _float_weights(op: Dense) -> tuple[np.ndarray, np.ndarray]:
    return op.weight.T.astype(np.float64), op.bias.astype(np.float64)


def _quant_real(op: Quant, x: np.ndarray) -> np.ndarray:
    """Quantize real inputs as the model does: it reads float32, then rounds and saturates."""
    if op.input_scale is not None:   # a float scale: x / scale in float32, as the model computes it
        q = (np.asarray(x, dtype=np.float32) / np.float32(op.input_scale)).astype(np.float64)
        return np.clip(round_real(q, op.rounding), op.lo, op.hi)
    x = np.asarray(x, dtype=np.float32).astype(np.float64)
    scaled = np.ldexp(x, op.type.frac)  # exact, also for subnormal and huge float32 values
    codes = round_real(scaled, op.rounding)
    if op.type.width < FLOAT64_EXACT_BITS:
        return np.clip(codes, op.lo, op.hi)
    # wider bounds are not all floats (2**63 - 1 rounds up to 2**63): saturate on Python ints
    near = np.clip(codes, float(op.lo), float(op.hi)).ravel()
    return np.array([min(max(int(v), op.lo), op.hi) for v in near], dtype=object).reshape(codes.shape)


def _step_float(node: Node, src: Node, x: np.ndarray) -> np.ndarray:
    op = node.op
    if isinstance(op, Quant):
        if src.type is None:
            return _quant_real(op, x)
        shift = src.type.frac - op.type.frac
        # codes are integers below 2**52: scaling by a power of two is exact
        y = x * 2.0 ** -shift
        y = round_real(y, op.rounding) if shift > 0 else y
        return np.clip(y, op.lo, op.hi, out=y)
    if isinstance(op, Bipolar):
        return np.where(x >= 0, 1.0, -1.0)
    if isinstance(op, Requant):
        y = x * op.multiplier.astype(np.float64)          # exact: checked below 2**52
        y = round_real(y * 2.0 ** -op.shift, op.rounding) if op.shift > 0 else y * 2.0 ** -op.shift
        return np.clip(y, op.lo, op.hi, out=y)
    if isinstance(op, Dense):
        w, b = _float_weights(op)
        return x @ w + b
    if isinstance(op, Relu):
        return np.maximum(x, 0.0)
    if isinstance(op, Clip):
        return np.clip(x, op.lo if op.lo is not None else -np.inf, op.hi if op.hi is not None else np.inf)
    raise AssertionError(f"emulator has no rule for {op!r}")  # pragma: no cover


def _as_codes(x: np.ndarray, bits: int) -> np.ndarray:
    if x.dtype == object and bits <= INT64_SAFE_BITS:
        return x.astype(np.int64)
    if bits <= INT64_SAFE_BITS:
        return x.astype(np.int64)
    return np.array([int(v) for v in x.ravel()], dtype=object).reshape(x.shape)


def _step_int(node: Node, src: Node, x: np.ndarray) -> np.ndarray:
    op = node.op
    if isinstance(op, Quant):
        if src.type is None:
            y = _quant_real(op, x)
        else:
            shift = src.type.frac - op.type.frac
            if x.dtype != object and _bits(src) + max(-shift, 0) > INT64_SAFE_BITS:
                x = x.astype(object)          # a left shift past 62 bits: Python ints
            y = np.clip(shift_round(x, shift, op.rounding), op.lo, op.hi)
    elif isinstance(op, Bipolar):
        y = np.where(x >= 0, 1, -1)
    elif isinstance(op, Requant):
        m = op.multiplier.astype(object) if x.dtype == object or _bits(src) + 32 > INT64_SAFE_BITS else op.multiplier
        y = np.clip(shift_round(x.astype(m.dtype) * m, op.shift, op.rounding), op.lo, op.hi)
    elif isinstance(op, Dense):
        if _bits(node) <= INT64_SAFE_BITS and _dense_bound(op, src).bit_length() <= INT64_SAFE_BITS \
                and x.dtype != object:
            y = x @ op.weight.T.astype(np.int64) + op.bias.astype(np.int64)
        else:
            y = x.astype(object) @ op.weight.T.astype(object) + op.bias.astype(object)
    elif isinstance(op, Relu):
        y = np.maximum(x, 0)
    elif isinstance(op, Clip):
        y = np.clip(x, op.lo if op.lo is not None else src.interval.lo,
                    op.hi if op.hi is not None else src.interval.hi)
    else:  # pragma: no cover - verify() rejects unknown ops
        raise AssertionError(f"emulator has no rule for {op!r}")
    return _as_codes(np.asarray(y), _bits(node))


def _evaluate(graph: Graph, inputs: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], bool]:
    fast = _float_exact(graph)
    values: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if isinstance(node.op, Input):
            x = np.asarray(inputs[node.name])
            if x.ndim != 2 or x.shape[1] != node.features:
                raise FpgaqError(f"input '{node.origin.onnx_name}' needs shape (N, {node.features}), got {x.shape}")
            if np.isnan(x).any():
                raise FpgaqError(f"input '{node.origin.onnx_name}' holds NaN; the model cannot quantize it")
            values[node.name] = x
            continue
        src = graph[node.inputs[0]]
        step = _step_float if fast else _step_int
        values[node.name] = step(node, src, values[node.inputs[0]])
    return values, fast


def _codes(graph: Graph, name: str, v: np.ndarray, fast: bool) -> np.ndarray:
    return _as_codes(v, _bits(graph[name])) if fast else v


def _named(graph: Graph, inputs) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict):
        return inputs
    (inp,) = graph.inputs
    return {inp.name: inputs}


def run_codes(graph: Graph, inputs) -> dict[str, np.ndarray]:
    """Codes of every node (int64, or object past 62 bits) for a batch of real inputs."""
    values, fast = _evaluate(graph, _named(graph, inputs))
    return {k: (v if isinstance(graph[k].op, Input) else _codes(graph, k, v, fast)) for k, v in values.items()}


def output_codes(graph: Graph, inputs) -> list[np.ndarray]:
    values, fast = _evaluate(graph, _named(graph, inputs))
    return [_codes(graph, o, values[o], fast) for o in graph.outputs]


def to_real(codes: np.ndarray, frac: int) -> np.ndarray:
    """Real values (float64) of codes; exact while codes fit in 53 bits."""
    if codes.dtype == object:
        return np.array([float(c) for c in codes.ravel()]).reshape(codes.shape) * 2.0 ** -frac
    return np.ldexp(codes.astype(np.float64), -frac)


CHUNK = 16384   # rows a step: intermediate arrays stay in cache


def _chunks(inputs: dict[str, np.ndarray]):
    n = len(next(iter(inputs.values())))
    for start in range(0, max(n, 1), CHUNK):
        yield {k: np.asarray(v)[start:start + CHUNK] for k, v in inputs.items()}


def run(graph: Graph, inputs) -> list[np.ndarray]:
    """Real-valued outputs (float64), one array an output, for real inputs (an (N, F) array
    for a one-input graph, or {input name: array})."""
    parts = []
    for chunk in _chunks(_named(graph, inputs)):
        values, fast = _evaluate(graph, chunk)
        parts.append([real_values(graph, i, values[o]) for i, o in enumerate(graph.outputs)])
    return [np.concatenate(p) for p in zip(*parts)]


def _step_reference(node: Node, src: Node, x: np.ndarray) -> np.ndarray:
    """The float model: float scales exactly (not their integer multipliers), unrounded biases."""
    op = node.op
    if isinstance(op, Requant):
        return np.clip(round_real(x * op.ratio, op.rounding), op.lo, op.hi)
    if isinstance(op, Dense) and op.bias_exact is not None:
        return x @ op.weight.T.astype(np.float64) + op.bias_exact
    return _step_float(node, src, x)


def run_reference(graph: Graph, inputs) -> list[np.ndarray]:
    """Outputs of the float model the requantised graph approximates (float64)."""
    values: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        if isinstance(node.op, Input):
            values[node.name] = np.asarray(_named(graph, inputs)[node.name])
            continue
        values[node.name] = _step_reference(node, graph[node.inputs[0]], values[node.inputs[0]])
    return [real_values(graph, i, values[o]) for i, o in enumerate(graph.outputs)]


def real_values(graph: Graph, i: int, codes: np.ndarray) -> np.ndarray:
    """Real values of output i from its codes (int64, object or float64 integers)."""
    node = graph[graph.outputs[i]]
    out = codes * 2.0 ** -node.type.frac if codes.dtype != object else to_real(codes, node.type.frac)
    scale = graph.output_scale(i)
    return out if scale is None else out * np.asarray(scale, dtype=np.float64)


def input_codes(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Codes the input quantizer gives for real inputs (what the firmware receives)."""
    (inp,) = graph.inputs
    (q,) = graph.consumers(inp.name)
    return run_codes(graph.replace_nodes([inp, q], [q.name]), {inp.name: x})[q.name]
