"""Heterogeneous quantization (HGQ, PQuantML): QONNX Quant nodes whose bit width and
power-of-two scale are tensors, a width and a grid an element (tests/fixtures/hgq, built as
those exporters would write it: no exporter on PyPI writes per-element widths today, see its
make.py). qonnx 1.0 cannot execute per-element bit widths, so the reference is an independent
numpy reading of QONNX's Quant (tests/fixtures/hgq/reference.py), which agrees with qonnx
wherever qonnx can run (make.py checks it).

- Constant weights and biases fold to codes, each weight with its own width (zeros stay zero).
- Activations get a grid and bounds an element, on the finest grid among them.
- The emulator equals the reference exactly; C-simulation and RTL simulation equal the emulator."""
from __future__ import annotations

import sys

import numpy as np

from conftest import TESTS, csim_exact
from fpgaq import emulate
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.ir.ops import ChannelQuant, Dense
from verilog_helpers import rtl_exact

HGQ = TESTS / "fixtures" / "hgq"
sys.path.insert(0, str(HGQ))
import reference  # noqa: E402  (the fixture's own numpy reading of the model)


def _inputs(n: int = 2000) -> np.ndarray:
    """The fixture's probes (ties, saturation), then wide random values."""
    more = (np.random.default_rng(7).normal(size=(n, 16)) * 4).astype(np.float32)
    return np.concatenate([np.load(HGQ / "inputs.npy"), more])


def test_per_element_quantizers_equal_the_reference():
    graph = compile_file(HGQ / "hgq_mlp.onnx", BuildConfig())
    quants = [n for n in graph.nodes if isinstance(n.op, ChannelQuant)]
    assert len(quants) == 3                       # input, hidden activation, output
    assert len({int(f) for f in quants[1].op.fracs}) > 1
    np.testing.assert_array_equal(emulate.run(graph, np.load(HGQ / "inputs.npy"))[0], np.load(HGQ / "outputs.npy"))
    x = _inputs()
    np.testing.assert_array_equal(emulate.run(graph, x)[0], reference.run(HGQ / "hgq_mlp.onnx", x))


def test_pruned_and_rounded_to_zero_weights_cost_nothing():
    graph = compile_file(HGQ / "hgq_mlp.onnx", BuildConfig())
    dense = [n.op for n in graph.nodes if isinstance(n.op, Dense)]
    assert [int(np.count_nonzero(d.weight)) for d in dense] == [113, 36]


def test_csim_and_rtl_of_hgq(tmp_path):
    x = _inputs(300)
    csim_exact(HGQ / "hgq_mlp.onnx", tmp_path / "p", x, name="hgq")
    rtl_exact(HGQ / "hgq_mlp.onnx", tmp_path / "v", x[:150], name="hgq")
