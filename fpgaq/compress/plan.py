"""A quantization plan: the concrete numbers of one candidate design, and the QONNX model that
says them.

A plan gives every quantized tensor (the model input, each layer's output after its ReLU if it
has one, each average) a power-of-two fixed-point type, and every weighted layer its weights
(already on their grid, pruned ones exactly zero) and its bias on the layer's accumulator grid.
`write_model` turns a network and a plan into the QONNX model fpgaq builds as it is: a `Quant`
node on the input, on each weight and bias, and after each activation; without a plan, the
float network (for calibration and reference).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..ir.fixed import FixedType
from .floatnet import Layer, Net

QONNX_DOMAIN = "qonnx.custom_op.general"
IR_VERSION = 10          # what qonnx and onnxruntime of today both execute
MIN_OPSET = 13


@dataclass(frozen=True)
class ActQuant:
    """A tensor's type: `bits` wide, `frac` fraction bits, signed or not; `rounding` as QONNX
    names it (ROUND: to nearest, ties to even; FLOOR: truncation, as ap_fixed's AP_TRN)."""
    bits: int
    frac: int
    signed: bool
    rounding: str = "ROUND"

    @property
    def type(self) -> FixedType:
        return FixedType(self.signed, self.bits, self.frac)

    def apply(self, x: np.ndarray) -> np.ndarray:
        lo, hi = self.type.min_code, self.type.max_code
        scaled = np.asarray(x, dtype=np.float64) * 2.0 ** self.frac
        codes = np.floor(scaled) if self.rounding == "FLOOR" else np.round(scaled)
        return np.clip(codes, lo, hi) * 2.0 ** -self.frac


@dataclass(frozen=True)
class LayerQuant:
    weight: np.ndarray       # values on the grid 2**-w_frac, zeros where pruned
    w_bits: int
    w_frac: int
    w_narrow: bool
    bias: np.ndarray         # values on the grid 2**-b_frac
    b_bits: int
    b_frac: int

    @property
    def nonzero(self) -> int:
        return int(np.count_nonzero(self.weight))


@dataclass(frozen=True)
class Plan:
    acts: dict[str, ActQuant]          # tensor -> its quantizer
    layers: dict[str, LayerQuant]      # weighted layer's name -> its numbers


def quantized_points(net: Net) -> list[str]:
    """The tensors that get a quantizer, in graph order: the input; each weighted layer's,
    add's or average's output, or the output of the activation (ReLU, LeakyReLU, Clip) that is
    its only reader; every activation's output."""
    points = [net.input]
    for layer in net.layers:
        if layer.kind == "relu" or (layer.kind in ("dense", "conv", "add", "average") and not _relu_only(net, layer)):
            points.append(layer.output)
    return points


def _relu_only(net: Net, layer: Layer) -> bool:
    users = net.consumers(layer.output)
    return len(users) == 1 and users[0].kind == "relu" and layer.output != net.output


def input_point(net: Net, tensor: str) -> str:
    """The quantized tensor a value comes from, through the ops that keep values as they are."""
    points = set(quantized_points(net))
    while tensor not in points:
        producer = net.producer(tensor)
        assert producer is not None and producer.kind == "keep", tensor
        tensor = producer.inputs[0]
    return tensor


def _init(name: str, value: np.ndarray | float, dtype=np.float32) -> TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype=dtype), name)


class _Writer:
    def __init__(self, net: Net, plan: Plan | None):
        self.net, self.plan = net, plan
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[TensorProto] = []
        self.names: set[str] = set()

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.names:
            k += 1
            name = f"{base}_{k}"
        self.names.add(name)
        return name

    def quant(self, x: str, q: ActQuant, out: str, node: str, narrow: bool = False) -> str:
        scale = self.unique(f"{node}.scale")
        zero = self.unique(f"{node}.zeropt")
        bits = self.unique(f"{node}.bitwidth")
        self.inits += [_init(scale, 2.0 ** -q.frac), _init(zero, 0.0), _init(bits, float(q.bits))]
        self.nodes.append(helper.make_node("Quant", [x, scale, zero, bits], [out], name=self.unique(node),
                                           domain=QONNX_DOMAIN, signed=int(q.signed), narrow=int(narrow),
                                           rounding_mode=q.rounding))
        return out

    def constant(self, layer: Layer, what: str, value: np.ndarray, q: ActQuant | None = None,
                 narrow: bool = False) -> str:
        name = self.unique(f"{layer.name}.{what}")
        self.inits.append(_init(name, value))
        if q is None:
            return name
        return self.quant(name, q, self.unique(f"{name}_q"), f"{layer.name}/{what}_quant", narrow)

    def layer(self, layer: Layer, ins: list[str], out: str) -> None:
        name = self.unique(layer.name)
        if layer.weighted:
            lq = None if self.plan is None else self.plan.layers[layer.name]
            assert layer.weight is not None and layer.bias is not None
            if lq is None:
                w = self.constant(layer, "weight", layer.weight)
                b = self.constant(layer, "bias", layer.bias)
            else:
                w = self.constant(layer, "weight", lq.weight, ActQuant(lq.w_bits, lq.w_frac, True), lq.w_narrow)
                b = self.constant(layer, "bias", lq.bias, ActQuant(lq.b_bits, lq.b_frac, True))
            if layer.kind == "dense":
                self.nodes.append(helper.make_node("Gemm", [ins[0], w, b], [out], name=name, transB=1))
            else:
                self.nodes.append(helper.make_node("Conv", [ins[0], w, b], [out], name=name, **layer.attrs))
            return
        consts = []
        for j, c in enumerate(layer.consts):
            cname = self.unique(f"{layer.name}.const{j}")
            self.inits.append(numpy_helper.from_array(np.asarray(c), cname))
            consts.append(cname)
        self.nodes.append(helper.make_node(layer.op_type, ins + consts, [out], name=name, **layer.attrs))

    def model(self, outputs: list[str]) -> onnx.ModelProto:
        net, plan = self.net, self.plan
        acts = {} if plan is None else plan.acts
        self.names.update({net.input})
        current = {net.input: net.input}
        if net.input in acts:
            current[net.input] = self.quant(net.input, acts[net.input], self.unique(f"{net.input}_q"), "input_quant")
        for layer in net.layers:
            ins = [current[t] for t in layer.inputs]
            t = layer.output
            if t in acts:
                raw = self.unique(f"{t}_raw")
                self.layer(layer, ins, raw)
                current[t] = self.quant(raw, acts[t], t if t == net.output else self.unique(f"{t}_q"),
                                        f"{layer.name}/quant")
            else:
                self.layer(layer, ins, t if t == net.output else self.unique(t))
                current[t] = t if t == net.output else self.nodes[-1].output[0]
        want = [net.output] + [o for o in outputs if o != net.output]
        graph = helper.make_graph(
            self.nodes, "compressed" if plan is not None else "float",
            [helper.make_tensor_value_info(net.input, TensorProto.FLOAT, ["batch", *net.input_shape])],
            [helper.make_tensor_value_info(current[o], TensorProto.FLOAT, None) for o in want],
            self.inits)
        opsets = [helper.make_opsetid("", max(net.opset, MIN_OPSET))]
        if plan is not None:
            opsets.append(helper.make_opsetid(QONNX_DOMAIN, 1))
        model = helper.make_model(graph, opset_imports=opsets, producer_name="fpgaq compress")
        model.ir_version = IR_VERSION
        return model


def write_model(net: Net, plan: Plan | None = None, outputs: list[str] | tuple[str, ...] = ()) -> onnx.ModelProto:
    """The network as ONNX: float without a plan, else QONNX with the plan's quantizers.
    `outputs` adds tensors of the network as extra graph outputs (float calibration)."""
    return _Writer(net, plan).model(list(outputs))
