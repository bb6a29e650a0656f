"""--requantize: float scales lowered to integer multiplier-and-shift, bit-exact between the
emulator and C-simulation, with the deviation from the float model measured and reported."""
import numpy as np
import pytest
from conftest import TESTS, need_gxx

import modelgen
from fpgaq import emulate
from fpgaq.backends.hls.csim import run_csim
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.deviation import deviation, deviation_text, requantizers
from fpgaq.errors import ModelError
from fpgaq.frontend.importer import import_file, import_model
from fpgaq.ir.ops import Dense, Requant
from fpgaq.passes.pipeline import run_pipeline
from fpgaq.project import build
from fpgaq.stimulus import random_inputs
from fpgaq.report import report_data

FLOAT = TESTS / "fixtures" / "brevitas_qonnx_float"


def test_without_the_option_the_error_says_how_to_proceed():
    with pytest.raises(ModelError, match=r"is not a power of two.*or build with --requantize to lower float "
                                         r"scales to exact integer requantisation"):
        import_file(FLOAT / "model.onnx")


def test_brevitas_float_scales_bit_exact_in_csim(tmp_path):
    need_gxx()
    project = build(FLOAT / "model.onnx", tmp_path / "p", BuildConfig(name="net", requantize=True))
    x = np.load(FLOAT / "inputs.npy")
    r = run_csim(project, x)
    assert r.ok, r.mismatches
    np.testing.assert_array_equal(project.graph.real_outputs(0, r.outputs[0]), emulate.run(project.graph, x)[0])
    assert run_csim(project, n=2000).ok
    text = (tmp_path / "p" / "report.md").read_text()
    assert "## Integer requantisation (--requantize)" in text
    assert "argmax agrees on" in text


def test_deviation_from_the_exporters_own_outputs_is_measured():
    """Not bit-exact by nature: the float model rounds in float32. Measured, and small."""
    graph = run_pipeline(import_file(FLOAT / "model.onnx", requantize=True))
    x, torch_out = np.load(FLOAT / "inputs.npy"), np.load(FLOAT / "outputs.npy").astype(np.float64)
    ours = emulate.run(graph, x)[0]
    reference = emulate.run_reference(graph, x)[0]
    span = np.ptp(torch_out)
    assert np.max(np.abs(reference - torch_out)) < 1e-5 * span     # the float model itself
    assert np.mean(ours.argmax(1) == torch_out.argmax(1)) >= 0.95
    assert np.max(np.abs(ours - torch_out)) < 0.01 * span
    dev = deviation(graph, x)["outputs"][0]
    assert set(dev) == {"output", "max_abs_error", "share_differ", "argmax_agreement", "step"}
    assert dev["max_abs_error"] == np.max(np.abs(ours - reference))


def test_the_deviation_does_not_read_as_a_failure():
    """Requantised outputs all differ from a float tail's; the text gives the size, in output steps."""
    text = deviation_text({"n": 1000, "outputs": [{"output": "out", "max_abs_error": 0.005859375,
                                                   "share_differ": 1.0, "step": 2.0 ** -8,
                                                   "argmax_agreement": 0.998}]})
    assert "% of outputs differ" not in text
    assert text == ("deviation from the float model on 1,000 inputs (out): at most 0.00586 (1.5 steps of the "
                    "output's 0.00390625), from requantisation's integer rounding (100.0% of values not identical "
                    "to the float model's); argmax agrees on 99.80%")


@pytest.mark.parametrize("bits", [8, 16, 24])
def test_multiplier_precision_follows_requant_bits(bits):
    graph = compile_file(FLOAT / "model.onnx", BuildConfig(requantize=True, requant_bits=bits))
    q, out = requantizers(graph)
    assert (q["lowering"], q["fpgaq_output"], out["fpgaq_output"]) == ("multiplier", False, True)
    assert out["output"]["width"] == bits
    assert q["multiplier_bits"] == bits
    assert q["largest_ratio_error"] <= 2.0 ** -(bits - 1)


@pytest.mark.parametrize("target", ["act", "input", "weight"])
def test_synthetic_float_scales_bit_exact(tmp_path, target):
    need_gxx()
    model = modelgen.non_pow2_scale_model(rng=3, scale=0.3, target=target, layer_sizes=(8, 12, 4))
    path = tmp_path / "m.onnx"
    modelgen.save(model, path)
    project = build(path, tmp_path / "p", BuildConfig(name="net", requantize=True))
    r = run_csim(project, n=1500)
    assert r.ok, r.mismatches
    data = report_data(project.graph, project.config)
    assert "requantization" in data


def test_requant_codes_follow_the_integer_rule():
    """A Requant's output is exactly clamp(round((x * M + offset) / 2**k)), whatever the float ratio."""
    graph = run_pipeline(import_file(FLOAT / "model.onnx", requantize=True))
    x = random_inputs(graph, 3000)
    codes = emulate.run_codes(graph, x)
    for n in graph.nodes:
        if isinstance(n.op, Requant):
            src = codes[n.inputs[0]].astype(object)
            m = np.broadcast_to(n.op.multiplier, (n.size,)).astype(object)
            prod = src * m + np.broadcast_to(n.op.offsets(1) if n.op.offset is None else n.op.offset,
                                             (n.size,)).astype(object)
            half = 1 << (n.op.shift - 1)
            floor = prod // (1 << n.op.shift)
            rem = prod - floor * (1 << n.op.shift)
            up = (rem > half) | ((rem == half) & (floor % 2 == 1))       # ROUND: half to even
            expect = np.clip(floor + up.astype(int), n.op.lo, n.op.hi)
            np.testing.assert_array_equal(codes[n.name].astype(object), expect)


@pytest.mark.parametrize("target", ["input", "act", "weight", "bias"])
def test_qdq_float_scales(tmp_path, target):
    """QDQ with float scales: C-simulation equals the emulator exactly; the float model the
    emulator's reference computes is onnxruntime's up to float32 rounding at near-ties."""
    from qonnx_reference import run_onnxruntime
    model = modelgen.non_pow2_scale_model(rng=3, scale=0.3, target=target, qdq=True, layer_sizes=(8, 12, 4))
    path = tmp_path / "m.onnx"
    modelgen.save(model, path)
    project = build(path, tmp_path / "p", BuildConfig(name="net", requantize=True))
    x = random_inputs(project.graph, 2000)
    ort = run_onnxruntime(model, x)[0].astype(np.float64)
    reference = emulate.run_reference(project.graph, x)[0]
    assert np.mean(reference == ort) >= 0.999
    ours = emulate.run(project.graph, x)[0]
    assert np.mean(ours.argmax(1) == ort.argmax(1)) >= 0.95
    need_gxx()
    r = run_csim(project, x)
    assert r.ok, r.mismatches
    np.testing.assert_array_equal(project.graph.real_outputs(0, r.outputs[0]), ours)


def test_gemm_beta_keeps_a_float_bias_scale(tmp_path):
    import onnx

    from fpgaq.frontend.importer import import_model
    from qonnx_reference import run_onnxruntime
    model = modelgen.non_pow2_scale_model(rng=3, scale=0.3, target="bias", qdq=True, layer_sizes=(8, 12, 4))
    for n in model.graph.node:
        if n.op_type == "Gemm":
            kept = [a for a in n.attribute if a.name != "beta"]
            del n.attribute[:]
            n.attribute.extend(kept + [onnx.helper.make_attribute("beta", 2.0)])
    graph = run_pipeline(import_model(model, requantize=True))
    x = random_inputs(graph, 1000)
    np.testing.assert_array_equal(emulate.run_reference(graph, x)[0],
                                  run_onnxruntime(model, x)[0].astype(np.float64))


def _with_batchnorm(seed: int = 0):
    """A QONNX MLP with a PyTorch-style BatchNormalization (eps 1e-5, negative scales too)
    after its first Gemm: not exactly fixed point."""
    import onnx
    from onnx import helper, numpy_helper
    model = modelgen.qonnx_mlp([8, 12, 4], rng=5, style="clean", weights_as_inputs=False)
    g = model.graph
    i = next(k for k, n in enumerate(g.node) if n.op_type == "Gemm")
    out = g.node[i].output[0]
    g.node[i].output[0] = out + "_pre"
    rng = np.random.default_rng(seed)
    for name, v in (("bn_g", rng.uniform(-1.5, 1.5, 12)), ("bn_b", rng.normal(0, 0.5, 12)),
                    ("bn_m", rng.normal(0, 0.5, 12)), ("bn_v", rng.uniform(0.5, 2, 12))):
        g.initializer.append(numpy_helper.from_array(v.astype(np.float32), name))
    g.node.insert(i + 1, helper.make_node("BatchNormalization", [out + "_pre", "bn_g", "bn_b", "bn_m", "bn_v"],
                                          [out], name="bn", epsilon=1e-5))
    onnx.checker.check_model(model)
    return model


def test_batchnorm_with_float_scale_is_requantised(tmp_path):
    from fpgaq.frontend.importer import import_model
    from qonnx_reference import run_reference
    model = _with_batchnorm()
    with pytest.raises(ModelError, match=r"node 'bn' \(BatchNormalization\): the folded scale .* or build with "
                                         r"--requantize to carry its scale into the next quantizer"):
        run_pipeline(import_model(model))
    path = tmp_path / "bn.onnx"
    modelgen.save(model, path)
    project = build(path, tmp_path / "p", BuildConfig(name="net", requantize=True))
    x = random_inputs(project.graph, 2000)
    reference = emulate.run_reference(project.graph, x)[0]
    assert np.mean(reference == run_reference(model, x)[0].astype(np.float64)) >= 0.999
    need_gxx()
    r = run_csim(project, x)
    assert r.ok, r.mismatches


def test_float_scale_weights_are_quantized_as_qonnx_computes_them():
    """A float-scale weight quantizer divides in float32, as qonnx's Quant and onnxruntime's
    QuantizeLinear do: here 6.8489385 / 0.18263836 is 37.49999... in float64 but rounds to 37.5
    in float32, which ROUND takes to 38 (float64 would give 37)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = np.array([[6.8489385, -1.0], [0.5, 2.0]], dtype=np.float32)
    s = np.float32(0.18263836)
    assert np.round(np.float64(w[0, 0]) / np.float64(s)) == 37 and np.round(w[0, 0] / s) == 38
    inits = {"w": w, "sw": s, "sx": np.float32(2 ** -4), "z": np.float32(0), "b8": np.float32(8)}
    q = "qonnx.custom_op.general"
    nodes = [helper.make_node("Quant", ["x", "sx", "z", "b8"], ["xq"], domain=q, signed=1, narrow=0),
             helper.make_node("Quant", ["w", "sw", "z", "b8"], ["wq"], domain=q, signed=1, narrow=1),
             helper.make_node("Gemm", ["xq", "wq"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(q, 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    graph = run_pipeline(import_model(model, requantize=True))
    (dense,) = [n for n in graph.nodes if isinstance(n.op, Dense)]
    np.testing.assert_array_equal(dense.op.weight, np.clip(np.round(w / s), -127, 127).astype(np.int64))
