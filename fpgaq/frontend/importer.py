"""Read an ONNX / QONNX / QDQ model into the IR, one ONNX node at a time.

Each node is lowered into IR ops that mirror it (fpgaq.frontend.table); nothing is folded or
fused here: that is the passes' work. Every problem is collected, each naming its ONNX node,
and all are reported together.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ..errors import ModelError
from ..ir.fixed import FixedType, Rounding
from ..ir.graph import Graph, Node, Origin, verify
from ..ir.ops import Bipolar, ChannelQuant, Gemm, Input, MatMul, Quant
from .context import FLOAT_TYPES, Importer, shape_of, type_name
from .model_file import DEFAULT_MAX_OPS, check_size, load, not_text
from .standard import ir_shape
from .table import lowering, unsupported
from .values import POISON, Const, Problem, Value


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


# ops with a lowering for run-time tensors that shape sub-graphs also use on constants
SHAPE_ARITHMETIC = frozenset({"Concat", "Pad", "ReduceMean"})


def _constant(imp: Importer, onode) -> bool:
    """Whether every input of the node is known at import (and it has one)."""
    present = [i for i, name in enumerate(onode.input) if name]
    return bool(present) and all(imp.is_const(onode, i) for i in present)


def _evaluate(imp: Importer, onode) -> list:
    """A standard op on constants only (shape arithmetic: Gather, Concat, Cast, Slice, Range...),
    evaluated once by the onnx package's reference evaluator, in ONNX's own dtypes."""
    feeds = {}
    for i, name in enumerate(onode.input):
        if not name:
            continue
        v = imp.values[name]
        if isinstance(v, Const):
            feeds[name] = v.value.astype(helper.tensor_dtype_to_np_dtype(v.onnx_type))
        else:   # a constant the IR computed: integers stay integers (shape arithmetic)
            assert isinstance(v, Value) and v.node.out.value is not None
            t = v.node.out
            integer = t.type is not None and t.type.frac == 0 and t.factor is None
            feeds[name] = (np.asarray(t.value).astype(np.int64) if integer
                           else imp.const(onode, i, "input").value.astype(np.float32))
    from onnx.reference import ReferenceEvaluator   # heavy (a tenth of fpgaq's start-up), and rarely needed
    try:
        results = ReferenceEvaluator(onode, opsets={"": imp.opset.get("ai.onnx", 13)}).run(None, feeds)
    except Exception as e:   # the reference evaluator raises many kinds
        raise Problem(f"cannot evaluate it on its constant inputs ({type(e).__name__}: {str(e)[:200]})") from None
    out = []
    for r in results:
        a = np.asarray(r)
        out.append(Const(a.astype(np.float64 if a.dtype.kind == "f" else np.int64),
                         helper.np_dtype_to_tensor_dtype(a.dtype)))
    return out


def _readers(imp: Importer, node: Node) -> list[Node]:
    """The nodes reading `node`, looking through the host's real-valued pre-processing."""
    out: dict[str, Node] = {}
    for n in imp.nodes:
        if node.name in n.inputs:
            host = n.type is None and n.out.value is None and n.name not in imp.quantized
            out.update((r.name, r) for r in (_readers(imp, n) if host else [n]))
    return list(out.values())


def _check_inputs(imp: Importer) -> None:
    """The firmware boundary: each model input is read by exactly one quantizer."""
    for node in imp.nodes:
        if not isinstance(node.op, Input):
            continue
        readers = _readers(imp, node)
        if not readers and imp.problems:
            continue  # its readers failed, and have said why
        if len(readers) != 1 or not isinstance(readers[0].op, (Quant, Bipolar, ChannelQuant)):
            imp.problems.append(
                f"graph input '{node.origin.onnx_name}' must be read by exactly one quantizer "
                f"(Quant or QuantizeLinear); it is read by {len(readers)} node(s)")


def _outputs(imp: Importer, g) -> tuple[list[str], list[str]]:
    outputs, names = [], []
    for vo in g.output:
        v = imp.values.get(vo.name)
        if v is POISON:
            continue
        if v is None:
            if not any(vo.name in n.output for n in g.node):
                imp.problems.append(f"graph output '{vo.name}' is not written by any node")
            continue  # else its node was never reached, for a reason already reported
        if isinstance(v, Value) and not v.const and v.node.name in imp.quantized:
            outputs.append(v.node.name)
            names.append(vo.name)
        else:
            const = isinstance(v, Const) or (isinstance(v, Value) and v.const)
            imp.problems.append(f"graph output '{vo.name}' is {'a constant' if const else 'not quantized'}; "
                                "fpgaq needs every output to be computed from quantized inputs")
    return outputs, names


def import_model(model: onnx.ModelProto, name: str = "model", max_ops: int = DEFAULT_MAX_OPS,
                 requantize: bool = False, input_type: FixedType | None = None) -> Graph:
    """Lower an ONNX model to a verified IR graph that mirrors it, or raise ModelError listing
    every problem. With `requantize`, float (non-power-of-two) scales are accepted: they ride
    on the codes as float factors until the requantiser pass lowers them. With `input_type`,
    every model input gets a quantizer of that type first (a model that quantizes only weights
    and activations, as QKeras does)."""
    check_size(model, max_ops)
    corrupt = not_text(model.graph)
    if corrupt:
        raise ModelError([f"{corrupt} is not valid UTF-8 text; the file is corrupt, export the model again"])
    imp = Importer(model, requantize)
    g = model.graph
    for t in g.initializer:
        try:
            imp.values[t.name] = Const(numpy_helper.to_array(t).astype(
                np.float64 if t.data_type in FLOAT_TYPES else np.int64), t.data_type)
        except Exception as e:
            imp.problems.append(f"initializer '{t.name}': unreadable ({e})")
            imp.values[t.name] = POISON
    for vi in g.input:
        if vi.name in imp.values:
            continue  # weights also listed as graph inputs
        imp.origin = Origin(vi.name, "graph input")
        try:
            elem = vi.type.tensor_type.elem_type
            if elem not in FLOAT_TYPES:
                raise Problem(f"graph input '{vi.name}' has element type {type_name(elem)}; "
                              "fpgaq takes float inputs and quantizes them itself")
            shape = ir_shape(shape_of(vi), f"graph input '{vi.name}'")
            node = imp.add("inp", Input(shape), ())
            if input_type is not None:   # --input-type: fpgaq quantizes the input (half to even, saturating)
                t = input_type
                node = imp.add("quant", Quant(t, Rounding.ROUND, t.min_code, t.max_code), (node,))
            imp.values[vi.name] = Value(node)
        except Problem as p:
            imp.problems.append(str(p))   # the message names the input
            imp.values[vi.name] = POISON

    for index, onode in enumerate(_topological(g, imp)):
        label = onode.name or f"#{index}"
        imp.origin = Origin(label, onode.op_type, onode.output[0] if onode.output else "")
        ins = [imp.values.get(i) for i in onode.input if i]
        outs: list = []
        if any(v is POISON for v in ins):
            why = unsupported(onode)   # worth saying even though an input failed
            if why:
                imp.problems.append(f"{imp.origin}: {why}")
        else:
            try:
                lower = lowering(onode)
                standard = (onode.domain or "") in ("", "ai.onnx")
                if (lower is None or onode.op_type in SHAPE_ARITHMETIC) and standard and _constant(imp, onode):
                    outs = _evaluate(imp, onode)
                elif lower is None:
                    raise Problem(unsupported(onode) or "")
                else:
                    outs = lower(imp, onode)
            except Problem as p:
                imp.problems.append(f"{imp.origin}: {p}")
        for k, o in enumerate(onode.output):
            imp.values[o] = outs[k] if k < len(outs) else POISON

    outputs, names = _outputs(imp, g)
    _check_inputs(imp)
    by_name = {n.name: n for n in imp.nodes}
    # a Gemm or MatMul does one multiply-accumulate an input per weight
    macs = sum(by_name[n.inputs[1]].size for n in imp.nodes if isinstance(n.op, (Gemm, MatMul)))
    if macs > max_ops:
        imp.problems.append(f"the model needs {macs:,} multiply-accumulates an input, more than the "
                            f"limit of {max_ops:,}; raise it with --max-ops if that is intended")
    if imp.problems:
        raise ModelError(imp.problems)
    graph = Graph(tuple(imp.nodes), tuple(outputs), name, output_names=tuple(names))
    verify(graph)
    return graph


def import_file(path: str | os.PathLike, max_ops: int = DEFAULT_MAX_OPS, requantize: bool = False) -> Graph:
    return import_model(load(path), name=Path(path).stem, max_ops=max_ops, requantize=requantize)
