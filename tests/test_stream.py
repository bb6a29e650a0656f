"""io_stream (HLS): streams of pixels between DATAFLOW stages, line buffers for convolutions and
pooling. On the Brevitas CNN fixtures (QONNX and QCDQ: 1-D and 2-D convolutions, pooling, a
batch-norm, a residual block, concatenated branches, a depthwise-separable block) the
streaming graph's emulator equals qonnx's / onnxruntime's execution, its C-simulation equals
the emulator bit for bit, and the layers are the kernel's size, not the image's."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import onnx
import pytest

from conftest import TESTS, csim_exact
from fpgaq import emulate
from fpgaq.backends.hls.stream import Layout, Planner
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.errors import ConfigError
from fpgaq.ir.ops import Dense, Windows
from fpgaq.project import build
from modelgen import qonnx_mlp
from qonnx_reference import run_reference

CNN = TESTS / "fixtures" / "brevitas_cnn"
STREAM = BuildConfig(io="io_stream")


def _inputs(name: str) -> np.ndarray:
    x = np.load(CNN / f"inputs_{name.removesuffix('_qcdq')}.npy")
    more = (np.random.default_rng(7).normal(size=(200,) + x.shape[1:]) * 3).astype(np.float32)
    return np.concatenate([x, more])


@pytest.mark.parametrize("name", ["conv1d", "conv2d", "maxpool2d", "pool2d", "residual", "branches", "dwsep",
                                  "pool1d", "cnn2d", "conv1d_qcdq", "dwsep_qcdq", "pool1d_qcdq", "cnn2d_qcdq"])
def test_streaming_graph_equals_the_exporter(name):
    """On the exporter's own outputs (saved by the make script; test_conv checks qonnx and
    onnxruntime reproduce them), and on more inputs equal to the io_parallel graph's, which
    test_conv compares with qonnx / onnxruntime."""
    graph = compile_file(CNN / f"{name}.onnx", STREAM)
    assert any(isinstance(n.op, Windows) for n in graph.nodes), "a convolution streams through a line buffer"
    x = np.load(CNN / f"inputs_{name.removesuffix('_qcdq')}.npy")
    want = np.load(CNN / f"outputs_{name.removesuffix('_qcdq')}.npy")
    np.testing.assert_array_equal(emulate.run(graph, x)[0], want.reshape(len(x), -1))
    more = _inputs(name)
    parallel = compile_file(CNN / f"{name}.onnx", BuildConfig())
    np.testing.assert_array_equal(emulate.run(graph, more)[0], emulate.run(parallel, more)[0])


def test_a_streamed_conv_is_the_size_of_its_kernel():
    """conv2d's first layer: 3x3 over one channel into 4, on 8x8: 9 inputs and 4 outputs, computed
    at 64 positions one after another (io_parallel unrolls 64 x 256)."""
    graph = compile_file(CNN / "conv2d.onnx", STREAM)
    first = next(n for n in graph.nodes if isinstance(n.op, Dense))
    assert first.op.weight.shape == (4, 9) and first.op.serial
    assert Dense.positions(graph[first.inputs[0]].out) == 64


# one of each stage: 2-D windows and a Flatten's frame (conv2d), pooling windows (maxpool2d), a
# clone and a deep FIFO (residual), a channel concat (branches), depthwise and QCDQ (dwsep_qcdq),
# 1-D max and average pools (pool1d), max pool and global average pool in QCDQ (cnn2d_qcdq)
@pytest.mark.parametrize("name", ["conv2d", "maxpool2d", "residual", "branches", "dwsep_qcdq", "pool1d",
                                  "cnn2d_qcdq"])
def test_stream_csim_equals_emulator(tmp_path, name):
    csim_exact(CNN / f"{name}.onnx", tmp_path / name, _inputs(name)[:120], io="io_stream")


def test_stream_csim_with_a_batch_norm_requantised(tmp_path):
    csim_exact(CNN / "bn2d.onnx", tmp_path / "bn", _inputs("bn2d")[:120], io="io_stream", requantize=True)


def test_stream_csim_of_an_mlp_with_reuse(tmp_path):
    """No convolution: a vector is one pixel; each layer a stage, with reuse 3."""
    path = tmp_path / "mlp.onnx"
    onnx.save(qonnx_mlp([16, 8, 4], rng=np.random.default_rng(0)), path)
    x = np.random.default_rng(1).normal(size=(300, 16)).astype(np.float32) * 4
    csim_exact(path, tmp_path / "mlp", x, io="io_stream", reuse=3)


def test_a_residual_join_gets_a_deep_fifo(tmp_path):
    """The skip branch waits for the convolution branch (its line buffer and pipeline): its FIFO
    holds the pixels that arrive meanwhile; the report lists it and counts every FIFO's bits."""
    project = build(CNN / "residual.onnx", tmp_path / "r", STREAM)
    assert project.report is not None
    fifos = project.report["fifos"]
    assert any(f["depth"] > 2 for f in fifos)
    assert all(f["depth"] >= 2 for f in fifos)
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Streams (io_stream)" in md
    top = (tmp_path / "r" / "firmware" / f"{project.config.name}.cpp").read_text()
    assert "#pragma HLS DATAFLOW" in top and "fpgaq::windows<" in top


def test_stream_output_is_deterministic(tmp_path):
    a = build(CNN / "branches.onnx", tmp_path / "a", STREAM)
    b = build(CNN / "branches.onnx", tmp_path / "b", STREAM)
    for f in sorted((a.root / "firmware").iterdir()):
        assert f.read_bytes() == (b.root / "firmware" / f.name).read_bytes(), f.name


def test_layouts_cover_channels_first_and_last():
    cf, cl = Layout(6, 4, False), Layout(6, 4, True)
    assert cf.flat()[2, 3] == 3 * 6 + 2 and cl.flat()[2, 3] == 2 * 4 + 3
    for lay in (cf, cl):
        p, c = lay.where()
        assert np.array_equal(lay.flat()[p, c], np.arange(24))


def test_the_flatten_before_a_dense_head_buffers_one_frame():
    plan = Planner(compile_file(CNN / "conv2d.onnx", STREAM), STREAM).plan()
    regroups = [s for s in plan["stages"] if s["kind"] == "regroup"]
    assert len(regroups) == 1 and regroups[0]["out_pixels"] == 1
    assert sorted(regroups[0]["order"]) == list(range(regroups[0]["n"]))


def test_io_is_checked_and_the_verilog_back_end_streams_too(tmp_path):
    """(The Verilog back-end's streams are tested in test_verilog_stream.)"""
    with pytest.raises(ConfigError, match="io_parallel .* or io_stream"):
        BuildConfig(io="io_serial")
    project = build(CNN / "conv1d.onnx", tmp_path / "v", BuildConfig(io="io_stream", backend="verilog"))
    assert "fpgaq_windows" in (project.root / "rtl" / f"{project.config.name}.v").read_text()


def _both_styles_equal_qonnx(tmp_path, model: onnx.ModelProto, x: np.ndarray) -> None:
    """The emulator of both I/O styles equals qonnx's execution on x, and the streaming
    C-simulation equals the emulator."""
    path = tmp_path / "model.onnx"
    onnx.save(model, path)
    want = run_reference(model, x)[0].reshape(len(x), -1)
    for io in ("io_parallel", "io_stream"):
        got = emulate.run(compile_file(path, BuildConfig(io=io)), x)[0]
        np.testing.assert_array_equal(got.reshape(len(x), -1), want)
    csim_exact(path, tmp_path / "s", x, io="io_stream")


def test_a_one_channel_signal_and_an_image_output(tmp_path):
    """A 1-D convolution of one channel ((N, 1, L), which the import reads as a vector first) whose
    output, an image, is the model's: its port streams pixels; both I/O styles equal qonnx."""
    from test_conv import _conv_model
    model = _conv_model((1, 8), (2, 1, 3), np.random.default_rng(0))
    _both_styles_equal_qonnx(tmp_path, model, (np.random.default_rng(1).normal(size=(60, 1, 8)) * 2).astype(np.float32))


def test_prelu_straight_after_a_biased_conv(tmp_path):
    """A Conv whose bias lies on its accumulator's grid gives codes at import, so a PRelu (slopes a
    channel, dyadic as every float is) may follow it directly; both I/O styles equal qonnx and the
    streaming C-simulation equals the emulator."""
    from test_conv import _conv_model
    model = _conv_model((3, 6, 6), (4, 3, 3, 3), np.random.default_rng(2), pads=[1, 1, 1, 1])
    slope = onnx.numpy_helper.from_array(np.array([0.25, 0.5, 0.125, 1.5], np.float32).reshape(4, 1, 1), "slope")
    model.graph.initializer.append(slope)
    model.graph.node[-1].output[0] = "c"
    model.graph.node.append(onnx.helper.make_node("PRelu", ["c", "slope"], ["y"]))
    _both_styles_equal_qonnx(tmp_path, model, (np.random.default_rng(3).normal(size=(40, 3, 6, 6)) * 2).astype(np.float32))


def test_reuse_auto_under_a_dsp_budget_minimises_the_frame(tmp_path):
    """io_stream: the least II (the slowest stage's frame, positions x R) whose layers fit the
    DSP budget; every layer takes the largest useful R within it."""
    from fpgaq.passes.reuse import legal_reuse
    project = build(CNN / "maxpool2d.onnx", tmp_path / "a", BuildConfig(io="io_stream", reuse="auto", dsp_budget=20))
    assert project.report is not None
    total = project.report["total"]
    assert total["dsp"] <= 20
    dense = [n for n in project.graph.nodes if isinstance(n.op, Dense)]
    frames = {n.name: Dense.positions(project.graph[n.inputs[0]].out) * n.op.reuse for n in dense}
    assert total["ii"] >= max(frames.values())
    # any smaller II breaks the budget: at the next smaller frame, even the most reuse each layer
    # could take within it needs more DSPs
    graph = project.graph
    below = max(Dense.positions(graph[n.inputs[0]].out) * r for n in dense for r in legal_reuse(n.op.nonzero)
                if Dense.positions(graph[n.inputs[0]].out) * r < max(frames.values()))
    least = 0
    for n in dense:
        p = Dense.positions(graph[n.inputs[0]].out)
        r = max([r for r in legal_reuse(n.op.nonzero) if p * r <= below] or [1])
        least += replace(n.op, reuse=r).cost([graph[n.inputs[0]].out], n.out, 5.0).dsp
    assert least > 20
    wider = BuildConfig(io="io_stream", reuse="auto", dsp_budget=200)
    assert build(CNN / "maxpool2d.onnx", tmp_path / "b", wider).report["total"]["ii"] <= total["ii"]


# --- zero-weight elimination of whole channels (owned with fpgaq/passes/zero_weights.py) -------

def test_streamed_dead_channels_go(tmp_path):
    """dwsep, io_stream: the depthwise conv's channel 1 (all weights zero: a constant the 1x1
    pointwise conv reads with no padding, folded into its bias) and channel 3 (which no pointwise
    weight reads) go, and the pointwise conv's output channel 2 (all zero: a constant the dense
    head folds, summed over the positions): no accumulators for them, fewer channels in the
    windows and the Flatten, the head reads 3 channels x 36 positions. Emulation is the same
    before and after the pass, equals the exporter's outputs, and C-simulation is exact."""
    from fpgaq.passes.pipeline import pipeline, run_pipeline
    from fpgaq.passes.zero_weights import EliminateZeroWeights
    from fpgaq.report import report_data
    imported = compile_file(CNN / "dwsep.onnx", STREAM, passes=False)
    before = run_pipeline(imported, [p for p in pipeline(STREAM) if p.name != "eliminate_zero_weights"])
    after = EliminateZeroWeights().run(before)

    def shapes(g):
        return ([n.op.weight.shape for n in g.nodes if isinstance(n.op, Dense)],
                [n.shape for n in g.nodes if isinstance(n.op, Windows)])
    assert shapes(before) == ([(4, 36), (4, 4), (5, 144)], [(36, 36), (36, 4)])
    assert shapes(after) == ([(2, 36), (3, 2), (5, 108)], [(36, 36), (36, 2)])
    assert shapes(run_pipeline(imported, pipeline(STREAM))) == shapes(after)
    small, large = report_data(after, STREAM)["total"], report_data(before, STREAM)["total"]
    for key in ("multipliers", "accumulator_bits", "lut", "ff"):
        assert small[key] < large[key], key
    x = _inputs("dwsep")
    np.testing.assert_array_equal(emulate.run(after, x)[0], emulate.run(before, x)[0])
    want = np.load(CNN / "outputs_dwsep.npy")
    n = len(want)
    np.testing.assert_array_equal(emulate.run(after, x[:n])[0], want.reshape(n, -1))
    csim_exact(CNN / "dwsep.onnx", tmp_path / "dwsep", x[:120], io="io_stream")


@pytest.mark.parametrize("x_shape, w_shape, attrs", [
    ((2, 9, 7), (4, 1, 3, 2), dict(group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 2, 1])),
    ((2, 4, 5, 4), (3, 2, 2, 3, 2), dict(pads=[1, 1, 0, 0, 1, 1])),
])
def test_stream_csim_over_conv_attributes(tmp_path, x_shape, w_shape, attrs):
    """Grouped, strided, dilated, asymmetrically padded 2-D, and 3-D: the line buffer walks any
    rank; the convolution's image is the model's output (a stream of pixels on its port)."""
    from test_conv import _conv_model
    rng = np.random.default_rng(sum(x_shape))
    model = _conv_model(x_shape, w_shape, rng, **attrs)
    path = tmp_path / "conv.onnx"
    onnx.save(model, path)
    csim_exact(path, tmp_path / "s", (rng.normal(size=(64,) + x_shape) * 3).astype(np.float32), io="io_stream")
