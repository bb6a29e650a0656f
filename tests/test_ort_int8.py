"""INT8 models as onnxruntime's `quantize_static` makes them (QDQ, per-channel int8 weights, int32
biases, float scales): asymmetric uint8 and int8 activations (non-zero zero-points, folded
exactly at import) and symmetric int8. Built with the default options plus --requantize
(requant_bits "auto"), against onnxruntime with graph optimisations off (the fixtures' stored
outputs, and live runs on more inputs): equal after casting to float32, but for a few outputs
one step apart where float32 lands on a rounding tie. C-simulation and RTL simulation of the
uint8 model are bit-exact with the emulator.

Zero-points elsewhere (power-of-two scales, so exact): on the model input, an activation, the
logits, weights (per channel, uint8) and biases, and the errors for what is not supported."""
from __future__ import annotations

import re

import numpy as np
import onnx
import pytest
from numpy.testing import assert_array_equal
from onnx import TensorProto, helper, numpy_helper

import modelgen as mg
from conftest import TESTS, need_gxx
from probe_inputs import probe_inputs
from qonnx_reference import run_onnxruntime

from fpgaq import emulate
from fpgaq.backends.hls.csim import run_csim
from fpgaq.compile import compile_file, compile_model
from fpgaq.config import BuildConfig
from fpgaq.deviation import requantizers
from fpgaq.errors import ConfigError, ModelError
from fpgaq.ir.fixed import FixedType
from fpgaq.ir.ops import Quant, Requant
from fpgaq.project import build
from fpgaq.report import report_data
from fpgaq.stimulus import random_inputs

HERE = TESTS / "fixtures" / "ort_int8"
TAGS = ("default", "u8", "s8")
CONFIG = BuildConfig(requantize=True)       # every other option at its default: requant_bits "auto"
# multiplier widths "auto" chooses, per requantiser in graph order; 1 bit: an exact shift (the
# symmetric model's DequantizeLinear -> Relu -> QuantizeLinear of one scale)
WIDTHS = {"default": [22, 22, 21], "u8": [22, 22, 21], "s8": [21, 1, 22, 1, 21]}
TIES = 4        # at most this many outputs of a batch may be one step off, at float32 ties


def _model(tag: str):
    return HERE / f"mlp_{tag}.onnx"


def _inputs() -> np.ndarray:
    return np.load(HERE / "inputs.npy")


def _lsb(graph) -> float:
    """The output's step: the logits' DequantizeLinear scale."""
    scale = graph.output_scale(0)
    assert scale is not None and scale.uniform
    return scale.values[0] * 2.0 ** -graph[graph.outputs[0]].out.frac


def _close(ours: np.ndarray, ort: np.ndarray, lsb: float, most: int = TIES) -> int:
    """Equal after casting to float32, but at most `most` outputs one step apart; how many."""
    ours = ours.astype(np.float32).reshape(ort.shape)
    off = ours != ort
    assert np.count_nonzero(off) <= most, np.argwhere(off)[:10]
    steps = np.rint(ours[off].astype(np.float64) / lsb) - np.rint(ort[off].astype(np.float64) / lsb)
    assert np.all(np.abs(steps) == 1), steps
    return int(np.count_nonzero(off))


@pytest.fixture(scope="module")
def graphs():
    return {tag: compile_file(_model(tag), CONFIG) for tag in TAGS}


@pytest.mark.parametrize("tag", TAGS)
def test_equal_to_onnxruntime(graphs, tag):
    """The fixture's 256 inputs: every output equals onnxruntime's (float32); within the
    deviation the report states; the float model fpgaq approximates is onnxruntime's too."""
    graph = graphs[tag]
    x, ort = _inputs(), np.load(HERE / f"outputs_{tag}.npy")
    ours = emulate.run(graph, x)[0]
    assert_array_equal(ours.astype(np.float32), ort)
    _close(emulate.run_reference(graph, x)[0], ort, _lsb(graph))
    dev = report_data(graph, CONFIG, x)["requantization"]["deviation"]["outputs"][0]
    assert np.max(np.abs(ours.astype(np.float32) - ort)) <= dev["max_abs_error"]


@pytest.mark.parametrize("tag", TAGS)
def test_close_to_onnxruntime_over_the_whole_input_range(graphs, tag):
    """2,000 inputs over the input quantizer's range (extremes, ties, saturation), onnxruntime
    run live: a few outputs one step off where float32 meets a tie, no more."""
    graph = graphs[tag]
    x = random_inputs(graph, 2000, seed=2)
    ort = run_onnxruntime(str(_model(tag)), x)[0]
    _close(emulate.run(graph, x)[0], ort, _lsb(graph))


@pytest.mark.parametrize("tag", TAGS)
def test_requantiser_widths(graphs, tag):
    """The widths the report states; biases on the accumulator's grid within float32 (no
    offsets); the fixed-point types the zero-points give."""
    graph = graphs[tag]
    qs = requantizers(graph)
    assert [q["lowering"] for q in qs] == ["multiplier"] * len(WIDTHS[tag])
    assert [q["multiplier_bits"] for q in qs] == WIDTHS[tag]
    assert not any(q["offset"] for q in qs)
    assert [q["largest_ratio_error"] == 0 for q in qs] == [w == 1 for w in WIDTHS[tag]]
    text = "\n".join(str(n.out.type) for n in graph.nodes if isinstance(n.op, (Quant, Requant)))
    if tag == "s8":
        assert set(text.split()) == {"fixed<8,8>"}
    else:   # input and logits: zero-points 132 and 166 (int8: 4 and 38); hidden: 0 (int8: -128)
        assert text.split() == ["fixed<9,9>", "ufixed<8,8>", "ufixed<8,8>", "fixed<9,9>"]
        assert [(n.op.lo, n.op.hi) for n in graph.nodes if isinstance(n.op, (Quant, Requant))] == [
            (-132, 123), (0, 255), (0, 255), (-166, 89)]


def test_asymmetric_int8_and_uint8_are_the_same_codes(graphs):
    """int8 with zero-point z and uint8 with z + 128 (same scales) centre to the same codes."""
    x = random_inputs(graphs["u8"], 500, seed=3)
    a, b = (emulate.run_codes(graphs[t], x) for t in ("default", "u8"))
    for ga, gb in zip(graphs["default"].nodes, graphs["u8"].nodes):
        assert ga.out.type == gb.out.type
        assert_array_equal(a[ga.name], b[gb.name])


def test_the_input_quantizer_applies_the_zero_point(graphs):
    """The firmware receives the centred codes q - z of the input's QuantizeLinear."""
    graph = graphs["u8"]
    x = random_inputs(graph, 500, seed=4).astype(np.float32)
    s = np.float32(0.025376547127962112)
    q = np.clip(np.rint((x / s).astype(np.float64)) + 132, 0, 255)      # QuantizeLinear, uint8, z = 132
    assert_array_equal(emulate.input_codes(graph, x), q - 132)


@pytest.mark.parametrize("bits, widths", [(16, [16] * 3), (24, [24] * 3)])
def test_an_explicit_width_still_applies(bits, widths):
    graph = compile_file(_model("u8"), BuildConfig(requantize=True, requant_bits=bits))
    assert [q["multiplier_bits"] for q in requantizers(graph)] == widths
    x = _inputs()
    _close(emulate.run(graph, x)[0], np.load(HERE / "outputs_u8.npy"), _lsb(graph), most=64)


def test_float_scales_still_need_requantize():
    with pytest.raises(ModelError, match=r"is not a power of two.*--requantize"):
        compile_file(_model("u8"), BuildConfig())


def test_requant_bits_config_and_flag(tmp_path):
    from fpgaq.cli import main
    assert BuildConfig().requant_bits == "auto"
    for bad in ("fast", 1, 33, True):
        with pytest.raises(ConfigError, match="requant_bits .* must be 'auto' or an integer from 2 to 32"):
            BuildConfig(requant_bits=bad)
    out = tmp_path / "y.npy"
    args = ["emulate", str(_model("s8")), "--inputs", str(HERE / "inputs.npy"), "--output", str(out), "--requantize"]
    assert main(args + ["--requant-bits", "auto"]) == 0
    assert_array_equal(np.load(out).astype(np.float32), np.load(HERE / "outputs_s8.npy"))
    with pytest.raises(SystemExit):
        main(args + ["--requant-bits", "many"])


# --- zero-points on weights: uint8 per channel, and quantized in the graph ----------------------------

def _weights_as_uint8(model: onnx.ModelProto, seed: int = 0) -> onnx.ModelProto:
    """Every int8 weight DequantizeLinear becomes uint8 with its own zero-point per output
    channel (w + z[c]): the same real weights."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    rng = np.random.default_rng(seed)
    inits = {t.name: t for t in m.graph.initializer}
    for n in m.graph.node:
        if n.op_type != "DequantizeLinear" or not n.input[0].endswith("weight_quantized"):
            continue
        w = numpy_helper.to_array(inits[n.input[0]]).astype(np.int64)
        lo, hi = -w.min(axis=1), 255 - w.max(axis=1)        # z[c] keeping w + z[c] in [0, 255]
        z = np.array([rng.integers(a, b + 1) for a, b in zip(lo, hi)])
        assert len(set(z.tolist())) > 1
        inits[n.input[0]].CopyFrom(numpy_helper.from_array((w + z[:, None]).astype(np.uint8), n.input[0]))
        inits[n.input[2]].CopyFrom(numpy_helper.from_array(z.astype(np.uint8), n.input[2]))
    return m


def _weights_quantized_in_the_graph(model: onnx.ModelProto) -> onnx.ModelProto:
    """The first layer's weights as float32 initializers, quantized by a QuantizeLinear per
    output channel to uint8 with per-channel zero-points (as a QCDQ export does)."""
    m = _weights_as_uint8(model)
    inits = {t.name: t for t in m.graph.initializer}
    dq = next(n for n in m.graph.node if n.op_type == "DequantizeLinear" and n.input[0] == "net.0.weight_quantized")
    q = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int64)
    s = numpy_helper.to_array(inits[dq.input[1]])
    z = numpy_helper.to_array(inits[dq.input[2]]).astype(np.int64)
    w = ((q - z[:, None]) * s[:, None]).astype(np.float32)
    m.graph.initializer.append(numpy_helper.from_array(w, "w0_float"))
    m.graph.node.insert(0, helper.make_node("QuantizeLinear", ["w0_float", dq.input[1], dq.input[2]], ["w0_q"],
                                            name="w0_quant", axis=0))
    dq.input[0] = "w0_q"
    return m


@pytest.mark.parametrize("make", [_weights_as_uint8, _weights_quantized_in_the_graph])
def test_per_channel_weight_zero_points(graphs, make):
    model = make(onnx.load(str(_model("u8"))))
    onnx.checker.check_model(model)
    graph = compile_model(model, "m", CONFIG)
    x = _inputs()
    ort = run_onnxruntime(model, x)[0]
    assert_array_equal(ort, np.load(HERE / "outputs_u8.npy"))      # the same real weights
    assert_array_equal(emulate.run(graph, x)[0], emulate.run(graphs["u8"], x)[0])


# --- power-of-two scales: zero-points anywhere, exact ------------------------------------------------

@pytest.mark.parametrize("target", ["input", "act", "output", "weight", "bias"])
@pytest.mark.parametrize("zeropt, signed", [(3, True), (-5, True), (100, False), (7, False)])
def test_power_of_two_zero_points_are_exact(target, zeropt, signed):
    model = mg.nonzero_zeropt_model(zeropt=zeropt, qdq=True, target=target, rng=1, in_signed=signed,
                                    act_signed=signed)
    graph = compile_model(model, "m", BuildConfig())
    x = probe_inputs(graph, 0)
    want = run_onnxruntime(model, x)[0]
    got = emulate.run(graph, x)[0]
    assert_array_equal(got, want.reshape(got.shape))


# --- what is refused ------------------------------------------------------------------------------

def _problem(model) -> str:
    with pytest.raises(ModelError) as info:
        compile_model(model, "m", CONFIG)
    assert len(info.value.problems) == 1, info.value.problems
    return info.value.problems[0]


def _set_zero_point(model: onnx.ModelProto, node_name: str, value) -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.CopyFrom(model)
    n = next(n for n in m.graph.node if n.name == node_name)
    old = next(t for t in m.graph.initializer if t.name == n.input[2])
    arr = np.asarray(value).astype(numpy_helper.to_array(old).dtype)
    m.graph.initializer.append(numpy_helper.from_array(arr, f"{n.name}_zp"))
    n.input[2] = f"{n.name}_zp"
    return m


def test_a_dequantize_with_another_zero_point():
    model = _set_zero_point(onnx.load(str(_model("u8"))), "x_DequantizeLinear", 130)
    assert re.fullmatch(r"node 'x_DequantizeLinear' \(DequantizeLinear\): zero-point 130 differs from the "
                        r"zero-point 132 of the QuantizeLinear it reads \(node 'x_QuantizeLinear' "
                        r"\(QuantizeLinear\)\); give both the same zero-point", _problem(model))


def test_per_axis_zero_points_on_an_activation():
    model = _set_zero_point(onnx.load(str(_model("u8"))), "x_QuantizeLinear", np.arange(16) + 120)
    assert re.fullmatch(r"node 'x_QuantizeLinear' \(QuantizeLinear\): per-axis zero-points on an activation "
                        r"\(\[120, 121, 122, 123, \.\.\.\]\) are not supported; use one zero-point per tensor",
                        _problem(model))


def test_the_raw_codes_of_an_asymmetric_quantizer_as_an_output():
    model = onnx.load(str(_model("u8")))
    dq = next(n for n in model.graph.node if n.name == "y_DequantizeLinear")
    model.graph.node.remove(dq)
    del model.graph.output[:]
    model.graph.output.append(helper.make_tensor_value_info("y_QuantizeLinear_Output", TensorProto.UINT8, None))
    assert re.fullmatch(r"node 'y_QuantizeLinear' \(QuantizeLinear\): the graph output 'y_QuantizeLinear_Output' "
                        r"is the integer result of a QuantizeLinear with zero-point 166; end the model with its "
                        r"DequantizeLinear", _problem(model))


def test_a_clip_between_an_asymmetric_pair():
    model = mg.nonzero_zeropt_model(zeropt=3, qdq=True, style="clean", clip=True)
    with pytest.raises(ModelError) as info:
        compile_model(model, "m", BuildConfig())
    assert re.fullmatch(r"node '[^']+' \(DequantizeLinear\): reads a Clip \(node '[^']+' \(Clip\)\) of a "
                        r"QuantizeLinear with zero-point 3; fpgaq supports Clip between QuantizeLinear and "
                        r"DequantizeLinear only with zero-point 0", str(info.value))


# --- the firmware ----------------------------------------------------------------------------------

def test_csim_of_the_uint8_model(tmp_path):
    need_gxx()
    project = build(_model("u8"), tmp_path / "p", BuildConfig(name="mlp", requantize=True))
    x = _inputs()
    r = run_csim(project, x)
    assert r.ok, r.mismatches
    assert_array_equal(project.graph.real_outputs(0, r.outputs[0]).astype(np.float32),
                       np.load(HERE / "outputs_u8.npy"))
    assert run_csim(project, n=2000).ok                     # the whole input range, saturation too
    header = (tmp_path / "p" / "firmware" / "mlp.h").read_text()
    assert "typedef ap_fixed<9, 9> t_quant;" in header      # the input port: the centred codes, 9 bits


def test_rtl_of_the_uint8_model(tmp_path):
    from verilog_helpers import need, need_cocotb
    from fpgaq.backends.verilog.rtlsim import run_rtlsim
    need("iverilog", "Icarus Verilog")
    need_cocotb()
    project = build(_model("u8"), tmp_path / "v", BuildConfig(name="mlp", requantize=True, backend="verilog"))
    x = np.concatenate([_inputs(), random_inputs(project.graph, 100, seed=6).reshape(-1, 16)])
    r = run_rtlsim(project, x, sim="icarus")
    assert r.ok, r.mismatches
    assert FixedType(True, 9, 0) == project.graph.input_quantizer(project.graph.inputs[0]).out.type
