"""Reference execution of ONNX / QONNX / QDQ models, for the tests.

``run_reference(model, x)`` runs a model through qonnx's own reference interpreter
(``qonnx.core.onnx_exec.execute_onnx``): QONNX custom ops (Quant/IntQuant, BipolarQuant,
Trunc, ...) in numpy, every standard op in its own one-node onnxruntime session.
``run_onnxruntime(model, x)`` runs a plain (QDQ) model with onnxruntime alone.

Both take ``x`` of shape (N, features...) for a model with one float input of shape
[1, features...] or [batch_symbol, features...], and return one array per graph output,
stacked over the N samples (shape (N, ...)). When the graph is batch-agnostic the N samples
run as one batch; the first and last rows are checked against single-sample runs, and on any
failure or mismatch we fall back to one run per sample (``batch=False`` forces that,
``batch=True`` forbids the fall-back).

onnxruntime graph optimisations are disabled everywhere (ORT_DISABLE_ALL): the optimiser
fuses QDQ patterns into integer kernels and reorders float arithmetic, which changes numerics.
"""

from __future__ import annotations

import copy
import functools
import os
import threading
from contextlib import contextmanager
from typing import Callable

import numpy as np
import onnx
import onnx.helper
import onnxruntime as ort

__all__ = ["run_reference", "run_onnxruntime"]

# Old-style custom-op domains that qonnx's ModelWrapper renames to "qonnx.custom_op.general".
_OLD_QONNX_DOMAINS = ("finn", "finn.custom_op.general")
_QONNX_DOMAIN = "qonnx.custom_op.general"

# qonnx modules that build private onnxruntime sessions through their module global `rt`.
_QONNX_ORT_USERS = (
    "qonnx.core.onnx_exec",
    "qonnx.custom_op.general.quantavgpool2d",
    "qonnx.custom_op.channels_last.base_wrapped_op",
)

_LOCK = threading.RLock()


# --------------------------------------------------------------------------- onnxruntime


def _session_options() -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3  # errors only
    return so


@functools.lru_cache(maxsize=None)
def _max_ir_version_supported_by_ort() -> int:
    """Highest ModelProto.ir_version the installed onnxruntime loads (probed once)."""
    h = onnx.helper
    graph = h.make_graph(
        [h.make_node("Identity", ["x"], ["y"])],
        "ir_probe",
        [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])],
    )
    probe = h.make_model(graph, opset_imports=[h.make_opsetid("", 13)])
    for ir in range(onnx.IR_VERSION, 6, -1):  # opset 13 needs IR >= 7
        probe.ir_version = ir
        try:
            ort.InferenceSession(probe.SerializeToString(), _session_options(), providers=["CPUExecutionProvider"])
            return ir
        except Exception:  # noqa: BLE001 - "Unsupported model IR version" and the like
            continue
    return 7


def _ort_session(model: onnx.ModelProto) -> ort.InferenceSession:
    if model.ir_version > _max_ir_version_supported_by_ort():
        lowered = onnx.ModelProto()
        lowered.CopyFrom(model)
        model = lowered
        model.ir_version = _max_ir_version_supported_by_ort()
    return ort.InferenceSession(model.SerializeToString(), _session_options(), providers=["CPUExecutionProvider"])


class _OrtForQonnx:
    """Stands in for the `onnxruntime` module inside the qonnx modules that execute nodes.

    InferenceSession lowers the IR version of the throw-away one-node models qonnx builds,
    disables graph optimisations and caches sessions by model bytes (qonnx rebuilds the same
    one-node model for every execute_onnx call, and session creation dominates its run time).
    Every other attribute is onnxruntime's own.
    """

    def __init__(self) -> None:
        self._cache: dict[bytes, ort.InferenceSession] = {}

    def __getattr__(self, name: str):
        return getattr(ort, name)

    def InferenceSession(self, path_or_bytes, sess_options=None, providers=None, **kwargs):  # noqa: N802
        if not isinstance(path_or_bytes, (bytes, bytearray)) or sess_options is not None or kwargs:
            return ort.InferenceSession(path_or_bytes, sess_options, providers=providers, **kwargs)
        key = bytes(path_or_bytes)
        sess = self._cache.get(key)
        if sess is None:
            sess = _ort_session(onnx.ModelProto.FromString(key))
            self._cache[key] = sess
        return sess


@contextmanager
def _qonnx_with_safe_ort():
    # qonnx wraps each standard op in a one-node model whose make_model stamps ir_version=onnx.IR_VERSION (14), > ORT 1.31's max 13,
    # and runs it with default (optimising) options: for one call, under a lock, qonnx's alias `rt` (not onnxruntime) is _OrtForQonnx.
    import importlib

    modules = []
    for name in _QONNX_ORT_USERS:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "rt"):
            modules.append(mod)
    if not any(m.__name__ == "qonnx.core.onnx_exec" for m in modules):
        raise RuntimeError("qonnx.core.onnx_exec no longer imports onnxruntime as `rt`; update tests/qonnx_reference.py")
    shim = _OrtForQonnx()
    with _LOCK:
        saved = [(m, m.rt) for m in modules]
        try:
            for m in modules:
                m.rt = shim
            yield
        finally:
            for m, rt in saved:
                m.rt = rt


# --------------------------------------------------------------------------- model plumbing


def _load(model: onnx.ModelProto | str | os.PathLike) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        return copy.deepcopy(model)
    return onnx.load(os.fspath(model))


def _the_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    inits = {t.name for t in model.graph.initializer}
    inputs = [vi for vi in model.graph.input if vi.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"expected exactly one non-initializer graph input, found {[vi.name for vi in inputs]}")
    return inputs[0]


def _batch_dim_is_free(vi: onnx.ValueInfoProto) -> bool:
    dims = vi.type.tensor_type.shape.dim
    if not dims:
        return False
    d = dims[0]
    return d.HasField("dim_param") or not d.HasField("dim_value") or d.dim_value == 1


def _set_batch(vi: onnx.ValueInfoProto, batch: int | str) -> None:
    d = vi.type.tensor_type.shape.dim[0]
    if isinstance(batch, str):
        d.dim_param = batch
    else:
        d.dim_value = batch


def _with_batch(model: onnx.ModelProto, batch: int | str) -> onnx.ModelProto:
    """Copy of `model` whose input (and every output whose leading dim is 1 or symbolic)
    has leading dimension `batch`, with intermediate shapes dropped (re-inferred later)."""
    m = copy.deepcopy(model)
    inp = _the_input(m)
    if not _batch_dim_is_free(inp):
        raise ValueError(f"input {inp.name!r} has a fixed batch dimension other than 1")
    _set_batch(inp, batch)
    for out in m.graph.output:
        if out.type.tensor_type.shape.dim and _batch_dim_is_free(out):
            _set_batch(out, batch)
    del m.graph.value_info[:]
    return m


def _check_x(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one sample, got shape {x.shape}")
    inp = _the_input(model)
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"input {inp.name!r} is not float32")
    dims = inp.type.tensor_type.shape.dim
    if x.ndim != len(dims):
        raise ValueError(f"x has shape {x.shape}, model input {inp.name!r} has rank {len(dims)}")
    for axis, (n, d) in enumerate(zip(x.shape[1:], dims[1:]), start=1):
        if d.HasField("dim_value") and d.dim_value != n:
            raise ValueError(f"x has shape {x.shape}, model input {inp.name!r} wants {d.dim_value} on axis {axis}")
    return x


def _stack(per_sample: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Stack single-sample outputs: a leading batch dim of 1 is concatenated, else stacked."""
    result = []
    for outs in zip(*per_sample):
        if all(o.ndim >= 1 and o.shape[0] == 1 for o in outs):
            result.append(np.concatenate(outs, axis=0))
        else:
            result.append(np.stack(outs, axis=0))
    return result


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")


def _run(
    x: np.ndarray,
    batch: bool | str,
    run_batched: Callable[[np.ndarray], list[np.ndarray]] | None,
    run_one: Callable[[np.ndarray], list[np.ndarray]],
) -> list[np.ndarray]:
    n = x.shape[0]
    if batch not in (True, False, "auto"):
        raise ValueError("batch must be True, False or 'auto'")
    if batch is not False and run_batched is not None and n > 1:
        try:
            outs = run_batched(x)
            if not all(o.ndim >= 1 and o.shape[0] == n for o in outs):
                raise ValueError(f"batched outputs have shapes {[o.shape for o in outs]}, not ({n}, ...)")
            for i in (0, n - 1):
                ref = _stack([run_one(x[i : i + 1])])
                if not all(_same(o[i : i + 1], r) for o, r in zip(outs, ref)):
                    raise ValueError(f"batched run disagrees with single-sample run on sample {i}")
            return outs
        except Exception:
            if batch is True:
                raise
    elif batch is True and n > 1:
        raise ValueError("the model's input has no free batch dimension")
    return _stack([run_one(x[i : i + 1]) for i in range(n)])


# --------------------------------------------------------------------------- qonnx


def _qonnx_wrapper(model: onnx.ModelProto):
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes

    model = copy.deepcopy(model)
    # ModelWrapper renames old-style domains (finn, finn.custom_op.general) on the nodes to
    # qonnx.custom_op.general but leaves opset_import alone, so a Trunc would silently fall back
    # to qonnx's default custom-op opset 1 (Trunc_v1). Carry the declared version over.
    opsets = {o.domain: o.version for o in model.opset_import}
    if _QONNX_DOMAIN not in opsets:
        old = [opsets[d] for d in _OLD_QONNX_DOMAINS if d in opsets]
        if old and any(n.domain in _OLD_QONNX_DOMAINS for n in model.graph.node):
            model.opset_import.append(onnx.helper.make_opsetid(_QONNX_DOMAIN, max(old)))
    wrapper = ModelWrapper(model)
    wrapper = wrapper.transform(InferShapes())
    if not wrapper.check_all_tensor_shapes_specified():
        raise ValueError("qonnx shape inference left some tensor shapes unspecified")
    _check_trunc_versions(wrapper)
    return wrapper


def _check_trunc_versions(wrapper) -> None:
    """qonnx picks Trunc_v1 (5 inputs) or Trunc_v2 (6 inputs) from the opset_import version of
    the node's domain (default 1), never from the number of inputs: a mismatch silently reads
    output_scale as output_bit_width (or dies on an index error). Refuse it up front."""
    opsets = wrapper.get_opset_imports()
    for node in wrapper.graph.node:
        if node.op_type != "Trunc" or node.domain not in (_QONNX_DOMAIN, "onnx.brevitas"):
            continue
        version = opsets.get(node.domain, 1)
        want = 5 if version < 2 else 6
        if len(node.input) != want:
            raise ValueError(
                f"Trunc node {node.name!r} has {len(node.input)} inputs but opset {node.domain} v{version} "
                f"makes qonnx execute it as Trunc_v{1 if version < 2 else 2} ({want} inputs); "
                "fix the model's opset_import"
            )


def run_reference(
    model: onnx.ModelProto | str | os.PathLike, x: np.ndarray, batch: bool | str = "auto"
) -> list[np.ndarray]:
    """Outputs of `model` on the N samples of `x` by qonnx's reference execution, stacked (N, ...)."""
    from qonnx.core.onnx_exec import execute_onnx

    proto = _load(model)
    x = _check_x(proto, x)
    in_name = _the_input(proto).name
    out_names = [o.name for o in proto.graph.output]
    wrappers: dict[int, object] = {}

    def wrapper_for(n: int):
        if n not in wrappers:
            wrappers[n] = _qonnx_wrapper(_with_batch(proto, n) if _batch_dim_is_free(_the_input(proto)) else proto)
        return wrappers[n]

    def run(xs: np.ndarray) -> list[np.ndarray]:
        out = execute_onnx(wrapper_for(xs.shape[0]), {in_name: xs})
        return [np.asarray(out[name]) for name in out_names]

    with _qonnx_with_safe_ort():
        can_batch = _batch_dim_is_free(_the_input(proto))
        return _run(x, batch, run if can_batch else None, run)


# --------------------------------------------------------------------------- plain onnxruntime


def run_onnxruntime(
    model: onnx.ModelProto | str | os.PathLike, x: np.ndarray, batch: bool | str = "auto"
) -> list[np.ndarray]:
    """Outputs of a standard-ops-only (e.g. QDQ) `model` on the N samples of `x` with onnxruntime,
    graph optimisations disabled, stacked (N, ...)."""
    proto = _load(model)
    x = _check_x(proto, x)
    in_name = _the_input(proto).name
    can_batch = _batch_dim_is_free(_the_input(proto))
    single = _ort_session(_with_batch(proto, 1) if can_batch else proto)
    batched: list[ort.InferenceSession] = []

    def run_one(xs: np.ndarray) -> list[np.ndarray]:
        return single.run(None, {in_name: xs})

    def run_batched(xs: np.ndarray) -> list[np.ndarray]:
        if not batched:
            batched.append(_ort_session(_with_batch(proto, "N")))
        return batched[0].run(None, {in_name: xs})

    return _run(x, batch, run_batched if can_batch else None, run_one)
