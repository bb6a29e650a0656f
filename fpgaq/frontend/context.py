"""The state of one import and the helpers every op's lowering uses: reading constants and
run-time tensors, adding IR nodes, naming them."""
from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np
import onnx

from ..ir.fixed import is_power_of_two, log2_exact
from ..ir.graph import Node, Origin, make_node
from ..ir.ops import Bipolar, Clip, Constant, Op, Quant
from ..names import identifier
from .values import Const, Poison, Problem, Value

QONNX_DOMAINS = ("qonnx.custom_op.general", "finn.custom_op.general", "onnx.brevitas", "finn", "qonnx")
FLOAT_TYPES = (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16,
               onnx.TensorProto.BFLOAT16)


def shape_of(vi) -> list:
    """An ONNX value's shape: its dimensions, a name (or '?') where one is not fixed."""
    dims = []
    for d in vi.type.tensor_type.shape.dim:
        dims.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or "?"))
    return dims


class Importer:
    """State of one import: the ONNX values seen so far and the IR nodes made."""

    def __init__(self, model: onnx.ModelProto, requantize: bool = False):
        self.model = model
        self.requantize = requantize          # float scales become float factors for a requantiser
        self.opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
        self.values: dict[str, Const | Value | Poison] = {}
        self.nodes: list[Node] = []
        self.problems: list[str] = []
        self.taken: set[str] = set()
        self.origin = Origin("", "")
        self.quantized: set[str] = set()      # nodes computed from the model input through a quantizer
        # QDQ zero-points: IR node name -> the zero-point z of the QuantizeLinear whose codes the
        # node holds. Codes are always centred (q - z); DequantizeLinear checks it reads its own z.
        self.zero_points: dict[str, np.ndarray] = {}
        self.graph_outputs = {o.name for o in model.graph.output}
        self.by_name: dict[str, Node] = {}
        self._materialized: dict[str, Node] = {}

    @cached_property
    def shapes(self) -> dict[str, list]:
        """Shapes ONNX shape inference finds (custom QONNX ops stop it; that is fine). Run
        when a lowering first asks: most models never need it, and it is a fifth of a build."""
        try:
            inferred = onnx.shape_inference.infer_shapes(self.model, strict_mode=False)
        except Exception:
            return {}
        g = inferred.graph
        return {vi.name: shape_of(vi) for vi in list(g.value_info) + list(g.output)
                if vi.type.tensor_type.HasField("shape")}

    # --- nodes ---------------------------------------------------------------------------
    def add(self, kind: str, op: Op, inputs: Sequence[Node]) -> Node:
        """A new IR node, named after its kind; a node computed from constants only is named
        c_<kind>, apart from the names of the run-time graph."""
        if inputs and all(n.out.value is not None for n in inputs):
            kind = f"c_{kind}"
        name = identifier(kind, self.taken, fallback=kind)
        try:
            node = make_node(name, op, inputs, self.origin)
        except ValueError as e:
            raise Problem(str(e)) from None
        self.nodes.append(node)
        self.by_name[name] = node
        if (isinstance(op, (Quant, Bipolar)) and node.out.value is None) or any(n.name in self.quantized for n in inputs):
            self.quantized.add(name)
        return node

    def get(self, onode, i: int) -> Const | Value | None:
        if i >= len(onode.input) or onode.input[i] == "":
            return None
        v = self.values[onode.input[i]]
        assert not isinstance(v, Poison)
        return v

    def data(self, onode, i: int, what: str = "the data input") -> Node:
        """The IR node of input i; a constant becomes a Constant node the first time it is read."""
        v = self.get(onode, i)
        if v is None:
            raise Problem(f"{what} (input {i}) is missing; the node has {len(onode.input)} inputs")
        if isinstance(v, Value):
            return v.node
        name = onode.input[i]
        if name not in self._materialized:
            op = (Constant(v.value) if v.onnx_type in FLOAT_TYPES or v.value.dtype.kind == "f"
                  else Constant.codes(v.value, 0))
            origin, self.origin = self.origin, Origin(name, "initializer")
            try:
                self._materialized[name] = self.add("c", op, ())
            finally:
                self.origin = origin
        return self._materialized[name]

    # --- constants -----------------------------------------------------------------------
    def const(self, onode, i: int, what: str) -> Const:
        """Input i, which must be a constant (a parameter such as a scale)."""
        v = self.get(onode, i)
        if v is None:
            raise Problem(f"{what} (input {i}) is missing; the node has {len(onode.input)} inputs")
        if isinstance(v, Value):
            if not v.const:
                raise Problem(f"{what} (input {i}, '{onode.input[i]}') must be a constant "
                              "initializer, but it is computed at run time")
            t = v.node.out
            assert t.value is not None
            return Const(t.real_values(t.value), onnx.TensorProto.FLOAT)
        return v

    def scalar(self, onode, i: int, what: str) -> float:
        c = self.const(onode, i, what)
        vals = np.unique(c.value)
        if vals.size != 1:
            raise Problem(f"{what} must be a single value, found {c.value.size} different values "
                          f"({show(vals)})")
        return float(vals[0])

    def is_const(self, onode, i: int) -> bool:
        v = self.get(onode, i)
        return isinstance(v, Const) or (isinstance(v, Value) and v.const)

    def tensor(self, onode, i: int, what: str = "the data input") -> Value:
        v = self.get(onode, i)
        if not isinstance(v, Value) or v.const:
            raise Problem(f"{what} (input {i}) is a constant; fpgaq expects a run-time tensor there")
        return v

    def fixed_tensor(self, onode, i: int = 0) -> Value:
        """A run-time tensor after a quantizer (codes; or, with float scales, a real value that
        a pass turns into codes)."""
        t = self.tensor(onode, i)
        if t.node.name not in self.quantized:
            raise Problem(f"reads '{onode.input[i]}', which is not quantized yet; "
                          "put a Quant (or QuantizeLinear) on the model input before this node, or give "
                          "the input's fixed-point type with --input-type (for example 'fixed<16,6>')")
        return t

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
                raise Problem(f"{what} {show(scale)} must be finite and positive") from None
            return np.zeros(scale.shape, dtype=np.int64), scale


def clipped_input(imp: Importer, node: Node) -> bool:
    """Whether a tensor is a Clip of the real model input (its quantizer takes the bounds)."""
    return node.type is None and isinstance(node.op, Clip) and node.name not in imp.quantized


def type_name(elem: int) -> str:
    """The name of an ONNX element type, also for a number no ONNX version defines."""
    try:
        return onnx.TensorProto.DataType.Name(elem)
    except ValueError:
        return f"{elem} (not an ONNX type)"


def show(vals, n: int = 4) -> str:
    vals = list(np.asarray(vals).ravel())
    s = ", ".join(f"{float(v):g}" for v in vals[:n])
    return s + (", ..." if len(vals) > n else "")


def power_of_two_frac(scale: object, what: str) -> np.ndarray:
    """Fraction bits f with scale == 2**-f, elementwise; a Problem for any other scale."""
    scale = np.asarray(scale, dtype=np.float64)
    bad = [float(s) for s in scale.ravel() if not is_power_of_two(float(s))]
    if bad:
        raise Problem(
            f"{what} {show(bad)} is not a power of two, so this quantizer is not fixed point. "
            "Train with power-of-two scales (Brevitas: Int8ActPerTensorFixedPoint, "
            "Int8WeightPerTensorFixedPoint, Int16Bias; QKeras/HGQ/PQuantML quantizers are "
            "power-of-two already)")
    return np.vectorize(lambda s: -log2_exact(float(s)), otypes=[np.int64])(scale)
