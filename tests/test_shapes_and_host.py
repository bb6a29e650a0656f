"""N-d model inputs, the shape sub-graphs exporters leave (Shape -> Gather -> Unsqueeze -> Concat
-> Reshape), Flatten, and float pre-processing before the input quantizer, which the host runs
in float32 as ONNX does: the emulator (as imported and compiled), C-simulation and RTL
simulation all equal qonnx's or onnxruntime's execution, bit for bit."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import need_gxx
from fpgaq import emulate
from fpgaq.backends.hls.csim import run_csim
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.project import build
from fpgaq.stimulus import read_inputs
from qonnx_reference import run_onnxruntime, run_reference

Q = "qonnx.custom_op.general"
PREP = {                                              # ONNX ops before the input quantizer
    "none": [],
    "affine": [("Mul", 2.0), ("Sub", 1.0)],           # x * 2 - 1
    "normalize": [("Add", 0.75), ("Div", 3.0)],       # (x + a) / b
}


def _model(fmt: str, prep: str, reshape: str, in_shape=(1, 1, 4, 4), seed: int = 0) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    n_in = int(np.prod(in_shape))
    inits = {"sx": np.float32(2 ** -4), "so": np.float32(2 ** -3), "z": np.float32(0), "b8": np.float32(8),
             "b6": np.float32(6), "sw": np.float32(2 ** -3), "zp": np.int8(0), "idx": np.array(0, np.int64),
             "minus1": np.array([-1], np.int64), "axes0": np.array([0], np.int64),
             "W": (rng.integers(-15, 16, (5, n_in)) * (rng.random((5, n_in)) < 0.6) / 8).astype(np.float32)}
    nodes, x = [], "x"
    for i, (op, c) in enumerate(PREP[prep]):
        inits[f"c{i}"] = np.float32(c)
        nodes.append(helper.make_node(op, [x, f"c{i}"], [f"p{i}"]))
        x = f"p{i}"
    if reshape == "shape":       # what PyTorch's exporter writes for x.view(x.size(0), -1)
        nodes += [helper.make_node("Shape", [x], ["shp"]),
                  helper.make_node("Gather", ["shp", "idx"], ["n"], axis=0),
                  helper.make_node("Unsqueeze", ["n", "axes0"], ["n1"]),
                  helper.make_node("Concat", ["n1", "minus1"], ["newshape"], axis=0),
                  helper.make_node("Reshape", [x, "newshape"], ["flat"])]
    else:
        nodes.append(helper.make_node("Flatten", [x], ["flat"], axis=1))
    if fmt == "qonnx":
        nodes += [helper.make_node("Quant", ["flat", "sx", "z", "b8"], ["xq"], domain=Q, signed=1, narrow=0),
                  helper.make_node("Quant", ["W", "sw", "z", "b6"], ["Wq"], domain=Q, signed=1, narrow=1),
                  helper.make_node("Gemm", ["xq", "Wq"], ["acc"], transB=1),
                  helper.make_node("Quant", ["acc", "so", "z", "b8"], ["y"], domain=Q, signed=1, narrow=0)]
        opsets = [helper.make_opsetid("", 13), helper.make_opsetid(Q, 1)]
    else:
        inits["Wi"] = np.clip(np.round(inits.pop("W") * 8), -31, 31).astype(np.int8)
        nodes += [helper.make_node("QuantizeLinear", ["flat", "sx", "zp"], ["xi"]),
                  helper.make_node("DequantizeLinear", ["xi", "sx", "zp"], ["xq"]),
                  helper.make_node("DequantizeLinear", ["Wi", "sw", "zp"], ["Wq"]),
                  helper.make_node("Gemm", ["xq", "Wq"], ["acc"], transB=1),
                  helper.make_node("QuantizeLinear", ["acc", "so", "zp"], ["yi"]),
                  helper.make_node("DequantizeLinear", ["yi", "so", "zp"], ["y"])]
        opsets = [helper.make_opsetid("", 13)]
    graph = helper.make_graph(nodes, "nd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _inputs(in_shape, n: int = 1500, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-6, 6, (n,) + tuple(in_shape[1:])).astype(np.float32)
    x[: n // 5] = np.round(x[: n // 5] * 64) / 64       # many values on and half-way between grid points
    return x


@pytest.mark.parametrize("fmt", ["qonnx", "qdq"])
@pytest.mark.parametrize("prep", sorted(PREP))
@pytest.mark.parametrize("reshape", ["shape", "flatten"])
def test_nd_input_and_host_preprocessing_equal_the_reference(tmp_path, fmt, prep, reshape):
    in_shape = (1, 1, 4, 4) if reshape == "shape" else (1, 2, 2, 3)
    model = _model(fmt, prep, reshape, in_shape)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    x = _inputs(in_shape)
    want = (run_reference if fmt == "qonnx" else run_onnxruntime)(model, x)[0].reshape(len(x), 5)
    for passes in (False, True):
        graph = compile_file(path, BuildConfig(), passes=passes)
        np.testing.assert_array_equal(emulate.run(graph, x)[0], want)
    # the same arrays flattened, as a user with (N, features) data would give them
    np.testing.assert_array_equal(emulate.run(graph, x.reshape(len(x), -1))[0], want)
    assert graph.inputs[0].shape == tuple(in_shape[1:])
    assert len(graph.preprocessing) == len(PREP[prep]) + 1            # and the flattening reshape


def test_csim_and_project_of_a_preprocessed_nd_model(tmp_path):
    need_gxx()
    model = _model("qonnx", "affine", "shape")
    onnx.save(model, tmp_path / "m.onnx")
    project = build(tmp_path / "m.onnx", tmp_path / "p", BuildConfig(name="nd"))
    x = _inputs((1, 1, 4, 4), 2000)
    r = run_csim(project, x)
    assert r.ok, r.mismatches
    np.testing.assert_array_equal(project.graph.real_outputs(0, r.outputs[0]), run_reference(model, x)[0].reshape(-1, 5))
    meta = json.loads((tmp_path / "p" / "fpgaq.json").read_text())
    assert [p["onnx_op"] for p in meta["preprocessing"]] == ["Mul", "Sub", "Reshape"]
    assert "Pre-processing on the host, outside the firmware" in (tmp_path / "p" / "report.md").read_text()
    np.save(tmp_path / "x.npy", x)
    assert read_inputs(tmp_path / "x.npy", project.graph).shape == (2000, 1, 4, 4)


def test_rtl_of_a_preprocessed_nd_model(tmp_path):
    from verilog_helpers import need, need_cocotb
    from fpgaq.backends.verilog.rtlsim import run_rtlsim
    need("iverilog", "Icarus Verilog")
    need_cocotb()
    model = _model("qdq", "normalize", "flatten", (1, 2, 2, 3))
    onnx.save(model, tmp_path / "m.onnx")
    project = build(tmp_path / "m.onnx", tmp_path / "v", BuildConfig(name="nd", backend="verilog"))
    x = _inputs((1, 2, 2, 3), 300)
    r = run_rtlsim(project, x, sim="icarus")
    assert r.ok, r.mismatches
    np.testing.assert_array_equal(project.graph.real_outputs(0, r.outputs[0]),
                                  run_onnxruntime(model, x)[0].reshape(-1, 5))


def test_shape_of_a_tensor_that_is_not_static_is_refused(tmp_path):
    from fpgaq.errors import ModelError
    model = _model("qonnx", "none", "shape")
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_param = "h"
    onnx.save(model, tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"dynamic feature dimension"):
        compile_file(tmp_path / "m.onnx", BuildConfig())


def _unquantized_input(with_quant: bool) -> onnx.ModelProto:
    """QKeras-style: weights and activations quantized, the input not (or, for the reference,
    quantized to fixed<16,6> by an explicit Quant)."""
    rng = np.random.default_rng(3)
    inits = {"W": (rng.integers(-15, 16, (4, 6)) / 16).astype(np.float32), "sw": np.float32(2 ** -4),
             "z": np.float32(0), "b6": np.float32(6), "b16": np.float32(16), "sx": np.float32(2 ** -10),
             "so": np.float32(2 ** -3), "b8": np.float32(8)}
    x = "x"
    nodes = []
    if with_quant:
        nodes.append(helper.make_node("Quant", ["x", "sx", "z", "b16"], ["xq"], domain=Q, signed=1, narrow=0,
                                      rounding_mode="ROUND"))
        x = "xq"
    nodes += [helper.make_node("Quant", ["W", "sw", "z", "b6"], ["Wq"], domain=Q, signed=1, narrow=1),
              helper.make_node("Gemm", [x, "Wq"], ["acc"], transB=1),
              helper.make_node("Relu", ["acc"], ["r"]),
              helper.make_node("Quant", ["r", "so", "z", "b8"], ["y"], domain=Q, signed=0, narrow=0)]
    graph = helper.make_graph(nodes, "qk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(Q, 1)])
    model.ir_version = 8
    return model


def test_input_type_quantizes_an_unquantized_input(tmp_path):
    from fpgaq.errors import ModelError
    onnx.save(_unquantized_input(False), tmp_path / "m.onnx")
    with pytest.raises(ModelError, match=r"or give the input's fixed-point type with --input-type"):
        compile_file(tmp_path / "m.onnx", BuildConfig())
    for text in ("fixed<16,6>", "ap_fixed<16, 6>"):
        graph = compile_file(tmp_path / "m.onnx", BuildConfig(input_type=text))
        rng = np.random.default_rng(0)
        x = np.concatenate([rng.uniform(-40, 40, (500, 6)), np.round(rng.uniform(-3, 3, (500, 6)) * 2048) / 2048])
        x = x.astype(np.float32)                      # beyond the range (saturation), and ties
        want = run_reference(_unquantized_input(True), x)[0].reshape(-1, 4)
        np.testing.assert_array_equal(emulate.run(graph, x)[0], want)
    project = build(tmp_path / "m.onnx", tmp_path / "p", BuildConfig(name="qk", input_type="ufixed<12,4>"))
    assert "quantized by fpgaq to `ufixed<12,4>` (--input-type)" in (tmp_path / "p" / "report.md").read_text()
    assert project.meta["inputs"][0]["width"] == 12 and not project.meta["inputs"][0]["signed"]


def test_input_type_must_be_a_type():
    from fpgaq.errors import ConfigError
    with pytest.raises(ConfigError, match=r"input_type: 'float16' is not a fixed-point type"):
        BuildConfig(input_type="float16")
