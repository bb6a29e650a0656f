"""Constants added, subtracted, multiplied or divided after a layer (a bias, a batch-norm that
PyTorch's exporter wrote out as Sub, Div, Mul, Add, Brevitas' TensorNorm) fold into the layer:
exactly where they are fixed point, equal to qonnx's and onnxruntime's execution bit for bit;
otherwise only with --requantize, and then the deviation from the float model is measured."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fpgaq import emulate
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.deviation import deviation
from fpgaq.errors import ModelError
from fpgaq.ir.ops import Add, Dense, Div, Mul, Sub
from qonnx_reference import run_onnxruntime, run_reference

Q = "qonnx.custom_op.general"
N_IN, N_OUT = 6, 4


def _model(fmt: str, tail: list[tuple[str, np.ndarray]], seed: int = 0, reverse: bool = False) -> onnx.ModelProto:
    """Input quantizer, a MatMul on quantized weights, `tail` (op, constant) in order, an output
    quantizer. `reverse`: the constant is the first operand."""
    rng = np.random.default_rng(seed)
    w = (rng.integers(-7, 8, (N_IN, N_OUT)) / 8).astype(np.float32)
    inits = {"sx": np.float32(2 ** -4), "so": np.float32(2 ** -4), "z": np.float32(0), "b8": np.float32(8),
             "b12": np.float32(12), "sw": np.float32(2 ** -3), "b4": np.float32(4), "zp": np.int8(0)}
    if fmt == "qonnx":
        inits["W"] = w
        nodes = [helper.make_node("Quant", ["x", "sx", "z", "b8"], ["xq"], domain=Q, signed=1, narrow=0),
                 helper.make_node("Quant", ["W", "sw", "z", "b4"], ["Wq"], domain=Q, signed=1, narrow=1)]
    else:
        inits["Wi"] = np.round(w * 8).astype(np.int8)
        nodes = [helper.make_node("QuantizeLinear", ["x", "sx", "zp"], ["xi"]),
                 helper.make_node("DequantizeLinear", ["xi", "sx", "zp"], ["xq"]),
                 helper.make_node("DequantizeLinear", ["Wi", "sw", "zp"], ["Wq"])]
    nodes.append(helper.make_node("MatMul", ["xq", "Wq"], ["t0"]))
    for i, (op, c) in enumerate(tail):
        inits[f"c{i}"] = np.asarray(c, np.float32)
        ins = [f"c{i}", f"t{i}"] if reverse else [f"t{i}", f"c{i}"]
        nodes.append(helper.make_node(op, ins, [f"t{i + 1}"], name=f"{op.lower()}{i}"))
    last = f"t{len(tail)}"
    if fmt == "qonnx":
        nodes.append(helper.make_node("Quant", [last, "so", "z", "b12"], ["y"], domain=Q, signed=1, narrow=0))
        opsets = [helper.make_opsetid("", 13), helper.make_opsetid(Q, 1)]
    else:
        inits["zp16"] = np.int16(0)
        nodes += [helper.make_node("QuantizeLinear", [last, "so", "zp16"], ["yi"]),
                  helper.make_node("DequantizeLinear", ["yi", "so", "zp16"], ["y"])]
        opsets = [helper.make_opsetid("", 21)]
    graph = helper.make_graph(nodes, "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N_IN])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N_OUT])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    onnx.checker.check_model(model)
    return model


def _inputs(n: int = 2000, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-9, 9, (n, N_IN)).astype(np.float32)           # beyond the input range: saturation
    x[: n // 4] = np.round(x[: n // 4] * 32) / 32                   # ties of the input quantizer
    return x


def _compile(tmp_path, model: onnx.ModelProto, **config):
    onnx.save(model, tmp_path / "m.onnx")
    return compile_file(tmp_path / "m.onnx", BuildConfig(**config))


# a batch-norm as PyTorch writes it, with fixed-point constants per channel, and a scalar bias
EXACT = [("Sub", np.array([0.25, -0.5, 0.125, 1.0])), ("Div", np.array([0.5, 2.0, -0.25, 1.0])),
         ("Mul", np.array([0.75, -1.5, 1.0, 0.375])), ("Add", np.array([0.0625, 0.0, -3.0, 0.5]))]


@pytest.mark.parametrize("fmt", ["qonnx", "qdq"])
@pytest.mark.parametrize("tail", [EXACT, EXACT[:1], EXACT[2:3], [("Add", np.float32(0.5)), ("Mul", np.float32(4.0))]],
                         ids=["batchnorm", "sub", "mul", "scalars"])
def test_fixed_point_constants_fold_exactly(tmp_path, fmt, tail):
    model = _model(fmt, tail)
    graph = _compile(tmp_path, model)
    assert not any(isinstance(n.op, (Add, Sub, Mul, Div)) for n in graph.nodes)
    assert sum(isinstance(n.op, Dense) for n in graph.nodes) == 1
    x = _inputs()
    want = (run_reference if fmt == "qonnx" else run_onnxruntime)(model, x)[0].reshape(len(x), N_OUT)
    np.testing.assert_array_equal(emulate.run(graph, x)[0], want)
    np.testing.assert_array_equal(emulate.run(compile_file(tmp_path / "m.onnx", BuildConfig(), passes=False), x)[0],
                                  want)


def test_constant_first_operands_fold_where_they_commute(tmp_path):
    model = _model("qonnx", [("Add", EXACT[3][1]), ("Mul", EXACT[2][1])], reverse=True)
    graph = _compile(tmp_path, model)
    x = _inputs()
    np.testing.assert_array_equal(emulate.run(graph, x)[0], run_reference(model, x)[0].reshape(len(x), N_OUT))


@pytest.mark.parametrize("op, text", [("Sub", r"subtracts a MatMul/Gemm result from a constant \(c - x, c / x\)"),
                                      ("Div", r"divides a MatMul/Gemm result from a constant")])
def test_constant_minus_or_over_a_layer_is_refused(tmp_path, op, text):
    with pytest.raises(ModelError, match=rf"node '{op.lower()}0' \({op}\): {text}"):
        _compile(tmp_path, _model("qonnx", [(op, np.float32(2.0))], reverse=True))


# a batch-norm with a real epsilon (TensorNorm): not fixed point
def _float_norm(seed: int = 2) -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    mean, var = rng.normal(0, 1, N_OUT), rng.uniform(0.5, 2, N_OUT)
    gamma, beta = rng.uniform(0.5, 1.5, N_OUT) * rng.choice([-1, 1], N_OUT), rng.normal(0, 0.3, N_OUT)
    return [("Sub", mean), ("Div", np.sqrt(var + 1e-4)), ("Mul", gamma), ("Add", beta)]


def test_float_constants_need_requantize(tmp_path):
    """One problem for the first constant off the grid; the nodes after it are not reported again."""
    with pytest.raises(ModelError, match=r"^node 'sub0' \(Sub\): the constant needs 25 fraction bits but the "
                                         r"accumulator has 7 \(input 4 \+ weight 3\), so it cannot be added "
                                         r"exactly; .* or build with --requantize to round it onto the "
                                         r"accumulator's grid$"):
        _compile(tmp_path, _model("qonnx", _float_norm()))
    with pytest.raises(ModelError, match=r"^node 'div0' \(Div\): divides by a constant that is not exactly "
                                         r"fixed point \(1.01\d*\); .* or build with --requantize"):
        _compile(tmp_path, _model("qonnx", [("Div", np.float32(1.01))]))


def test_float_constants_requantized_with_the_deviation_measured(tmp_path):
    model = _model("qonnx", _float_norm())
    graph = _compile(tmp_path, model, requantize=True)
    assert not any(isinstance(n.op, (Add, Sub, Mul, Div)) for n in graph.nodes)
    x = _inputs()
    want = run_reference(model, x)[0].reshape(len(x), N_OUT).astype(np.float64)
    ours, reference = emulate.run(graph, x)[0], emulate.run_reference(graph, x)[0]
    # the float model as fpgaq reads it is qonnx's execution up to float32's rounding before the
    # output quantizer (a value on a rounding tie may go either way: one step at most)
    assert np.max(np.abs(reference - want)) <= 2 ** -4
    assert np.mean(reference == want) > 0.99
    dev = deviation(graph, x)["outputs"][0]
    assert dev["max_abs_error"] == np.max(np.abs(ours - reference))
    assert dev["max_abs_error"] <= 2 ** -4                   # one output step at the default multiplier width


# --- constants between a quantizer and the next layer (fold_affine_forward) ---------------------

def _between(chain: list[tuple[str, object]], const_first: bool = False) -> onnx.ModelProto:
    """modelgen's 8-12-4 QONNX MLP with `chain` of constant ops between the first activation
    quantizer and the second layer."""
    import modelgen
    m = modelgen.qonnx_mlp([8, 12, 4], rng=0)
    gemms = [n for n in m.graph.node if n.op_type in ("Gemm", "MatMul")]
    src, pos = gemms[1].input[0], list(m.graph.node).index(gemms[1])
    for j, (op, c) in enumerate(chain):
        m.graph.initializer.append(numpy_helper.from_array(np.asarray(c, np.float32), f"k{j}"))
        ins = [f"k{j}", src] if const_first else [src, f"k{j}"]
        m.graph.node.insert(pos + j, helper.make_node(op, ins, [f"s{j}"], name=f"between_{op}{j}"))
        src = f"s{j}"
    gemms[1].input[0] = src
    m.ir_version = 10
    return m


@pytest.mark.parametrize("chain", [
    [("Mul", 0.5)], [("Div", 4.0)], [("Add", 0.25)], [("Sub", 0.125)],
    [("Mul", np.arange(1, 13) / 8.0)],                              # per feature
    [("Mul", -0.75), ("Add", np.linspace(-1, 1, 12) // 0.0625 * 0.0625), ("Sub", 0.5)],
])
def test_constants_before_a_layer_fold_into_it_exactly(tmp_path, chain):
    model = _between(chain)
    graph = _compile(tmp_path, model)
    assert not any(isinstance(n.op, (Add, Sub, Mul, Div)) for n in graph.nodes)
    x = np.concatenate([_inputs(n=2000), _inputs(n=2000, seed=2)], axis=1)[:, :8]
    np.testing.assert_array_equal(emulate.run(graph, x)[0], run_reference(model, x)[0].reshape(len(x), -1))


def test_constant_minus_a_quantized_tensor_folds(tmp_path):
    model = _between([("Sub", 0.5)], const_first=True)
    graph = _compile(tmp_path, model)
    x = np.concatenate([_inputs(n=500), _inputs(n=500, seed=2)], axis=1)[:, :8]
    np.testing.assert_array_equal(emulate.run(graph, x)[0], run_reference(model, x)[0].reshape(len(x), -1))


def test_constants_before_a_layer_that_are_not_fixed_point(tmp_path):
    with pytest.raises(ModelError, match=r"between_Mul0.*not fixed point \(more than 16 fraction bits\); "
                                         r"build with --requantize"):
        _compile(tmp_path, _between([("Mul", 0.3)]))
    graph = _compile(tmp_path, _between([("Mul", 0.3)]), requantize=True)
    assert not any(isinstance(n.op, Mul) for n in graph.nodes)
    with pytest.raises(ModelError, match=r"between_Div0.*not a power of two; its reciprocal is not a fixed-point"):
        _compile(tmp_path, _between([("Div", 3.0)]), requantize=True)
