"""Properties of the passes on random sparse networks: the emulator output never changes,
intervals are sound, types are minimal; reuse and the report."""
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import modelgen
from fpgaq import emulate
from fpgaq.backends import BACKENDS, backend
from fpgaq.config import BuildConfig
from fpgaq.errors import ConfigError
from fpgaq.frontend.importer import import_model
from fpgaq.ir.fixed import FixedType
from fpgaq.ir.ops import Dense, Input, Quant
from fpgaq.passes.pipeline import pipeline, run_pipeline
from fpgaq.passes.reuse import TileByReuse, legal_reuse
from fpgaq.stimulus import random_inputs
from fpgaq.report import report_data


def structured(model, rng, rows=2, cols=2):
    """Zero whole rows (constant neurons) and columns (unused inputs) of the weight initializers."""
    from onnx import numpy_helper
    g = model.graph
    quant_inputs = {n.input[0] for n in g.node if n.op_type in ("Quant", "IntQuant")}
    for i, t in enumerate(g.initializer):
        a = numpy_helper.to_array(t)
        if a.ndim == 2 and t.name in quant_inputs:
            a = a.copy()
            a[rng.choice(a.shape[0], size=min(rows, a.shape[0] - 1), replace=False), :] = 0
            a[:, rng.choice(a.shape[1], size=min(cols, a.shape[1] - 1), replace=False)] = 0
            g.initializer[i].CopyFrom(numpy_helper.from_array(a, t.name))
    return model


networks = st.fixed_dictionaries({
    "sizes": st.lists(st.integers(1, 12), min_size=2, max_size=5),
    "seed": st.integers(0, 2**31),
    "sparsity": st.sampled_from([0.0, 0.5, 0.8, 0.95]),
    "final_quant": st.booleans(),
    "rows": st.integers(0, 4),
    "cols": st.integers(0, 4),
    "act_signed": st.booleans(),
    "rounding": st.sampled_from(modelgen.ROUNDING_MODES),
})


def make(p):
    rng = np.random.default_rng(p["seed"])
    model = modelgen.qonnx_mlp(p["sizes"], rng=p["seed"], sparsity=p["sparsity"], final_quant=p["final_quant"],
                               act_signed=p["act_signed"], relu=not p["act_signed"], rounding_mode=p["rounding"])
    return import_model(structured(model, rng, p["rows"], p["cols"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks)
def test_emulator_unchanged_by_every_pass(p):
    graph = make(p)
    x = random_inputs(graph, 400, seed=p["seed"] % 1000)
    expected = emulate.output_codes(graph, x)
    seen = []

    def hook(i, ps, g):
        seen.append(ps)
        for a, b in zip(expected, emulate.output_codes(g, x)):
            np.testing.assert_array_equal(a, b)

    run_pipeline(graph, pipeline(BuildConfig(reuse=3)), hook)
    assert len(seen) == len(pipeline()) + 1


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(networks)
def test_intervals_sound_and_types_minimal(p):
    graph = run_pipeline(make(p))
    x = random_inputs(graph, 600, seed=1)
    codes = emulate.run_codes(graph, x)
    for n in graph.nodes:
        if isinstance(n.op, Input):
            continue
        c = codes[n.name]
        # sound: no value leaves its interval, and the interval fits the type
        assert n.interval.lo <= c.min() and c.max() <= n.interval.hi, n.name
        assert n.type.interval.contains(n.interval)
        # minimal: one bit fewer cannot hold the interval (quantizers keep the model's type)
        if not isinstance(n.op, Quant) and n.type.width > 1:
            smaller = FixedType(n.type.signed, n.type.width - 1, n.type.frac)
            assert not smaller.interval.contains(n.interval), n.name


def test_first_layer_interval_is_attained():
    """The accumulator's bounds are reached by the extreme inputs, so one bit fewer overflows."""
    graph = run_pipeline(import_model(modelgen.qonnx_mlp([6, 5, 3], rng=4, sparsity=0.3)))
    (inp,) = graph.inputs
    (q,) = graph.consumers(inp.name)
    d = next(n for n in graph.nodes if isinstance(n.op, Dense))
    step = 2.0 ** -q.type.frac
    for o, iv in enumerate(d.out.channels):
        w = d.op.weight[o]
        hi_in = np.where(w > 0, q.op.hi, q.op.lo) * step
        lo_in = np.where(w > 0, q.op.lo, q.op.hi) * step
        codes = emulate.run_codes(graph, np.array([hi_in, lo_in], dtype=np.float32))[d.name]
        assert codes[0, o] == iv.hi and codes[1, o] == iv.lo
    smaller = FixedType(d.type.signed, d.type.width - 1, d.type.frac)
    assert not smaller.interval.contains(d.interval)


def test_structured_sparsity_removes_constant_neurons_and_unused_inputs():
    rng = np.random.default_rng(0)
    model = structured(modelgen.qonnx_mlp([8, 10, 9, 4], rng=0, sparsity=0.3), rng, rows=3, cols=2)
    graph = import_model(model)
    after = run_pipeline(graph)
    before = run_pipeline(graph, [p for p in pipeline() if p.name != "eliminate_zero_weights"])
    before_dense = [n for n in before.nodes if isinstance(n.op, Dense)]
    after_dense = [n for n in after.nodes if isinstance(n.op, Dense)]
    assert after_dense[0].size < before_dense[0].size
    assert after_dense[-1].size == before_dense[-1].size     # outputs keep their shape
    for n in after_dense[:-1]:
        assert np.all(np.any(n.op.weight != 0, axis=1)), "a constant neuron survived"
    for n in after_dense[1:]:
        assert np.all(np.any(n.op.weight != 0, axis=0)), "an unused input survived"
    x = random_inputs(graph, 2000)
    np.testing.assert_array_equal(emulate.run(graph, x)[0], emulate.run(after, x)[0])


def test_illegal_reuse_lists_legal_values():
    graph = run_pipeline(import_model(modelgen.qonnx_mlp([6, 5, 3], rng=1, sparsity=0.0)))
    with pytest.raises(ConfigError, match=r"^reuse factor 99 is illegal for layer dense \(.*30 non-zero weights\); "
                                          r"legal values: 1 to 30, of which these give distinct multiplier counts: "
                                          r"1, 2, 3, 4, 5, 6, 8, 10, 15, 30$"):
        TileByReuse(per_layer=(("dense", 99),)).run(graph)
    # a global default larger than a layer's product count means "fully shared" there
    g = TileByReuse(default=99).run(graph)
    assert [n.op.reuse for n in g.nodes if isinstance(n.op, Dense)] == [30, 15]
    assert legal_reuse(30) == [1, 2, 3, 4, 5, 6, 8, 10, 15, 30]


def test_per_layer_reuse_by_onnx_or_ir_name():
    graph = run_pipeline(import_model(modelgen.qonnx_mlp([6, 5, 3], rng=1, sparsity=0.0, style="clean")))
    dense = [n for n in graph.nodes if isinstance(n.op, Dense)]
    g = TileByReuse(per_layer=((dense[0].origin.onnx_name, 3), (dense[1].name, 5))).run(graph)
    assert [n.op.reuse for n in g.nodes if isinstance(n.op, Dense)] == [3, 5]
    with pytest.raises(ConfigError, match=r"^layer_reuse names nope, which is not a dense layer; dense layers are"):
        TileByReuse(per_layer=(("nope", 2),)).run(graph)


def test_auto_reuse_fits_the_dsp_budget():
    # wide operands (12-bit weights, 12-bit inputs) put shared products on DSPs
    model = modelgen.qonnx_mlp([16, 24, 8], rng=2, sparsity=0.5, w_bits=12, in_bits=12, act_bits=12,
                               check_exact=False)
    graph = run_pipeline(import_model(model))
    cfg = BuildConfig(reuse="auto", dsp_budget=40)
    g = run_pipeline(import_model(model), pipeline(cfg))
    data = report_data(g, cfg)
    assert data["total"]["dsp"] <= 40
    assert any(layer["reuse"] > 1 for layer in data["layers"])
    with pytest.raises(ConfigError, match="needs --dsp-budget"):
        run_pipeline(graph, pipeline(BuildConfig(reuse="auto")))


def test_report_json_has_the_promised_keys(tmp_path):
    graph = run_pipeline(import_model(modelgen.qonnx_mlp([6, 5, 3], rng=1)))
    data = json.loads(json.dumps(report_data(graph, BuildConfig())))
    for layer in data["layers"]:
        assert {"name", "weights", "nonzero", "multipliers", "reuse", "accumulator", "latency_cycles", "ii",
                "dsp", "lut", "ff", "bram"} <= set(layer)
        assert set(layer["accumulator"]) == {"signed", "width", "frac"}
    assert {"weights", "nonzero", "multipliers", "dsp", "lut", "ff", "bram", "latency_cycles", "latency_ns",
            "ii"} <= set(data["total"])
    assert data["total"]["latency_ns"] == data["total"]["latency_cycles"] * 5.0


# --- every pass, on models the layer builder makes in every format ---------------------------------

@st.composite
def built_models(draw):
    fmt = draw(st.sampled_from(["qonnx", "qdq", "qcdq"]))
    seed = draw(st.integers(0, 2**31))
    net = modelgen.Net(rng=seed, fmt=fmt, style=draw(st.sampled_from(["brevitas", "clean"])))
    bits = st.just(8) if fmt == "qdq" else st.integers(3, 8)      # plain QDQ: only 8-bit activations
    net.input(draw(st.integers(2, 12)), bits=draw(bits), frac=draw(st.integers(0, 5)))
    for last in [False] * draw(st.integers(0, 2)) + [True]:
        net.dense(draw(st.integers(1, 12)), sparsity=draw(st.sampled_from([0.0, 0.5, 0.8])),
                  gemm=draw(st.booleans()), bias=draw(st.sampled_from(["quant", "none"])))
        if fmt == "qonnx" and draw(st.booleans()):
            net.batchnorm()                               # exact: folds into the layer
        if not last or draw(st.booleans()):
            net.relu() if draw(st.booleans()) else net.clip(0.0, 2.0)
            net.quant(bits=draw(bits), signed=False)
    return fmt, net.model()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(built_models(), st.integers(0, 1000))
def test_every_pass_keeps_the_emulator_on_built_models(fm, seed):
    """As imported, after each pass of the pipeline and after each back-end's preparation, the
    emulator gives the same codes; each pass leaves a verified graph."""
    fmt, model = fm
    graph = import_model(model)
    x = random_inputs(graph, 300, seed=seed)
    expected = emulate.output_codes(graph, x)

    def hook(i, ps, g):
        for a, b in zip(expected, emulate.output_codes(g, x)):
            np.testing.assert_array_equal(a, b)

    for name in BACKENDS:
        config = BuildConfig(backend=name)
        final = run_pipeline(graph, pipeline(config) + backend(name).prepare(config), hook)
        assert not any(n.op.kind in ("gemm", "matmul", "add", "batchnorm", "scale", "const") for n in final.nodes), \
            f"{fmt}: a node the back-ends do not build survived the pipeline"
