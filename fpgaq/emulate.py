"""The bit-exact interpreter of the IR: the specification every back-end must meet.

It runs each node through its op's own emulation rule (`Op.emulate`), vectorised over the
batch (axis 0 of every run-time array; constants have no batch axis). When every integer a
graph handles is below 2**52 in magnitude (each op's `peak_bits`, from the exact intervals),
codes are held in floats, where integer arithmetic is exact and matrix products run on BLAS:
float32 when every one is below 2**23 (half the memory traffic, twice the BLAS speed), else
float64; otherwise int64, or Python ints in object arrays past 62 bits. The integers are the
same either way.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .errors import FpgaqError
from .ir.fixed import INT64_SAFE_BITS
from .ir.graph import Graph, Node
from .ir.ops import Args, Input
from .ir.ops.base import FLOAT32_EXACT_BITS, FLOAT64_EXACT_BITS, as_codes, code_bits

# values of the widest tensor a step: large enough that numpy, not the Python around it, takes
# the time (jet tagger: 1.5 M inputs/s at 2**16, about 3 M at 2**18), small enough that a
# step's arrays stay near the cache
CHUNK_VALUES = 1 << 18
CHUNK_ROWS = (64, 16384)
THREADS = min(os.cpu_count() or 1, 4)   # chunks computed at once, on large inputs


@dataclass(frozen=True)
class _Step:
    node: Node
    args: Args           # for the tier the graph runs in
    ints: Args           # for integer codes (a reference run, which is float64, uses `args`' ins)
    peak: int
    wide: bool           # past int64: Python ints


@dataclass(frozen=True)
class _Plan:
    steps: tuple[_Step, ...]
    floats: bool         # every integer below 2**52: codes in floats
    float32: bool        # ... below 2**23: float32
    rows: int            # inputs a chunk


@lru_cache(maxsize=64)
def _plan(graph: Graph) -> _Plan:
    """Each node's emulation arguments, the number type the whole graph runs in, and how many
    inputs go through it at once."""
    peaks: list[int] = []
    batched: dict[str, bool] = {}
    parts = []
    for node in graph.nodes:
        ins = graph.sources(node)
        b = tuple(batched[i.name] for i in ins)
        batched[node.name] = isinstance(node.op, Input) or any(b)
        peak = 0 if isinstance(node.op, Input) else node.op.peak_bits([i.out for i in ins], node.out)
        peaks.append(peak)
        parts.append((node, tuple(i.out for i in ins), b))
    top = max(peaks, default=0)
    floats, float32 = top < FLOAT64_EXACT_BITS, top < FLOAT32_EXACT_BITS
    steps = tuple(_Step(node, Args(ins, node.out, floats, b, float32), Args(ins, node.out, False, b), peak,
                        peak > INT64_SAFE_BITS)
                  for (node, ins, b), peak in zip(parts, peaks))
    widest = max((n.out.size for n in graph.nodes), default=1)
    rows = min(max(CHUNK_VALUES // max(widest, 1), CHUNK_ROWS[0]), CHUNK_ROWS[1])
    return _Plan(steps, floats, float32, rows)


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


def _evaluate(graph: Graph, inputs: dict[str, np.ndarray], reference: bool = False,
              plan: _Plan | None = None) -> tuple[dict, bool]:
    plan = plan or _plan(graph)        # hashing a graph costs: a run of many chunks plans once
    floats = plan.floats or reference
    values: dict[str, np.ndarray] = {}
    for s in plan.steps:
        node = s.node
        if isinstance(node.op, Input):
            values[node.name] = _input(node, inputs[node.name])
            continue
        xs = [values[i] for i in node.inputs]
        if reference:       # float64: the float model's own arithmetic
            args = Args(s.args.ins, s.args.out, True, s.args.batched)
            y = node.op.reference(xs, args)
        elif floats:
            y = node.op.emulate(xs, s.args)
        else:
            if s.wide:
                xs = [x.astype(object) if t.type is not None else x for x, t in zip(xs, s.ints.ins)]
            y = node.op.emulate(xs, s.ints)
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


def run(graph: Graph, inputs) -> list[np.ndarray]:
    """Real-valued outputs (float64), one array an output, for real inputs (an (N, ...) array
    for a one-input graph, or {input name: array})."""
    named = _named(graph, inputs)
    plan = _plan(graph)
    n = len(next(iter(named.values())))
    rows = plan.rows
    if THREADS > 1 and n >= 2 * THREADS * CHUNK_ROWS[0]:
        rows = min(rows, -(-n // (2 * THREADS)))        # at least two chunks a thread

    def part(start: int) -> list[np.ndarray]:
        chunk = {k: np.asarray(v)[start:start + rows] for k, v in named.items()}
        values, _ = _evaluate(graph, chunk, plan=plan)
        return [graph.real_outputs(i, values[o].astype(np.float64) if values[o].dtype == np.float32 else values[o])
                for i, o in enumerate(graph.outputs)]

    starts = range(0, max(n, 1), rows)
    if len(starts) == 1:
        return part(0)
    if THREADS > 1 and len(starts) >= 2 * THREADS:
        # numpy computes without the GIL: chunks side by side, one a core
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            parts = list(pool.map(part, starts))
    else:
        parts = [part(s) for s in starts]
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
