"""Make jet_tagger.onnx: a 70%-pruned 16-64-32-32-5 ReLU MLP in QONNX.

The network stands in for the hls4ml/LHC jet tagger (16 jet features in, 5
classes out).  It is built the way a Brevitas 0.13 export with fixed-point
quantizers looks, with weights as if trained: a He-normal initialisation,
magnitude-pruned to 70% zeros per layer, quantized to power-of-two scales.

* input: Quant, 8-bit signed, scale 2**-5 (range -4 .. +3.97)
* per layer: Gemm(transB=1), weight initializer behind a 6-bit narrow Quant,
  float bias on the accumulator's grid (exact in float32); the logits' biases
  centre the calibration logits so that no class dominates
* hidden layers: Relu -> Quant, 8-bit unsigned, power-of-two scale calibrated
  from a float64 forward pass on standard-normal inputs
* logits: no quantizer (float output, exact: a dyadic value < 2**24 LSBs)

Run: ``python examples/jet_tagger/make_model.py``; it writes jet_tagger.onnx
beside itself (same bytes on every run) and prints a summary.
Needs numpy and onnx only.
"""

import math
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

SEED = 20240611
SIZES = [16, 64, 32, 32, 5]
SPARSITY = 0.7
IN_BITS, IN_FRAC = 8, 5  # signed input
W_BITS = 6  # signed, narrow: codes -31..31
ACT_BITS = 8  # unsigned after each ReLU
N_CALIB = 4096
DOMAIN = "qonnx.custom_op.general"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jet_tagger.onnx")


def quant(x, frac, bits, signed, narrow=False):
    """QONNX Quant with scale 2**-frac, zeropt 0, ROUND (half to even), in float64."""
    lo = -(2 ** (bits - 1)) + int(narrow) if signed else 0
    hi = 2 ** (bits - 1) - 1 if signed else 2**bits - 1
    return np.round(np.clip(x * 2.0**frac, lo, hi)) * 2.0**-frac


def frac_for(maxabs, qmax):
    """Largest f with maxabs * 2**f <= qmax (the finest scale that does not saturate)."""
    f = math.floor(math.log2(qmax / maxabs))
    return f + 1 if maxabs * 2.0 ** (f + 1) <= qmax else f


def design(rng):
    """Integer weights and biases, and the fraction bits of every tensor."""
    x = quant(rng.standard_normal((N_CALIB, SIZES[0])), IN_FRAC, IN_BITS, True)
    x_frac, layers = IN_FRAC, []
    for i, (n_in, n_out) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        w = rng.standard_normal((n_out, n_in)) * math.sqrt(2.0 / n_in)
        cut = np.sort(np.abs(w).ravel(), kind="stable")[round(SPARSITY * w.size) - 1]
        keep = np.abs(w) > cut  # magnitude pruning
        w_frac = frac_for(np.abs(w[keep]).max(), 2 ** (W_BITS - 1) - 1)
        w_code = np.round(w * 2.0**w_frac).astype(np.int64)
        w_code = np.where(keep, np.where(w_code == 0, np.sign(w), w_code), 0).astype(np.int64)
        acc_frac = x_frac + w_frac
        z = x @ (w_code * 2.0**-w_frac).T
        b_real = rng.standard_normal(n_out) * 0.5 * z.std(axis=0)
        if i == len(SIZES) - 2:  # logits: centre them, so that no class dominates
            b_real = -z.mean(axis=0)
        b_code = np.round(b_real * 2.0**acc_frac).astype(np.int64)
        z = z + b_code * 2.0**-acc_frac
        x_max = 2 ** (IN_BITS - 1) if i == 0 else 2**ACT_BITS - 1
        worst = (np.abs(w_code).sum(axis=1) * x_max + np.abs(b_code)).max()
        assert worst < 2**24, "float32 reference would not be exact"
        layer = dict(w=w_code, w_frac=w_frac, b=b_code, acc_frac=acc_frac, worst=int(worst))
        if i < len(SIZES) - 2:  # hidden layer: ReLU, then an 8-bit unsigned quantizer
            z = np.maximum(z, 0.0)
            a_frac = frac_for(z.max(), 2**ACT_BITS - 1)
            y = quant(z, a_frac, ACT_BITS, False)
            layer.update(a_frac=a_frac, zero=float((y == 0).mean()),
                         sat=float((y == (2**ACT_BITS - 1) * 2.0**-a_frac).mean()))
            z, x_frac = y, a_frac
        layers.append(layer)
        x = z
    return layers, x


def build(layers):
    nodes, inits, scalars = [], [], {}

    def scalar(v):  # one float32 scalar initializer per distinct value, shared
        if v not in scalars:
            scalars[v] = f"onnx::Quant_{len(scalars) + 1}"
            inits.append(numpy_helper.from_array(np.array(v, np.float32), scalars[v]))
        return scalars[v]

    def q(x, out, frac, bits, signed, narrow):
        ins = [x, scalar(2.0**-frac), scalar(0.0), scalar(float(bits))]
        nodes.append(helper.make_node("Quant", ins, [out], name="", domain=DOMAIN,
                                      signed=int(signed), narrow=int(narrow), rounding_mode="ROUND"))
        return out

    x = q("global_in", "/input_quant/export_handler/Quant_output_0", IN_FRAC, IN_BITS, True, False)
    for i, L in enumerate(layers, start=1):
        w_name, b_name = f"fc{i}.weight", f"fc{i}.bias"
        inits.append(numpy_helper.from_array((L["w"] * 2.0 ** -L["w_frac"]).astype(np.float32), w_name))
        inits.append(numpy_helper.from_array((L["b"] * 2.0 ** -L["acc_frac"]).astype(np.float32), b_name))
        wq = q(w_name, f"/fc{i}/weight_quant/export_handler/Quant_output_0", L["w_frac"], W_BITS, True, True)
        last = "a_frac" not in L
        y = "global_out" if last else f"/fc{i}/Gemm_output_0"
        nodes.append(helper.make_node("Gemm", [x, wq, b_name], [y], name="", alpha=1.0, beta=1.0, transB=1))
        if not last:
            nodes.append(helper.make_node("Relu", [y], [f"/relu{i}/Relu_output_0"], name=""))
            x = q(f"/relu{i}/Relu_output_0", f"/act{i}/export_handler/Quant_output_0",
                  L["a_frac"], ACT_BITS, False, False)
    inputs = [helper.make_tensor_value_info("global_in", TensorProto.FLOAT, [1, SIZES[0]])]
    inputs += [helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)) for t in inits]
    outputs = [helper.make_tensor_value_info("global_out", TensorProto.FLOAT, [1, SIZES[-1]])]
    graph = helper.make_graph(nodes, "main_graph", inputs, outputs, inits)
    model = helper.make_model(graph, producer_name="fpgaq examples/jet_tagger/make_model.py",
                              opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(DOMAIN, 1)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def main():
    layers, logits = design(np.random.default_rng(SEED))
    model = build(layers)
    onnx.save_model(model, OUT)
    total = sum(L["w"].size for L in layers)
    nz = sum(int(np.count_nonzero(L["w"])) for L in layers)
    print(f"wrote {OUT}")
    print(f"16-64-32-32-5 QONNX MLP, seed {SEED}: input 8-bit signed scale 2^-{IN_FRAC}, "
          f"weights {W_BITS}-bit narrow, activations {ACT_BITS}-bit unsigned, float logits")
    print(f"{'layer':<6}{'shape':>8}{'weights':>9}{'non-zero':>10}{'sparsity':>10}{'w scale':>9}"
          f"{'|w| max':>9}{'b frac':>8}{'act scale':>11}{'zeros':>7}{'sat':>7}{'worst acc':>11}")
    for i, L in enumerate(layers, start=1):
        n, k = L["w"].size, int(np.count_nonzero(L["w"]))
        act = f"2^-{L['a_frac']}" if "a_frac" in L else "none"
        zero = f"{L['zero']:.0%}" if "zero" in L else "-"
        sat = f"{L['sat']:.2%}" if "sat" in L else "-"
        shape = "x".join(map(str, L["w"].shape))
        print(f"fc{i:<4}{shape:>8}{n:>9}{k:>10}{1 - k / n:>10.1%}{'2^-' + str(L['w_frac']):>9}"
              f"{int(np.abs(L['w']).max()):>9}{L['acc_frac']:>8}{act:>11}{zero:>7}{sat:>7}{L['worst']:>11}")
    print(f"total {total} weights, {nz} non-zero ({1 - nz / total:.1%} pruned); "
          f"{sum(L['b'].size for L in layers)} biases; "
          f"calibration logits range {logits.min():.3f} .. {logits.max():.3f}")


if __name__ == "__main__":
    main()
