"""Every kind of bad input gets one clear message; the message is API, so patterns are anchored.

Messages name the ONNX node (or input/output), say what was found and what to do. A model with
several problems reports them all in one ModelError, and a failed node's readers add nothing.
"""
from __future__ import annotations

import copy
import re

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import modelgen as mg
from fpgaq.compile import compile_model
from fpgaq.config import BuildConfig
from fpgaq.errors import FpgaqError, ModelError
from fpgaq.frontend import table as handlers
from fpgaq.frontend.importer import import_file, import_model
from fpgaq.frontend.model_file import load
from fpgaq.ir.graph import Graph

POW2_HINT = (r"Train with power-of-two scales \(Brevitas: Int8ActPerTensorFixedPoint, "
             r"Int8WeightPerTensorFixedPoint, Int16Bias; QKeras/HGQ/PQuantML quantizers are "
             r"power-of-two already\)")
REQUANT_HINT = (r"; or build with --requantize to lower float scales to exact integer requantisation "
                r"\(an integer multiplier and a shift; the deviation from the float model is reported\)")


def problem(model) -> str:
    """The one problem compiling `model` reports (a cascade would be a second one): the
    importer's, or a pass's where the graph around a node matters."""
    with pytest.raises(ModelError) as info:
        compile_model(model, "model", BuildConfig())
    assert len(info.value.problems) == 1, info.value.problems
    assert str(info.value) == info.value.problems[0]
    return str(info.value)


def assert_matches(pattern: str, text: str) -> None:
    assert re.fullmatch(pattern, text, flags=re.DOTALL), f"\n{text!r}\ndoes not match\n{pattern!r}"


def clean_mlp(**kw):
    kw.setdefault("rng", 0)
    return mg.qonnx_mlp(kw.pop("sizes", [8, 16, 4]), style="clean", **kw)


def set_initializer(model, name, values):
    m = copy.deepcopy(model)
    (t,) = [t for t in m.graph.initializer if t.name == name]
    t.CopyFrom(numpy_helper.from_array(np.asarray(values, dtype=np.float32), name))
    return m


def initializer(model, name) -> np.ndarray:
    (t,) = [t for t in model.graph.initializer if t.name == name]
    return numpy_helper.to_array(t).copy()


# --- unsupported ops --------------------------------------------------------------------------

def test_unsupported_op_names_node_and_op_and_lists_what_is_supported():
    msg = problem(mg.with_op(clean_mlp(), "LRN", size=3))
    m = re.fullmatch(r"node 'appended_LRN' \(LRN\): op LRN is not supported\. "
                     r"fpgaq supports (?P<std>[A-Za-z, ]+) and QONNX (?P<qonnx>[A-Za-z, ]+); "
                     r"replace or remove this node before export", msg)
    assert m, msg
    assert m["std"].split(", ") == sorted(handlers.STANDARD)
    assert m["qonnx"].split(", ") == sorted(handlers.QONNX)
    assert {"Gemm", "MatMul", "QuantizeLinear", "DequantizeLinear"} <= set(m["std"].split(", "))


@pytest.mark.parametrize("op, domain, where", [
    ("Foo", "com.acme", " in domain 'com.acme'"),
    ("MultiThreshold", mg.QONNX_DOMAIN, f" in domain '{mg.QONNX_DOMAIN}'"),
    ("Erf", "", ""),
])
def test_unsupported_op_in_other_domains(op, domain, where):
    msg = problem(mg.with_op(clean_mlp(), op, domain=domain))
    assert_matches(rf"node 'appended_{op}' \({op}\): op {op}{re.escape(where)} is not supported\. "
                   r"fpgaq supports .* and QONNX .*; replace or remove this node before export", msg)


def test_unnamed_node_is_numbered():
    model = mg.with_op(clean_mlp(), "Erf")
    model.graph.node[-1].name = ""
    assert_matches(r"unnamed Erf node #\d+ \(writes '[^']+'\): op Erf is not supported\..*", problem(model))


def test_an_add_of_two_run_time_tensors_is_no_longer_refused():
    """Two run-time tensors on fixed-point grids add exactly (tests/test_conv.py checks a
    residual block against qonnx)."""
    model = clean_mlp(sizes=[4, 4])
    out = model.graph.output[0].name
    for n in model.graph.node:
        n.output[:] = [f"{out}_pre" if o == out else o for o in n.output]
    model.graph.node.append(helper.make_node("Add", [f"{out}_pre", f"{out}_pre"], [out], name="res"))
    graph = compile_model(model, "model", BuildConfig())
    assert graph[graph.outputs[0]].op.kind == "add"


# --- scales and zero-points -------------------------------------------------------------------

@pytest.mark.parametrize("target, node", [
    ("input", "/input_quant/export_handler/Quant"),
    ("weight", "/fc1/weight_quant/export_handler/Quant"),
    ("bias", "/fc1/bias_quant/export_handler/Quant"),
    ("act", "/act1/export_handler/Quant"),
])
def test_non_power_of_two_scale(target, node):
    msg = problem(mg.non_pow2_scale_model(target=target, scale=0.3, style="clean"))
    assert_matches(rf"node '{re.escape(node)}' \(Quant\): scale 0\.3 is not a power of two, so this "
                   rf"quantizer is not fixed point\. {POW2_HINT}{REQUANT_HINT}", msg)


@pytest.mark.parametrize("target", ["input", "act", "weight"])
def test_non_power_of_two_scale_qdq(target):
    msg = problem(mg.non_pow2_scale_model(target=target, scale=0.75, qdq=True, style="clean"))
    assert_matches(rf"node '[^']+' \((QuantizeLinear|DequantizeLinear)\): scale 0\.75 is not a power "
                   rf"of two, so this quantizer is not fixed point\. {POW2_HINT}{REQUANT_HINT}", msg)


def test_non_zero_zero_point():
    msg = problem(mg.nonzero_zeropt_model(zeropt=3.0, style="clean"))
    assert_matches(r"node '/input_quant/export_handler/Quant' \(Quant\): zero-point \[3\.0\] is not "
                   r"zero; fixed point needs a zero-point of 0 \(Brevitas: use symmetric quantizers, "
                   r"or fold the offset into the bias\)", msg)


def test_qdq_zero_points_that_differ():
    """QDQ zero-points fold exactly (tests/test_ort_int8.py), but a DequantizeLinear must use
    its QuantizeLinear's."""
    model = mg.qdq_mlp([8, 16, 4], rng=0, style="clean")
    msg = problem(mg.with_quant_param(model, mg._find_quant(model, "input"), zeropt=3, pair=False))
    assert_matches(r"node '[^']+' \(DequantizeLinear\): zero-point 0 differs from the zero-point 3 of the "
                   r"QuantizeLinear it reads \(node '[^']+' \(QuantizeLinear\)\); give both the same zero-point", msg)


@pytest.mark.parametrize("mode", ["STOCHASTIC", ""])
def test_unknown_rounding_mode(mode):
    model = clean_mlp()
    for a in model.graph.node[0].attribute:
        if a.name == "rounding_mode":
            a.s = mode.encode()
    assert_matches(rf"node '/input_quant/export_handler/Quant' \(Quant\): rounding_mode '{mode}' is "
                   r"unknown; use one of ROUND, HALF_UP, HALF_DOWN, FLOOR, CEIL, DOWN, UP", problem(model))


# --- bit widths --------------------------------------------------------------------------------

@pytest.mark.parametrize("bits, shown", [(0, "0"), (65, "65"), (6.5, "6.5"), (-8, "-8")])
def test_quantizer_bit_width_out_of_range(bits, shown):
    model = mg.with_quant_param(clean_mlp(), 1, bitwidth=bits)
    assert_matches(rf"node '/fc1/weight_quant/export_handler/Quant' \(Quant\): bitwidth {re.escape(shown)} "
                   r"is not a whole number of bits from 1 to 64", problem(model))


def test_missing_quantizer_input():
    model = clean_mlp()
    del model.graph.node[0].input[3]
    assert_matches(r"node '/input_quant/export_handler/Quant' \(Quant\): bitwidth \(input 3\) is "
                   r"missing; the node has 3 inputs", problem(model))


# --- biases that do not fit the accumulator --------------------------------------------------------

def test_float_bias_not_on_the_accumulator_grid():
    model = clean_mlp(bias="float")
    b = initializer(model, "fc1.bias")
    model = set_initializer(model, "fc1.bias", b + 2.0 ** -20)
    assert_matches(r"node '/fc1/Gemm' \(Gemm\): the float bias needs 20 fraction bits but the "
                   r"accumulator has 8 \(input 4 \+ weight 4\), so it cannot be added exactly; quantize "
                   r"the bias \(Brevitas: bias_quant=Int16Bias or Int32Bias\) or round it to the "
                   r"accumulator's grid", problem(model))


def test_float_bias_of_matmul_add_not_on_the_accumulator_grid():
    model = clean_mlp(bias="float", gemm=False)
    b = initializer(model, "fc1.bias")
    model = set_initializer(model, "fc1.bias", b + 0.1)
    assert_matches(r"node '/fc1/Add' \(Add\): the constant needs 2\d fraction bits but the accumulator has 8 "
                   r"\(input 4 \+ weight 4\), so it cannot be added exactly; quantize it \(Brevitas: Int16Bias\), "
                   r"or build with --requantize to round it onto the accumulator's grid", problem(model))


def test_zero_bias_fits_a_coarse_accumulator():
    """A bias of zeros is on every grid, also one with negative fraction bits."""
    model = clean_mlp(sizes=[3, 2], bias="float", in_frac=-1, w_frac=-1)
    model = set_initializer(model, "fc1.bias", np.zeros(2))
    import_model(model)


def test_batchnorm_that_is_not_fixed_point():
    model = clean_mlp(sizes=[4, 3], final_quant=False)
    out = model.graph.output[0].name
    for n in model.graph.node:
        n.output[:] = [f"{out}_pre" if o == out else o for o in n.output]
    for name, v in (("g", 1.0), ("b", 0.0), ("m", 0.0), ("v", 1.0)):
        model.graph.initializer.append(numpy_helper.from_array(np.full(3, v, np.float32), name))
    model.graph.node.append(helper.make_node("BatchNormalization", [f"{out}_pre", "g", "b", "m", "v"],
                                             [out], name="bn"))            # default epsilon 1e-5
    assert_matches(r"node 'bn' \(BatchNormalization\): the folded scale gamma/sqrt\(var\+eps\) "
                   r"\(0\.999995\) or shift is not exactly fixed point; fold batch-norm into the "
                   r"weights before quantizing them \(Brevitas/qonnx: merge BN into the preceding "
                   r"layer, then quantize\), or build with --requantize to carry its scale into the "
                   r"next quantizer's integer requantisation", problem(model))


@pytest.mark.parametrize("alpha", [3.0, -1.0])
def test_gemm_alpha_not_a_power_of_two(alpha):
    model = clean_mlp()
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    next(a for a in gemm.attribute if a.name == "alpha").f = alpha
    assert_matches(rf"node '/fc1/Gemm' \(Gemm\): alpha={alpha:g} is not a power of two; fold it into "
                   r"the weights before export", problem(model))


# --- NaN and Inf in constants ---------------------------------------------------------------------

@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_in_quantized_weights(bad):
    model = clean_mlp()
    w = initializer(model, "fc1.weight")
    w[0, 0] = bad
    assert_matches(r"node '/fc1/weight_quant/export_handler/Quant' \(Quant\): the quantized constant "
                   r"holds NaN or Inf; export the model again with finite weights",
                   problem(set_initializer(model, "fc1.weight", w)))


def test_nan_in_float_bias():
    model = clean_mlp(bias="float")
    b = initializer(model, "fc1.bias")
    b[1] = np.nan
    assert_matches(r"node '/fc1/Gemm' \(Gemm\): bias holds NaN or Inf; export the model again with "
                   r"finite values", problem(set_initializer(model, "fc1.bias", b)))


def test_unquantized_float_weight():
    model = clean_mlp(sizes=[3, 2])
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    gemm.input[1] = "raw_w"
    model.graph.initializer.append(numpy_helper.from_array(np.full((2, 3), 0.1, np.float32), "raw_w"))
    assert_matches(r"node '/fc1/Gemm' \(Gemm\): the weight is a float tensor that is not quantized "
                   r"\(it would need \d+ fraction bits\); put a weight quantizer \(QONNX Quant\) on it",
                   problem(model))


# --- shapes and the model's boundary -------------------------------------------------------------

def test_dynamic_feature_dimension():
    assert_matches(r"graph input 'global_in' has shape \['batch', 'F'\] with a dynamic feature "
                   r"dimension; export the model with a fixed number of input features",
                   problem(mg.dynamic_features_model(style="clean")))


def test_batch_dimension_other_than_one():
    assert_matches(r"graph input 'global_in' has batch dimension 4; fpgaq needs it to be 1 or symbolic",
                   problem(clean_mlp(batch=4)))


def test_an_nd_input_must_be_flattened_before_a_dense_layer():
    model = clean_mlp()
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value = 2
    dims.add().dim_value = 4
    assert_matches(r"node '/fc1/Gemm' \(Gemm\): multiplies a tensor of shape \[2, 4\] \(batch excluded\); a "
                   r"dense layer takes a vector: Flatten it first", problem(model))


@pytest.mark.parametrize("elem, shown", [(TensorProto.INT8, "INT8"), (77, r"77 \(not an ONNX type\)")])
def test_non_float_graph_input(elem, shown):
    model = clean_mlp()
    model.graph.input[0].type.tensor_type.elem_type = elem
    assert_matches(rf"graph input 'global_in' has element type {shown}; fpgaq takes float inputs "
                   r"and quantizes them itself", problem(model))


def test_unquantized_input_read_by_a_layer():
    model = clean_mlp()
    q_in = model.graph.node[0]
    q_in.op_type, q_in.domain = "Identity", ""    # the input quantizer becomes a plain copy
    del q_in.input[1:]
    del q_in.attribute[:]
    assert_matches(rf"node '/fc1/Gemm' \(Gemm\): reads '{re.escape(q_in.output[0])}', which is not "
                   r"quantized yet; put a Quant \(or QuantizeLinear\) on the model input before this node, "
                   r"or give the input's fixed-point type with --input-type \(for example 'fixed<16,6>'\)",
                   problem(model))


def test_unused_input():
    model = clean_mlp(sizes=[4, 3])
    model.graph.input.append(helper.make_tensor_value_info("spare", TensorProto.FLOAT, [1, 2]))
    assert_matches(r"graph input 'spare' must be read by exactly one quantizer \(Quant or "
                   r"QuantizeLinear\); it is read by 0 node\(s\)", problem(model))


def test_input_read_by_two_quantizers():
    model = clean_mlp(sizes=[4, 3])
    q_in = copy.deepcopy(model.graph.node[0])
    q_in.name, q_in.output[0] = "second_input_quant", "unused"
    model.graph.node.append(q_in)
    assert_matches(r"graph input 'global_in' must be read by exactly one quantizer \(Quant or "
                   r"QuantizeLinear\); it is read by 2 node\(s\)", problem(model))


def test_float_graph_output():
    model = clean_mlp(sizes=[4, 3])
    model.graph.node.append(helper.make_node("Identity", ["global_in"], ["raw"], name="copy"))
    model.graph.output.append(helper.make_tensor_value_info("raw", TensorProto.FLOAT, [1, 4]))
    assert_matches(r"graph output 'raw' is not quantized; fpgaq needs every output to be computed "
                   r"from quantized inputs", problem(model))


def test_output_not_written_by_any_node():
    model = clean_mlp(sizes=[4, 3])
    model.graph.output.append(helper.make_tensor_value_info("ghost", TensorProto.FLOAT, [1, 3]))
    assert_matches(r"graph output 'ghost' is not written by any node", problem(model))


def test_undefined_tensor_reports_once():
    model = clean_mlp(sizes=[4, 3])
    model.graph.node[-1].input[0] = "nothere"
    assert_matches(r"node '[^']+' reads 'nothere', which no node, initializer or input defines",
                   problem(model))


# --- Trunc --------------------------------------------------------------------------------------

def _trunc_model(n_inputs: int, qonnx_opset: int):
    model = clean_mlp(sizes=[4, 3], final_quant=False)
    out = model.graph.output[0].name
    for n in model.graph.node:
        n.output[:] = [f"{out}_pre" if o == out else o for o in n.output]
    inits = {"t_scale": 2.0 ** -4, "t_zero": 0.0, "t_in": 16.0, "t_out_scale": 2.0 ** -2, "t_out": 6.0}
    for k, v in inits.items():
        model.graph.initializer.append(numpy_helper.from_array(np.array(v, np.float32), k))
    ins = [f"{out}_pre", "t_scale", "t_zero", "t_in"] + (["t_out_scale"] if n_inputs == 6 else []) + ["t_out"]
    model.graph.node.append(helper.make_node("Trunc", ins, [out], name="trunc", domain=mg.QONNX_DOMAIN,
                                             rounding_mode="FLOOR"))
    for o in model.opset_import:
        if o.domain == mg.QONNX_DOMAIN:
            o.version = qonnx_opset
    return model


def test_trunc_with_5_inputs_cannot_end_the_model():
    assert_matches(r"graph output 'global_out' comes from a 5-input Trunc, whose codes are read back "
                   r"at its input scale; fpgaq cannot end a model on it yet: use the 6-input Trunc "
                   r"\(qonnx opset 2\) with an output scale, or add a layer after it",
                   problem(_trunc_model(5, 1)))
    import_model(_trunc_model(6, 2))


@pytest.mark.parametrize("n_inputs, opset", [(5, 2), (6, 1)])
def test_trunc_inputs_must_match_the_domain_opset(n_inputs, opset):
    want = 6 if opset >= 2 else 5
    assert_matches(rf"node 'trunc' \(Trunc\): has {n_inputs} inputs but opset {opset} of "
                   rf"'{re.escape(mg.QONNX_DOMAIN)}' defines Trunc with {want}; set the domain's "
                   r"opset version to 2 for the 6-input form, 1 for the 5-input form",
                   problem(_trunc_model(n_inputs, opset)))


# --- several problems at once ---------------------------------------------------------------------

def test_several_problems_reported_together():
    """Problems on independent paths are all reported, in graph order; an unsupported op is
    reported even though its input already failed (it is wrong whatever the input)."""
    model = mg.nonzero_zeropt_model(zeropt=3.0, style="clean", layer_sizes=(8, 16, 4))
    model = mg.with_quant_param(model, 1, scale=0.3)          # fc1's weight quantizer
    model = mg.with_quant_param(model, 5, bitwidth=65)        # fc2's bias quantizer
    model = mg.with_op(model, "Erf")
    with pytest.raises(ModelError) as info:
        import_model(model)
    problems = info.value.problems
    assert len(problems) == 4, problems
    assert_matches(r"node '/input_quant/export_handler/Quant' \(Quant\): zero-point \[3\.0\] is not zero.*",
                   problems[0])
    assert_matches(r"node '/fc1/weight_quant/export_handler/Quant' \(Quant\): scale 0\.3 is not a power "
                   r"of two.*", problems[1])
    assert_matches(r"node '/fc2/bias_quant/export_handler/Quant' \(Quant\): bitwidth 65 is not a whole "
                   r"number of bits from 1 to 64", problems[2])
    assert_matches(r"node 'appended_Erf' \(Erf\): op Erf is not supported\..*", problems[3])
    assert_matches(r"4 problems in the model:\n  1\. node '/input_quant.*\n  2\. node '/fc1/weight_quant.*"
                   r"\n  3\. node '/fc2/bias_quant.*\n  4\. node 'appended_Erf'.*", str(info.value))


# --- files --------------------------------------------------------------------------------------

@pytest.fixture
def model_bytes() -> bytes:
    return clean_mlp().SerializeToString()


def test_missing_file(tmp_path):
    path = tmp_path / "nope.onnx"
    with pytest.raises(FpgaqError, match=rf"^{re.escape(str(path))}: no such model file; give the path "
                                         r"of an \.onnx file$"):
        import_file(path)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(FpgaqError, match=rf"^{re.escape(str(tmp_path))} is a folder; give the path of an \.onnx file"):
        import_file(tmp_path)


@pytest.mark.parametrize("keep", [1, 10, 100, 0.5, -30, -1])
def test_truncated_file(tmp_path, model_bytes, keep):
    n = int(len(model_bytes) * keep) if isinstance(keep, float) else keep % len(model_bytes)
    path = tmp_path / "cut.onnx"
    path.write_bytes(model_bytes[:n])
    with pytest.raises(FpgaqError, match=rf"^{re.escape(str(path))}: not a readable ONNX file \(truncated "
                                         r"or corrupt: .*\); export the model again$"):
        import_file(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    with pytest.raises(FpgaqError, match=rf"^{re.escape(str(path))}: the file parses but holds no ONNX "
                                         r"graph \(truncated or not a model\); export the model again$"):
        import_file(path)


@pytest.mark.parametrize("content", [b"hello, this is not a model\n", bytes(range(256)) * 8,
                                     np.random.default_rng(0).bytes(3000)])
def test_corrupt_bytes(tmp_path, content):
    path = tmp_path / "junk.onnx"
    path.write_bytes(content)
    with pytest.raises(FpgaqError, match=rf"^{re.escape(str(path))}: (not a readable ONNX file "
                                         r"\(truncated or corrupt: .*\)|the file parses but holds no "
                                         r"ONNX graph \(truncated or not a model\)); export the model again$"):
        import_file(path)


def test_name_that_is_not_utf8(tmp_path):
    data = mg.with_op(clean_mlp(), "Relu").SerializeToString()
    assert data.count(b"appended_Relu") == 1
    path = tmp_path / "bad_text.onnx"
    path.write_bytes(data.replace(b"appended_Relu", b"appended_\xff\xfeRu"))
    with pytest.raises(ModelError, match=r"^node #\d+ name b'appended_\\xff\\xfeRu' is not valid UTF-8 "
                                         r"text; the file is corrupt, export the model again$"):
        import_file(path)


def test_attribute_without_a_value():
    model = clean_mlp()
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    gemm.attribute.append(onnx.AttributeProto(name="beta_typo"))
    assert_matches(r"node '/fc1/Gemm' \(Gemm\): attribute 'beta_typo' has no value of a known type "
                   r"\(0\); the file is corrupt, export the model again", problem(model))


def test_missing_external_data(tmp_path):
    path = mg.save(clean_mlp(), tmp_path / "ext.onnx", external_data=True)
    import_file(path)
    (tmp_path / "ext.onnx.data").unlink()
    with pytest.raises(FpgaqError, match=r"^initializer '[^']+': external data file 'ext\.onnx\.data' "
                                         r"is missing; put it beside the model$"):
        import_file(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["qonnx", "qdq", "matmul"]),
       st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=4),
       st.one_of(st.none(), st.floats(0.5, 1)))
def test_damaged_file_is_an_error_or_a_model_never_a_crash(tmp_path_factory, kind, flips, keep):
    """Flip bytes (and maybe cut the tail) of a valid model: whatever still parses either
    imports to a verified graph or raises FpgaqError; no other exception escapes."""
    model = {"qonnx": lambda: clean_mlp(),
             "qdq": lambda: mg.qdq_mlp([8, 16, 4], rng=0, clip=True, act_bits=6),
             "matmul": lambda: mg.qonnx_mlp([4, 5, 3], rng=1, gemm=False, bias="float")}[kind]()
    data = bytearray(model.SerializeToString())
    for where, byte in flips:
        data[int(where * len(data))] = byte
    if keep is not None:
        data = data[:max(1, int(len(data) * keep))]
    path = tmp_path_factory.mktemp("damaged") / "m.onnx"
    path.write_bytes(bytes(data))
    try:
        graph = import_model(load(path))
    except FpgaqError:
        return
    assert isinstance(graph, Graph)
