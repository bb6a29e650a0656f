"""Brevitas' BNN-PYNQ MNIST MLPs (TFC 1w1a, 1w2a, 2w2a, and the same FC class small enough for
RTL simulation) as Brevitas exports them: pre-processing
on the host, a shape sub-graph, float batch-norms before 1- and 2-bit activations (lowered to
thresholds, exactly) and a float TensorNorm after the last layer (a float tail: a fixed-point
output under --requantize).

Every hidden activation equals qonnx's execution bit for bit; the output is the float model's
rounded to the output type fpgaq chose, within the deviation the report states."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import TESTS, csim_exact
from fpgaq import emulate
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.deviation import deviation, requantizers
from fpgaq.errors import ModelError
from fpgaq.ir.ops import Requant, Threshold
from qonnx_reference import run_reference
from verilog_helpers import rtl_exact

HERE = TESTS / "fixtures" / "brevitas_bnn_pynq"
# name: (image side, hidden neurons)
MODELS = {"tfc_1w1a": (28, 64), "tfc_1w2a": (28, 64), "tfc_2w2a": (28, 64), "sfc_1w2a": (8, 32)}
NAMES = tuple(MODELS)


def _inputs(name: str, n: int = 400, seed: int = 5) -> np.ndarray:
    """The fixture's images, then more of the same kind."""
    side = MODELS[name][0]
    rng = np.random.default_rng(seed)
    more = rng.random((n, 1, side, side))
    mask = rng.random(more.shape) < 0.3
    more[mask] = rng.choice(np.array([0.0, 0.25, 0.5, 0.75, 1.0]), int(mask.sum()))
    given = np.load(HERE / ("inputs.npy" if side == 28 else "inputs_small.npy"))
    return np.concatenate([given, more.astype(np.float32)])


def _hidden(name: str, tmp_path) -> onnx.ModelProto:
    """The model cut after its last activation quantizer (what the last layer reads)."""
    model = onnx.load(HERE / f"{name}.onnx")
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    last = gemms[-1].input[0]
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info(last, TensorProto.FLOAT, [1, MODELS[name][1]]))
    model.ir_version = min(model.ir_version, 10)
    return model


@pytest.mark.parametrize("name", NAMES)
def test_hidden_activations_are_bit_exact_with_qonnx(tmp_path, name):
    model = _hidden(name, tmp_path)
    onnx.save(model, tmp_path / "hidden.onnx")
    graph = compile_file(tmp_path / "hidden.onnx", BuildConfig(requantize=True))
    # every batch-norm before an activation quantizer became thresholds, equal to the float model
    assert not any(isinstance(n.op, Requant) for n in graph.nodes)
    layers = sum(n.op_type == "Gemm" for n in model.graph.node) - 1     # the last is cut off
    assert sum(isinstance(n.op, Threshold) for n in graph.nodes) == layers
    x = _inputs(name)
    want = run_reference(model, x)[0].reshape(len(x), MODELS[name][1])
    np.testing.assert_array_equal(emulate.run(graph, x)[0], want)
    np.testing.assert_array_equal(emulate.run_reference(graph, x)[0], want)
    assert deviation(graph, x)["outputs"][0]["max_abs_error"] == 0


@pytest.mark.parametrize("name", NAMES)
def test_outputs_within_the_reported_deviation(name):
    model = onnx.load(HERE / f"{name}.onnx")
    graph = compile_file(HERE / f"{name}.onnx", BuildConfig(requantize=True))
    x = _inputs(name)
    want = run_reference(model, x)[0].reshape(len(x), 10).astype(np.float64)
    torch_out = np.load(HERE / f"outputs_{name}.npy")
    np.testing.assert_allclose(want[: len(torch_out)], torch_out, rtol=0, atol=1e-5)   # qonnx runs it as torch
    (out,) = [q for q in requantizers(graph) if q["fpgaq_output"]]
    step = 2.0 ** -out["output"]["frac"]
    assert out["output"]["width"] == 16
    reference = emulate.run_reference(graph, x)[0]
    # the float model fpgaq reads, rounded to the output type: within half a step of qonnx's
    assert np.max(np.abs(reference - want)) <= step / 2 + 1e-5
    ours = emulate.run(graph, x)[0]
    dev = deviation(graph, x)["outputs"][0]
    assert dev["max_abs_error"] == np.max(np.abs(ours - reference)) <= step
    assert np.mean(ours.argmax(1) == want.argmax(1)) >= 0.99


def test_without_requantize_the_float_batchnorm_is_refused():
    with pytest.raises(ModelError, match=r"--requantize"):
        compile_file(HERE / "tfc_2w2a.onnx", BuildConfig())


def test_thresholds_never_gives_multipliers(tmp_path):
    model = _hidden("tfc_2w2a", tmp_path)
    onnx.save(model, tmp_path / "hidden.onnx")
    graph = compile_file(tmp_path / "hidden.onnx", BuildConfig(requantize=True, thresholds="never"))
    assert sum(isinstance(n.op, Requant) for n in graph.nodes) == 3
    assert not any(isinstance(n.op, Threshold) for n in graph.nodes)


@pytest.mark.parametrize("name", ["tfc_1w1a", "tfc_2w2a"])
def test_csim_of_a_bnn(tmp_path, name):
    csim_exact(HERE / f"{name}.onnx", tmp_path / "p", _inputs(name, 200), name="tfc", requantize=True)
    text = (tmp_path / "p" / "report.md").read_text()
    assert "threshold(s) a channel" in text and "a float tail" in text


def test_rtl_of_a_bnn(tmp_path):
    rtl_exact(HERE / "sfc_1w2a.onnx", tmp_path / "v", _inputs("sfc_1w2a", 100), name="sfc", requantize=True)
