"""The bit-exact interpreter of the IR: the specification every back-end must meet.

It runs each node through its op's own emulation rule (`Op.emulate`), vectorised over the
batch (axis 0 of every run-time array; constants have no batch axis). When every integer a
graph handles is below 2**52 in magnitude (each op's `peak_bits`, from the exact intervals),
codes are held in float64, where integer arithmetic is exact and matrix products run on BLAS;
otherwise int64, or Python ints in object arrays past 62 bits. The integers are the same
either way.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import FpgaqError
from .ir.fixed import INT64_SAFE_BITS
from .ir.graph import Graph, Node
from .ir.ops import Args, Input
from .ir.ops.base import FLOAT64_EXACT_BITS, as_codes, code_bits

CHUNK = 16384   # rows a step: intermediate arrays stay in cache


@dataclass(frozen=True)
class _Step:
    node: Node
    args: Args           # as for the float64 path; `floats` is set per run
    peak: int
    batched: bool


@lru_cache(maxsize=64)
def _plan(graph: Graph) -> tuple[tuple[_Step, ...], bool]:
    """Each node's emulation arguments, and whether the whole graph fits float64 exactly."""
    steps: list[_Step] = []
    batched: dict[str, bool] = {}
    floats = True
    for node in graph.nodes:
        ins = graph.sources(node)
        b = tuple(batched[i.name] for i in ins)
        batched[node.name] = isinstance(node.op, Input) or any(b)
        peak = 0 if isinstance(node.op, Input) else node.op.peak_bits([i.out for i in ins], node.out)
        floats = floats and peak < FLOAT64_EXACT_BITS
        steps.append(_Step(node, Args(tuple(i.out for i in ins), node.out, True, b), peak, batched[node.name]))
    return tuple(steps), floats


def _input(node: Node, x: np.ndarray) -> np.ndarray:
    """Real inputs in the model's input shape, batch first (flattened ones, or with unit axes,
    are reshaped)."""
    x = np.asarray(x)
    want = node.out.shape
    if x.ndim >= 1 and tuple(x.shape[1:]) != want and x.size == len(x) * node.out.size:
        x = x.reshape((len(x),) + want)
    if x.ndim != 1 + len(want) or tuple(x.shape[1:]) != want:
        shown = ", ".join(["N"] + [str(d) for d in want])
        raise FpgaqError(f"input '{node.origin.onnx_name}' needs shape ({shown}), got {x.shape}")
    if np.isnan(x).any():
        raise FpgaqError(f"input '{node.origin.onnx_name}' holds NaN; the model cannot quantize it")
    return x


def _evaluate(graph: Graph, inputs: dict[str, np.ndarray], reference: bool = False) -> tuple[dict, bool]:
    steps, floats = _plan(graph)
    floats = floats or reference
    values: dict[str, np.ndarray] = {}
    for s in steps:
        node = s.node
        if isinstance(node.op, Input):
            values[node.name] = _input(node, inputs[node.name])
            continue
        xs = [values[i] for i in node.inputs]
        args = s.args if floats else Args(s.args.ins, s.args.out, False, s.args.batched)
        if not floats and s.peak > INT64_SAFE_BITS:
            xs = [x.astype(object) if t.type is not None else x for x, t in zip(xs, args.ins)]
        y = node.op.reference(xs, args) if reference else node.op.emulate(xs, args)
        if not floats and node.type is not None:
            y = as_codes(y, code_bits(node.out))
        values[node.name] = np.asarray(y)
    return values, floats


def _codes(node: Node, v: np.ndarray, floats: bool) -> np.ndarray:
    return as_codes(v, code_bits(node.out)) if floats and node.type is not None else v


def _named(graph: Graph, inputs) -> dict[str, np.ndarray]:
    if isinstance(inputs, dict):
        return inputs
    (inp,) = graph.inputs
    return {inp.name: inputs}


def run_codes(graph: Graph, inputs) -> dict[str, np.ndarray]:
    """Codes of every node (int64, or object past 62 bits; real values for real tensors)."""
    values, floats = _evaluate(graph, _named(graph, inputs))
    return {k: _codes(graph[k], v, floats) for k, v in values.items()}


def output_codes(graph: Graph, inputs) -> list[np.ndarray]:
    values, floats = _evaluate(graph, _named(graph, inputs))
    return [_codes(graph[o], values[o], floats) for o in graph.outputs]


def _chunks(inputs: dict[str, np.ndarray]):
    n = len(next(iter(inputs.values())))
    for start in range(0, max(n, 1), CHUNK):
        yield {k: np.asarray(v)[start:start + CHUNK] for k, v in inputs.items()}


def run(graph: Graph, inputs) -> list[np.ndarray]:
    """Real-valued outputs (float64), one array an output, for real inputs (an (N, ...) array
    for a one-input graph, or {input name: array})."""
    parts = []
    for chunk in _chunks(_named(graph, inputs)):
        values, _ = _evaluate(graph, chunk)
        parts.append([graph.real_outputs(i, values[o]) for i, o in enumerate(graph.outputs)])
    return [np.concatenate(p) for p in zip(*parts)]


def run_reference(graph: Graph, inputs) -> list[np.ndarray]:
    """Outputs of the float model a requantised graph approximates (float64): each op's
    `reference` rule (float scales exactly, not their integer multipliers; unrounded biases)."""
    values, _ = _evaluate(graph, _named(graph, inputs), reference=True)
    return [graph.real_outputs(i, values[o]) for i, o in enumerate(graph.outputs)]


def input_codes(graph: Graph, x: np.ndarray) -> np.ndarray:
    """Codes the input quantizer gives for real inputs, after the host's pre-processing: what
    the firmware receives."""
    (inp,) = graph.inputs
    q = graph.input_quantizer(inp)
    host = graph.host
    part = graph.replace_nodes([n for n in graph.nodes if n.name in host or n is q], [q.name])
    return run_codes(part, {inp.name: x})[q.name]
