"""The digits TFC example (examples/digits_tfc): what its README states holds. The firmware
picks PyTorch's class on every held-out digit; its probabilities are within 0.01 of PyTorch's;
the hidden activations are lowered to thresholds; the C-simulation is bit-exact. The same for
the digits CNN (examples/digits_cnn): PyTorch's class on every digit, C-simulation bit-exact."""
from __future__ import annotations

import numpy as np

from conftest import ROOT, csim_exact, need_gxx
from fpgaq import emulate
from fpgaq.backends.hls.csim import run_csim
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.deviation import requantizers
from fpgaq.project import build

DIGITS = ROOT / "examples" / "digits_tfc"


def test_digits_example_agrees_with_pytorch():
    graph = compile_file(DIGITS / "digits_tfc.onnx", BuildConfig(requantize=True))
    lowerings = [q["lowering"] for q in requantizers(graph)]
    assert lowerings == ["thresholds", "thresholds", "multiplier"]
    x = np.load(DIGITS / "test_inputs.npy")
    torch_p = np.load(DIGITS / "test_outputs.npy")
    labels = np.load(DIGITS / "test_labels.npy")
    ours = emulate.run(graph, x)[0]
    assert np.array_equal(ours.argmax(1), torch_p.argmax(1))
    assert np.max(np.abs(ours - torch_p)) <= 0.01
    assert np.mean(ours.argmax(1) == labels) >= 0.9


def test_digits_example_csim(tmp_path):
    need_gxx()
    project = build(DIGITS / "digits_tfc.onnx", tmp_path / "p", BuildConfig(name="digits", requantize=True))
    r = run_csim(project, np.load(DIGITS / "test_inputs.npy"))
    assert r.ok, r.mismatches


CNN = ROOT / "examples" / "digits_cnn"


def _digits_cnn():
    x, torch_y = np.load(CNN / "test_inputs.npy"), np.load(CNN / "test_outputs.npy")
    return compile_file(CNN / "digits_cnn.onnx", BuildConfig(requantize=True)), x, torch_y


def test_digits_cnn_example_agrees_with_pytorch():
    """The digits CNN (examples/digits_cnn): qonnx runs the file as PyTorch ran the model; the
    float batch-norm before the first 4-bit ReLU becomes thresholds; the emulator picks
    PyTorch's class on every held-out digit."""
    import onnx
    from qonnx_reference import run_reference
    graph, x, torch_y = _digits_cnn()
    assert [q["lowering"] for q in requantizers(graph)] == ["thresholds"]
    np.testing.assert_array_equal(run_reference(onnx.load(CNN / "digits_cnn.onnx"), x)[0], torch_y)
    ours = emulate.run(graph, x)[0]
    assert np.array_equal(ours.argmax(1), torch_y.argmax(1))
    assert np.mean(ours.argmax(1) == np.load(CNN / "test_labels.npy")) >= 0.9


def test_digits_cnn_example_equals_pytorch_exactly():
    """The batch-norm's shift, folded into conv1's bias and held rounded on the accumulator's grid,
    is added back exactly by the thresholds after it, through the conv's Reshape and the ReLU."""
    graph, x, torch_y = _digits_cnn()
    np.testing.assert_array_equal(emulate.run(graph, x)[0], torch_y)


def test_digits_cnn_example_csim(tmp_path):
    project = csim_exact(CNN / "digits_cnn.onnx", tmp_path / "p", np.load(CNN / "test_inputs.npy"),
                         name="digits_cnn", requantize=True)
    total = project.report["total"]
    assert (total["weights"], total["nonzero"]) == (644, 322)
