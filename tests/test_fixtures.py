"""Models as real exporters write them (tests/fixtures/<name>/: the make.py that exported it,
model.onnx, inputs.npy and the exporter's own PyTorch outputs.npy on those inputs).

For the power-of-two Brevitas models the emulator's outputs equal PyTorch's exactly, and
C-simulation equals the emulator. PQuantML trains with round-half-up but writes QONNX
ROUND (half to even); fpgaq follows the file, so there the reference is qonnx's execution
of the ONNX file, and PyTorch differs exactly where a quantizer meets such a tie.
"""
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import need_gxx
from onnx import TensorProto, helper, numpy_helper
from qonnx_reference import run_onnxruntime, run_reference

from fpgaq import emulate
from fpgaq.backends.hls.csim import run_csim
from fpgaq.config import BuildConfig
from fpgaq.errors import ModelError
from fpgaq.frontend.importer import import_file, import_model
from fpgaq.passes.pipeline import run_pipeline
from fpgaq.ir.fixed import is_power_of_two
from fpgaq.ir.ops import Dense, Quant
from fpgaq.project import build

FIXTURES = Path(__file__).resolve().parent / "fixtures"
BREVITAS_POW2 = ["brevitas_qonnx_pow2", "brevitas_qcdq_pow2"]
# PyTorch outputs (of 256 samples x 5) that differ from fpgaq's and the ONNX reference's, and
# the samples they are in: every one behind a tie that half-up and half-to-even break differently
PQUANTML_DIFFERING = {"pquantml_pow2": (772, 185), "pquantml_qdq_pow2": (722, 160)}


def _fixture(name: str) -> tuple[Path, np.ndarray, np.ndarray]:
    folder = FIXTURES / name
    return folder / "model.onnx", np.load(folder / "inputs.npy"), np.load(folder / "outputs.npy")


def _reference(model: Path, x: np.ndarray) -> np.ndarray:
    """The exporter's file, executed by qonnx (QONNX) or onnxruntime (plain QDQ)."""
    qonnx = any(n.domain not in ("", "ai.onnx") for n in onnx.load(model).graph.node)
    out = (run_reference if qonnx else run_onnxruntime)(model, x)[0]
    return out.reshape(len(x), -1).astype(np.float64)


@pytest.mark.parametrize("name", BREVITAS_POW2)
def test_brevitas_pow2_emulator_equals_pytorch(name):
    model, x, y = _fixture(name)
    graph = import_file(model)
    ours = emulate.run(graph, x)[0]
    np.testing.assert_array_equal(ours, y.astype(np.float64))
    np.testing.assert_array_equal(ours, _reference(model, x))


@pytest.mark.parametrize("name", BREVITAS_POW2 + sorted(PQUANTML_DIFFERING))
def test_fixture_csim_equals_emulator(name, tmp_path):
    need_gxx()
    model, x, _ = _fixture(name)
    project = build(model, tmp_path / name, BuildConfig(name=name))
    r = run_csim(project, x=x)
    assert r.ok, r.mismatches
    np.testing.assert_array_equal(project.graph.real_outputs(0, r.outputs[0]), emulate.run(import_file(model), x)[0])


def _disagreeing_ties(graph, x: np.ndarray) -> np.ndarray:
    """Samples in which some quantizer's input lies half-way between two codes whose lower one
    is even: there round-half-up (PQuantML's RND, floor(v + 0.5)) picks the upper code and
    QONNX ROUND (half to even) the lower. Until the first such tie both compute the same."""
    codes = emulate.run_codes(graph, x)
    hit = np.zeros(len(x), dtype=bool)
    for node in graph.nodes:
        if not isinstance(node.op, Quant):
            continue
        src = graph[node.inputs[0]]
        if src.type is None:    # the input quantizer reads real values (float32)
            v = np.ldexp(x.astype(np.float64), node.op.type.frac)
            low = np.floor(v)
            tie = (v - low == 0.5) & (low % 2 == 0)
        else:
            shift = src.type.frac - node.op.type.frac
            if shift <= 0:
                continue
            c = codes[src.name].astype(np.int64)
            tie = (c & ((1 << shift) - 1) == 1 << (shift - 1)) & ((c >> shift) % 2 == 0)
        hit |= tie.any(axis=1)
    return hit


@pytest.mark.parametrize("name", sorted(PQUANTML_DIFFERING))
def test_pquantml_follows_the_onnx_file(name):
    model, x, y = _fixture(name)
    graph = import_file(model)
    ours = emulate.run(graph, x)[0]
    np.testing.assert_array_equal(ours, _reference(model, x))
    # the file rounds half to even (QONNX ROUND, or QuantizeLinear); PyTorch rounded half toward
    # +inf: every sample without a tie that the two rules break differently is exact
    assert all(a.s == b"ROUND" for n in onnx.load(model).graph.node for a in n.attribute
               if a.name == "rounding_mode")
    ties = _disagreeing_ties(graph, x)
    np.testing.assert_array_equal(ours[~ties], y[~ties].astype(np.float64))
    differ = ours != y
    assert (differ.sum(), differ.any(axis=1).sum()) == PQUANTML_DIFFERING[name]


def test_float_scales_refused_with_the_way_out():
    model, _, _ = _fixture("brevitas_qonnx_float")
    proto = onnx.load(model)
    inits = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    # the Quant nodes whose input the importer reaches: the input and both weight quantizers
    float_quants = [n.name for n in proto.graph.node if n.op_type == "Quant"
                    and not is_power_of_two(float(inits[n.input[1]]))
                    and (n.input[0] in inits or n.input[0] == proto.graph.input[0].name)]
    with pytest.raises(ModelError) as e:
        import_file(model)
    problem = re.compile(
        r"node '(?P<node>[^']+)' \(Quant\): scale \S+ is not a power of two, so this quantizer is not "
        r"fixed point\. Train with power-of-two scales \(Brevitas: Int8ActPerTensorFixedPoint, "
        r"Int8WeightPerTensorFixedPoint, Int16Bias; QKeras/HGQ/PQuantML quantizers are power-of-two already\); "
        r"or build with --requantize to lower float scales to exact integer requantisation \(an integer "
        r"multiplier and a shift; the deviation from the float model is reported\)")
    assert [problem.fullmatch(p).group("node") for p in e.value.problems] == float_quants
    assert len(float_quants) == 3


# --- frontend fixes the fixtures needed ------------------------------------------------------

def test_clip_on_a_constant_weight():
    """Brevitas QCDQ, weights below 8 bits: int8 initializer -> Clip -> DequantizeLinear."""
    w = np.array([[20, -3, 0, 7], [-20, 15, -16, 1]], dtype=np.int8)
    def init(name, v):
        return numpy_helper.from_array(np.asarray(v), name)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s_x", "zp"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "s_x", "zp"], ["xd"]),
        helper.make_node("Clip", ["w", "lo", "hi"], ["wc"]),
        helper.make_node("DequantizeLinear", ["wc", "s_w", "zp"], ["wd"]),
        helper.make_node("Gemm", ["xd", "wd"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
        [init("w", w), init("lo", np.int8(-15)), init("hi", np.int8(15)), init("zp", np.int8(0)),
         init("s_x", np.float32(2 ** -4)), init("s_w", np.float32(2 ** -3))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    g = run_pipeline(import_model(model))
    (dense,) = [n for n in g.nodes if isinstance(n.op, Dense)]
    np.testing.assert_array_equal(dense.op.weight, np.clip(w, -15, 15))
    x = np.random.default_rng(0).uniform(-9, 9, (200, 4)).astype(np.float32)
    np.testing.assert_array_equal(emulate.run(g, x)[0], run_onnxruntime(model, x)[0].reshape(200, 2))


@pytest.mark.parametrize("quantizer", ["QuantizeLinear", "Quant"])
def test_clip_on_the_model_input(quantizer):
    """PQuantML's QDQ export clips the float input before quantizing it: the quantizer's code
    range narrows to the rounded bounds (here 0.8 is off the grid of 2**-3)."""
    qonnx = quantizer == "Quant"
    q = (helper.make_node("Quant", ["xc", "s", "zero", "bits"], ["xq"], domain="qonnx.custom_op.general",
                          signed=1, narrow=0, rounding_mode="ROUND") if qonnx else
         helper.make_node("QuantizeLinear", ["xc", "s", "zp"], ["xi"]))
    nodes = [helper.make_node("Clip", ["x", "lo", "hi"], ["xc"]), q] + (
        [] if qonnx else [helper.make_node("DequantizeLinear", ["xi", "s", "zp"], ["xq"])]) + [
        helper.make_node("Gemm", ["xq", "w"], ["y"], transB=1)]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(
        lo=np.float32(-1.5), hi=np.float32(0.8), s=np.float32(2 ** -3), zp=np.int8(0), zero=np.float32(0),
        bits=np.float32(8), w=np.array([[1, -1], [2, 0.5]], dtype=np.float32)).items()]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], inits)
    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("qonnx.custom_op.general", 1)] if qonnx else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 7
    g = run_pipeline(import_model(model))
    (quant,) = [n for n in g.nodes if isinstance(n.op, Quant)]
    assert (quant.op.lo, quant.op.hi) == (-12, 6)
    x = np.random.default_rng(1).uniform(-3, 3, (400, 2)).astype(np.float32)
    x[:50] = np.round(x[:50] * 16) / 16     # ties half-way between codes, and the bounds
    ref = (run_reference if qonnx else run_onnxruntime)(model, x)[0].reshape(400, 2)
    np.testing.assert_array_equal(emulate.run(g, x)[0], ref)
