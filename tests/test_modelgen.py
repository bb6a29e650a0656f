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
        elif n.op_type == "BatchNormalization":
            y = (i[0] - i[3]) / np.sqrt(i[4] + dtype(a.get("epsilon", 1e-5))) * i[1] + i[2]
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


# --------------------------------------------------------------------------- the Net builder


def _execute(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """qonnx's reference execution for QONNX, onnxruntime (no graph optimisation) for QDQ."""
    from qonnx_reference import run_onnxruntime, run_reference

    qonnx = any(n.op_type in ("Quant", "IntQuant") for n in model.graph.node)
    return (run_reference if qonnx else run_onnxruntime)(model, x)[0]


def _check_exact(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """Valid, and qonnx / onnxruntime give exactly the float64 result (float32 is exact)."""
    onnx.checker.check_model(model, full_check=True)
    want = _run(model, x, np.float64)
    assert_array_equal(_run(model, x, np.float32).astype(np.float64), want)
    got = _execute(model, x)
    assert_array_equal(got.astype(np.float64).reshape(want.shape), want)
    return want


# one recipe per layer kind; bias_bits=16 in both formats, so QONNX and QDQ compute the same
RECIPES = {
    "quant": lambda n: n.input(12, frac=3).quant(bits=8, frac=2, signed=True),
    "dense_gemm": lambda n: n.input(12).dense(20, bias_bits=16).relu().quant().dense(6, bias_bits=16).quant(),
    "dense_matmul": lambda n: n.input(12).dense(20, gemm=False, bias="float").relu().quant()
                               .dense(6, gemm=False, bias="none"),
    "dense_trans_alpha_beta": lambda n: n.input(12).dense(16, trans_a=1, trans_b=0, alpha=0.5, beta=2.0, bias_bits=16)
                                         .relu().quant().dense(5, w_frac=4, sparsity=0.0, bias_bits=16).quant(),
    "batchnorm": lambda n: n.input(12).dense(16, bias_bits=16).batchnorm().relu().quant()
                            .dense(5, bias_bits=16).quant(),
    "clip": lambda n: n.input(12).dense(16, bias_bits=16).clip(-1.5, 2.25).quant().dense(5, bias_bits=16),
    "relu6": lambda n: n.input(12).dense(16, bias_bits=16).clip().quant(signed=False),
    "add": lambda n: n.input(12).dense(16, bias_bits=16).relu().quant().tag("skip").dense(16, bias_bits=16)
                      .relu().quant().add("skip").quant().dense(5, bias_bits=16).quant(),
}


@pytest.mark.parametrize("fmt", ["qonnx", "qdq"])
@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_net_layer_kinds_run_exactly(recipe, fmt):
    m = RECIPES[recipe](mg.Net(rng=9, fmt=fmt)).model()
    ops = {n.op_type for n in m.graph.node}
    assert ("Quant" in ops) == (fmt == "qonnx") and ("QuantizeLinear" in ops) == (fmt == "qdq")
    want = {"batchnorm": "BatchNormalization", "clip": "Clip", "relu6": "Clip", "dense_matmul": "MatMul",
            "dense_trans_alpha_beta": "Transpose", "add": "Add", "dense_gemm": "Gemm"}.get(recipe)
    assert want is None or want in ops
    x = _inputs(12, n=200)
    y = _check_exact(m, x)
    assert len(np.unique(y)) > 5


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_net_formats_compute_the_same_function(recipe):
    """The same layer calls (same rng) in QONNX and QDQ give the same outputs, exactly."""
    x = _inputs(12, seed=2, n=100)
    qonnx, qdq = (_execute(RECIPES[recipe](mg.Net(rng=4, fmt=f)).model(), x) for f in ("qonnx", "qdq"))
    assert_array_equal(qonnx, qdq)


def test_net_matches_the_mlp_functions():
    m = mg.Net(rng=5).input(16).dense(64).relu().quant().dense(5).quant().model()
    assert m.SerializeToString() == mg.qonnx_mlp([16, 64, 5], rng=5).SerializeToString()
    m = mg.Net(rng=5, fmt="qcdq").input(16, bits=6).dense(64, w_bits=8).relu().quant(bits=6).dense(5, w_bits=8).model()
    assert m.SerializeToString() == mg.qdq_mlp([16, 64, 5], rng=5, clip=True, in_bits=6, act_bits=6, w_bits=8,
                                               final_quant=False).SerializeToString()


def _bn(model):
    (node,) = [n for n in model.graph.node if n.op_type == "BatchNormalization"]
    inits = _inits(model)
    eps = onnx.helper.get_attribute_value(next(a for a in node.attribute if a.name == "epsilon"))
    return [inits[t] for t in node.input[1:]] + [np.float32(eps)]


def _is_pow2(v) -> np.ndarray:
    return np.frexp(np.abs(np.asarray(v, np.float64)))[0] == 0.5


@pytest.mark.parametrize("fmt", ["qonnx", "qdq"])
def test_exact_batchnorm_folds_to_powers_of_two(fmt):
    m = mg.Net(rng=3, fmt=fmt).input(10).dense(24, bias_bits=16).batchnorm().relu().quant().dense(4).model()
    gamma, beta, mean, var, eps = _bn(m)
    assert all(t.dtype == np.float32 for t in (gamma, beta, mean, var))
    v = var + eps  # float32, as onnxruntime adds them
    assert_array_equal(v.astype(np.float64), var.astype(np.float64) + np.float64(eps))  # no rounding
    root = np.sqrt(v.astype(np.float64))
    assert _is_pow2(root).all() and np.array_equal(root * root, v)  # var + eps is a power of four
    scale = gamma / root
    assert _is_pow2(scale).all() and len(np.unique(scale)) > 1
    shift = beta.astype(np.float64) - mean * scale
    assert_array_equal(shift * 2.0**16, np.round(shift * 2.0**16))  # dyadic
    _check_exact(m, _inputs(10, n=200))


def test_given_batchnorm_constants():
    gamma, var, eps = [1.0, 2.0, 1.0, 1.0], [0.75, 3.75, 0.0, 15.75], 0.25
    net = mg.Net(rng=6).input(5).dense(4, bias="float").batchnorm(gamma=gamma, var=var, eps=eps, mean=0.5, beta=-0.25)
    m = net.quant().model()
    got = _bn(m)
    assert_array_equal(got[0], gamma)
    assert_array_equal(got[1], [-0.25] * 4)
    assert_array_equal(got[2], [0.5] * 4)
    assert_array_equal(got[3], var)
    assert got[4] == np.float32(eps)
    _check_exact(m, _inputs(5, n=100))
    with pytest.raises(ValueError, match="exact=True"):
        mg.Net(rng=6).input(5).dense(4).batchnorm(gamma=[1.0, 3.0, 1.0, 1.0], var=1.0, eps=0.0)
    with pytest.raises(ValueError, match="exact=True"):
        mg.Net(rng=6).input(5).dense(4).batchnorm(var=2.0, eps=1e-5)


@pytest.mark.parametrize("fmt", ["qonnx", "qdq"])
def test_pytorch_like_batchnorm(fmt):
    """Real constants (eps 1e-5): not exact by design, so a tolerance is the right check."""
    m = mg.Net(rng=2, fmt=fmt).input(8).dense(12).batchnorm(exact=False).model()
    gamma, beta, mean, var, eps = _bn(m)
    assert eps == np.float32(1e-5)
    assert not _is_pow2(gamma / np.sqrt(var.astype(np.float64) + eps)).any()
    onnx.checker.check_model(m, full_check=True)
    x = _inputs(8, n=100)
    np.testing.assert_allclose(_execute(m, x), _run(m, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["qonnx", "qdq"])
def test_residual_add(fmt):
    net = mg.Net(rng=1, fmt=fmt).input(6).dense(8).relu().quant()
    skip = net.here
    net.dense(8).relu().quant().add(skip)
    m = net.quant().dense(3).quant().model()
    onnx.checker.check_model(m, full_check=True)
    inits = _inits(m)
    (add,) = [n for n in m.graph.node if n.op_type == "Add"]
    assert add.input[1] == skip.name and not set(add.input) & set(inits)  # two run-time tensors
    _check_exact(m, _inputs(6, n=200))
    by_name = mg.Net(rng=1, fmt=fmt).input(6).dense(8).relu().quant()
    by_name.dense(8).relu().quant().add(skip.name)  # an ONNX tensor name works as well
    assert by_name.quant().dense(3).quant().model().SerializeToString() == m.SerializeToString()


def test_net_errors():
    net = mg.Net(rng=0).input(4).dense(6).relu().quant()
    with pytest.raises(ValueError, match="do not match"):
        mg.Net(rng=0).input(4).quant().tag("a").dense(6).add("a")
    with pytest.raises(ValueError, match="no tensor of this net"):
        net.add("nope")
    with pytest.raises(ValueError, match="2\\*\\*24"):  # the add itself would not be exact
        mg.Net(rng=0).input(4, bits=20, frac=0).tag("x").quant(bits=20, frac=5, signed=True).add("x")
    with pytest.raises(ValueError, match="clip=True"):
        mg.Net(rng=0, fmt="qdq").input(4, bits=6)
    mg.Net(rng=0, fmt="qcdq").input(4, bits=6).model()
    with pytest.raises(ValueError, match="fmt must be"):
        mg.Net(rng=0, fmt="onnx")
    with pytest.raises(ValueError, match="input\\(\\) comes first"):
        net.input(4)
