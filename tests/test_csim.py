"""C-simulation of generated HLS projects equals the emulator, bit for bit."""
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE, need_gxx

import modelgen
from fpgaq import emulate
from fpgaq.backends.hls.csim import run_csim
from fpgaq.config import BuildConfig
from fpgaq.project import build, open_project
from fpgaq.stimulus import random_inputs

pytestmark = pytest.mark.usefixtures("gxx")


@pytest.fixture
def gxx():
    need_gxx()


def _build(tmp_path: Path, model, name="net") -> object:
    path = tmp_path / f"{name}.onnx"
    modelgen.save(model, path) if not isinstance(model, Path) else None
    return build(path if not isinstance(model, Path) else model, tmp_path / f"{name}_prj", BuildConfig(name=name))


def test_jet_tagger_bit_exact(tmp_path):
    project = build(EXAMPLE, tmp_path / "jet", BuildConfig(name="jet_tagger"))
    r = run_csim(project, n=2000)
    assert r.ok, r.mismatches
    assert r.n == 2000
    x = random_inputs(project.graph, 2000, seed=1)
    np.testing.assert_array_equal(project.graph.real_outputs(0, r.outputs[0]), emulate.run(project.graph, x)[0])


# every rounding mode on some activation quantizer, narrow and not, signed and unsigned,
# with and without a final quantizer, Gemm and MatMul+Add, float / quantized / no bias
CASES = {
    "round_halfup_floor": dict(rounding_mode=["ROUND", "HALF_UP", "FLOOR", "ROUND"], w_narrow=True),
    "ceil_up_down": dict(rounding_mode=["CEIL", "UP", "DOWN", "CEIL"], act_signed=True, relu=False),
    "halfdown_halfeven": dict(rounding_mode=["HALF_DOWN", "HALF_EVEN", "HALF_DOWN", "UP"], bias="float",
                              w_narrow=False),
    "no_final_quant_matmul": dict(final_quant=False, gemm=False, bias="none", in_signed=False, in_bits=6),
    "signed_narrow_acts": dict(rounding_mode=["ROUND", "CEIL", "UP", "DOWN"], act_signed=True, relu=True,
                               act_bits=5),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_random_network_bit_exact(tmp_path, case):
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    model = modelgen.qonnx_mlp([12, 20, 10, 6], rng=7, **CASES[case])
    project = _build(tmp_path, model, case)
    x = random_inputs(project.graph, 1500, seed=int(rng.integers(1 << 30)))
    r = run_csim(project, x)
    assert r.ok, r.mismatches
    np.testing.assert_array_equal(project.graph.real_outputs(0, r.outputs[0]), emulate.run(project.graph, x)[0])


@pytest.mark.parametrize("clip", [False, True])
def test_qdq_network_bit_exact(tmp_path, clip):
    model = modelgen.qdq_mlp([10, 16, 4], rng=3, clip=clip, act_bits=6 if clip else 8)
    project = _build(tmp_path, model, f"qdq{int(clip)}")
    r = run_csim(project, n=1500)
    assert r.ok, r.mismatches


def test_csim_catches_a_wrong_weight(tmp_path):
    """The check can fail: change one weight code in the generated firmware."""
    build(EXAMPLE, tmp_path / "jet", BuildConfig(name="jet_tagger"))
    params = tmp_path / "jet" / "firmware" / "parameters.h"
    text = params.read_text()
    start = text.index("w_dense[")
    brace = text.index("{", start) + 1
    end = text.index(",", brace)
    first = int(text[brace:end])
    params.write_text(text[:brace] + str(first + 1) + text[end:])
    r = run_csim(open_project(tmp_path / "jet"), n=1000)
    assert not r.ok
    assert r.mismatch_count > 0
    s, o, exp, got = r.mismatches[0]
    assert exp != got


def _narrow_activations(model):
    """Set narrow=1 on every activation quantizer (signed: AP_SAT_SYM; unsigned: max 2**b - 2)."""
    weights = {t.name for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("Quant", "IntQuant") and node.input[0] not in weights:
            for a in node.attribute:
                if a.name == "narrow":
                    a.i = 1
    return model


@pytest.mark.parametrize("signed", [False, True])
def test_narrow_activation_quantizers_bit_exact(tmp_path, signed):
    model = _narrow_activations(modelgen.qonnx_mlp(
        [8, 16, 5], rng=11, act_signed=signed, relu=not signed,
        rounding_mode=["ROUND", "HALF_UP", "FLOOR"]))
    project = _build(tmp_path, model, f"narrow{int(signed)}")
    text = (tmp_path / f"narrow{int(signed)}_prj" / "firmware" / "parameters.h").read_text()
    r = run_csim(project, n=1500)
    assert r.ok, r.mismatches
    if signed:
        assert "AP_SAT_SYM" in (tmp_path / f"narrow{int(signed)}_prj" / "firmware" / f"narrow{int(signed)}.h").read_text()
    else:
        assert "quantize_explicit" in text


@pytest.mark.parametrize("reuse", [3, 64])
def test_reuse_factor_stays_bit_exact(tmp_path, reuse):
    project = build(EXAMPLE, tmp_path / f"jet_r{reuse}", BuildConfig(name="jet_tagger", reuse=reuse))
    top = (tmp_path / f"jet_r{reuse}" / "firmware" / "jet_tagger.cpp").read_text()
    assert f"#pragma HLS PIPELINE II = {reuse}" in top
    assert "fpgaq::dense_reuse<config_dense>" in top
    r = run_csim(project, n=1000)
    assert r.ok, r.mismatches


def test_codes_wider_than_64_bits_cross_the_test_bench_exactly(tmp_path):
    """The test bench reads and writes codes that fit 64 bits through C integers and wider
    ones through ap_int's own conversions: an output accumulator of about 70 bits (wide
    inputs and weights, no final quantizer) is compared bit for bit, with the 40-bit inputs
    taking the fast way in the same run."""
    rng = np.random.default_rng(3)
    model = modelgen.qonnx_mlp([12, 4], rng=rng, in_bits=40, in_frac=10, w_bits=28, sparsity=0.0,
                               final_quant=False, relu=False, bias="none", check_exact=False)
    project = _build(tmp_path, model, "wide")
    (out,) = project.graph.outputs
    assert project.graph[out].type.width > 64 and project.graph.firmware_inputs[0].type.width < 64
    r = run_csim(project, n=300)
    assert r.ok, r.mismatches
    assert r.outputs[0].dtype == object and np.abs(r.outputs[0]).max() > 2**63
