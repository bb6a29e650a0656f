"""Activations and Softmax, on models the real exporters wrote: a Brevitas MLP with
QuantSigmoid, QuantTanh and a Softmax, one with torch's LeakyReLU, PReLU and Hardsigmoid
(tests/fixtures/brevitas_tables), and hls4ml's QKeras
jet tagger converted by qonnx's own Keras converter, Softmax at the output
(tests/fixtures/qkeras_jet_tagger).

- A table into the quantizer that follows it is exact: hidden activations equal qonnx's
  execution bit for bit (thresholds where the input is wider than a table).
- Softmax's exp and 1/sum tables: within 0.01 of the float softmax, argmax agreement >= 99%,
  and within the deviation fpgaq reports; `argmax` gives the logits' argmax exactly, `skip`
  the logits exactly.
- LeakyRelu and PRelu are exact (every float slope is a dyadic number).
- The emulator, the C-simulation and the RTL simulation agree bit for bit."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from conftest import TESTS, csim_exact
from fpgaq import emulate
from fpgaq.compile import compile_file, compile_model
from fpgaq.config import BuildConfig
from fpgaq.deviation import deviation
from fpgaq.ir.fixed import FixedType, Rounding
from fpgaq.ir.interval import Interval
from fpgaq.ir.ops import Activation, Argmax, LeakyRelu, Lut, Quant, SoftmaxTable, Threshold
from fpgaq.ir.tensor import Tensor
from qonnx_reference import run_reference
from verilog_helpers import rtl_exact

BREVITAS = TESTS / "fixtures" / "brevitas_tables"
QKERAS = TESTS / "fixtures" / "qkeras_jet_tagger"


def _cut(model: onnx.ModelProto, tensor: str, width: int) -> onnx.ModelProto:
    """The model with `tensor` as its only output."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    del m.graph.output[:]
    m.graph.output.append(helper.make_tensor_value_info(tensor, TensorProto.FLOAT, [1, width]))
    m.ir_version = min(m.ir_version, 10)
    return m


def _softmax_input(model: onnx.ModelProto) -> str:
    (node,) = [n for n in model.graph.node if n.op_type == "Softmax"]
    return node.input[0]


def _brevitas_inputs(n: int = 2000) -> np.ndarray:
    more = (np.random.default_rng(3).normal(size=(n, 16)) * 2).astype(np.float32)
    return np.concatenate([np.load(BREVITAS / "inputs.npy"), more])


def _qkeras_inputs() -> np.ndarray:
    """The fixture's inputs on the grid of --input-type fixed<16,6> (so it quantizes nothing)."""
    return (np.round(np.load(QKERAS / "inputs.npy") * 1024) / 1024).astype(np.float32)


QKERAS_CONFIG = BuildConfig(input_type="fixed<16,6>")


def test_tables_into_quantizers_are_exact_with_qonnx(tmp_path):
    model = onnx.load(BREVITAS / "mlp_tables.onnx")
    gemms = [n for n in model.graph.node if n.op_type == "Gemm"]
    hidden = _cut(model, gemms[-1].input[0], 12)        # after sigmoid, tanh and hard-tanh
    onnx.save(hidden, tmp_path / "hidden.onnx")
    graph = compile_file(tmp_path / "hidden.onnx", BuildConfig())
    # the accumulators are wider than a table: the Sigmoid and the Tanh became thresholds
    assert sum(isinstance(n.op, Threshold) for n in graph.nodes) == 2
    x = _brevitas_inputs()
    want = run_reference(hidden, x)[0].reshape(len(x), 12)
    np.testing.assert_array_equal(emulate.run(graph, x)[0], want)


def test_softmax_tables_against_the_float_softmax():
    model = onnx.load(BREVITAS / "mlp_tables.onnx")
    graph = compile_file(BREVITAS / "mlp_tables.onnx", BuildConfig())
    assert isinstance(graph[graph.outputs[0]].op, SoftmaxTable)
    x = _brevitas_inputs()
    want = run_reference(model, x)[0].reshape(len(x), 5)
    torch_out = np.load(BREVITAS / "outputs.npy")
    np.testing.assert_allclose(want[: len(torch_out)], torch_out, rtol=0, atol=1e-6)
    ours = emulate.run(graph, x)[0]
    error = np.max(np.abs(ours - want))
    assert error <= 0.01
    assert np.mean(ours.argmax(1) == want.argmax(1)) >= 0.99
    # the report's deviation is this error (the float model up to float32)
    assert abs(deviation(graph, x)["outputs"][0]["max_abs_error"] - error) < 1e-6


def test_qkeras_jet_tagger_softmax_modes():
    model = onnx.load(QKERAS / "jet_tagger_qkeras.onnx")
    model.ir_version = 10
    x = _qkeras_inputs()
    probabilities = run_reference(model, x)[0].reshape(len(x), 5)
    logits = run_reference(_cut(model, _softmax_input(model), 5), x)[0].reshape(len(x), 5)
    # skip: the logits, exactly
    graph = compile_model(model, "jet", BuildConfig(input_type="fixed<16,6>", softmax="skip"))
    np.testing.assert_array_equal(emulate.run(graph, x)[0], logits)
    assert graph.skipped == ("Softmax_0",)
    # argmax: the index of the first largest logit, exactly
    graph = compile_model(model, "jet", BuildConfig(input_type="fixed<16,6>", softmax="argmax"))
    assert isinstance(graph[graph.outputs[0]].op, Argmax)
    np.testing.assert_array_equal(emulate.run(graph, x)[0][:, 0], logits.argmax(1))
    # table: within 0.01 of the float softmax
    graph = compile_model(model, "jet", QKERAS_CONFIG)
    ours = emulate.run(graph, x)[0]
    assert np.max(np.abs(ours - probabilities)) <= 0.01
    assert np.mean(ours.argmax(1) == probabilities.argmax(1)) >= 0.99


def test_a_table_with_an_entry_a_code_is_the_model():
    x = Tensor((6,), FixedType(True, 8, 4), Interval(-128, 127))
    quant = Quant(FixedType(False, 6, 6), Rounding.ROUND, 0, 63)
    for fn in ("sigmoid", "tanh", "hardsigmoid"):
        model = Activation(fn, 0.2, 0.5)
        lut = Lut.lower(model, x, quant, frac=15, bits=10)
        assert lut.exact() and not lut.approximates()
        codes = np.arange(-128, 128, dtype=np.float64)
        real = Tensor((len(codes),))
        want = quant.emulate([model.of(codes / 16)], _args(real))
        np.testing.assert_array_equal(lut.emulate([codes], _args(real))[: len(codes)], want)


def test_a_table_wider_than_its_entries_is_binned_and_reported():
    x = Tensor((3,), FixedType(True, 16, 10), Interval(-30000, 30000))
    lut = Lut.lower(Activation("tanh"), x, None, frac=15, bits=10)
    assert lut.shift > 0 and lut.approximates() and len(lut.table) <= 1024
    codes = np.arange(-30000, 30001, 7, dtype=np.float64)
    real = Tensor((len(codes),))
    got = lut.emulate([codes], _args(real)) / 2 ** 15
    # tanh' <= 1: off by at most a bin's width in value, plus the output's rounding
    assert np.max(np.abs(got - np.tanh(codes / 1024))) <= 2 ** lut.shift / 1024 + 2 ** -16


def _args(t: Tensor):
    from fpgaq.ir.ops import Args
    return Args((t,), t, True, (False,))


@pytest.mark.parametrize("softmax", ["table", "argmax"])
def test_csim_of_tables(tmp_path, softmax):
    csim_exact(BREVITAS / "mlp_tables.onnx", tmp_path / "p", _brevitas_inputs(300), name="tables", softmax=softmax)
    said = {"table": "exp and 1/sum tables", "argmax": "the index of the largest logit"}[softmax]
    assert said in (tmp_path / "p" / "report.md").read_text()


def test_rtl_of_tables(tmp_path):
    rtl_exact(BREVITAS / "mlp_tables.onnx", tmp_path / "v", _brevitas_inputs(150), name="tables")


def test_rtl_of_argmax(tmp_path):
    model = onnx.load(QKERAS / "jet_tagger_qkeras.onnx")
    model.ir_version = 10
    onnx.save(model, tmp_path / "jet.onnx")
    rtl_exact(tmp_path / "jet.onnx", tmp_path / "v", _qkeras_inputs()[:100], name="jet", input_type="fixed<16,6>",
              softmax="argmax")


def _float32_ties(graph, x: np.ndarray) -> np.ndarray:
    """Rows where a LeakyRelu's product, as float32 computes it, lands exactly on a rounding tie
    of the quantizer after it while the exact product does not: there ONNX rounds a value that
    real arithmetic does not have."""
    codes = emulate.run_codes(graph, x)
    rows = np.zeros(len(x), dtype=bool)
    for n in graph.nodes:
        if not isinstance(n.op, LeakyRelu):
            continue
        (q,) = graph.consumers(n.name)
        src = graph[n.inputs[0]]
        v = codes[src.name].astype(np.float64) * 2.0 ** -src.type.frac
        slope = n.op.slopes(n.size).astype(np.float64) * 2.0 ** -n.op.shift
        p32 = np.where(v >= 0, v, (v.astype(np.float32) * slope.astype(np.float32)).astype(np.float64))
        t32, exact = p32 * 2.0 ** q.type.frac, np.where(v >= 0, v, v * slope) * 2.0 ** q.type.frac
        rows |= ((t32 - np.floor(t32) == 0.5) & (exact != t32)).any(axis=1)
    return rows


def test_leaky_relu_prelu_and_hard_sigmoid_are_exact_with_qonnx():
    model = onnx.load(BREVITAS / "mlp_leaky.onnx")
    graph = compile_file(BREVITAS / "mlp_leaky.onnx", BuildConfig())
    x = _brevitas_inputs()
    want = run_reference(model, x)[0].reshape(len(x), 5)
    torch_out = np.load(BREVITAS / "outputs_leaky.npy")
    np.testing.assert_allclose(want[: len(torch_out)], torch_out, rtol=0, atol=1e-6)
    # equal, except on rows where float32 rounds a product onto a tie (real arithmetic: exact)
    differ = (emulate.run(graph, x)[0] != want).any(axis=1)
    ties = _float32_ties(graph, x)
    assert not np.any(differ & ~ties), np.nonzero(differ & ~ties)
    assert differ.sum() <= 3


def test_csim_and_rtl_of_leaky_relu(tmp_path):
    x = _brevitas_inputs(300)
    csim_exact(BREVITAS / "mlp_leaky.onnx", tmp_path / "p", x, name="leaky")
    rtl_exact(BREVITAS / "mlp_leaky.onnx", tmp_path / "v", x[:150], name="leaky")
