"""The emulator agrees exactly with qonnx's reference execution of the original ONNX model.

The first check of the verification ladder (the emulator against qonnx). Every model here is exactly fixed point
(power-of-two scales, zero zero-points, accumulators below 2**24 LSBs), so the float32
reference is exact and the comparison is `assert_array_equal`, never a tolerance.
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, note, reject, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from onnx import TensorProto, helper, numpy_helper

import modelgen as mg
from probe_inputs import exact_round, float32_reference_exact_for, probe_inputs
from qonnx_reference import run_reference

from fpgaq import emulate
from fpgaq.frontend.importer import import_file, import_model
from fpgaq.passes.pipeline import run_pipeline
from fpgaq.ir.fixed import Rounding
from fpgaq.ir.ops import Bipolar, Dense, Quant

ROOT = Path(__file__).resolve().parent.parent
JET_TAGGER = ROOT / "examples" / "jet_tagger" / "jet_tagger.onnx"


def compiled(model: onnx.ModelProto):
    return run_pipeline(import_model(model))


def check_against_reference(model: onnx.ModelProto, x: np.ndarray, graph=None):
    """Import, compile, emulate and compare with qonnx exactly (the graph as imported and as
    compiled); also check every node stays inside the interval the IR derived for it (the
    widths rest on those intervals)."""
    imported = import_model(model)
    graph = run_pipeline(imported)
    want = run_reference(model, x)
    got = emulate.run(graph, x)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert_array_equal(g, w.reshape(g.shape))
    for g, w in zip(emulate.run(imported, x), want):
        assert_array_equal(g, w.reshape(g.shape))
    codes = emulate.run_codes(graph, {graph.inputs[0].name: x})
    for node in graph.nodes:
        if node.interval is None:
            continue
        c = codes[node.name]
        assert node.interval.lo <= c.min() and c.max() <= node.interval.hi, (
            f"{node.name}: codes [{c.min()}, {c.max()}] outside {node.interval}")
    for o, c in zip(graph.outputs, emulate.output_codes(graph, x)):
        assert_array_equal(graph[o].out.real_values(c), got[graph.outputs.index(o)])
    return graph


# --- hypothesis-generated networks ----------------------------------------------------------

@st.composite
def qonnx_networks(draw):
    n_layers = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 16))] + [draw(st.integers(1, 24)) for _ in range(n_layers)]
    final_quant = draw(st.booleans())
    n_act = 1 + (n_layers - 1) + int(final_quant)
    modes = st.sampled_from(mg.ROUNDING_MODES)
    rounding = draw(st.one_of(modes, st.lists(modes, min_size=n_act, max_size=n_act)))
    bits = st.integers(2, 12)
    gemm = draw(st.booleans())
    kw = dict(
        rng=draw(st.integers(0, 2**32 - 1)),
        in_bits=draw(bits), in_frac=draw(st.integers(-2, 8)), in_signed=draw(st.booleans()),
        w_bits=draw(st.lists(bits, min_size=n_layers, max_size=n_layers)),
        w_narrow=draw(st.booleans()),
        act_bits=draw(st.lists(bits, min_size=n_layers, max_size=n_layers)),
        act_frac=draw(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-2, 10)),
                                                    min_size=n_layers, max_size=n_layers))),
        act_signed=draw(st.booleans()),
        rounding_mode=rounding,
        sparsity=draw(st.sampled_from([0.0, 0.3, 0.7, 0.9])),
        bias=draw(st.sampled_from(["quant", "float", "none"])),
        bias_bits=draw(st.integers(8, 20)),
        final_quant=final_quant,
        relu=draw(st.booleans()),
        final_relu=draw(st.booleans()),
        op_name=draw(st.sampled_from(["Quant", "IntQuant"])),
        domain=draw(st.sampled_from([mg.QONNX_DOMAIN, mg.FINN_DOMAIN, mg.BREVITAS_DOMAIN])),
        gemm=gemm,
        style=draw(st.sampled_from(["brevitas", "clean"])),
        weights_as_inputs=draw(st.sampled_from([None, True, False])),
        empty_names=draw(st.sampled_from([None, True, False])),
        share_scalars=draw(st.sampled_from([None, True, False])),
        batch=draw(st.sampled_from([1, "batch"])),
        ir_version=draw(st.integers(6, 10)),
        opset=draw(st.integers(13, 20)),
    )
    if gemm:
        kw["trans_a"] = draw(st.integers(0, 1))    # 1: Transpose(perm [1, 0]) -> Gemm(transA=1)
        kw["trans_b"] = draw(st.integers(0, 1))
        kw["alpha"] = draw(st.sampled_from([1.0, 1.0, 0.5, 2.0]))
        # beta < 1 puts the bias below the accumulator's grid: an import error by design
        kw["beta"] = draw(st.sampled_from([1.0, 1.0, 2.0, 4.0]))
    try:
        model = mg.qonnx_mlp(sizes, **kw)
    except ValueError as e:
        if "2**24" in str(e):
            reject()     # the float32 reference would not be exact
        raise
    return sizes, kw, model


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qonnx_networks(), st.integers(0, 2**32 - 1))
def test_random_qonnx_networks(net, seed):
    sizes, kw, model = net
    note(f"sizes={sizes} {kw}")
    graph = compiled(model)
    x = probe_inputs(graph, seed)
    check_against_reference(model, x, graph)


@pytest.mark.parametrize("mode", mg.ROUNDING_MODES)
@pytest.mark.parametrize("in_frac, signed", [(0, True), (4, True), (-2, False), (7, False)])
def test_input_quantizer_follows_the_definition(mode, in_frac, signed):
    """Every probe value, with those qonnx's float32 arithmetic gets wrong (see
    probe_inputs.float32_reference_exact_for), quantized by the emulator exactly as the
    rounding mode defines it (on exact rationals), then saturated."""
    model = mg.qonnx_mlp([3, 2], rng=0, in_bits=6, in_frac=in_frac, in_signed=signed,
                         rounding_mode=mode, style="clean")
    graph = compiled(model)
    q = graph.consumers(graph.inputs[0].name)[0].op
    x = probe_inputs(graph, 0, all_probes=True)
    got = emulate.input_codes(graph, x)
    rounding = Rounding.parse(mode)

    def want(v: float) -> int:
        if np.isinf(v):
            return q.hi if v > 0 else q.lo
        return min(max(exact_round(Fraction(v) * Fraction(2) ** in_frac, rounding), q.lo), q.hi)

    assert_array_equal(got, np.vectorize(want, otypes=[np.int64])(x.astype(np.float64)))
    if all(float32_reference_exact_for(q).values()):
        check_against_reference(model, x, graph)


@pytest.mark.parametrize("bits, signed, frac", [
    (52, 1, 0), (53, 0, 0), (60, 1, 0), (63, 1, 2), (64, 1, 0), (64, 0, -3), (62, 1, 10)])
def test_wide_input_quantizer_saturates_exactly(bits, signed, frac):
    """Past float64 precision the saturation bounds (2**63 - 1, ...) are not floats; the codes
    must still be exactly the type's extremes. qonnx's float32 output cannot show this, so the
    check is against the definition."""
    inits = {"zero": 0.0, "s": 2.0 ** -frac, "b": float(bits), "one": 1.0, "b64": 64.0}
    nodes = [_quant("x", "xq", "s", "b", signed=signed, name="q", mode="HALF_UP"),
             _quant("xq", "y", "one", "b64", signed=0, name="q_out", mode="FLOOR")]
    graph = compiled(_model(nodes, inits, [1, 4], [1, 4]))
    q = graph.consumers(graph.inputs[0].name)[0].op
    assert (q.lo, q.hi) == ((-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1))
    x = np.array([[1e30, -1e30, np.inf, 12345.5], [-np.inf, 0.0, 3e38, -2.5]], dtype=np.float32)
    got = emulate.input_codes(graph, x)
    want = [[min(max(exact_round(Fraction(float(v)) * Fraction(2) ** frac, Rounding.HALF_UP), q.lo), q.hi)
             if np.isfinite(v) else (q.hi if v > 0 else q.lo) for v in row] for row in x]
    assert [[int(c) for c in row] for row in got] == want
    out = emulate.output_codes(graph, x)[0]
    assert [[int(c) for c in row] for row in out] == [
        [min(max(exact_round(Fraction(c, 1 << frac) if frac >= 0 else Fraction(c << -frac),
                             Rounding.FLOOR), 0), (1 << 64) - 1)
         for c in row] for row in want]


# --- the example model ------------------------------------------------------------------------

def test_jet_tagger():
    if not JET_TAGGER.is_file():
        pytest.skip(f"{JET_TAGGER} is absent (run examples/jet_tagger/make_model.py)")
    imported = import_file(JET_TAGGER)
    graph = run_pipeline(imported)
    model = onnx.load(str(JET_TAGGER))
    rng = np.random.default_rng(7)
    x = np.concatenate([probe_inputs(graph, rng),
                        rng.standard_normal((2000, graph.inputs[0].size)).astype(np.float32)])
    check_against_reference(model, x, graph)
    weights = [imported[n.inputs[1]].out for n in imported.nodes if n.op.kind == "gemm"]
    assert [w.shape for w in weights] == [(64, 16), (32, 64), (32, 32), (5, 32)]   # Gemm transB: (out, in)
    assert sum(int(np.count_nonzero(w.value)) for w in weights) == 1276


# --- hand-built models for ops modelgen does not emit -----------------------------------------

def _model(nodes, inits, in_shape, out_shape, *, qonnx_opset=1, opset=13, ir_version=8,
           extra_inputs=()):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape), *extra_inputs],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid(mg.QONNX_DOMAIN, qonnx_opset)])
    model.ir_version = ir_version
    return model


def _quant(inp, out, scale, bits, *, signed=1, narrow=0, mode="ROUND", name="", op="Quant"):
    return helper.make_node(op, [inp, scale, "zero", bits], [out], name=name,
                            domain=mg.QONNX_DOMAIN, signed=signed, narrow=narrow, rounding_mode=mode)


def _dense_net(rng, n_in, n_out, *, in_frac=3, w_frac=3):
    """Quant(x) -> Gemm(transB=1) with quantized weights and a float bias on the acc grid."""
    w = rng.integers(-7, 8, size=(n_out, n_in)) * 2.0 ** -w_frac
    b = rng.integers(-64, 64, size=n_out) * 2.0 ** -(in_frac + w_frac)
    inits = {"zero": 0.0, "s_in": 2.0 ** -in_frac, "b8": 8.0, "s_w": 2.0 ** -w_frac, "b4": 4.0,
             "W": w, "B": b}
    nodes = [_quant("x", "xq", "s_in", "b8", name="in_q"),
             _quant("W", "Wq", "s_w", "b4", narrow=1, name="w_q"),
             helper.make_node("Gemm", ["xq", "Wq", "B"], ["acc"], name="fc", transB=1)]
    return nodes, inits


@pytest.mark.parametrize("mode", ["FLOOR", "ROUND", "CEIL", "HALF_UP", "DOWN", "UP", "HALF_DOWN"])
@pytest.mark.parametrize("out_signed, narrow", [(1, 0), (1, 1), (0, 0)])
def test_trunc_v2(mode, out_signed, narrow):
    """Trunc with 6 inputs (qonnx opset 2): drop low bits with rounding_mode, rescale to
    out_scale, clamp to out_bits."""
    rng = np.random.default_rng(1)
    nodes, inits = _dense_net(rng, 6, 5)
    inits.update({"s_acc": 2.0 ** -6, "b12": 12.0, "s_out": 2.0 ** -2, "b5": 5.0})
    nodes.append(helper.make_node("Trunc", ["acc", "s_acc", "zero", "b12", "s_out", "b5"], ["y"],
                                  name="trunc", domain=mg.QONNX_DOMAIN, rounding_mode=mode,
                                  signed=out_signed, narrow=narrow))
    model = _model(nodes, inits, [1, 6], [1, 5], qonnx_opset=2)
    graph = compiled(model)
    check_against_reference(model, probe_inputs(graph, 0), graph)


@pytest.mark.parametrize("mode", ["FLOOR", "ROUND", "CEIL", "HALF_UP"])
@pytest.mark.parametrize("scale_frac", [4, 6, 8])
def test_trunc_v1(mode, scale_frac):
    """Trunc with 5 inputs (qonnx opset 1): the integer round(x / scale) loses in_bits -
    out_bits low bits by rounding_mode and is read again at `scale` (no clamp). The
    accumulator (6 fraction bits) is finer than, on, or coarser than the grid of `scale`."""
    rng = np.random.default_rng(2)
    nodes, inits = _dense_net(rng, 6, 5)
    inits.update({"s_acc": 2.0 ** -scale_frac, "b12": 12.0, "b8o": 8.0,
                  "W2": rng.integers(-7, 8, size=(3, 5)) * 2.0 ** -3})
    nodes += [helper.make_node("Trunc", ["acc", "s_acc", "zero", "b12", "b8o"], ["t"],
                               name="trunc", domain=mg.QONNX_DOMAIN, rounding_mode=mode),
              _quant("W2", "W2q", "s_w", "b4", narrow=1, name="w2_q"),
              helper.make_node("Gemm", ["t", "W2q"], ["y"], name="fc2", transB=1)]
    model = _model(nodes, inits, [1, 6], [1, 3], qonnx_opset=1)
    graph = compiled(model)
    check_against_reference(model, probe_inputs(graph, 0), graph)


@pytest.mark.parametrize("mode", ["FLOOR", "CEIL", "HALF_DOWN"])
@pytest.mark.parametrize("in_frac", [2, 4])
def test_trunc_rounds_onto_a_coarser_input_grid(in_frac, mode):
    """The accumulator is finer than Trunc's input scale: QONNX first rounds onto that grid
    (np.round, half to even), then truncates."""
    rng = np.random.default_rng(3)
    nodes, inits = _dense_net(rng, 6, 5, in_frac=in_frac, w_frac=3)
    inits.update({"s_acc": 2.0 ** -3, "b16": 16.0, "s_out": 2.0 ** -1, "b10": 10.0})
    nodes.append(helper.make_node("Trunc", ["acc", "s_acc", "zero", "b16", "s_out", "b10"], ["y"],
                                  name="trunc", domain=mg.QONNX_DOMAIN, rounding_mode=mode))
    model = _model(nodes, inits, [1, 6], [1, 5], qonnx_opset=2)
    graph = compiled(model)
    check_against_reference(model, probe_inputs(graph, 0), graph)


@pytest.mark.parametrize("scale_frac", [0, 3])
def test_bipolar_quant(scale_frac):
    """BipolarQuant on the input (x >= 0 -> +scale, else -scale) and on the weights."""
    rng = np.random.default_rng(4)
    w = rng.standard_normal((4, 7))
    inits = {"s": 2.0 ** -scale_frac, "s_w": 2.0 ** -1, "W": w, "zero": 0.0, "s_o": 2.0 ** -2,
             "b6": 6.0}
    nodes = [helper.make_node("BipolarQuant", ["x", "s"], ["xb"], name="in_b", domain=mg.QONNX_DOMAIN),
             helper.make_node("BipolarQuant", ["W", "s_w"], ["Wb"], name="w_b", domain=mg.QONNX_DOMAIN),
             helper.make_node("MatMul", ["xb", "Wq_t"], ["acc"], name="mm"),
             _quant("acc", "y", "s_o", "b6", name="out_q", mode="FLOOR")]
    nodes.insert(2, helper.make_node("Transpose", ["Wb"], ["Wq_t"], name="wt", perm=[1, 0]))
    model = _model(nodes, inits, [1, 7], [1, 4])
    graph = compiled(model)
    assert isinstance(graph.consumers(graph.inputs[0].name)[0].op, Bipolar)
    x = np.concatenate([rng.standard_normal((64, 7)),
                        np.array([[0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf, 5.0]])]).astype(np.float32)
    check_against_reference(model, x, graph)


def test_one_bit_signed_quant_is_bipolar():
    """QONNX executes a 1-bit signed Quant as bipolar: x >= 0 -> +scale else -scale."""
    rng = np.random.default_rng(5)
    nodes, inits = _dense_net(rng, 6, 3)
    inits["b1"] = 1.0
    nodes[0] = _quant("x", "xq", "s_in", "b1", name="in_q")
    nodes.append(_quant("acc", "y", "s_in", "b8", name="out_q"))
    model = _model(nodes, inits, [1, 6], [1, 3])
    graph = compiled(model)
    x = np.concatenate([rng.standard_normal((64, 6)),
                        np.array([[0.0, -0.0, 1e-30, -1e-30, np.inf, -np.inf]])]).astype(np.float32)
    check_against_reference(model, x, graph)


@pytest.mark.parametrize("gamma, var, eps", [
    ([2.0, 0.5, 1.0, 4.0], [1.0, 1.0, 1.0, 1.0], 0.0),          # scale gamma / 1
    ([1.0, 1.0, 3.0, 0.25], [4.0, 0.25, 16.0, 1.0], 0.0),       # sqrt(var) a power of two
    ([1.0, 2.0, 1.0, 1.0], [0.75, 3.75, 0.0, 15.75], 0.25),     # var + eps a power of four
])
def test_batchnorm_after_gemm_folds(gamma, var, eps):
    """BatchNormalization after Gemm with an exactly dyadic scale gamma / sqrt(var + eps)
    folds into the weights and bias, and matches qonnx (ONNX BatchNormalization in float32)."""
    rng = np.random.default_rng(6)
    nodes, inits = _dense_net(rng, 5, 4)
    inits.update({"gamma": gamma, "beta": rng.integers(-16, 16, 4) * 2.0 ** -4,
                  "mean": rng.integers(-16, 16, 4) * 2.0 ** -3, "var": var,
                  "s_o": 2.0 ** -3, "b10": 10.0})
    nodes += [helper.make_node("BatchNormalization", ["acc", "gamma", "beta", "mean", "var"],
                               ["bn"], name="bn", epsilon=eps),
              _quant("bn", "y", "s_o", "b10", name="out_q", mode="HALF_UP")]
    model = _model(nodes, inits, [1, 5], [1, 4])
    graph = compiled(model)
    assert not any(n.origin.onnx_op == "Gemm" for n in graph.nodes if isinstance(n.op, Dense)), \
        "the Gemm's Dense is replaced by the folded one"
    check_against_reference(model, probe_inputs(graph, 0), graph)


def test_shared_scalars_weights_as_inputs_symbolic_batch_empty_names():
    """All the habits of Brevitas exports at once, on a deeper network."""
    model = mg.qonnx_mlp([12, 16, 16, 8, 3], rng=11, style="brevitas", batch="N",
                         rounding_mode="ROUND", final_quant=False)
    assert all(n.name == "" for n in model.graph.node)
    assert {i.name for i in model.graph.input} >= {t.name for t in model.graph.initializer}
    scale_uses = [n.input[1] for n in model.graph.node if n.op_type == "Quant"]
    assert len(set(scale_uses)) < len(scale_uses), "scales must be shared for this test"
    graph = compiled(model)
    check_against_reference(model, probe_inputs(graph, 1), graph)


def test_matmul_add_and_gemm_give_the_same_graph_values():
    kw = dict(rng=21, final_quant=True, style="clean", rounding_mode="HALF_DOWN")
    g1 = compiled(mg.qonnx_mlp([6, 8, 3], gemm=True, **kw))
    g2 = compiled(mg.qonnx_mlp([6, 8, 3], gemm=False, **kw))
    x = probe_inputs(g1, 3)
    assert_array_equal(emulate.run(g1, x)[0], emulate.run(g2, x)[0])


def test_quant_on_quantized_codes_saturates_and_rounds_like_qonnx():
    """A Quant whose input is already fixed point (an accumulator) with a coarser scale and
    few bits: every rounding mode, both signs, saturation at both ends."""
    for mode in mg.ROUNDING_MODES:
        rng = np.random.default_rng(8)
        nodes, inits = _dense_net(rng, 4, 6)
        inits.update({"s_o": 2.0 ** -1, "b3": 3.0})
        nodes.append(_quant("acc", "y", "s_o", "b3", name="out_q", mode=mode, signed=1, narrow=1))
        model = _model(nodes, inits, [1, 4], [1, 6])
        graph = compiled(model)
        out = [n for n in graph.nodes if isinstance(n.op, Quant)][-1]
        assert (out.op.lo, out.op.hi) == (-3, 3)
        check_against_reference(model, probe_inputs(graph, 2), graph)
