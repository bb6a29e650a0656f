"""fpgaq compress: float models as PyTorch and tf2onnx export them, compressed into QONNX that
builds and C-simulates bit-exactly, within the allowed drop, at a fraction of the uniform
fixed<16,6> design's bit-operations; the float network it reads reproduces the model; bad
input gets a one-line error."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import fpgaq
from fpgaq.cli import main
from fpgaq.compress import compress
from fpgaq.compress.floatnet import read_net
from fpgaq.compress.plan import write_model
from fpgaq.compress.report import pareto
from conftest import csim_exact
from qonnx_reference import run_reference

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits_float"
KERAS = Path(__file__).resolve().parent / "fixtures" / "tf2onnx_float"


def float_run(path, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    i = s.get_inputs()[0]
    shape = [len(x)] + [int(d) for d in i.shape[1:]]
    return s.run(None, {i.name: x.astype(np.float32).reshape(shape)})[0]


def bitops(path) -> int:
    """Non-zero multiplications x weight bits x input bits, read from a QONNX model's Quant
    nodes (not from compress's report): each Gemm / Conv's weight quantizer, and the quantizer
    of the tensor it reads (through MaxPool / Reshape / Flatten)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.transformation.infer_shapes import InferShapes
    m = onnx.load(str(path))
    init = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    made = {o: n for n in m.graph.node for o in n.output}
    shaped = ModelWrapper(onnx.load(str(path))).transform(InferShapes())

    def quant_bits(t: str) -> int:
        n = made[t]
        while n.op_type != "Quant":
            n = made[n.input[0]]
        return int(init[n.input[3]])

    total = 0
    for n in m.graph.node:
        if n.op_type not in ("Gemm", "Conv"):
            continue
        wq = made[n.input[1]]
        nonzero = int(np.count_nonzero(init[wq.input[0]]))
        positions = 1
        if n.op_type == "Conv":
            positions = int(np.prod(shaped.get_tensor_shape(n.output[0])[2:]))
        total += nonzero * positions * int(init[wq.input[3]]) * quant_bits(n.input[0])
    return total


# --- the float network compress reads --------------------------------------------------------

def _model(nodes, inits, in_shape, out="y", opset=13) -> onnx.ModelProto:
    g = helper.make_graph(nodes, "f", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", *in_shape])],
                          [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
                          [numpy_helper.from_array(np.asarray(v, np.float32 if np.asarray(v).dtype.kind == "f"
                                                              else np.int64), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def exporter_forms(rng) -> dict[str, onnx.ModelProto]:
    """Forms real exporters write: Gemm with transB=0 and alpha/beta, MatMul + Add, a
    batch-norm before a dense layer (folded forward), Keras' Mul + Add after a ReLU, a conv
    followed by a per-channel Mul, Identity and Dropout, a final Softmax."""
    r = lambda *s: rng.normal(size=s)                     # noqa: E731
    bn = {"g": rng.uniform(0.5, 1.5, 8), "b": r(8), "m": r(8), "v": rng.uniform(0.5, 2, 8)}
    forms = {
        "gemm_transb0_alpha": _model(
            [helper.make_node("Gemm", ["x", "W", "B"], ["h"], alpha=0.5, beta=2.0, transB=0),
             helper.make_node("Relu", ["h"], ["r"]), helper.make_node("Gemm", ["r", "W2", "B2"], ["y"], transB=1)],
            {"W": r(6, 8), "B": r(8), "W2": r(3, 8), "B2": r(3)}, [6]),
        "matmul_add_identity_dropout": _model(
            [helper.make_node("Identity", ["W"], ["Wi"]), helper.make_node("MatMul", ["x", "Wi"], ["h"]),
             helper.make_node("Add", ["h", "B"], ["hb"]), helper.make_node("Dropout", ["hb"], ["d"]),
             helper.make_node("Relu", ["d"], ["r"]), helper.make_node("MatMul", ["r", "W2"], ["m"]),
             helper.make_node("Add", ["B2", "m"], ["y"])],
            {"W": r(6, 8), "B": r(8), "W2": r(8, 3), "B2": r(3)}, [6]),
        "bn_before_dense_softmax": _model(
            [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("BatchNormalization", ["r", "g", "b", "m", "v"], ["n"], epsilon=1e-3),
             helper.make_node("Gemm", ["n", "W2", "B2"], ["z"], transB=1),
             helper.make_node("Softmax", ["z"], ["y"], axis=-1)],
            {"W": r(8, 6), "B": r(8), **bn, "W2": r(3, 8), "B2": r(3)}, [6]),
        "keras_mul_add_after_relu": _model(
            [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["hb"]),
             helper.make_node("Relu", ["hb"], ["r"]), helper.make_node("Mul", ["r", "s"], ["rs"]),
             helper.make_node("Add", ["rs", "t"], ["n"]), helper.make_node("MatMul", ["n", "W2"], ["m"]),
             helper.make_node("Add", ["m", "B2"], ["y"])],
            {"W": r(6, 8), "B": r(8), "s": rng.uniform(0.5, 2, 8), "t": r(8), "W2": r(8, 3), "B2": r(3)}, [6]),
        "conv_channel_mul_pool_flatten": _model(
            [helper.make_node("Conv", ["x", "K", "KB"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["cs"]), helper.make_node("Relu", ["cs"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("Gemm", ["f", "W2", "B2"], ["y"], transB=1)],
            {"K": r(4, 2, 3, 3), "KB": r(4), "s": rng.uniform(0.5, 2, (1, 4, 1, 1)), "W2": r(3, 16), "B2": r(3)},
            [2, 4, 4]),
        "leaky_relu_and_relu6_clip": _model(
            [helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1),
             helper.make_node("LeakyRelu", ["h"], ["r"], alpha=0.125),
             helper.make_node("Gemm", ["r", "W2", "B2"], ["h2"], transB=1),
             helper.make_node("Clip", ["h2", "lo", "hi"], ["c"]),
             helper.make_node("Gemm", ["c", "W3", "B3"], ["y"], transB=1)],
            {"W": r(8, 6), "B": r(8), "W2": r(5, 8), "B2": r(5), "lo": np.float32(0), "hi": np.float32(6),
             "W3": r(3, 5), "B3": r(3)}, [6]),
        "residual_add_global_average": _model(
            [helper.make_node("Conv", ["x", "K", "KB"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Conv", ["r", "K2", "KB2"], ["c2"], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c2", "r"], ["a"]), helper.make_node("Relu", ["a"], ["ra"]),
             helper.make_node("GlobalAveragePool", ["ra"], ["g"]), helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "W2", "B2"], ["y"], transB=1)],
            {"K": r(4, 2, 3, 3), "KB": r(4), "K2": r(4, 4, 3, 3), "KB2": r(4), "W2": r(3, 4), "B2": r(3)}, [2, 5, 5]),
    }
    return forms


@pytest.mark.parametrize("form", sorted(exporter_forms(np.random.default_rng(0))))
def test_the_float_network_reproduces_each_exporter_form(form):
    """Folding batch-norms, Mul/Add and biases, and dropping the Softmax, keep the model's
    function: the network written back as float ONNX gives the same outputs."""
    model = exporter_forms(np.random.default_rng(0))[form]
    net = read_net(model)
    assert all(la.kind != "affine" for la in net.layers)
    x = np.random.default_rng(1).normal(size=(50, *net.input_shape))
    want = float_run_model(model, x)
    got = float_run_model(write_model(net), x)
    if net.dropped_softmax:
        got = np.exp(got - got.max(1, keepdims=True))
        got /= got.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def float_run_model(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: x.astype(np.float32)})[0]


def test_compress_output_equals_qonnx_execution_and_is_deterministic(tmp_path, monkeypatch):
    """A small model end to end, twice: byte-identical model and report; qonnx's own execution
    of the output equals fpgaq's emulator exactly (the plan is fixed point)."""
    model = exporter_forms(np.random.default_rng(0))["bn_before_dense_softmax"]
    onnx.save(model, tmp_path / "f.onnx")
    x = np.random.default_rng(2).normal(size=(200, 6))
    np.save(tmp_path / "x.npy", x)
    for k in (1, 2):
        (tmp_path / f"run{k}").mkdir()
        monkeypatch.chdir(tmp_path / f"run{k}")
        assert main(["compress", "../f.onnx", "--calib", "../x.npy", "--prune", "-o", "q.onnx", "--report", "r"]) == 0
    one, two = tmp_path / "run1", tmp_path / "run2"
    assert (one / "q.onnx").read_bytes() == (two / "q.onnx").read_bytes()
    for name in ("compress.json", "compress.md", "compress.svg"):
        assert (one / "r" / name).read_bytes() == (two / "r" / name).read_bytes(), name
    ours = fpgaq.emulate(one / "q.onnx", x)
    (ref,) = run_reference(one / "q.onnx", x)
    np.testing.assert_array_equal(ours, ref.reshape(ours.shape))


@pytest.mark.parametrize("form, shape", [("residual_add_global_average", (2, 5, 5)),
                                         ("leaky_relu_and_relu6_clip", (6,))])
def test_uniform_network_equals_qonnx_execution(tmp_path, form, shape):
    """A residual Add and a global average; a LeakyRelu and a Clip: --uniform writes them in
    QONNX that fpgaq emulates exactly as qonnx executes it."""
    onnx.save(exporter_forms(np.random.default_rng(0))[form], tmp_path / "f.onnx")
    x = np.random.default_rng(2).normal(size=(60, *shape))
    compress(tmp_path / "f.onnx", x, uniform="fixed<12,5>", output=tmp_path / "q.onnx")
    ours = fpgaq.emulate(tmp_path / "q.onnx", x)
    (ref,) = run_reference(tmp_path / "q.onnx", x)
    np.testing.assert_array_equal(ours, ref.reshape(ours.shape))


def test_pareto_marks_match_brute_force():
    rng = np.random.default_rng(3)
    for _ in range(50):
        pts = [(float(m), float(c)) for m, c in rng.integers(0, 6, size=(12, 2))]
        for higher in (True, False):
            sign = 1 if higher else -1
            brute = [not any(sign * q[0] >= sign * p[0] and q[1] <= p[1] and q != p for q in pts) for p in pts]
            assert pareto(pts, higher) == brute


# --- real models -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits_mlp(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("mlp")
    args = ["compress", str(DIGITS / "digits_mlp.onnx"), "--calib", str(DIGITS / "calib_inputs.npy"),
            "--labels", str(DIGITS / "calib_labels.npy"), "--prune", "-o", str(out / "mlp_q.onnx"),
            "--report", str(out / "report")]
    assert main(args) == 0
    assert main(["compress", str(DIGITS / "digits_mlp.onnx"), "--calib", str(DIGITS / "calib_inputs.npy"),
                 "--uniform", "fixed<16,6>", "-o", str(out / "mlp_u.onnx")]) == 0
    return out, json.loads((out / "report" / "compress.json").read_text())


def test_digits_mlp_within_one_point_at_a_tenth_of_the_bitops(digits_mlp):
    """The PyTorch MLP (BatchNormalization, TorchScript export) on test digits compress never
    saw: at most one point below the float model, and at most a tenth of the uniform
    fixed<16,6> model's bit-operations, counted from the two QONNX files."""
    out, data = digits_mlp
    x, y = np.load(DIGITS / "test_inputs.npy"), np.load(DIGITS / "test_labels.npy")
    float_acc = float(np.mean(float_run(DIGITS / "digits_mlp.onnx", x).argmax(1) == y))
    acc = float(np.mean(fpgaq.emulate(out / "mlp_q.onnx", x).argmax(1) == y))
    assert acc >= float_acc - 0.01, (acc, float_acc)
    assert data["chosen"]["drop_held_out"] <= 0.01
    ours, uniform = bitops(out / "mlp_q.onnx"), bitops(out / "mlp_u.onnx")
    assert ours <= uniform / 10, (ours, uniform)
    assert ours == data["chosen"]["bitops"] and uniform == data["uniform"]["bitops"]
    assert any(la["sparsity"] > 0 for la in data["layers"])


def test_digits_mlp_report(digits_mlp):
    out, data = digits_mlp
    for la in data["layers"]:
        assert {"weight_bits", "activation_bits", "sparsity", "sensitivity", "before", "after"} <= set(la)
        assert {"lut", "dsp", "latency_cycles"} <= set(la["after"])
        assert la["sensitivity"]["weights_4bit"] is not None
    assert data["metric"]["kind"] == "accuracy" and data["data"] == {"tune": 400, "held_out": 100, "seed": 0}
    assert sum(p["chosen"] for p in data["explored"]) == 1
    svg = ET.parse(out / "report" / "compress.svg").getroot()
    text = " ".join(t.text or "" for t in svg.iter("{http://www.w3.org/2000/svg}text"))
    assert "Pareto front" in text and "chosen" in text
    md = (out / "report" / "compress.md").read_text()
    assert "| uniform fixed<16,6> |" in md and "| chosen |" in md


def test_digits_mlp_compressed_and_uniform_c_simulate_bit_exactly(digits_mlp, tmp_path):
    out, _ = digits_mlp
    x = np.load(DIGITS / "test_inputs.npy")
    csim_exact(out / "mlp_q.onnx", tmp_path / "q_hls", x)
    csim_exact(out / "mlp_u.onnx", tmp_path / "u_hls", x[:50])


def test_tf2onnx_keras_model_without_labels_agrees(tmp_path, capsys):
    """Keras + tf2onnx (MatMul + Add, a batch-norm as Mul + Add after a ReLU, Softmax), no
    labels: argmax agreement with Keras' own outputs at least 97% on unseen inputs; the
    result builds and C-simulates bit-exactly; --json prints only JSON."""
    q = tmp_path / "keras_q.onnx"
    assert main(["compress", str(KERAS / "keras_digits.onnx"), "--calib", str(KERAS / "calib_inputs.npy"),
                 "-o", str(q), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"]["kind"] == "agreement" and data["softmax_dropped"]
    x, keras = np.load(KERAS / "test_inputs.npy"), np.load(KERAS / "test_outputs.npy")
    agree = float(np.mean(fpgaq.emulate(q, x).argmax(1) == keras.argmax(1)))
    assert agree >= 0.97, agree
    csim_exact(q, tmp_path / "hls", x)


def test_tf2onnx_keras_cnn_channels_last_with_computed_flatten(tmp_path):
    """Keras' channels-last CNN through tf2onnx: a Reshape to NCHW at the input, a Transpose back
    and a Flatten whose shape is computed (Shape, Gather, Slice, Concat, Cast). Agreement with
    Keras at least 97%; builds and C-simulates bit-exactly."""
    q = tmp_path / "kcnn_q.onnx"
    data = compress(KERAS / "keras_cnn.onnx", np.load(KERAS / "calib_inputs.npy"), output=q)
    assert data["metric"]["kind"] == "agreement"
    x, keras = np.load(KERAS / "test_inputs.npy"), np.load(KERAS / "test_outputs_cnn.npy")
    agree = float(np.mean(fpgaq.emulate(q, x).argmax(1) == keras.argmax(1)))
    assert agree >= 0.97, agree
    csim_exact(q, tmp_path / "hls", x[:100])


def test_digits_cnn_compresses_and_c_simulates_bit_exactly(tmp_path):
    """The dynamo-exported CNN (conv, ReLU, max pool, reshape, dense), flat calibration rows."""
    q = tmp_path / "cnn_q.onnx"
    data = compress(DIGITS / "digits_cnn.onnx", np.load(DIGITS / "calib_inputs.npy"),
                    labels=np.load(DIGITS / "calib_labels.npy"), output=q)
    assert data["chosen"]["drop_held_out"] <= 0.01
    assert data["chosen"]["bitops"] <= data["uniform"]["bitops"] / 10
    assert bitops(q) == data["chosen"]["bitops"]
    x, y = np.load(DIGITS / "test_inputs.npy"), np.load(DIGITS / "test_labels.npy")
    assert float(np.mean(fpgaq.emulate(q, x).argmax(1) == y)) >= 0.95
    csim_exact(q, tmp_path / "hls", x[:100])


# --- bad input -----------------------------------------------------------------------------

@pytest.fixture
def small(tmp_path) -> Path:
    onnx.save(exporter_forms(np.random.default_rng(0))["gemm_transb0_alpha"], tmp_path / "f.onnx")
    return tmp_path


def _error(capsys, args) -> str:
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("case, data, needle", [
    ("shape", np.zeros((40, 5)), "calibration data of shape (40, 5), but the model's input 'x' takes (N, 6)"),
    ("nan", np.where(np.arange(240).reshape(40, 6) == 13, np.nan, 1.0), "NaN or infinity in 1 input(s) (the "
     "first is row 2)"),
    ("few", np.zeros((3, 6)), "3 calibration inputs; compress needs at least 10"),
])
def test_bad_calibration_data(small, capsys, case, data, needle):
    np.save(small / "x.npy", data)
    err = _error(capsys, ["compress", str(small / "f.onnx"), "--calib", str(small / "x.npy"), "-o",
                          str(small / "q.onnx")])
    assert needle in err


@pytest.mark.parametrize("labels, needle", [
    (np.zeros(39, dtype=int), "labels of shape (39,) do not match 40 calibration inputs"),
    (np.full(40, 7), "labels run from 7 to 7, but the model has 3 outputs"),
    (np.full(40, 0.5), "labels must be integer classes"),
])
def test_bad_labels(small, capsys, labels, needle):
    np.save(small / "x.npy", np.random.default_rng(0).normal(size=(40, 6)))
    np.save(small / "y.npy", labels)
    err = _error(capsys, ["compress", str(small / "f.onnx"), "--calib", str(small / "x.npy"), "--labels",
                          str(small / "y.npy"), "-o", str(small / "q.onnx")])
    assert needle in err


def test_quantized_model_points_to_build(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((20, 16)))
    err = _error(capsys, ["compress", str(ROOT / "examples" / "jet_tagger" / "jet_tagger.onnx"), "--calib",
                          str(tmp_path / "x.npy"), "-o", str(tmp_path / "q.onnx")])
    assert "already quantized" in err and "fpgaq build" in err


def test_unsupported_ops_are_named(tmp_path, capsys):
    m = _model([helper.make_node("Gemm", ["x", "W", "B"], ["h"], transB=1, name="dense1"),
                helper.make_node("Tanh", ["h"], ["t"], name="act1"),
                helper.make_node("Gemm", ["t", "W2", "B2"], ["s"], transB=1, name="dense2"),
                helper.make_node("Sigmoid", ["s"], ["y"], name="act2")],
               {"W": np.ones((4, 6)), "B": np.ones(4), "W2": np.ones((3, 4)), "B2": np.ones(3)}, [6])
    onnx.save(m, tmp_path / "f.onnx")
    np.save(tmp_path / "x.npy", np.zeros((20, 6)))
    err = _error(capsys, ["compress", str(tmp_path / "f.onnx"), "--calib", str(tmp_path / "x.npy"), "-o",
                          str(tmp_path / "q.onnx")])
    assert "Tanh 'act1'" in err and "Sigmoid 'act2'" in err and "compress takes Gemm" in err


def test_latency_budget(small, capsys):
    """--max-latency-ns: a budget the start design already meets holds for the chosen one; one no
    design can meet is said on stderr (and in the report), not hidden."""
    x = np.random.default_rng(0).normal(size=(100, 6))
    np.save(small / "x.npy", x)
    free = compress(small / "f.onnx", x, output=small / "a.onnx")
    start_ns = max(p["latency_ns"] for p in free["explored"] if p["phase"] == "start")
    within = compress(small / "f.onnx", x, output=small / "b.onnx", max_latency_ns=start_ns)
    assert within["latency_met"] and within["chosen"]["latency_ns"] <= start_ns
    assert main(["compress", str(small / "f.onnx"), "--calib", str(small / "x.npy"), "--max-latency-ns", "0.1",
                 "-o", str(small / "c.onnx")]) == 0
    assert "warning: no design met --max-latency-ns 0.1" in capsys.readouterr().err


def test_missing_onnxruntime_names_the_compress_extra(small, monkeypatch, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "onnxruntime", None)       # `import onnxruntime` fails
    np.save(small / "x.npy", np.zeros((20, 6)))
    err = _error(capsys, ["compress", str(small / "f.onnx"), "--calib", str(small / "x.npy"), "-o",
                          str(small / "q.onnx")])
    assert "pip install 'fpgaq[compress]'" in err


def test_held_out_drop_over_the_limit_is_said(small, monkeypatch, capsys):
    """The held-out part only reports: with a search told to ignore its limit (a huge negative
    margin), the design it picks is worse on the held-out inputs, and the command says so."""
    import fpgaq.compress.search as search
    monkeypatch.setattr(search, "Z", -1e9)
    np.save(small / "x.npy", np.random.default_rng(0).normal(size=(200, 6)))
    assert main(["compress", str(small / "f.onnx"), "--calib", str(small / "x.npy"), "-o", str(small / "q.onnx"),
                 "--report", str(small / "r")]) == 0
    err = capsys.readouterr().err
    assert "warning: on the held-out inputs the drop is" in err
    data = json.loads((small / "r" / "compress.json").read_text())
    assert not data["held_out_met"] and data["chosen"]["drop_held_out"] > 0.01
    assert "over the limit" in (small / "r" / "compress.md").read_text()


def test_missing_matplotlib_names_the_compress_extra(monkeypatch):
    import sys
    from fpgaq.compress.report import chart_svg
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(fpgaq.FpgaqError, match=re.escape("pip install 'fpgaq[compress]'")):
        chart_svg({})
