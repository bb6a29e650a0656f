"""The digits TFC example (examples/digits_tfc): what its README states holds. The firmware
picks PyTorch's class on every held-out digit; its probabilities are within 0.01 of PyTorch's;
the hidden activations are lowered to thresholds; the C-simulation is bit-exact."""
from __future__ import annotations

import numpy as np

from conftest import ROOT, need_gxx
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
