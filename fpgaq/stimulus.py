"""Inputs for the model: random ones that cover the input quantizer's whole range, and a
user's, read from a .npy file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import FpgaqError
from .ir.graph import Graph
from .ir.ops import Quant


def random_inputs(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    """Real inputs (float32) that cover the input quantizer's whole range: its extreme codes,
    zero, ties half-way between codes, values far beyond the range (saturation), then random."""
    (inp,) = graph.inputs
    q = graph.input_quantizer(inp)
    assert q.type is not None and q.interval is not None
    lo, hi = q.interval.lo, q.interval.hi           # the quantizer's codes
    step = 2.0 ** -q.type.frac
    if isinstance(q.op, Quant) and q.op.step is not None:
        step = float(q.op.step.values[0])         # a float scale (--requantize)
    span = hi - lo
    special = np.array([lo, hi, 0, lo - 0.5, hi + 0.5, lo + 0.5, hi - 0.5, 0.5, -0.5,
                        lo - span, hi + span, lo - 1, hi + 1], dtype=np.float64) * step
    rng = np.random.default_rng(seed)
    f = inp.size
    rows = [np.full(f, v) for v in special]
    rows += [rng.choice(special, size=f) for _ in range(min(len(special), n))]
    k = max(n - len(rows), 0)
    # random codes, a quarter of them half-way between codes, some beyond the range
    codes = rng.integers(lo - span // 8 - 1, hi + span // 8 + 2, size=(k, f)).astype(np.float64)
    codes += np.where(rng.random((k, f)) < 0.25, 0.5, 0.0)
    x = np.concatenate([np.array(rows).reshape(-1, f), codes * step])[:n]
    return x.astype(np.float32).reshape((len(x),) + inp.shape)


def load_npy(path: str | os.PathLike, what: str, hint: str) -> np.ndarray:
    """The array of a .npy file (no pickles); a missing or unreadable one is a one-line error
    naming `what` it was meant to be, with `hint` saying what to give."""
    path = Path(path)
    if not path.is_file():
        raise FpgaqError(f"{path}: no such {what}; {hint}")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:
        raise FpgaqError(f"{path}: not a readable .npy file ({e})") from None


def read_inputs(path: Path, graph: Graph) -> np.ndarray:
    """Real inputs from a .npy file, shaped (N, features)."""
    x = load_npy(path, "inputs file", "give a .npy array of shape (N, features)")
    return shape_inputs(x, graph, str(path))


def shape_inputs(x, graph: Graph, where: str = "inputs") -> np.ndarray:
    """Real inputs (an array of shape (N, features), (N, ...) or (features,) for one input) in
    the model's input shape, batch first; `where` names them in errors."""
    x = np.asarray(x)
    (inp,) = graph.inputs
    features = inp.size
    if x.ndim == 1 and x.size == features:
        x = x.reshape(1, -1)
    x = x.reshape(len(x), -1) if x.ndim > 2 else x
    if x.ndim != 2 or x.shape[1] != features:
        raise FpgaqError(f"{where}: inputs have shape {x.shape}; the model takes (N, {features})")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise FpgaqError(f"{where}: inputs are of type {x.dtype}; expected real numbers")
    if len(x) == 0:
        raise FpgaqError(f"{where}: holds no inputs; give at least one row")
    return x.reshape((len(x),) + inp.shape)
