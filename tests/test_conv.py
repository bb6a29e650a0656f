"""Convolutional networks (io_parallel: each Conv unrolled into the dense layer of its matrix),
on Brevitas-exported pruned CNNs (tests/fixtures/brevitas_cnn: 1-D with padding, stride and
dilation; 2-D with a depthwise layer, asymmetric padding and a 1x1; average, global-average
and max pools; a batch-norm after a conv; a residual Add; concatenated branches; a
depthwise-separable block with whole channels pruned, in QONNX and QCDQ) and on
generated Conv, pool and Pad nodes over ONNX's attributes (auto_pad, strides, dilations,
groups, 1-D to 3-D): the emulator equals qonnx's execution exactly (or within the reported
deviation under --requantize), the C-simulation and the RTL simulation equal the emulator.
Zero-weight elimination across conv layers: a dead channel leaves no accumulator and no read."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import TESTS, csim_exact
from fpgaq import emulate
from fpgaq.compile import compile_file, compile_model
from fpgaq.config import BuildConfig
from fpgaq.errors import ModelError
from fpgaq.frontend.importer import import_model
from fpgaq.ir.ops import Conv, Dense, DivQuant, Reshape
from fpgaq.passes.pipeline import pipeline, run_pipeline
from fpgaq.report import report_data
from qonnx_reference import run_onnxruntime, run_reference
from verilog_helpers import rtl_exact

CNN = TESTS / "fixtures" / "brevitas_cnn"
QONNX = "qonnx.custom_op.general"


@pytest.mark.parametrize("name", ["conv1d", "conv2d", "maxpool2d", "residual", "branches", "dwsep", "pool1d",
                                  "cnn2d"])
def test_brevitas_cnn_equals_qonnx(name):
    model = onnx.load(CNN / f"{name}.onnx")
    graph = compile_file(CNN / f"{name}.onnx", BuildConfig())
    assert not any(isinstance(n.op, Conv) for n in graph.nodes)
    x = np.load(CNN / f"inputs_{name}.npy")
    want = run_reference(model, x)[0].reshape(len(x), -1)
    np.testing.assert_array_equal(want, np.load(CNN / f"outputs_{name}.npy"))     # qonnx runs it as PyTorch
    more = (np.random.default_rng(4).normal(size=(300,) + x.shape[1:]) * 3).astype(np.float32)
    both = np.concatenate([x, more])
    np.testing.assert_array_equal(emulate.run(graph, both)[0], run_reference(model, both)[0].reshape(len(both), -1))


@pytest.mark.parametrize("name", ["conv1d", "dwsep", "pool1d", "cnn2d"])
def test_qcdq_cnn_equals_onnxruntime(name):
    model = onnx.load(CNN / f"{name}_qcdq.onnx")
    graph = compile_file(CNN / f"{name}_qcdq.onnx", BuildConfig())
    x = np.load(CNN / f"inputs_{name}.npy")
    want = run_onnxruntime(model, x)[0].reshape(len(x), -1)
    np.testing.assert_array_equal(want, np.load(CNN / f"outputs_{name}.npy"))
    more = np.concatenate([x, (np.random.default_rng(5).normal(size=(300,) + x.shape[1:]) * 3).astype(np.float32)])
    np.testing.assert_array_equal(emulate.run(graph, more)[0], run_onnxruntime(model, more)[0].reshape(len(more), -1))


@pytest.mark.parametrize("name", ["dwsep", "dwsep_qcdq"])
def test_csim_and_rtl_of_a_depthwise_separable_block(tmp_path, name):
    """Depthwise 3x3 (groups = channels) then pointwise 1x1, pruned (whole channels too), as
    QONNX and as QCDQ: emulator = C-sim = RTL."""
    x = np.load(CNN / "inputs_dwsep.npy")
    csim_exact(CNN / f"{name}.onnx", tmp_path / "p", x, name="dws")
    rtl_exact(CNN / f"{name}.onnx", tmp_path / "v", x[:32], name="dws")


@pytest.mark.parametrize("name", ["pool1d", "cnn2d_qcdq"])
def test_csim_and_rtl_of_pooled_networks(tmp_path, name):
    """A 1-D conv net with max and average pooling (QONNX), and a 2-D conv + max-pool +
    global-average-pool net (QCDQ): emulator = C-sim = RTL (the 2-D one's RTL streams, in
    test_verilog_stream: unrolled, its 400 positions make Icarus slow)."""
    x = np.load(CNN / f"inputs_{name.removesuffix('_qcdq')}.npy")
    csim_exact(CNN / f"{name}.onnx", tmp_path / "p", x, name="pooled")
    if name == "pool1d":
        rtl_exact(CNN / f"{name}.onnx", tmp_path / "v", x[:24], name="pooled")


def _without_zero_weights(model: onnx.ModelProto):
    """(the pipeline, the pipeline without zero-weight elimination) on `model`."""
    graph = import_model(model)
    return run_pipeline(graph), run_pipeline(graph, [p for p in pipeline() if p.name != "eliminate_zero_weights"])


def test_dead_channels_vanish_across_conv_layers():
    """dwsep: the depthwise channel 1 has no weights (a constant: its bias through the ReLU
    quantizer, folded into the pointwise bias), the pointwise reads nothing of channel 3, and
    the pointwise channel 2 has no weights (folded into the dense layer's bias): none has an
    accumulator, none is read, and the outputs do not change."""
    model = onnx.load(CNN / "dwsep.onnx")
    after, before = _without_zero_weights(model)
    dw, pw, fc = (n.op for n in after.nodes if isinstance(n.op, Dense))
    dw0, pw0, fc0 = (n.op for n in before.nodes if isinstance(n.op, Dense))
    assert dw0.weight.shape == (144, 144) and pw0.weight.shape == (144, 144) and fc0.weight.shape == (5, 144)
    assert dw.weight.shape[0] <= 2 * 36 and pw.weight.shape[1] == dw.weight.shape[0]    # channels 1, 3 gone
    assert pw.weight.shape[0] <= 3 * 36 and fc.weight.shape[1] == pw.weight.shape[0]    # channel 2 gone
    for d in (dw, pw):
        assert np.all(np.any(d.weight != 0, axis=1)), "a constant accumulator survived"
    for d in (pw, fc):
        assert np.all(np.any(d.weight != 0, axis=0)), "an input no weight reads survived"
    old, new = (report_data(g, BuildConfig())["layers"] for g in (before, after))
    for a, b in zip(old[:2], new[:2]):      # a convolution counts its own weights and taps: the model's
        assert (b["weights"], b["nonzero"]) == (a["weights"], a["nonzero"])
    assert new[2]["nonzero"] < old[2]["nonzero"]
    assert all(b["multipliers"] < a["multipliers"] for a, b in zip(old, new))
    assert sum(b["accumulator_bits"] for b in new) < sum(a["accumulator_bits"] for a in old)
    x = np.load(CNN / "inputs_dwsep.npy")
    more = np.concatenate([x, (np.random.default_rng(7).normal(size=(500,) + x.shape[1:]) * 3).astype(np.float32)])
    got = emulate.run(after, more)[0]
    np.testing.assert_array_equal(got, emulate.run(before, more)[0])
    np.testing.assert_array_equal(got[:len(x)], run_reference(model, x)[0].reshape(len(x), -1))


def _two_convs(rng: np.random.Generator) -> onnx.ModelProto:
    """Quant -> Conv 3x3 (4 -> 4, no padding; output channel 1 all zero) -> ReLU -> Quant ->
    Conv 1x1 (4 -> 3; reading nothing of channel 3) -> Quant -> output (3, 4, 4)."""
    w1 = np.round(rng.normal(size=(4, 4, 3, 3)) * 8) / 16
    w1[1] = 0
    w2 = np.round(rng.normal(size=(3, 4, 1, 1)) * 8) / 16
    w2[w2 == 0] = 0.0625                                 # every other weight non-zero
    w2[:, 3] = 0
    arrays = {"w1": w1, "w2": w2, "b1": np.array([0.25, 0.75, -0.5, 0.125]), "b2": np.array([0.5, -0.25, 0.0]),
              "s_in": 2.0 ** -4, "s_w": 2.0 ** -4, "s_a": 2.0 ** -3}
    inits = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in arrays.items()]
    nodes = [_quant("x", "s_in", "xq"), _quant("w1", "s_w", "w1q", narrow=1), _quant("w2", "s_w", "w2q", narrow=1),
             helper.make_node("Conv", ["xq", "w1q", "b1"], ["c1"]), helper.make_node("Relu", ["c1"], ["r1"]),
             _quant("r1", "s_a", "a1"), helper.make_node("Conv", ["a1", "w2q", "b2"], ["c2"]),
             _quant("c2", "s_a", "y")]
    return _model((4, 6, 6), nodes, inits)


def test_whole_dead_channels_keep_the_conv_shape():
    """Where only whole channels go, the tensors between the layers keep their layout with fewer
    channels, (C - k, H, W): conv 1's accumulators for channel 1 (constant) and channel 3
    (unread) are gone, and conv 2 reads 2 channels."""
    model = _two_convs(np.random.default_rng(8))
    after, before = _without_zero_weights(model)
    c1, c2 = (n for n in after.nodes if isinstance(n.op, Dense))
    assert [n.op.weight.shape for n in before.nodes if isinstance(n.op, Dense)] == [(64, 144), (48, 64)]
    assert c1.op.weight.shape == (32, 144) and c2.op.weight.shape == (48, 32)
    assert [n.shape for n in after.nodes if isinstance(n.op, Reshape)] == [(144,), (2, 4, 4), (32,), (3, 4, 4)]
    x = (np.random.default_rng(9).normal(size=(300, 4, 6, 6)) * 3).astype(np.float32)
    got = emulate.run(after, x)[0]
    np.testing.assert_array_equal(got, emulate.run(before, x)[0])
    np.testing.assert_array_equal(got.reshape(len(x), 3, 4, 4), run_reference(model, x)[0])


def test_zero_taps_and_padding_cost_nothing():
    # without zero-weight elimination, which also removes outputs the next layer does not read
    _, graph = _without_zero_weights(onnx.load(CNN / "conv2d.onnx"))
    first = next(n.op for n in graph.nodes if isinstance(n.op, Dense))
    # the unrolled matrix holds a product for each non-zero tap at each output position it
    # reaches inside the input: 3x3 taps of 4 channels on 8x8, half of them pruned, the border's
    # taps on the padding gone
    taps = 4 * 9
    assert np.count_nonzero(first.weight) <= taps * 64 * 0.6
    assert first.weight.shape == (4 * 64, 64)


def _quant(src: str, scale: str, dst: str, narrow: int = 0) -> onnx.NodeProto:
    return helper.make_node("Quant", [src, scale, "z", "b8"], [dst], domain=QONNX, signed=1, narrow=narrow,
                            rounding_mode="ROUND")


def _model(x_shape, nodes: list, inits: list, out_shape=None) -> onnx.ModelProto:
    """A QONNX model of `nodes` from input x (batch 1) to output y, with the scalars z = 0 and
    b8 = 8 among its initializers."""
    inits = inits + [numpy_helper.from_array(np.float32(0.0), "z"), numpy_helper.from_array(np.float32(8.0), "b8")]
    graph = helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, *x_shape])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX, 1)])
    model.ir_version = 10
    return model


def _conv_model(x_shape, w_shape, rng, **attrs) -> onnx.ModelProto:
    """Quant(input) -> Conv(weight Quant'd, bias on the accumulator grid) -> output."""
    w = np.round(rng.normal(size=w_shape) * 8) / 16
    w[rng.random(w_shape) < 0.3] = 0
    inits = [numpy_helper.from_array(np.float32(2.0 ** -4), n) for n in ("s_in", "s_w")]
    inits.append(numpy_helper.from_array(w.astype(np.float32), "w"))
    inits.append(numpy_helper.from_array((np.round(rng.normal(size=w_shape[0]) * 64) / 256).astype(np.float32), "b"))
    nodes = [_quant("x", "s_in", "xq"), _quant("w", "s_w", "wq", narrow=1),
             helper.make_node("Conv", ["xq", "wq", "b"], ["y"], **attrs)]
    return _model(x_shape, nodes, inits)


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((3, 11), (4, 3, 3), dict(auto_pad="SAME_UPPER", strides=[2])),
    ((3, 11), (4, 3, 4), dict(auto_pad="SAME_LOWER")),
    ((2, 9, 7), (4, 1, 3, 2), dict(group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 2, 1])),
    ((4, 6, 6), (4, 1, 3, 3), dict(group=4, auto_pad="VALID")),
    ((2, 4, 5, 4), (3, 2, 2, 3, 2), dict(pads=[1, 1, 0, 0, 1, 1])),
])
def test_conv_attributes_equal_qonnx(x_shape, w_shape, attrs):
    rng = np.random.default_rng(sum(x_shape))
    model = _conv_model(x_shape, w_shape, rng, **attrs)
    graph = compile_model(model, "conv", BuildConfig())
    x = (rng.normal(size=(64,) + x_shape) * 3).astype(np.float32)
    want = run_reference(model, x)[0]
    got = emulate.run(graph, x)[0]
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def test_a_conv_too_large_to_unroll_says_so():
    model = _conv_model((8, 64, 64), (8, 8, 3, 3), np.random.default_rng(0), pads=[1, 1, 1, 1])
    with pytest.raises(ModelError, match=r"too large to unroll \(io_parallel\)"):
        compile_model(model, "big", BuildConfig())


def test_csim_and_rtl_of_a_cnn(tmp_path):
    csim_exact(CNN / "conv2d.onnx", tmp_path / "p", np.load(CNN / "inputs_conv2d.npy"), name="cnn")
    rtl_exact(CNN / "conv1d.onnx", tmp_path / "v", np.load(CNN / "inputs_conv1d.npy")[:64], name="cnn")


def test_average_pool_of_nine_divides_exactly(tmp_path):
    """A 3x3 average into a quantizer: the exact integer division with that quantizer's rounding,
    equal to qonnx without --requantize."""
    model = onnx.load(CNN / "pool2d.onnx")
    graph = compile_file(CNN / "pool2d.onnx", BuildConfig())
    assert [n.op.count for n in graph.nodes if isinstance(n.op, DivQuant)] == [9]
    x = np.load(CNN / "inputs_pool2d.npy")
    np.testing.assert_array_equal(run_reference(model, x)[0].reshape(len(x), -1), np.load(CNN / "outputs_pool2d.npy"))
    more = np.concatenate([x, (np.random.default_rng(4).normal(size=(600,) + x.shape[1:]) * 3).astype(np.float32)])
    np.testing.assert_array_equal(emulate.run(graph, more)[0], run_reference(model, more)[0].reshape(len(more), -1))
    csim_exact(CNN / "pool2d.onnx", tmp_path / "p", more, name="pool")


def _average_into(rounding: str, kernel: list[int], x_shape) -> onnx.ModelProto:
    """Quant -> AveragePool(kernel) -> Quant(rounding), a finer output grid than the input's."""
    inits = [numpy_helper.from_array(np.float32(v), n) for v, n in [(2.0 ** -3, "s_in"), (2.0 ** -5, "s_out")]]
    out = helper.make_node("Quant", ["p", "s_out", "z", "b8"], ["y"], domain=QONNX, signed=1, narrow=0,
                           rounding_mode=rounding)
    pool = helper.make_node("AveragePool", ["xq"], ["p"], kernel_shape=kernel, strides=kernel)
    return _model(x_shape, [_quant("x", "s_in", "xq"), pool, out], inits)


@pytest.mark.parametrize("rounding", ["ROUND", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "DOWN", "UP"])
def test_an_average_rounds_as_its_quantizer(rounding):
    model = _average_into(rounding, [3, 2], (2, 6, 4))
    graph = compile_model(model, "avg", BuildConfig())
    x = (np.round(np.random.default_rng(5).normal(size=(400, 2, 6, 4)) * 24) / 8).astype(np.float32)
    want = run_reference(model, x)[0]
    np.testing.assert_array_equal(emulate.run(graph, x)[0].reshape(want.shape), want)


def test_rtl_of_an_exact_average(tmp_path):
    onnx.save(_average_into("ROUND", [3, 3], (2, 6, 6)), tmp_path / "avg.onnx")
    x = (np.round(np.random.default_rng(6).normal(size=(200, 2, 6, 6)) * 24) / 8).astype(np.float32)
    rtl_exact(tmp_path / "avg.onnx", tmp_path / "v", x, name="avg")


def _pool_model(x_shape, node: onnx.NodeProto) -> onnx.ModelProto:
    """Quant(input) -> the pooling node (or Pad) -> Quant -> output."""
    inits = [numpy_helper.from_array(np.float32(v), n) for v, n in [(2.0 ** -4, "s_in"), (2.0 ** -5, "s_out")]]
    return _model(x_shape, [_quant("x", "s_in", "xq"), node, _quant("p", "s_out", "y")], inits)


@pytest.mark.parametrize("x_shape, node", [
    ((3, 8, 8), helper.make_node("AveragePool", ["xq"], ["p"], kernel_shape=[2, 2], strides=[2, 2])),
    ((3, 9), helper.make_node("AveragePool", ["xq"], ["p"], kernel_shape=[4], strides=[1], pads=[1, 2],
                              count_include_pad=1)),
    ((2, 4, 4), helper.make_node("GlobalAveragePool", ["xq"], ["p"])),
    ((2, 5, 6), helper.make_node("Pad", ["xq", "pads"], ["p"], mode="constant")),
    ((2, 7, 7), helper.make_node("MaxPool", ["xq"], ["p"], kernel_shape=[3, 2], strides=[2, 2], pads=[1, 0, 1, 1])),
    ((3, 10), helper.make_node("MaxPool", ["xq"], ["p"], kernel_shape=[3], strides=[2], auto_pad="SAME_UPPER")),
    ((3, 10), helper.make_node("MaxPool", ["xq"], ["p"], kernel_shape=[3], dilations=[2], pads=[2, 1])),
    ((2, 3, 3), helper.make_node("GlobalMaxPool", ["xq"], ["p"])),
])
def test_pooling_and_padding_equal_qonnx(x_shape, node):
    model = _pool_model(x_shape, node)
    if node.op_type == "Pad":
        model.graph.initializer.append(numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 0, 1], np.int64), "pads"))
    graph = compile_model(model, "pool", BuildConfig())
    x = (np.random.default_rng(1).normal(size=(200,) + x_shape) * 3).astype(np.float32)
    want = run_reference(model, x)[0]
    np.testing.assert_array_equal(emulate.run(graph, x)[0].reshape(want.shape), want)


def test_csim_of_max_pools_and_rtl_of_one(tmp_path):
    csim_exact(CNN / "maxpool2d.onnx", tmp_path / "p", np.load(CNN / "inputs_maxpool2d.npy"), name="cnn")
    model = _pool_model((2, 7, 7), helper.make_node("MaxPool", ["xq"], ["p"], kernel_shape=[3, 3], strides=[2, 2],
                                                    pads=[1, 1, 1, 1]))
    onnx.save(model, tmp_path / "pool.onnx")
    x = (np.random.default_rng(2).normal(size=(100, 2, 7, 7)) * 3).astype(np.float32)
    rtl_exact(tmp_path / "pool.onnx", tmp_path / "v", x, name="pool")


def test_batchnorm_after_a_conv_folds_into_it(tmp_path):
    model = onnx.load(CNN / "bn2d.onnx")
    graph = compile_file(CNN / "bn2d.onnx", BuildConfig(requantize=True))
    assert [n.op.kind for n in graph.nodes if n.op.kind in ("batchnorm", "scale", "conv")] == []
    x = np.load(CNN / "inputs_bn2d.npy")
    want = run_reference(model, x)[0].reshape(len(x), -1)
    np.testing.assert_allclose(want, np.load(CNN / "outputs_bn2d.npy"), rtol=0, atol=1e-6)
    np.testing.assert_allclose(emulate.run_reference(graph, x)[0], want, rtol=0, atol=1e-5)
    from fpgaq.deviation import deviation
    got = emulate.run(graph, x)[0]
    assert np.max(np.abs(got - want)) <= deviation(graph, x)["outputs"][0]["max_abs_error"] + 1e-6
    assert np.array_equal(got.argmax(1), want.argmax(1))
    csim_exact(CNN / "bn2d.onnx", tmp_path / "p", x, name="bn", requantize=True)


@pytest.mark.parametrize("name", ["residual", "branches"])
def test_csim_and_rtl_of_residual_and_branches(tmp_path, name):
    x = np.load(CNN / f"inputs_{name}.npy")
    csim_exact(CNN / f"{name}.onnx", tmp_path / "p", x, name=name)
    rtl_exact(CNN / f"{name}.onnx", tmp_path / "v", x[:64], name=name)


def test_a_transpose_between_conv_and_dense_parts(tmp_path):
    """Channels-last before the dense part (as tf2onnx and some PyTorch models write it): a
    Transpose of a run-time tensor is a permutation, exact in both back-ends."""
    rng = np.random.default_rng(3)
    w = (np.round(rng.normal(size=(5, 12)) * 8) / 16).astype(np.float32)
    inits = [numpy_helper.from_array(np.float32(2.0 ** -4), "s"), numpy_helper.from_array(w, "w"),
             numpy_helper.from_array(np.array([1, 12], np.int64), "flat")]
    nodes = [_quant("x", "s", "xq"), helper.make_node("Transpose", ["xq"], ["t"], perm=[0, 2, 1]),
             helper.make_node("Reshape", ["t", "flat"], ["f"]), _quant("w", "s", "wq", narrow=1),
             helper.make_node("Gemm", ["f", "wq"], ["y"], transB=1)]
    model = _model((3, 4), nodes, inits, [1, 5])
    x = (rng.normal(size=(100, 3, 4)) * 3).astype(np.float32)
    compiled = compile_model(model, "t", BuildConfig())
    np.testing.assert_array_equal(emulate.run(compiled, x)[0], run_reference(model, x)[0].reshape(len(x), 5))
    onnx.save(model, tmp_path / "t.onnx")
    csim_exact(tmp_path / "t.onnx", tmp_path / "p", x, name="t")
    rtl_exact(tmp_path / "t.onnx", tmp_path / "v", x, name="t")


def test_reuse_on_a_conv_layer(tmp_path):
    """A reuse factor applies to an unrolled convolution like to any dense layer: fewer
    multipliers, a new input every R cycles, still bit-exact."""
    project = csim_exact(CNN / "conv1d.onnx", tmp_path / "p", np.load(CNN / "inputs_conv1d.npy"), name="cnn",
                         reuse=4)
    first = project.report["layers"][0]
    products = np.count_nonzero(next(n.op for n in compile_file(CNN / "conv1d.onnx", BuildConfig()).nodes
                                     if isinstance(n.op, Dense)).weight)
    assert first["reuse"] == 4 and first["multipliers"] == -(-products // 4)
    # the report counts the convolution's own weights (8 x 4 x 3) and its non-zero taps
    assert first["weights"] == 96 and first["nonzero"] < 96 < products
