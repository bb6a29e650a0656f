"""QDQ / QCDQ models against onnxruntime (graph optimisations disabled), exactly.

QuantizeLinear rounds half to even and saturates to its integer type; DequantizeLinear and the
float Gemm/MatMul are exact here (power-of-two scales, zero zero-points, accumulators below
2**24 LSBs), so `assert_array_equal` holds, never a tolerance.
"""
from __future__ import annotations


import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, reject, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal
from onnx import TensorProto, helper, numpy_helper

import modelgen as mg
from probe_inputs import probe_inputs
from qonnx_reference import run_onnxruntime

from fpgaq import emulate
from fpgaq.frontend.importer import import_model
from fpgaq.passes.pipeline import run_pipeline
from fpgaq.ir.ops import Clip, Dense, Quant


def check_against_onnxruntime(model, x=None, seed=0, graph=None):
    """The graph as imported and as compiled, both exactly equal to onnxruntime; the compiled one."""
    imported = import_model(model)
    graph = run_pipeline(imported)
    x = probe_inputs(graph, seed) if x is None else x
    want = run_onnxruntime(model, x)
    for g in (imported, graph):
        got = emulate.run(g, x)
        assert len(got) == len(want)
        for a, w in zip(got, want):
            assert_array_equal(a, w.reshape(a.shape))
    return graph


# --- hypothesis-generated QDQ / QCDQ networks -------------------------------------------------

@st.composite
def qdq_networks(draw):
    n_layers = draw(st.integers(1, 4))
    sizes = [draw(st.integers(1, 16))] + [draw(st.integers(1, 24)) for _ in range(n_layers)]
    clip = draw(st.booleans())
    act_bits = st.integers(2, 8) if clip else st.just(8)
    kw = dict(
        rng=draw(st.integers(0, 2**32 - 1)),
        clip=clip,
        in_bits=draw(act_bits), in_frac=draw(st.integers(-2, 8)), in_signed=draw(st.booleans()),
        w_bits=draw(st.lists(st.integers(2, 8), min_size=n_layers, max_size=n_layers)),
        act_bits=draw(st.lists(act_bits, min_size=n_layers, max_size=n_layers)),
        act_frac=draw(st.one_of(st.none(), st.lists(st.one_of(st.none(), st.integers(-2, 10)),
                                                    min_size=n_layers, max_size=n_layers))),
        act_signed=draw(st.booleans()),
        sparsity=draw(st.sampled_from([0.0, 0.5, 0.7, 0.9])),
        bias=draw(st.booleans()),
        final_quant=draw(st.booleans()),
        relu=draw(st.booleans()),
        gemm=draw(st.booleans()),
        style=draw(st.sampled_from(["brevitas", "clean"])),
        batch=draw(st.sampled_from([1, "batch"])),
        ir_version=draw(st.integers(7, 10)),
        opset=draw(st.integers(13, 20)),
    )
    try:
        model = mg.qdq_mlp(sizes, **kw)
    except ValueError as e:
        if "2**24" in str(e):
            reject()
        raise
    return sizes, kw, model


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(qdq_networks(), st.integers(0, 2**32 - 1))
def test_random_qdq_networks(net, seed):
    sizes, kw, model = net
    note(f"sizes={sizes} {kw}")
    check_against_onnxruntime(model, seed=seed)


@pytest.mark.parametrize("clip", [False, True])
@pytest.mark.parametrize("act_signed", [False, True])
def test_qdq_mlp(clip, act_signed):
    model = mg.qdq_mlp([16, 32, 16, 5], rng=3, clip=clip, act_signed=act_signed,
                       act_bits=6 if clip else 8, in_bits=7 if clip else 8)
    graph = check_against_onnxruntime(model)
    weights = [n for n in graph.nodes if isinstance(n.op, Dense)]
    assert len(weights) == 3
    if clip:   # the Clip narrows an int8/uint8 tensor to 6 bits: it is a real saturation
        assert any(isinstance(n.op, Clip) for n in graph.nodes)


# --- hand-built QDQ models: int16, per-axis weight scales, output_dtype -----------------------

def _init(name, array, dtype):
    return numpy_helper.from_array(np.asarray(array).astype(dtype), name)


def _qdq_dense_model(rng, *, n_in=6, n_out=4, x_type=TensorProto.INT8, w_type=TensorProto.INT8,
                     y_type=TensorProto.INT8, x_frac=4, w_frac=None, y_frac=3, w_max=100,
                     clip=None, opset=21, output_dtype=False, per_axis=False):
    """Q(x) -> DQ -> Gemm(DQ(W int), DQ(b int32)) -> Q(y) -> DQ, hand-built."""
    np_of = {TensorProto.INT8: np.int8, TensorProto.UINT8: np.uint8, TensorProto.INT16: np.int16,
             TensorProto.UINT16: np.uint16, TensorProto.INT32: np.int32}
    w = rng.integers(-w_max, w_max + 1, size=(n_out, n_in))
    w_fracs = np.array([w_frac or 5] * n_out) if not per_axis else rng.integers(2, 8, size=n_out)
    b_fracs = x_frac + w_fracs
    b = rng.integers(-2000, 2001, size=n_out)
    if per_axis:
        b = b * (1 << (b_fracs.max() - b_fracs))        # one bias grid: the finest accumulator
    inits = [
        _init("sx", 2.0 ** -x_frac, np.float32), _init("zx", 0, np_of[x_type]),
        _init("W", w, np_of[w_type]),
        _init("sw", 2.0 ** -w_fracs if per_axis else 2.0 ** -w_fracs[0], np.float32),
        _init("zw", np.zeros(n_out) if per_axis else 0, np_of[w_type]),
        _init("B", b, np.int32), _init("sb", 2.0 ** -b_fracs.max(), np.float32),
        _init("zb", 0, np.int32),
        _init("sy", 2.0 ** -y_frac, np.float32), _init("zy", 0, np_of[y_type]),
    ]

    def q(inp, out, s, z, elem):
        if output_dtype:
            return helper.make_node("QuantizeLinear", [inp, s], [out], output_dtype=elem)
        return helper.make_node("QuantizeLinear", [inp, s, z], [out])

    nodes = [q("x", "xq", "sx", "zx", x_type),
             helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
             helper.make_node("DequantizeLinear", ["W", "sw", "zw"], ["wd"], axis=0),
             helper.make_node("DequantizeLinear", ["B", "sb", "zb"], ["bd"]),
             helper.make_node("Gemm", ["xd", "wd", "bd"], ["acc"], transB=1),
             q("acc", "yq", "sy", "zy", y_type)]
    last = "yq"
    if clip is not None:
        inits += [_init("lo", clip[0], np_of[y_type]), _init("hi", clip[1], np_of[y_type])]
        nodes.append(helper.make_node("Clip", ["yq", "lo", "hi"], ["yc"]))
        last = "yc"
    nodes.append(helper.make_node("DequantizeLinear", [last, "sy", "zy"], ["y"]))
    graph = helper.make_graph(nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", n_in])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", n_out])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


@pytest.mark.parametrize("x_type, y_type", [
    (TensorProto.INT16, TensorProto.INT16),
    (TensorProto.INT8, TensorProto.INT16),
    (TensorProto.UINT8, TensorProto.UINT16),
    (TensorProto.INT16, TensorProto.UINT8),
])
def test_int16_activations(x_type, y_type):
    rng = np.random.default_rng(1)
    x_frac = 10 if x_type == TensorProto.INT16 else 4
    model = _qdq_dense_model(rng, x_type=x_type, y_type=y_type, x_frac=x_frac, w_max=7, y_frac=6)
    graph = check_against_onnxruntime(model)
    q_in = graph.consumers(graph.inputs[0].name)[0].op
    assert q_in.type.width == (16 if x_type == TensorProto.INT16 else 8)


def test_int16_weights():
    rng = np.random.default_rng(2)
    model = _qdq_dense_model(rng, w_type=TensorProto.INT16, w_max=3000, w_frac=12, x_frac=2, y_frac=2)
    graph = check_against_onnxruntime(model)
    (d,) = [n for n in graph.nodes if isinstance(n.op, Dense)]
    assert np.abs(d.op.weight).max() > 127


@pytest.mark.parametrize("y_type, bounds", [
    (TensorProto.INT8, (-31, 31)),       # QCDQ: a 6-bit narrow activation held in int8
    (TensorProto.UINT8, (0, 15)),        # a 4-bit unsigned activation held in uint8
    (TensorProto.INT8, (-128, 127)),     # bounds that never bite
    (TensorProto.UINT8, (3, 200)),       # asymmetric bounds (onnxruntime has no int16 Clip)
])
def test_clip_between_quantize_and_dequantize(y_type, bounds):
    rng = np.random.default_rng(3)
    model = _qdq_dense_model(rng, y_type=y_type, clip=bounds, y_frac=5)
    graph = check_against_onnxruntime(model)
    clips = [n for n in graph.nodes if isinstance(n.op, Clip)]
    if bounds == (-128, 127):
        assert not clips, "bounds equal to the type's range are dropped"
    else:
        (c,) = clips
        assert c.interval.lo >= bounds[0] and c.interval.hi <= bounds[1]


def test_per_axis_weight_scales():
    """Per-output-channel weight scales (DequantizeLinear axis=0), as QDQ exports often have."""
    rng = np.random.default_rng(4)
    model = _qdq_dense_model(rng, per_axis=True, w_max=60)
    check_against_onnxruntime(model)


def test_output_dtype_attribute_without_zero_point():
    """opset 21: QuantizeLinear(output_dtype=...) with no zero-point input."""
    rng = np.random.default_rng(5)
    model = _qdq_dense_model(rng, output_dtype=True, x_type=TensorProto.INT8, y_type=TensorProto.UINT8)
    graph = check_against_onnxruntime(model)
    out_q = [n for n in graph.nodes if isinstance(n.op, Quant)][-1]
    assert (out_q.op.lo, out_q.op.hi) == (0, 255)


def test_missing_zero_point_means_uint8():
    """QuantizeLinear without a zero-point quantizes to uint8 (the ONNX default)."""
    rng = np.random.default_rng(6)
    model = _qdq_dense_model(rng, opset=13)
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear" and n.output[0] == "xq":
            del n.input[2]
        if n.op_type == "DequantizeLinear" and n.input[0] == "xq":
            del n.input[2]
    graph = check_against_onnxruntime(model)
    q_in = graph.consumers(graph.inputs[0].name)[0].op
    assert (q_in.type.signed, q_in.lo, q_in.hi) == (False, 0, 255)
