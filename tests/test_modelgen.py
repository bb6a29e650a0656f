"""Fast checks of the test-model builders in tests/modelgen.py."""

from __future__ import annotations

import os
import sys

import numpy as np
import onnx
import pytest
from numpy.testing import assert_array_equal
from onnx import numpy_helper

try:
    from tests import modelgen as mg
except ImportError:  # tests/ is not a package: pytest put this folder on sys.path
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import modelgen as mg

SIZES = [16, 64, 32, 32, 5]


# --------------------------------------------------------------------------- a tiny reference


def _run(model: onnx.ModelProto, x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """Execute the op subset the builders emit, in ``dtype`` (float64: exact)."""
    from qonnx.custom_op.general.intquant import int_quant

    env = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    env = {k: (v.astype(dtype) if v.dtype.kind == "f" else v) for k, v in env.items()}
    env[model.graph.input[0].name] = x.astype(dtype)
    for n in model.graph.node:
        a = {at.name: onnx.helper.get_attribute_value(at) for at in n.attribute}
        i = [env[t] for t in n.input]
        if n.op_type in ("Quant", "IntQuant"):
            mode = a.get("rounding_mode", b"ROUND")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            y = int_quant(i[0], i[1], i[2], i[3], a["signed"], a["narrow"], mode).astype(dtype)
        elif n.op_type == "Gemm":
            A = i[0].T if a.get("transA", 0) else i[0]
            Bm = i[1].T if a.get("transB", 0) else i[1]
            y = dtype(a.get("alpha", 1.0)) * (A @ Bm)
            if len(i) > 2:
                y = y + dtype(a.get("beta", 1.0)) * i[2]
        elif n.op_type == "MatMul":
            y = i[0] @ i[1]
        elif n.op_type == "Add":
            y = i[0] + i[1]
        elif n.op_type == "Relu":
            y = np.maximum(i[0], 0)
        elif n.op_type == "Transpose":
            y = np.transpose(i[0], a["perm"])
        elif n.op_type == "QuantizeLinear":
            info = np.iinfo(i[2].dtype)
            y = np.clip(np.round(i[0] / i[1]) + i[2], info.min, info.max).astype(i[2].dtype)
        elif n.op_type == "Clip":
            y = np.clip(i[0], i[1], i[2])
        elif n.op_type == "DequantizeLinear":
            zp = i[2] if len(i) > 2 else 0
            y = ((i[0].astype(np.int64) - zp) * i[1].astype(np.float64)).astype(dtype)
        else:
            raise NotImplementedError(n.op_type)
        env[n.output[0]] = y
    return env[model.graph.output[0].name]


def _inputs(n_in: int, seed: int = 1, n: int = 300) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, n_in)) * 1.5).astype(np.float32)


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    name = model.graph.input[0].name
    return np.concatenate([sess.run(None, {name: row[None, :]})[0] for row in x])


def _inits(model):
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


# --------------------------------------------------------------------------- QONNX

QONNX_VARIANTS = {
    "default": {},
    "intquant_finn": dict(op_name="IntQuant", domain=mg.FINN_DOMAIN),
    "float_bias": dict(bias="float"),
    "no_bias_no_final_quant": dict(bias="none", final_quant=False),
    "matmul": dict(gemm=False),
    "transposes_alpha_beta": dict(trans_a=1, trans_b=0, alpha=0.5, beta=2.0),
    "rounding_list": dict(rounding_mode=["HALF_UP", "FLOOR", "CEIL", "DOWN", "HALF_DOWN"], act_frac=2),
    "clean_symbolic_batch": dict(style="clean", batch="batch", w_frac=[4, 5, 5, 5]),
    "ir6_op13": dict(ir_version=6, opset=13),
    "ir10_op20": dict(ir_version=10, opset=20),
}


@pytest.mark.parametrize("variant", sorted(QONNX_VARIANTS))
def test_qonnx_mlp_is_valid_and_exact(variant):
    kw = QONNX_VARIANTS[variant]
    m = mg.qonnx_mlp(SIZES, rng=np.random.default_rng(7), **kw)
    onnx.checker.check_model(m)
    assert m.ir_version == kw.get("ir_version", 8)
    opsets = {o.domain: o.version for o in m.opset_import}
    assert opsets[""] == kw.get("opset", 13)
    assert opsets[kw.get("domain", mg.QONNX_DOMAIN)] == 1
    x = _inputs(SIZES[0])
    y64 = _run(m, x, np.float64)
    y32 = _run(m, x, np.float32)
    assert_array_equal(y32.astype(np.float64), y64)  # float32 reference is exact
    assert y64.shape == (len(x), SIZES[-1])
    assert np.count_nonzero(y64) > 0 and len(np.unique(y64)) > 20


def test_qonnx_brevitas_style():
    m = mg.qonnx_mlp(SIZES, rng=3)
    inits = _inits(m)
    g_inputs = [i.name for i in m.graph.input]
    assert g_inputs[0] == "global_in" and set(g_inputs[1:]) == set(inits)
    assert all(n.name == "" for n in m.graph.node)
    scalars = {k: v for k, v in inits.items() if v.ndim == 0}
    assert all(v.dtype == np.float32 for v in scalars.values())
    values = [v.tobytes() for v in scalars.values()]
    assert len(values) == len(set(values)), "equal scalars must share one initializer"
    quants = [n for n in m.graph.node if n.op_type == "Quant"]
    assert len(quants) == 1 + 4 + 4 + 4  # input, weight, bias, act per layer
    uses = {}
    for q in quants:
        assert len(q.input) == 4 and all(t in scalars for t in q.input[1:])
        for t in q.input[1:]:
            uses[t] = uses.get(t, 0) + 1
        assert {a.name for a in q.attribute} == {"signed", "narrow", "rounding_mode"}
    assert max(uses.values()) == len(quants)  # the zero point is shared by all
    assert m.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    gemms = [n for n in m.graph.node if n.op_type == "Gemm"]
    assert len(gemms) == 4
    for gm in gemms:
        assert onnx.helper.get_attribute_value(next(a for a in gm.attribute if a.name == "transB")) == 1


def test_qonnx_weights_biases_are_on_their_grids():
    m = mg.qonnx_mlp(SIZES, rng=11, bias="float", sparsity=0.7)
    inits = _inits(m)
    producers = {o: n for n in m.graph.node for o in n.output}
    quant_of = {n.input[0]: n for n in m.graph.node if n.op_type == "Quant"}
    for gm in (n for n in m.graph.node if n.op_type == "Gemm"):
        wq = producers[gm.input[1]]
        w = inits[wq.input[0]].astype(np.float64)
        w_frac = -int(np.log2(inits[wq.input[1]]))
        assert inits[wq.input[3]] == 6.0
        codes = w * 2.0**w_frac
        assert_array_equal(codes, np.round(codes))
        assert np.abs(codes).max() <= 31
        assert np.count_nonzero(codes) == w.size - round(0.7 * w.size)
        # the layer's input quantizer gives x_frac
        x_frac = -int(np.log2(inits[producers[gm.input[0]].input[1]]))
        b = inits[gm.input[2]].astype(np.float64) * 2.0 ** (x_frac + w_frac)
        assert_array_equal(b, np.round(b))
        assert gm.input[2] not in quant_of


def test_qonnx_quantized_bias_and_rounding_modes():
    m = mg.qonnx_mlp([4, 8, 3], rng=0, rounding_mode=["HALF_UP", "FLOOR", "CEIL"], bias_bits=12)
    modes = [
        onnx.helper.get_attribute_value(next(a for a in n.attribute if a.name == "rounding_mode")).decode()
        for n in m.graph.node
        if n.op_type == "Quant"
    ]
    # input, w1, b1, act1, w2, b2, out
    assert modes == ["HALF_UP", "ROUND", "ROUND", "FLOOR", "ROUND", "ROUND", "CEIL"]
    with pytest.raises(ValueError, match="rounding_mode list"):
        mg.qonnx_mlp([4, 8, 3], rng=0, rounding_mode=["ROUND"])


def test_deterministic():
    a = mg.qonnx_mlp(SIZES, rng=5).SerializeToString()
    b = mg.qonnx_mlp(SIZES, rng=np.random.default_rng(5)).SerializeToString()
    c = mg.qonnx_mlp(SIZES, rng=6).SerializeToString()
    assert a == b != c
    assert mg.qdq_mlp(SIZES, rng=5).SerializeToString() == mg.qdq_mlp(SIZES, rng=5).SerializeToString()


def test_exactness_guard():
    with pytest.raises(ValueError, match="2\\*\\*24"):
        mg.qonnx_mlp([256, 4], rng=0, in_bits=16, w_bits=8, sparsity=0.0, bias="none")
    mg.qonnx_mlp([256, 4], rng=0, in_bits=16, w_bits=8, sparsity=0.0, bias="none", check_exact=False)
    with pytest.raises(ValueError, match="power of two"):
        mg.qonnx_mlp([4, 3], rng=0, alpha=0.3)


def test_qonnx_loads_in_qonnx():
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    mw = cleanup_model(ModelWrapper(mg.qonnx_mlp(SIZES, rng=2)))
    assert [n.op_type for n in mw.graph.node].count("Gemm") == 4
    assert mw.get_tensor_shape(mw.graph.output[0].name) == [1, 5]


# --------------------------------------------------------------------------- QDQ

QDQ_VARIANTS = {
    "default": {},
    "qcdq_6bit": dict(clip=True, act_bits=6, in_bits=6, w_bits=6),
    "matmul_no_final": dict(gemm=False, final_quant=False),
    "clean_ir10_op20": dict(style="clean", ir_version=10, opset=20, batch="batch"),
    "ir6_op13_nobias": dict(ir_version=6, bias=False),
}


@pytest.mark.parametrize("variant", sorted(QDQ_VARIANTS))
def test_qdq_mlp_runs_on_onnxruntime_exactly(variant):
    kw = QDQ_VARIANTS[variant]
    m = mg.qdq_mlp(SIZES, rng=np.random.default_rng(4), **kw)
    onnx.checker.check_model(m)
    ops = {n.op_type for n in m.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Relu"} <= ops
    assert ("Clip" in ops) == bool(kw.get("clip"))
    inits = _inits(m)
    for k in ("fc1.weight", "fc2.weight"):
        assert inits[k].dtype == np.int8
    if kw.get("bias", True):
        assert inits["fc1.bias"].dtype == np.int32
    x = _inputs(SIZES[0], n=64)
    y = _ort(m, x)
    assert_array_equal(y.astype(np.float64), _run(m, x))
    assert len(np.unique(y)) > 10


def test_qdq_sub8bit_needs_clip():
    with pytest.raises(ValueError, match="clip=True"):
        mg.qdq_mlp([4, 3], rng=0, act_bits=6, in_bits=6)


# --------------------------------------------------------------------------- bad inputs


def test_with_op_appends_softmax():
    m = mg.with_op(mg.qdq_mlp([8, 16, 4], rng=0), "Softmax", axis=-1)
    onnx.checker.check_model(m)
    assert m.graph.node[-1].op_type == "Softmax"
    assert m.graph.node[-1].output[0] == m.graph.output[0].name
    y = _ort(m, _inputs(8, n=4))
    np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)  # it is a softmax (tolerance ok here)


@pytest.mark.parametrize("qdq", [False, True])
@pytest.mark.parametrize("target", ["input", "weight", "act"])
def test_non_pow2_scale(qdq, target):
    m = mg.non_pow2_scale_model(rng=0, scale=0.3, target=target, qdq=qdq)
    onnx.checker.check_model(m)
    inits = _inits(m)
    hits = [n for n in m.graph.node if n.op_type in mg._QUANT_OPS
            and np.isclose(inits[n.input[1]], 0.3)]
    assert len(hits) == (2 if qdq and target != "weight" else 1)
    if qdq:
        _ort(m, _inputs(8, n=2))


@pytest.mark.parametrize("qdq", [False, True])
def test_nonzero_zeropt(qdq):
    m = mg.nonzero_zeropt_model(rng=0, zeropt=3, qdq=qdq)
    onnx.checker.check_model(m)
    inits = _inits(m)
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type in mg._QUANT_OPS]
    assert sum(int(z) == 3 for z in zps) == (2 if qdq else 1)
    assert all(int(z) in (0, 3) for z in zps)


def test_dynamic_features():
    m = mg.dynamic_features_model(rng=0)
    onnx.checker.check_model(m)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "F"]


@pytest.mark.parametrize("external", [False, True])
def test_save_roundtrip(tmp_path, external):
    m = mg.qonnx_mlp([8, 16, 4], rng=0)
    path = mg.save(m, tmp_path / "sub" / "m.onnx", external_data=external)
    assert os.path.exists(path)
    assert os.path.exists(path + ".data") == external
    back = onnx.load(path)
    onnx.checker.check_model(path)
    assert_array_equal(_inits(back)["fc1.weight"], _inits(m)["fc1.weight"])
