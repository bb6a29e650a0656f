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
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.errors import ConfigError
from fpgaq.frontend.importer import import_model
from fpgaq.ir.fixed import FixedType
from fpgaq.ir.ops import Dense, Input, MaxPool, Quant
from fpgaq.passes.pipeline import pipeline, run_pipeline
from fpgaq.passes.reuse import TileByReuse, legal_reuse
from fpgaq.passes.zero_weights import EliminateZeroWeights
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


# --- zero-weight elimination across convolutions ---------------------------------------------------

def _quant_node(src: str, scale: str, dst: str, bits: str = "b8", signed: int = 1, narrow: int = 0):
    from onnx import helper
    return helper.make_node("Quant", [src, scale, "z", bits], [dst], domain="qonnx.custom_op.general",
                            signed=signed, narrow=narrow, rounding_mode="ROUND")


@st.composite
def pruned_conv_nets(draw):
    """Quant -> Conv -> ReLU, or Quant and PRelu (a slope a channel) -> Quant (one bit width, or
    one a channel) -> maybe MaxPool -> Conv (or a depthwise one) -> ReLU -> Quant -> Flatten ->
    Gemm, 1-D or 2-D, with random padding and stride, half the weights zero and whole channels
    pruned: outputs of conv 1 (all weights zero), inputs of conv 2 (read by no weight) and
    outputs of conv 2."""
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    nd = draw(st.integers(1, 2))
    # one channel of a 1-D input is imported as a vector of features, which Conv refuses
    c0, c1, c2 = draw(st.integers(3 - nd, 3)), draw(st.integers(2, 5)), draw(st.integers(2, 4))
    depthwise = draw(st.booleans())
    c2 = c1 if depthwise else c2
    size = draw(st.integers(4, 7))
    k1 = draw(st.integers(1, 3))
    pad1 = draw(st.integers(0, k1 - 1))
    after1 = size + 2 * pad1 - k1 + 1
    pool = draw(st.integers(0, 2))                       # a max-pool's kernel and stride, 0: none
    pooled = (after1 - pool) // pool + 1 if pool else after1
    k2 = draw(st.integers(1, min(3, pooled)))
    pad2, stride2 = draw(st.integers(0, k2 - 1)), draw(st.integers(1, 2))
    after2 = (pooled + 2 * pad2 - k2) // stride2 + 1

    def weights(shape):
        w = np.round(rng.normal(size=shape) * 8) / 16
        w[rng.random(shape) < 0.5] = 0
        return w

    w1, w2 = weights((c1, c0) + (k1,) * nd), weights((c2, 1 if depthwise else c1) + (k2,) * nd)
    w1[rng.choice(c1, size=draw(st.integers(0, c1)), replace=False)] = 0
    unread = rng.choice(c1, size=draw(st.integers(0, c1)), replace=False)
    if depthwise:
        w2[unread] = 0                                   # channel c: read by output channel c alone
    else:
        w2[:, unread] = 0
    w2[rng.choice(c2, size=draw(st.integers(0, c2 - 1)), replace=False)] = 0
    fc = weights((5, c2 * after2 ** nd))
    chan = (c1,) + (1,) * nd
    arrays = {"w1": w1, "w2": w2, "fc": fc, "b1": np.round(rng.normal(size=c1) * 64) / 128,
              "b2": np.round(rng.normal(size=c2) * 64) / 128,
              "s_in": 2.0 ** -4, "s_w": 2.0 ** -4, "s_a": 2.0 ** -3, "z": 0.0, "b8": 8.0,
              "bits1": rng.integers(3, 9, size=chan) if draw(st.booleans()) else 6.0,
              "slope": rng.choice([0.0, 0.25, 0.5], size=chan), "flat": np.array([1, -1])}
    prelu = draw(st.booleans())
    nodes = [_quant_node("x", "s_in", "xq"), _quant_node("w1", "s_w", "w1q", narrow=1),
             _quant_node("w2", "s_w", "w2q", narrow=1), _quant_node("fc", "s_w", "fcq", narrow=1),
             helper.make_node("Conv", ["xq", "w1q", "b1"], ["c1"], pads=[pad1] * 2 * nd),
             *([_quant_node("c1", "s_a", "q1"), helper.make_node("PRelu", ["q1", "slope"], ["r1"])] if prelu
               else [helper.make_node("Relu", ["c1"], ["r1"])]),
             _quant_node("r1", "s_a", "a1", bits="bits1", signed=int(prelu)),
             *([helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[pool] * nd, strides=[pool] * nd)]
               if pool else []),
             helper.make_node("Conv", ["p1" if pool else "a1", "w2q", "b2"], ["c2"], pads=[pad2] * 2 * nd,
                              strides=[stride2] * nd, group=c1 if depthwise else 1),
             helper.make_node("Relu", ["c2"], ["r2"]), _quant_node("r2", "s_a", "a2", signed=0),
             helper.make_node("Reshape", ["a2", "flat"], ["f"]), helper.make_node("Gemm", ["f", "fcq"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(np.asarray(v, np.int64 if k == "flat" else np.float32), k)
             for k, v in arrays.items()]
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                             [1, c0] + [size] * nd)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("qonnx.custom_op.general", 1)])
    model.ir_version = 10
    return model


def _dead_elements_gone(final):
    """io_parallel (a conv's unrolled matrix): no layer but the last has a neuron without
    weights, none but the first an input no weight reads, unless it is the one a layer keeps;
    a max-pool (which reads elements of several neurons) ends the chain from conv 1."""
    dense = [n.op for n in final.nodes if isinstance(n.op, Dense)]
    assert len(dense) == 3
    start = 1 if any(isinstance(n.op, MaxPool) for n in final.nodes) else 0
    for d in dense[start:-1]:
        assert d.weight.shape[0] == 1 or np.all(np.any(d.weight != 0, axis=1)), "a constant neuron survived"
    for d in dense[1 + start:]:
        assert d.weight.shape[1] == 1 or np.all(np.any(d.weight != 0, axis=0)), "an unread input survived"


def _dead_channels_gone(final, x):
    """io_stream (a conv's kernel over its windows, feature t*C + c; the head reads c*P + p):
    every channel of conv 1 and conv 2 that stays is read by a non-zero weight, and has weights,
    unless it is the one a layer keeps or, for conv 1, a constant that conv 2's padding reads
    as another value at the border (its columns not one value at every position)."""
    dense = [n for n in final.nodes if isinstance(n.op, Dense)]
    assert len(dense) == 3
    conv1, conv2, head = dense
    channels = [conv1.shape[-1], conv2.shape[-1]]
    reads = [np.any(conv2.op.weight != 0, axis=0).reshape(-1, channels[0]).any(axis=0),
             np.any(head.op.weight != 0, axis=0).reshape(channels[1], -1).any(axis=1)]
    for c, read in zip(channels, reads):
        assert c == 1 or read.all(), "a channel no weight reads survived"
    assert channels[1] == 1 or np.all(np.any(conv2.op.weight != 0, axis=1)), "a constant channel survived"
    window = emulate.run_codes(final, x)[conv2.inputs[0]]           # (frames, positions, taps * C)
    for c in np.flatnonzero(~np.any(conv1.op.weight != 0, axis=1)):
        cols = np.flatnonzero(np.any(conv2.op.weight != 0, axis=0) & (np.arange(window.shape[-1]) % channels[0] == c))
        varies = [len(np.unique(window[:, :, j])) > 1 for j in cols]
        assert channels[0] == 1 or any(varies), "a constant channel that folds survived"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pruned_conv_nets(), st.integers(0, 1000))
def test_dead_channels_go_across_convolutions(model, seed):
    """Every pass keeps the emulator's outputs (io_parallel and io_stream); after the pipeline
    dead elements (io_parallel) and dead channels (io_stream) are gone."""
    graph = import_model(model)
    x = random_inputs(graph, 300, seed=seed)
    expected = emulate.output_codes(graph, x)

    def hook(i, ps, g):
        for a, b in zip(expected, emulate.output_codes(g, x)):
            np.testing.assert_array_equal(a, b)

    _dead_elements_gone(run_pipeline(graph, pipeline(BuildConfig(io="io_parallel")), hook))
    _dead_channels_gone(run_pipeline(graph, pipeline(BuildConfig(io="io_stream")), hook), x)


def test_per_element_thresholds_keep_their_rows():
    """A dense layer -> (2, 3) -> thresholds a row an element -> flat -> a dense layer, one
    neuron constant (all weights zero) and one input unread: both go, each threshold row stays
    with its element, and the outputs do not change."""
    from fpgaq.ir.fixed import FixedType, Rounding
    from fpgaq.ir.graph import Graph, Origin, make_node
    from fpgaq.ir.ops import Reshape, Threshold
    rng = np.random.default_rng(3)
    o = Origin("t", "test")
    x = make_node("x", Input((4,)), (), o)
    q = make_node("q", Quant(FixedType(True, 6, 2), Rounding.ROUND, -31, 31), (x,), o)
    w1 = rng.integers(-5, 6, size=(6, 4))
    w1[2] = 0                                                  # neuron 2: its bias, a constant
    d1 = make_node("d1", Dense(w1, 2, rng.integers(-40, 40, size=6)), (q,), o)
    r1 = make_node("r1", Reshape((2, 3)), (d1,), o)
    rows = np.sort(rng.integers(-60, 60, size=(6, 3)), axis=1)
    model = Quant(FixedType(True, 3, 0), Rounding.ROUND, -4, 3)
    t = make_node("t", Threshold(FixedType(True, 3, 0), rows, rng.integers(-4, 0, size=6), model, r1.out), (r1,), o)
    r2 = make_node("r2", Reshape((6,)), (t,), o)
    w2 = rng.integers(1, 6, size=(3, 6))
    w2[:, 4] = 0                                               # element 4: read by nothing
    d2 = make_node("d2", Dense(w2, 0, rng.integers(-9, 9, size=3)), (r2,), o)
    graph = Graph((x, q, d1, r1, t, r2, d2), ("d2",))
    after = EliminateZeroWeights().run(graph)
    assert after["d1"].op.weight.shape == (4, 4) and after["d2"].op.weight.shape == (3, 4)
    assert after["r1"].shape == (4,) and after["t"].op.thresholds.shape == (4, 3)
    xs = random_inputs(graph, 3000, seed=2)
    np.testing.assert_array_equal(emulate.output_codes(graph, xs)[0], emulate.output_codes(after, xs)[0])


@pytest.mark.parametrize("io", ["io_parallel", "io_stream"])
def test_a_dsp_budget_of_zero_builds_a_design_without_dsps(tmp_path, io):
    """--reuse auto --dsp-budget 0: every product in LUTs (Vitis: config_op mul -impl fabric), R = 1;
    the estimate counts no DSP and more LUTs than the DSP design; the C-simulation stays exact."""
    from conftest import TESTS, csim_exact
    model = TESTS / "fixtures" / "brevitas_cnn" / "maxpool2d.onnx"
    with_dsps = report_data(compile_file(model, BuildConfig(io=io)), BuildConfig(io=io))
    assert with_dsps["total"]["dsp"] > 0
    x = np.load(TESTS / "fixtures" / "brevitas_cnn" / "inputs_maxpool2d.npy")[:40]
    project = csim_exact(model, tmp_path / "p", x, io=io, reuse="auto", dsp_budget=0)
    assert project.report["total"]["dsp"] == 0
    assert project.report["total"]["lut"] > with_dsps["total"]["lut"]
    assert all(n.op.fabric and n.op.reuse == 1 for n in project.graph.nodes if isinstance(n.op, Dense))
    assert "config_op mul -impl fabric" in (tmp_path / "p" / "build_prj.tcl").read_text()


def test_verify_after_a_pass_derives_what_changed_and_what_reads_it():
    """verify(graph, verified) skips only nodes that are the same objects reading the same
    objects as in a graph it passed: a node whose tensor is wrong is caught whether it was
    replaced itself or an input it reads was."""
    from dataclasses import replace

    from fpgaq.ir.graph import make_node, verify
    graph = import_model(modelgen.qonnx_mlp([6, 5, 3], rng=np.random.default_rng(4)))
    verify(graph)
    verify(graph, graph)                       # nothing changed: nothing to derive, and no error

    def swapped(k, node):
        return graph.replace_nodes([*graph.nodes[:k], node, *graph.nodes[k + 1:]])

    i, dense = next((k, n) for k, n in enumerate(graph.nodes) if n.name == "dense")
    wrong = replace(dense.out, shape=(dense.out.shape[0] + 1,))
    with pytest.raises(AssertionError, match="dense: stored tensor"):
        verify(swapped(i, replace(dense, out=wrong)), graph)
    # the input quantizer changed consistently (a narrower range), the layer reading it kept as
    # it was: the layer is derived again from the new tensor, and its stale one is caught
    j, quant = next((k, n) for k, n in enumerate(graph.nodes) if n.name == "quant")
    narrow = replace(quant.op, lo=quant.op.lo // 2, hi=quant.op.hi // 2)
    new = make_node("quant", narrow, [graph[n] for n in quant.inputs], quant.origin)
    assert new.out != quant.out
    verify(swapped(j, new).replace_nodes(swapped(j, new).nodes[:j + 1], [new.name]), graph)
    with pytest.raises(AssertionError, match="dense: stored tensor"):
        verify(swapped(j, new), graph)
