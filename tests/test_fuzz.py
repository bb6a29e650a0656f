"""Fuzzing: mutated models (bytes, attributes, shapes, initializers, wiring) give either a
working build or a clear FpgaqError, never another exception, in bounded time."""
import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper, numpy_helper

import modelgen
from fpgaq import emulate
from fpgaq.backends.hls.writer import render_project
from fpgaq.config import BuildConfig
from fpgaq.errors import FpgaqError
from fpgaq.frontend.importer import import_model
from fpgaq.frontend.model_file import load
from fpgaq.passes.pipeline import pipeline, run_pipeline
from fpgaq.stimulus import random_inputs

BASES = [
    modelgen.qonnx_mlp([6, 8, 3], rng=1, sparsity=0.5),
    modelgen.qonnx_mlp([5, 7, 4], rng=2, final_quant=False, gemm=False, bias="float"),
    modelgen.qdq_mlp([6, 8, 3], rng=3, clip=True, act_bits=6),
]
SETTINGS = dict(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def compile_all(model: onnx.ModelProto) -> None:
    """Everything a build does short of writing files: import, passes, HLS code, emulation."""
    try:
        graph = run_pipeline(import_model(model), pipeline(BuildConfig()))
        render_project(graph, BuildConfig())
        emulate.run(graph, random_inputs(graph, 50))
    except FpgaqError as e:
        assert str(e).strip(), "an error without a message"


def check_file(tmp_path, data: bytes) -> None:
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    try:
        model = load(path)
    except FpgaqError:
        return
    compile_all(model)


@settings(**SETTINGS)
@given(base=st.sampled_from(range(len(BASES))), cut=st.floats(0, 1), flips=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8))
def test_mutated_bytes(tmp_path_factory, base, cut, flips):
    data = bytearray(BASES[base].SerializeToString())
    for pos, byte in flips:
        data[int(pos * len(data))] = byte
    data = bytes(data[: max(1, int(cut * len(data)))]) if cut < 0.9 else bytes(data)
    check_file(tmp_path_factory.mktemp("fz"), data)


ATTR_VALUES = st.one_of(st.integers(-3, 70), st.floats(allow_nan=True, allow_infinity=True, width=32),
                        st.sampled_from(["ROUND", "CEIL", "bogus", "", "HALF_EVEN"]),
                        st.lists(st.integers(-2, 3), max_size=3))


@settings(**SETTINGS)
@given(base=st.sampled_from(range(len(BASES))), node=st.integers(0, 100),
       name=st.sampled_from(["signed", "narrow", "rounding_mode", "transA", "transB", "alpha", "beta",
                             "axis", "perm", "epsilon", "min", "max"]),
       value=ATTR_VALUES)
def test_mutated_attributes(base, node, name, value):
    model = onnx.ModelProto()
    model.CopyFrom(BASES[base])
    n = model.graph.node[node % len(model.graph.node)]
    kept = [a for a in n.attribute if a.name != name]
    del n.attribute[:]
    n.attribute.extend(kept + [helper.make_attribute(name, value)] if value != [] else kept)
    compile_all(model)


DIMS = st.one_of(st.integers(-2, 3), st.just(10**7), st.just(2**40), st.sampled_from(["batch", "N", ""]))


@settings(**SETTINGS)
@given(base=st.sampled_from(range(len(BASES))), dims=st.lists(DIMS, min_size=0, max_size=4))
def test_mutated_input_shapes(base, dims):
    model = onnx.ModelProto()
    model.CopyFrom(BASES[base])
    vi = model.graph.input[0]
    shape = vi.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        elif d >= 0:
            dim.dim_value = d
    compile_all(model)


VALUES = st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e-30, 0.3, 2.0**-140, 7.0, -1.0])


@settings(**SETTINGS)
@given(base=st.sampled_from(range(len(BASES))), which=st.integers(0, 1000), value=VALUES,
       shape=st.sampled_from(["same", "empty", "scalar", "bigger", "int8", "int64"]))
def test_mutated_initializers(base, which, value, shape):
    model = onnx.ModelProto()
    model.CopyFrom(BASES[base])
    inits = model.graph.initializer
    t = inits[which % len(inits)]
    a = numpy_helper.to_array(t)
    if shape == "same":
        b = np.full(a.shape, value, dtype=a.dtype if a.dtype.kind == "f" else np.float32)
    elif shape == "empty":
        b = np.zeros((0,) + a.shape[1:], dtype=a.dtype)
    elif shape == "scalar":
        b = np.array(value, dtype=np.float32)
    elif shape == "bigger":
        b = np.ones(tuple(d + 1 for d in a.shape) or (2,), dtype=a.dtype)
    else:
        b = np.clip(np.nan_to_num(a), -100, 100).astype(shape)
    t.CopyFrom(numpy_helper.from_array(b, t.name))
    compile_all(model)


@settings(**SETTINGS)
@given(base=st.sampled_from(range(len(BASES))), node=st.integers(0, 100), slot=st.integers(0, 5),
       target=st.integers(0, 1000), dangling=st.booleans(), drop=st.booleans())
def test_rewired_graphs(base, node, slot, target, dangling, drop):
    model = onnx.ModelProto()
    model.CopyFrom(BASES[base])
    g = model.graph
    n = g.node[node % len(g.node)]
    if drop:
        g.node.remove(n)
    elif n.input:
        names = [o for m in g.node for o in m.output] + [t.name for t in g.initializer]
        n.input[slot % len(n.input)] = "nowhere" if dangling else names[target % len(names)]
    compile_all(model)


def test_cycle_is_reported():
    model = onnx.ModelProto()
    model.CopyFrom(BASES[0])
    g = model.graph
    first = next(n for n in g.node if n.op_type == "Gemm")
    last = g.node[-1]
    first.input[0] = last.output[0]
    with pytest.raises(FpgaqError, match="cycle"):
        import_model(model)


def test_size_limit_refuses_huge_models_before_decoding():
    model = modelgen.qonnx_mlp([6, 8, 3], rng=1)
    with pytest.raises(FpgaqError, match=r"more than the limit of 20; raise it with --max-ops"):
        import_model(model, max_ops=20)
    big = onnx.ModelProto()
    big.CopyFrom(model)
    t = big.graph.initializer.add()
    t.name = "huge"
    t.data_type = onnx.TensorProto.FLOAT
    t.dims.extend([10**6, 10**6])          # declared, never materialised
    with pytest.raises(FpgaqError, match=r"^initializer 'huge' holds 1,000,000,000,000 values"):
        import_model(big)


def test_zero_size_tensors_are_refused():
    model = modelgen.qonnx_mlp([6, 8, 3], rng=1, weights_as_inputs=False)
    g = model.graph
    t = next(t for t in g.initializer if len(t.dims) == 2)
    t.CopyFrom(numpy_helper.from_array(np.zeros((0, t.dims[1]), dtype=np.float32), t.name))
    with pytest.raises(FpgaqError, match=r"with no elements"):
        import_model(model)
    model = modelgen.qonnx_mlp([6, 8, 3], rng=1)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_value = 0
    with pytest.raises(FpgaqError, match=r"graph input '[^']+' has shape \[1, 0\], with no elements"):
        import_model(model)
