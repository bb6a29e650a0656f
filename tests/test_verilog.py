"""The Verilog back-end: CSD digits, pipelining, generated text, refusals, and RTL simulation of
small networks that reach every primitive, bit for bit against the emulator."""
import re
import subprocess

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import modelgen
from conftest import EXAMPLE
from verilog_helpers import graph_project, need, need_cocotb, random_graph

from fpgaq.backends.verilog.context import project_context
from fpgaq.ir.cost import adder_budget
from fpgaq.ir.fixed import csd
from fpgaq.backends.verilog.rtlsim import run_rtlsim
from fpgaq.backends.verilog.writer import core_sources, render_project
from fpgaq.backends import backend
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.ir.ops import Dense
from fpgaq.frontend.importer import import_model
from fpgaq.ir.fixed import Rounding
from fpgaq.passes.pipeline import run_pipeline

VERILOG = BuildConfig(name="net", backend="verilog")


@given(st.integers(-(1 << 40), 1 << 40))
def test_csd_is_exact_canonical_and_minimal(w):
    digits = csd(w)
    assert sum(sign << shift for shift, sign in digits) == w
    shifts = [s for s, _ in digits]
    assert all(b - a >= 2 for a, b in zip(shifts, shifts[1:]))      # no two adjacent digits
    assert len(digits) <= (abs(w).bit_length() + 2) // 2 + 1


def test_csd_examples():
    assert csd(0) == []
    assert csd(8) == [(3, 1)]                   # a power of two is a wire
    assert csd(7) == [(0, -1), (3, 1)]          # 8 - 1
    assert csd(-3) == [(0, 1), (2, -1)]


def test_adder_budget_follows_the_clock():
    assert adder_budget(5.0) == 6
    assert adder_budget(2.0) == 2
    assert adder_budget(0.5) == 1


def test_faster_clock_means_more_stages_never_fewer():
    config = BuildConfig(backend="verilog")
    g = compile_file(EXAMPLE, config, backend(config.backend).prepare(config))
    lat = [project_context(g, BuildConfig(backend="verilog", clock_ns=t))["latency"] for t in (10.0, 5.0, 2.0, 1.0)]
    assert lat == sorted(lat) and lat[0] < lat[-1]


def test_generated_verilog_is_deterministic_and_names_are_safe():
    g = random_graph(3)
    a, b = render_project(g, VERILOG), render_project(random_graph(3), VERILOG)
    assert a == b
    text = a["rtl/net.v"]
    assert "module net (" in text and "localparam integer LATENCY" in text
    body = text[text.index("module net"):]
    assert "'" not in re.sub(r"\d+'s?[hdb][0-9a-f]+", "", body)     # only sized literals carry quotes


def test_zero_weights_cost_nothing_and_powers_of_two_are_wires():
    g = random_graph(4)
    ctx = project_context(g, VERILOG, share=False)      # one adder tree per neuron
    expected = 0
    for n in g.nodes:
        if isinstance(n.op, Dense):
            for row, bias in zip(n.op.weight, n.op.bias):
                terms = sum(len(csd(int(w))) for w in row if w)
                expected += max(terms - 1, 0)
    # at most one adder per extra digit (fewer where an input is a constant, folded into the
    # bias; adding the bias is not counted), plus at most one per neuron for a negation
    neurons = sum(n.size for n in g.nodes if isinstance(n.op, Dense))
    assert 0 < ctx["adders"] <= expected + neurons
    # shared sub-expressions (the default) never take more adders
    assert project_context(g, VERILOG)["adders"] <= ctx["adders"]


def test_iverilog_parses_the_design_and_wrappers(tmp_path):
    need("iverilog", "Icarus Verilog")
    p = graph_project(random_graph(8), tmp_path)
    srcs = [str(p.root / s) for s in core_sources("net")]
    r = subprocess.run(["iverilog", "-g2005", "-t", "null", "-I", str(tmp_path / "rtl"), *srcs,
                        str(tmp_path / "rtl" / "fpgaq_trigger_top.v"), str(tmp_path / "rtl" / "fpgaq_axis.v")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""


@pytest.mark.parametrize("seed, rounding", [(0, Rounding.ROUND), (1, Rounding.CEIL), (2, Rounding.UP),
                                            (3, Rounding.HALF_DOWN), (4, Rounding.DOWN),
                                            (5, Rounding.HALF_UP), (6, Rounding.FLOOR)])
def test_rtl_equals_emulator_every_rounding(tmp_path, seed, rounding):
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    p = graph_project(random_graph(seed, rounding), tmp_path)
    r = run_rtlsim(p, n=1000, sim="icarus")
    assert r.n == 1000
    assert r.mismatch_count == 0, r.mismatches
    assert r.ii == 1.0
    assert r.latency_cycles == project_context(p.graph, p.config)["latency"]


@pytest.mark.parametrize("clock_ns", [10.0, 1.0])
def test_rtl_equals_emulator_at_any_pipelining(tmp_path, clock_ns):
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    config = BuildConfig(name="net", backend="verilog", clock_ns=clock_ns)
    p = graph_project(random_graph(7), tmp_path, config)
    r = run_rtlsim(p, n=1000, sim="icarus")
    assert r.ok, r.mismatches
    assert r.latency_cycles == project_context(p.graph, config)["latency"]


def test_qdq_model_and_real_outputs(tmp_path):
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    from fpgaq import emulate
    graph = run_pipeline(import_model(modelgen.qdq_mlp([5, 7, 3], rng=3), name="qdq"))
    p = graph_project(graph, tmp_path)
    x = np.random.default_rng(1).normal(0, 3, size=(1000, 5)).astype(np.float32)
    r = run_rtlsim(p, x, sim="icarus")
    assert r.ok, r.mismatches
    for got, want in zip(r.outputs, emulate.output_codes(graph, x)):
        np.testing.assert_array_equal(got.astype(np.int64), want)


def test_a_backend_names_each_node_it_cannot_build():
    """An op without a kernel in a back-end (here a real-valued Sigmoid that no table pass
    lowered, which the back-ends never build) is refused with the node's ONNX origin, for each
    back-end."""
    from fpgaq.errors import ModelError
    from fpgaq.ir.graph import Graph, Origin, make_node
    from fpgaq.ir.fixed import FixedType
    from fpgaq.ir.ops import Activation, Input, Quant
    x = make_node("x", Input((2, 3)), (), Origin("x", "graph input"))
    q = make_node("q", Quant(FixedType(True, 8, 4), Rounding.ROUND, -128, 127), (x,), Origin("qin", "Quant"))
    a = make_node("a", Activation("sigmoid"), (q,), Origin("flip", "Sigmoid"))
    s = make_node("s", Quant(FixedType(True, 8, 4), Rounding.ROUND, -128, 127), (a,), Origin("qout", "Quant"))
    graph = Graph((x, q, a, s), ("s",))
    for name in ("hls", "verilog"):
        config = BuildConfig(backend=name)
        with pytest.raises(ModelError, match=r"^node 'flip' \(Sigmoid\): the (HLS|Verilog) back-end has no "
                                             r"kernel for activation"):
            backend(name).render(graph, config)
