"""Helpers of the Verilog back-end's tests: IR graphs that reach every primitive, and projects
made from them without an ONNX model."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fpgaq.config import BuildConfig
from fpgaq.ir.fixed import FixedType, Rounding
from fpgaq.ir.graph import Graph, Origin, make_node
from fpgaq.ir.ops import Bipolar, Clip, Dense, Input, Quant, Relu
from fpgaq.project import write_files
from fpgaq.projectdir import Project, port
from fpgaq.backends.verilog.writer import render_project


def need(tool: str, what: str):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed ({what}; CI installs it)")


def need_cocotb():
    pytest.importorskip("cocotb_tools.runner", reason="cocotb is not installed (CI installs it)")


def rtl_exact(model, out: Path, x, **config) -> Project:
    """Build `model` with the Verilog back-end into `out` and simulate x in Icarus: every output
    must equal the emulator's."""
    from fpgaq.backends.verilog.rtlsim import run_rtlsim
    from fpgaq.project import build
    need("iverilog", "Icarus Verilog")
    need_cocotb()
    project = build(model, out, BuildConfig(backend="verilog", **config))
    r = run_rtlsim(project, x, sim="icarus")
    assert r.ok, r.mismatches
    return project


def _o(name: str, op: str) -> Origin:
    return Origin(name, op)


def random_graph(seed: int, rounding: Rounding = Rounding.ROUND) -> Graph:
    """Input -> Quant -> Dense -> Quant(rounding, narrow bounds) -> Relu -> Clip -> Dense
    -> Quant (more fraction bits: a left shift) and, as a second output, Bipolar -> Dense."""
    rng = np.random.default_rng(seed)
    f_in, h, f_out = int(rng.integers(3, 7)), int(rng.integers(3, 8)), int(rng.integers(2, 5))
    nodes = []
    x = make_node("x", Input((f_in,)), (), _o("x", "input"))
    q_in = make_node("q_in", Quant(FixedType(True, 6, 3), Rounding.ROUND, -31, 31), (x,), _o("q_in", "Quant"))
    w1 = rng.integers(-40, 41, size=(h, f_in)) * (rng.random((h, f_in)) < 0.6)
    w1[0] = 0                                     # a neuron with no weights: a constant
    d1 = make_node("d1", Dense(w1, 3, rng.integers(-300, 300, size=h)), (q_in,), _o("d1", "Gemm"))
    q1 = make_node("q1", Quant(FixedType(True, 7, 2), rounding, -60, 50), (d1,), _o("q1", "Quant"))
    r1 = make_node("r1", Relu(), (q1,), _o("r1", "Relu"))
    c1 = make_node("c1", Clip(3, 40), (r1,), _o("c1", "Clip"))
    w2 = rng.integers(-9, 10, size=(f_out, h))
    d2 = make_node("d2", Dense(w2, 2, rng.integers(-50, 50, size=f_out)), (c1,), _o("d2", "Gemm"))
    q2 = make_node("q2", Quant(FixedType(True, 14, 6), rounding, -8000, 8191), (d2,), _o("q2", "Quant"))
    b = make_node("b", Bipolar(0), (q1,), _o("b", "BipolarQuant"))
    w3 = rng.integers(-5, 6, size=(2, h))
    d3 = make_node("d3", Dense(w3, 0, np.zeros(2, dtype=np.int64)), (b,), _o("d3", "Gemm"))
    nodes = [x, q_in, d1, q1, r1, c1, d2, q2, b, d3]
    return Graph(tuple(nodes), ("q2", "d3"), name=f"random{seed}")


def graph_project(graph: Graph, root: Path, config: BuildConfig | None = None) -> Project:
    """A Verilog project folder for an IR graph, as `fpgaq build` would write it."""
    config = config or BuildConfig(name="net", backend="verilog")
    write_files(root, render_project(graph, config))
    (q,) = graph.consumers(graph.inputs[0].name)
    meta = {"inputs": [port(q)], "outputs": [port(graph[o]) for o in graph.outputs],
            "config": config.to_dict()}
    return Project(root, graph, config, meta)
