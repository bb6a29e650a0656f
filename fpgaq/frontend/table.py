"""The table of supported ONNX ops: which lowering each (domain, op type) gets."""
from __future__ import annotations

from collections.abc import Callable

from ..ir.ops import Activation, Div, Mul, Relu, Sub
from . import qdq, qonnx, standard
from .context import QONNX_DOMAINS, Importer

Lowering = Callable[[Importer, object], list]

STANDARD: dict[str, Lowering] = {
    "Gemm": standard.gemm, "MatMul": standard.matmul, "Add": standard.add,
    "BatchNormalization": standard.batchnorm, "Relu": standard.elementwise(lambda a: Relu()), "Clip": standard.clip,
    "Identity": standard.passthrough, "Flatten": standard.passthrough, "Reshape": standard.passthrough,
    "Squeeze": standard.passthrough, "Unsqueeze": standard.passthrough, "Dropout": standard.passthrough,
    "Transpose": standard.transpose, "Constant": standard.constant,
    "Shape": standard.shape, "Size": standard.shape,
    "Sub": standard.arithmetic(Sub), "Mul": standard.arithmetic(Mul), "Div": standard.arithmetic(Div),
    "Sigmoid": standard.elementwise(lambda a: Activation("sigmoid")),
    "Tanh": standard.elementwise(lambda a: Activation("tanh")),
    "HardSigmoid": standard.elementwise(standard.hard_sigmoid), "Softmax": standard.softmax,
    "LeakyRelu": standard.leaky_relu, "PRelu": standard.leaky_relu, "Conv": standard.conv,
    "AveragePool": standard.average_pool, "GlobalAveragePool": standard.average_pool,
    "ReduceMean": standard.average_pool, "Pad": standard.pad,
    "MaxPool": standard.max_pool, "GlobalMaxPool": standard.max_pool, "Concat": standard.concat,
    "QuantizeLinear": qdq.quantize_linear, "DequantizeLinear": qdq.dequantize_linear,
}
QONNX: dict[str, Lowering] = {
    "Quant": qonnx.quant, "IntQuant": qonnx.quant, "BipolarQuant": qonnx.bipolar_quant, "Trunc": qonnx.trunc,
}


def lowering(onode) -> Lowering | None:
    domain = onode.domain or ""
    if domain in ("", "ai.onnx"):
        return STANDARD.get(onode.op_type)
    return QONNX.get(onode.op_type) if domain in QONNX_DOMAINS else None


def unsupported(onode) -> str | None:
    """Why fpgaq has no lowering for this node's op at all (known without its inputs), or None."""
    if lowering(onode) is not None:
        return None
    domain = onode.domain or ""
    where = f" in domain '{domain}'" if domain not in ("", "ai.onnx") else ""
    return (f"op {onode.op_type}{where} is not supported. fpgaq supports "
            + ", ".join(sorted(STANDARD)) + " and QONNX " + ", ".join(sorted(QONNX))
            + "; replace or remove this node before export")
