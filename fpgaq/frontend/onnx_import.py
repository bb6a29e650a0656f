"""Read an ONNX / QONNX / QDQ model and lower it to the IR.

The importer walks the ONNX nodes in topological order. Constants (weights behind their
quantizers, shapes, biases) are evaluated here; run-time tensors become IR nodes. Every
problem is collected, each naming its ONNX node, and all are reported together.
"""
from __future__ import annotations

import math
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import FpgaqError, ModelError
from ..ir.fixed import FixedType, dyadic, is_power_of_two, log2_exact
from ..ir.graph import Graph, Node, Origin, make_node, verify
from ..ir.ops import Dense, Input, Op
from ..names import identifier
from .values import POISON, Const, Poison, Problem, Tensor

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas", "finn", "qonnx")
MAX_MODEL_BYTES = 2 << 30


def load(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse an ONNX file, refusing what is missing, corrupt or reaches outside its folder."""
    path = Path(path)
    if not path.is_file():
        raise FpgaqError(f"{path}: no such model file; give the path of an .onnx file")
    data = path.read_bytes()
    if len(data) > MAX_MODEL_BYTES:
        raise FpgaqError(f"{path}: {len(data)} bytes is larger than fpgaq accepts (2 GiB)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise FpgaqError(f"{path}: not a readable ONNX file (truncated or corrupt: {e}); "
                         "export the model again") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise FpgaqError(f"{path}: the file parses but holds no ONNX graph (truncated or not a model); "
                         "export the model again")
    _load_external_data(model, path.parent)
    return model


def _load_external_data(model: onnx.ModelProto, folder: Path) -> None:
    root = folder.resolve()
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        target = (folder / info.get("location", "")).resolve()
        if root not in target.parents:
            raise FpgaqError(f"initializer '{t.name}': external data location "
                             f"'{info.get('location')}' leaves the model's folder; refusing to read it")
        if not target.is_file():
            raise FpgaqError(f"initializer '{t.name}': external data file '{info.get('location')}' "
                             "is missing; put it beside the model")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as e:
        raise FpgaqError(f"cannot read the model's external data: {e}") from None


class Importer:
    """State of one import: the ONNX values seen so far and the IR nodes made."""

    def __init__(self, model: onnx.ModelProto, requantize: bool = False, requant_bits: int = 16):
        self.model = model
        self.requantize = requantize          # lower float scales to integer requantisation
        self.requant_bits = requant_bits      # significant bits of each requantisation multiplier
        self.opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        self.values: dict[str, Const | Tensor | Poison] = {}
        self.nodes: list[Node] = []
        self.problems: list[str] = []
        self.taken: set[str] = set()
        self.origin: Origin | None = None
        self.shapes: dict[str, list] = {}

    # --- helpers used by the op handlers -------------------------------------------------
    def add(self, kind: str, op: Op, inputs: tuple[Node, ...], features: int | None = None) -> Node:
        name = identifier(kind, self.taken, fallback=kind)
        try:
            node = make_node(name, op, inputs, self.origin, features)
        except ValueError as e:
            raise Problem(str(e)) from None
        self.nodes.append(node)
        return node

    def const(self, onnx_node, i: int, what: str) -> Const:
        v = self.get(onnx_node, i)
        if v is None:
            raise Problem(f"{what} (input {i}) is missing; the node has {len(onnx_node.input)} inputs")
        if not isinstance(v, Const):
            raise Problem(f"{what} (input {i}, '{onnx_node.input[i]}') must be a constant "
                          "initializer, but it is computed at run time")
        return v

    def scalar(self, onnx_node, i: int, what: str) -> float:
        c = self.const(onnx_node, i, what)
        vals = np.unique(c.value)
        if vals.size != 1:
            raise Problem(f"{what} must be a single value, found {c.value.size} different values "
                          f"({_show(vals)})")
        return float(vals[0])

    def tensor(self, onnx_node, i: int, what: str = "the data input") -> Tensor:
        v = self.get(onnx_node, i)
        if not isinstance(v, Tensor):
            raise Problem(f"{what} (input {i}) is a constant; fpgaq expects a run-time tensor there")
        return v

    def get(self, onnx_node, i: int):
        if i >= len(onnx_node.input) or onnx_node.input[i] == "":
            return None
        return self.values[onnx_node.input[i]]

    def quantize(self, kind: str, t: Tensor, ty: FixedType, rounding, lo: int, hi: int,
                 view_frac: int | None = None) -> Tensor:
        """Quantize t's ONNX value to `ty` (whose frac is in ONNX units), as a Tensor read at
        `view_frac` (default ty.frac). The IR node works on t's codes, so the binary point
        moves by t's view offset."""
        from ..ir.ops import Quant
        if t.scale is not None:
            raise Problem("quantizes a float-scale (--requantize) tensor, which only QONNX Quant "
                          "handles so far")
        offset = 0 if t.view_frac is None else t.node.type.frac - t.view_frac
        ir_type = FixedType(ty.signed, ty.width, ty.frac + offset)
        node = self.add(kind, Quant(ir_type, rounding, lo, hi), (t.node,))
        return replace(t, node=node, view_frac=ty.frac if view_frac is None else view_frac, bounds=(-math.inf, math.inf))

    def requant(self, kind: str, t: Tensor, ty: FixedType, rounding, lo: int, hi: int,
                step: float, out_scale: float | None, view_frac: int | None = None) -> Tensor:
        """Quantize t (its value may carry a float factor) with quantisation step `step`:
        codes clamp(round(value / step)) of `ty`, by an integer multiplier and a shift. The
        result's ONNX value is code * 2**-view_frac * out_scale (None: 1; view_frac default
        ty.frac)."""
        from ..ir.ops import Quant, Requant
        out = FixedType(ty.signed, ty.width, ty.frac)
        if t.view_frac is None:   # the model input: the host divides by the float step
            if t.bounds != (-math.inf, math.inf):
                raise Problem("a Clip before a float-scale input quantizer is not supported")
            node = self.add(kind, Quant(out, rounding, lo, hi, input_scale=step), (t.node,))
            return replace(t, node=node, view_frac=ty.frac if view_frac is None else view_frac, scale=out_scale)
        src = 2.0 ** -t.view_frac * (1.0 if t.scale is None else np.asarray(t.scale, dtype=np.float64))
        ratio = np.atleast_1d(np.asarray(src / step, dtype=np.float64))
        if ratio.size not in (1, t.node.features):
            raise Problem(f"{ratio.size} scale factors for {t.node.features} channels")
        shift = self.requant_bits - 1 - math.floor(math.log2(float(ratio.max())))
        multiplier = np.rint(np.ldexp(ratio, shift)).astype(np.int64)
        if np.any(multiplier < 1):
            raise Problem("a scale ratio is too small for the requantisation multiplier; "
                          "raise --requant-bits")
        node = self.add(kind, Requant(out, rounding, lo, hi, multiplier, shift, ratio), (t.node,))
        return replace(t, node=node, view_frac=out.frac if view_frac is None else view_frac, scale=out_scale,
                       bounds=(-math.inf, math.inf))

    def scale_split(self, scale: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(fraction bits, None) for power-of-two scales; under --requantize, (zeros, the float
        scales) for others; otherwise the Problem that says how to proceed."""
        try:
            return power_of_two_frac(scale, what), None
        except Problem as p:
            scale = np.asarray(scale, dtype=np.float64)
            if not self.requantize:
                raise Problem(f"{p}; or build with --requantize to lower float scales to exact integer "
                              "requantisation (an integer multiplier and a shift; the deviation from the "
                              "float model is reported)") from None
            if not np.all(np.isfinite(scale) & (scale > 0)):
                raise Problem(f"{what} {_show(scale)} must be finite and positive") from None
            return np.zeros(scale.shape, dtype=np.int64), scale

    def fixed_tensor(self, onnx_node, i: int = 0) -> Tensor:
        t = self.tensor(onnx_node, i)
        if t.view_frac is None:
            raise Problem(f"reads '{onnx_node.input[i]}', which is not quantized yet; "
                          "put a Quant (or QuantizeLinear) on the model input before this node")
        return t


def type_name(elem: int) -> str:
    """The name of an ONNX element type, also for a number no ONNX version defines."""
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return f"{elem} (not an ONNX type)"


def _show(vals, n=4) -> str:
    vals = list(np.asarray(vals).ravel())
    s = ", ".join(f"{float(v):g}" for v in vals[:n])
    return s + (", ..." if len(vals) > n else "")


def power_of_two_frac(scale: np.ndarray, what: str) -> np.ndarray:
    """Fraction bits f with scale == 2**-f, elementwise; a Problem for any other scale."""
    scale = np.asarray(scale, dtype=np.float64)
    bad = [float(s) for s in scale.ravel() if not is_power_of_two(float(s))]
    if bad:
        raise Problem(
            f"{what} {_show(bad)} is not a power of two, so this quantizer is not fixed point. "
            "Train with power-of-two scales (Brevitas: Int8ActPerTensorFixedPoint, "
            "Int8WeightPerTensorFixedPoint, Int16Bias; QKeras/HGQ/PQuantML quantizers are "
            "power-of-two already)")
    return np.vectorize(lambda s: -log2_exact(float(s)), otypes=[np.int64])(scale)


def fixed_const(values: np.ndarray, what: str) -> tuple[np.ndarray, int]:
    """Exact (codes, frac) of constant real values (a float bias, say)."""
    if not np.all(np.isfinite(values)):
        raise Problem(f"{what} holds NaN or Inf; export the model again with finite values")
    d = dyadic(values)
    if d is None:
        raise Problem(f"{what} needs more than 200 fraction bits to be held exactly")
    return d


def regrid(codes: np.ndarray, frac: int, target: int) -> np.ndarray | None:
    """Codes at `frac` re-expressed exactly at `target` fraction bits (an object array), or None
    when a value has bits below 2**-target. A coarser target is fine for values on its grid:
    a zero bias fits any accumulator."""
    vals = [int(c) for c in np.ravel(codes)]
    if target >= frac:
        out = [v << (target - frac) for v in vals]
    elif any(v % (1 << (frac - target)) for v in vals):
        return None
    else:
        out = [v >> (frac - target) for v in vals]
    return np.array(out, dtype=object).reshape(np.shape(codes))


# --------------------------------------------------------------------------------------------
def _shape_of(vi) -> list:
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return dims


def feature_count(dims: list, where: str) -> int:
    """Features of a (batch, ...) shape whose only non-unit, non-batch axis holds them."""
    if not dims:
        raise Problem(f"{where} has no shape; give the model input a static shape such as [1, 16]")
    rest = dims[1:] if len(dims) > 1 else dims
    if len(dims) > 1 and not (dims[0] == 1 or isinstance(dims[0], str)):
        raise Problem(f"{where} has batch dimension {dims[0]}; fpgaq needs it to be 1 or symbolic")
    if any(d == 0 for d in dims if not isinstance(d, str)):
        raise Problem(f"{where} has shape {dims}, with no elements; export the model with real shapes")
    if any(isinstance(d, str) for d in rest):
        raise Problem(f"{where} has shape {dims} with a dynamic feature dimension; "
                      "export the model with a fixed number of input features")
    big = [d for d in rest if d != 1]
    if len(big) > 1:
        raise Problem(f"{where} has shape {dims}; fpgaq handles fully connected networks on "
                      "(batch, features) tensors")
    return int(np.prod(rest))


DEFAULT_MAX_OPS = 10_000_000     # multiply-accumulates a model may need (weights held in memory)
MAX_NODES = 100_000


def _check_size(model: onnx.ModelProto, max_ops: int) -> None:
    """Refuse, before decoding anything, what would take unbounded time or memory."""
    g = model.graph
    if len(g.node) > MAX_NODES:
        raise ModelError([f"the graph has {len(g.node)} nodes, more than fpgaq handles ({MAX_NODES})"])
    total = 0
    for t in g.initializer:
        n = 1
        for d in t.dims:
            n *= max(int(d), 0)
        total += n
        if n > max_ops:
            raise ModelError([f"initializer '{t.name}' holds {n:,} values, more than the limit of {max_ops:,}; "
                              "raise it with --max-ops if the model really is that large"])
    if total > 4 * max_ops:
        raise ModelError([f"the initializers hold {total:,} values in all, more than 4 x the limit of "
                          f"{max_ops:,}; raise it with --max-ops if the model really is that large"])


def import_model(model: onnx.ModelProto, name: str = "model", max_ops: int = DEFAULT_MAX_OPS,
                 requantize: bool = False, requant_bits: int = 16) -> Graph:
    """Lower an ONNX model to a verified IR graph, or raise ModelError listing every problem.
    With `requantize`, float (non-power-of-two) scales become integer requantisation."""
    from . import handlers  # the op table

    _check_size(model, max_ops)

    corrupt = _not_text(model.graph)
    if corrupt:
        raise ModelError([f"{corrupt} is not valid UTF-8 text; the file is corrupt, export the model again"])
    imp = Importer(model, requantize, requant_bits)
    g = model.graph
    imp.shapes = _inferred_shapes(model)
    for t in g.initializer:
        try:
            imp.values[t.name] = Const(numpy_helper.to_array(t).astype(
                np.float64 if t.data_type in _FLOAT_TYPES else np.int64), onnx_type=t.data_type)
        except Exception as e:
            imp.problems.append(f"initializer '{t.name}': unreadable ({e})")
            imp.values[t.name] = POISON
    for vi in g.input:
        if vi.name in imp.values:
            continue  # weights also listed as graph inputs
        imp.origin = Origin(vi.name, "graph input")
        try:
            elem = vi.type.tensor_type.elem_type
            if elem not in _FLOAT_TYPES:
                raise Problem(f"graph input '{vi.name}' has element type {type_name(elem)}; "
                              "fpgaq takes float inputs and quantizes them itself")
            features = feature_count(_shape_of(vi), f"graph input '{vi.name}'")
            node = imp.add("inp", Input(features), (), features)
            imp.values[vi.name] = Tensor(node, None)
        except Problem as p:
            imp.problems.append(str(p))   # the message names the input
            imp.values[vi.name] = POISON

    for index, onode in enumerate(_topological(g, imp)):
        label = onode.name or f"#{index}"
        imp.origin = Origin(label, onode.op_type, onode.output[0] if onode.output else "")
        ins = [imp.values.get(i) for i in onode.input if i]
        if any(v is POISON for v in ins):
            outs = [POISON] * len(onode.output)
            why = handlers.unsupported(onode)   # worth saying even though an input failed
            if why:
                imp.problems.append(f"{imp.origin}: {why}")
        else:
            try:
                outs = handlers.lower(imp, onode)
            except Problem as p:
                imp.problems.append(f"{imp.origin}: {p}")
                outs = [POISON] * len(onode.output)
        for o, v in zip(onode.output, outs):
            imp.values[o] = v
        for o in onode.output[len(outs):]:
            imp.values[o] = POISON

    outputs, scales = [], []
    for vo in g.output:
        v = imp.values.get(vo.name)
        if v is POISON:
            continue
        if v is None:
            if not any(vo.name in n.output for n in g.node):
                imp.problems.append(f"graph output '{vo.name}' is not written by any node")
            continue  # else its node was never reached, for a reason already reported
        if isinstance(v, Tensor) and v.view_frac is not None and (v.view_frac == v.node.type.frac
                                                                  or v.scale is not None):
            outputs.append(v.node.name)
            # value = code * 2**-view * scale = code * 2**-frac * (2**(frac - view) * scale)
            factor = None if v.scale is None else np.ldexp(np.asarray(v.scale, dtype=np.float64),
                                                           v.node.type.frac - v.view_frac)
            scales.append(None if factor is None else
                          tuple(float(f) for f in np.broadcast_to(factor, (v.node.features,))))
        elif isinstance(v, Tensor) and v.view_frac is not None and v.node.origin.onnx_op == "Trunc":
            imp.problems.append(f"graph output '{vo.name}' comes from a 5-input Trunc, whose codes "
                                "are read back at its input scale; fpgaq cannot end a model on it yet: "
                                "use the 6-input Trunc (qonnx opset 2) with an output scale, or add a "
                                "layer after it")
        elif isinstance(v, Tensor) and v.view_frac is not None:
            imp.problems.append(f"graph output '{vo.name}' is an integer QDQ tensor; "
                                "end the model with DequantizeLinear")
        else:
            imp.problems.append(f"graph output '{vo.name}' is {'a constant' if isinstance(v, Const) else 'not quantized'}; "
                                "fpgaq needs every output to be computed from quantized inputs")
    _check_inputs(imp)
    macs = sum(n.op.weight.size for n in imp.nodes if isinstance(n.op, Dense))
    if macs > max_ops:
        imp.problems.append(f"the model needs {macs:,} multiply-accumulates an input, more than the "
                            f"limit of {max_ops:,}; raise it with --max-ops if that is intended")
    if imp.problems:
        raise ModelError(imp.problems)
    graph = _live(Graph(tuple(imp.nodes), tuple(outputs), name,
                        tuple(scales) if any(s is not None for s in scales) else ()))
    verify(graph)
    return graph


def _not_text(g) -> str | None:
    """What in the graph should be a string but is not (protobuf returns invalid UTF-8 as bytes)."""
    named = [("graph input", vi.name) for vi in g.input] + [("graph output", vi.name) for vi in g.output]
    named += [("initializer name", t.name) for t in g.initializer]
    for i, n in enumerate(g.node):
        where = f"node #{i}"
        named += [(f"{where} name", n.name), (f"{where} op type", n.op_type), (f"{where} domain", n.domain)]
        named += [(f"{where} input", t) for t in n.input] + [(f"{where} output", t) for t in n.output]
        named += [(f"{where} attribute name", a.name) for a in n.attribute]
    return next((f"{what} {text!r}" for what, text in named if not isinstance(text, str)), None)


_FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
                onnx.TensorProto.BFLOAT16)


def _inferred_shapes(model: onnx.ModelProto) -> dict[str, list]:
    """Shapes ONNX shape inference finds (custom QONNX ops stop it; that is fine)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception:
        return {}
    g = inferred.graph
    return {vi.name: _shape_of(vi) for vi in list(g.value_info) + list(g.output)
            if vi.type.tensor_type.HasField("shape")}


def _topological(g, imp: Importer) -> list:
    """The graph's nodes in an order where every input is defined first; reports cycles."""
    defined = set(imp.values) | {""}
    pending = list(g.node)
    order = []
    while pending:
        ready = [n for n in pending if all(i in defined for i in n.input)]
        if not ready:
            missing = sorted({i for n in pending for i in n.input if i not in defined
                              and not any(i in m.output for m in pending)})
            if missing:
                imp.problems.append(f"node '{pending[0].name or pending[0].op_type}' reads "
                                    f"'{missing[0]}', which no node, initializer or input defines")
            else:
                imp.problems.append("the graph has a cycle through "
                                    + ", ".join(f"'{n.name or n.op_type}'" for n in pending[:4]))
            break
        ids = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in ids]
        for n in ready:
            order.append(n)
            defined.update(n.output)
    return order


def _check_inputs(imp: Importer) -> None:
    """The firmware boundary: each model input is read by exactly one quantizer."""
    from ..ir.ops import Bipolar, Quant
    for node in imp.nodes:
        if not isinstance(node.op, Input):
            continue
        readers = [n for n in imp.nodes if node.name in n.inputs]
        if not readers and imp.problems:
            continue  # its readers failed, and have said why
        if len(readers) != 1 or not isinstance(readers[0].op, (Quant, Bipolar)):
            imp.problems.append(
                f"graph input '{node.origin.onnx_name}' must be read by exactly one quantizer "
                f"(Quant or QuantizeLinear); it is read by {len(readers)} node(s)")


def _live(graph: Graph) -> Graph:
    """Drop nodes that no output depends on (left behind by folding), keeping the inputs."""
    needed = set(graph.outputs)
    for n in reversed(graph.nodes):
        if n.name in needed:
            needed.update(n.inputs)
    return graph.replace_nodes([n for n in graph.nodes if n.name in needed or isinstance(n.op, Input)])


def import_file(path: str | os.PathLike, max_ops: int = DEFAULT_MAX_OPS, requantize: bool = False,
                requant_bits: int = 16) -> Graph:
    model = load(path)
    return import_model(model, name=Path(path).stem, max_ops=max_ops, requantize=requantize,
                        requant_bits=requant_bits)


__all__ = ["load", "import_model", "import_file", "FixedType", "Dense"]
