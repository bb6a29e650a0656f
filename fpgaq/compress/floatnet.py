"""Read a float ONNX model into the plain network `compress` quantizes: weighted layers (a dense
matrix or a convolution, with its bias), ReLUs, and the ops that keep values as they are
(pools, reshapes), in graph order.

What exporters send is brought to that form here, in float64:
- Gemm (alpha, beta, transB), and MatMul by a constant matrix with the Add of its bias;
- Identity and Dropout are passed over; Constant nodes are constants;
- an affine op after a layer (BatchNormalization, or Mul/Div/Add/Sub by a per-channel constant,
  as tf2onnx writes a Keras batch-norm) is folded into the layer's weights and bias; one before
  a dense layer, or before a convolution without padding, into that layer's input side;
- a Softmax or LogSoftmax giving the model's output is dropped: the compressed model gives the
  logits, whose argmax is the same.

A Reshape whose shape is computed from the tensor's own Shape (tf2onnx's Flatten: Shape,
Gather, Slice, Concat, Cast) gets the constant shape onnxruntime gives it, batch axis free, and
the shape computation goes.

Anything else is refused, every offending node named at once. A model that is already quantized
(QONNX Quant, QuantizeLinear/DequantizeLinear) is refused with a pointer to `fpgaq build`.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import FpgaqError, ModelError
from .reference import run_float

PASS_THROUGH = {"MaxPool", "GlobalMaxPool", "Flatten", "Reshape", "Transpose"}   # values kept as they are
AVERAGES = {"AveragePool", "GlobalAveragePool"}                                    # a new grid after them
AFFINE = {"BatchNormalization", "Mul", "Div", "Add", "Sub"}
SKIPPED = {"Identity", "Dropout"}
ACTIVATIONS = {"Relu", "LeakyRelu", "Clip"}      # kind relu: an activation after a layer, then its quantizer
SOFTMAX = {"Softmax", "LogSoftmax"}
QUANTIZED = {"Quant", "IntQuant", "BipolarQuant", "Trunc", "QuantizeLinear", "DequantizeLinear",
             "DynamicQuantizeLinear", "QLinearMatMul", "QLinearConv", "MatMulInteger", "ConvInteger"}
TAKEN = ("Gemm, MatMul (+ Add), Conv, Relu, LeakyRelu, Clip (ReLU6), BatchNormalization, Mul/Add/Sub/Div by constants, MaxPool, "
         "GlobalMaxPool, AveragePool, GlobalAveragePool, Add of two activations, Flatten, Reshape, Transpose, "
         "Identity, Dropout, and a final Softmax")


@dataclass
class Layer:
    """One node of the network. `kind` is dense, conv, relu (Relu, LeakyRelu or Clip), add, average or keep (an op that
    keeps the values: pools by max, reshapes); `attrs` and `consts` are what its ONNX node needs
    written back (a Reshape's shape, a pool's attributes)."""
    kind: str
    name: str                              # the ONNX node it comes from
    inputs: list[str]
    output: str
    op_type: str
    attrs: dict = field(default_factory=dict)
    consts: list[np.ndarray] = field(default_factory=list)
    weight: np.ndarray | None = None       # dense (out, in); conv (out, in / group, *kernel)
    bias: np.ndarray | None = None         # (out,)

    @property
    def weighted(self) -> bool:
        return self.kind in ("dense", "conv")

    @property
    def padded(self) -> bool:
        pads = self.attrs.get("pads", [])
        return any(int(p) for p in pads) or self.attrs.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID")


@dataclass
class Net:
    input: str
    input_shape: tuple[int, ...]           # without the batch axis
    output: str
    layers: list[Layer]
    opset: int
    dropped_softmax: str | None            # the ONNX node of a final Softmax that was dropped

    def producer(self, tensor: str) -> Layer | None:
        return next((la for la in self.layers if la.output == tensor), None)

    def consumers(self, tensor: str) -> list[Layer]:
        return [la for la in self.layers if tensor in la.inputs]

    @property
    def weighted(self) -> list[Layer]:
        return [la for la in self.layers if la.weighted]


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _decoded(attrs: dict) -> dict:
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}


def _label(node: onnx.NodeProto, i: int) -> str:
    return f"{node.op_type} '{node.name or node.output[0] or f'#{i}'}'"


def read_net(model: onnx.ModelProto) -> Net:
    """The network of a float model, with affine ops folded (see the module docstring)."""
    graph = model.graph
    quantized = [_label(n, i) for i, n in enumerate(graph.node) if n.op_type in QUANTIZED]
    if quantized:
        raise FpgaqError(f"the model is already quantized ({', '.join(quantized[:3])}"
                         f"{' ...' if len(quantized) > 3 else ''}): compress takes a float model; "
                         "build this one as it is with `fpgaq build`")
    consts = {t.name: numpy_helper.to_array(t) for t in graph.initializer}      # as stored (a shape is int64)
    inputs = [i for i in graph.input if i.name not in consts]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise FpgaqError(f"compress takes a model with one input and one output; this one has {len(inputs)} "
                         f"input(s) and {len(graph.output)} output(s)")
    (inp,), out = inputs, graph.output[0].name
    dims = inp.type.tensor_type.shape.dim
    if len(dims) < 2 or any(not d.HasField("dim_value") for d in dims[1:]):
        raise FpgaqError(f"input '{inp.name}' needs a batch axis first and fixed sizes after it")
    shape_nodes = _static_reshapes(model, consts)
    alias: dict[str, str] = {}
    layers: list[Layer] = []
    problems: list[str] = []
    dropped = None
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)

    def name(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    for i, node in enumerate(graph.node):
        ins = [name(t) for t in node.input]
        label, attrs = _label(node, i), _decoded(_attrs(node))
        nid = node.name or node.output[0]
        if i in shape_nodes:
            continue
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(attrs["value"])
            continue
        if node.op_type in SKIPPED:
            if ins[0] in consts:
                consts[node.output[0]] = consts[ins[0]]
            else:
                alias[node.output[0]] = ins[0]
            continue
        acts = [t for t in ins if t and t not in consts]
        try:
            layer = _layer(node, nid, ins, acts, attrs, consts)
        except ValueError as e:
            problems.append(f"{label}: {e}")
            continue
        if layer is None:                   # a Softmax at the output
            if name(node.output[0]) != out and node.output[0] != out:
                problems.append(f"{label}: compress drops a Softmax only where it gives the model's output")
                continue
            alias[node.output[0]] = ins[0]
            dropped = nid
            continue
        layers.append(layer)
    if problems:
        raise ModelError(problems + [f"compress takes {TAKEN}"])
    net = Net(inp.name, tuple(int(d.dim_value) for d in dims[1:]), name(out), layers, opset, dropped)
    _fold_bias_adds(net)
    _fold_affine(net)
    return net


SHAPE_OPS = {"Shape", "Gather", "Cast", "Slice", "Concat", "Unsqueeze", "Squeeze", "Mul", "Div", "Add", "Sub",
             "ReduceProd", "Identity", "Constant"}


def _static_reshapes(model: onnx.ModelProto, consts: dict) -> set[int]:
    """The nodes that only compute a Reshape's shape from Shape nodes; each such Reshape's shape
    becomes a constant in `consts` (batch axis -1), read from onnxruntime at two batch sizes."""
    graph = model.graph
    derived: set[str] = set()
    nodes: set[int] = set()
    for i, node in enumerate(graph.node):
        ins = [t for t in node.input if t]
        if node.op_type == "Shape" or (node.op_type in SHAPE_OPS and ins and any(t in derived for t in ins)
                                       and all(t in derived or t in consts for t in ins)):
            derived.update(node.output)
            nodes.add(i)
    reshapes = [n for n in graph.node if n.op_type == "Reshape" and len(n.input) > 1 and n.input[1] in derived]
    if not reshapes:
        return set()
    inp = next(i for i in graph.input if i.name not in consts)
    dims = [int(d.dim_value) for d in inp.type.tensor_type.shape.dim[1:]]
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(n.output[0], onnx.TensorProto.FLOAT, None)
                              for n in reshapes)
    shapes = [{k: v.shape for k, v in run_float(probe, np.zeros([b] + dims)).items()} for b in (1, 2)]
    for n in reshapes:
        one, two = shapes[0][n.output[0]], shapes[1][n.output[0]]
        if one[0] != 1 or two[0] != 2 or one[1:] != two[1:]:
            raise ModelError([f"Reshape '{n.name or n.output[0]}': its computed shape does not keep the batch axis "
                              "first; compress takes a Reshape that does"])
        consts[n.input[1]] = np.array([-1, *one[1:]], dtype=np.int64)
    return nodes


def _const(consts: dict, t: str, label: str) -> np.ndarray:
    if t not in consts:
        raise ValueError(f"'{t}' must be a constant ({label})")
    return np.asarray(consts[t], dtype=np.float64)


def _layer(node: onnx.NodeProto, nid: str, ins: list[str], acts: list[str], attrs: dict,
           consts: dict) -> Layer | None:
    op, out = node.op_type, node.output[0]
    if op in SOFTMAX:
        return None
    if op == "Gemm":
        if attrs.get("transA", 0):
            raise ValueError("transA=1 is not taken; export the layer with the input as it is")
        b = _const(consts, ins[1], "the weight")
        w = float(attrs.get("alpha", 1.0)) * (b if attrs.get("transB", 0) else b.T)
        bias = np.zeros(w.shape[0])
        if len(ins) > 2 and ins[2]:
            bias = bias + float(attrs.get("beta", 1.0)) * np.broadcast_to(_const(consts, ins[2], "the bias"),
                                                                         (w.shape[0],))
        return Layer("dense", nid, [ins[0]], out, "Gemm", weight=w, bias=bias)
    if op == "MatMul":
        if len(acts) != 1 or ins[1] not in consts or consts[ins[1]].ndim != 2:
            raise ValueError("compress takes MatMul by a constant 2-D weight matrix")
        w = np.asarray(consts[ins[1]], dtype=np.float64).T
        return Layer("dense", nid, [ins[0]], out, "Gemm", weight=w, bias=np.zeros(w.shape[0]),
                     attrs={"matmul": True})
    if op == "Conv":
        w = _const(consts, ins[1], "the weight")
        bias = _const(consts, ins[2], "the bias") if len(ins) > 2 and ins[2] else np.zeros(w.shape[0])
        keep = {k: v for k, v in attrs.items() if k in ("pads", "strides", "dilations", "group", "kernel_shape",
                                                       "auto_pad")}
        return Layer("conv", nid, [ins[0]], out, "Conv", attrs=keep, weight=w, bias=np.asarray(bias, float))
    if op in ACTIVATIONS:
        if len(acts) != 1:
            raise ValueError("takes one activation")
        return Layer("relu", nid, acts, out, op, attrs=attrs, consts=[consts[t] for t in ins[1:] if t])
    if op in AFFINE and len(acts) == 1:
        return _affine(op, nid, ins, acts, attrs, consts, out)
    if op == "Add" and len(acts) == 2:
        return Layer("add", nid, acts, out, "Add")
    if op in PASS_THROUGH | AVERAGES:
        if len(acts) != 1:
            raise ValueError("takes one activation")
        const_ins = [consts[t] for t in ins[1:] if t]
        return Layer("average" if op in AVERAGES else "keep", nid, acts, out, op, attrs=attrs, consts=const_ins)
    raise ValueError("not an op compress takes")


def _affine(op: str, nid: str, ins: list[str], acts: list[str], attrs: dict, consts: dict, out: str) -> Layer:
    """x * scale + shift, scale and shift broadcast as in ONNX: a layer 'affine' until folded."""
    if op == "BatchNormalization":
        gamma, beta, mean, var = (_const(consts, t, "batch-norm parameters") for t in ins[1:5])
        scale = gamma / np.sqrt(var + float(attrs.get("epsilon", 1e-5)))
        return Layer("affine", nid, acts, out, op, consts=[scale, beta - mean * scale])
    c = next(np.asarray(consts[t], dtype=np.float64) for t in ins if t in consts)
    if op in ("Sub", "Div") and ins[0] not in acts:
        raise ValueError(f"{op} of an activation from a constant is not taken")
    if op == "Div" and not np.all(c):
        raise ValueError("divides by zero")
    scale = c if op == "Mul" else 1.0 / c if op == "Div" else np.ones_like(c)
    shift = c if op == "Add" else -c if op == "Sub" else np.zeros_like(c)
    return Layer("affine", nid, acts, out, op, consts=[scale, shift])


def _per_channel(affine: Layer, which: int, channels: int, rank: int) -> np.ndarray:
    """The scale (0) or shift (1) of an affine op as a vector over the `channels` of a
    rank-`rank` tensor (N, C, ...): a batch-norm's are such vectors already; a Mul's or Add's
    constant broadcasts as ONNX does (right-aligned) and may vary only along the channel axis."""
    v = np.asarray(affine.consts[which], dtype=np.float64)
    if affine.op_type == "BatchNormalization" or v.size == 1:
        return np.broadcast_to(v.reshape(-1), (channels,)).copy()
    shape = (1,) * (rank - v.ndim) + v.shape
    if len(shape) != rank or shape[1] != channels or any(d != 1 for j, d in enumerate(shape) if j != 1):
        raise ModelError([f"{affine.op_type} '{affine.name}': a constant of shape {list(v.shape)} does not scale "
                          "whole channels; compress folds only per-channel affine ops"])
    return v.reshape(-1)


def _fold_bias_adds(net: Net) -> None:
    """MatMul + Add(bias): the Add of a constant right after a MatMul's only use is its bias."""
    for layer in list(net.layers):
        if not (layer.kind == "dense" and layer.attrs.get("matmul")):
            continue
        users = net.consumers(layer.output)
        if len(users) == 1 and users[0].kind == "affine" and users[0].op_type == "Add" and layer.output != net.output:
            add = users[0]
            assert layer.bias is not None
            layer.bias = layer.bias + _per_channel(add, 1, len(layer.bias), 2)
            _bypass(net, add, layer.output)
        layer.attrs = {}


def _bypass(net: Net, layer: Layer, source: str) -> None:
    """Remove `layer`; its readers read `source` instead."""
    net.layers.remove(layer)
    for other in net.layers:
        other.inputs = [source if t == layer.output else t for t in other.inputs]
    if net.output == layer.output:
        net.output = source


def _merge_affine_chains(net: Net) -> None:
    """x * s1 + t1, then * s2 + t2, is one affine op (as tf2onnx writes a Keras batch-norm: a Mul
    and an Add)."""
    for first in [la for la in net.layers if la.kind == "affine"]:
        users = net.consumers(first.output)
        if len(users) != 1 or users[0].kind != "affine" or first.output == net.output \
                or "BatchNormalization" in (first.op_type, users[0].op_type):
            continue
        second = users[0]
        (s1, t1), (s2, t2) = first.consts, second.consts
        second.consts = [s1 * s2, t1 * s2 + t2]
        second.op_type = "Mul"
        second.inputs = list(first.inputs)
        net.layers.remove(first)


def _fold_affine(net: Net) -> None:
    _merge_affine_chains(net)
    for affine in [la for la in net.layers if la.kind == "affine"]:
        before = net.producer(affine.inputs[0])
        users = net.consumers(affine.output)
        if before is not None and before.weighted and len(net.consumers(before.output)) == 1 \
                and before.output != net.output:
            assert before.weight is not None and before.bias is not None
            n = before.weight.shape[0]
            scale, shift = (_per_channel(affine, j, n, before.weight.ndim) for j in (0, 1))
            before.weight = before.weight * scale.reshape((n,) + (1,) * (before.weight.ndim - 1))
            before.bias = before.bias * scale + shift
            before.output = affine.output
            net.layers.remove(affine)
            continue
        after = users[0] if len(users) == 1 else None
        if after is not None and after.weighted and not (after.kind == "conv" and after.padded) \
                and affine.output != net.output and int(after.attrs.get("group", 1)) == 1:
            assert after.weight is not None and after.bias is not None
            n = after.weight.shape[1]
            scale, shift = (_per_channel(affine, j, n, after.weight.ndim) for j in (0, 1))
            shape = (1, n) + (1,) * (after.weight.ndim - 2)
            after.bias = after.bias + (after.weight * shift.reshape(shape)).reshape(len(after.bias), -1).sum(1)
            after.weight = after.weight * scale.reshape(shape)
            _bypass(net, affine, affine.inputs[0])
            continue
        raise ModelError([f"{affine.op_type} '{affine.name}': compress folds a batch-norm or a per-channel Mul/Add into the Gemm, MatMul or "
                          "Conv right before it, or into a dense layer (or a convolution without padding) right "
                          "after it; this one has neither"])

