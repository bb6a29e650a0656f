"""The emulator's number types give the same integers: every node of every fixture model and of
random networks (all rounding modes, signed and unsigned, wide accumulators), run in float32,
in float64 and in int64, and in chunks of any size."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

import modelgen as mg
from conftest import EXAMPLE, TESTS

from fpgaq import emulate
from fpgaq.compile import compile_file, compile_model
from fpgaq.config import BuildConfig
from fpgaq.errors import FpgaqError
from fpgaq.ir.graph import Graph
from fpgaq.stimulus import random_inputs

FIXTURES = sorted(p for p in (TESTS / "fixtures").rglob("*.onnx"))
TIERS = {"float32": (23, 52), "float64": (0, 52), "int64": (0, 0)}


def _codes(graph: Graph, x: np.ndarray, tier: str, monkeypatch) -> dict[str, np.ndarray]:
    """Every node's codes (and the real outputs) with the emulator held to one number type."""
    f32, f64 = TIERS[tier]
    monkeypatch.setattr(emulate, "FLOAT32_EXACT_BITS", f32)
    monkeypatch.setattr(emulate, "FLOAT64_EXACT_BITS", f64)
    emulate._plan.cache_clear()
    try:
        plan = emulate._plan(graph)
        if tier != "float32":                 # float32 only where the graph's widths allow it
            assert (plan.floats, plan.float32) == (tier == "float64", False)
        return {**emulate.run_codes(graph, x), "real outputs": emulate.run(graph, x)[0]}
    finally:
        emulate._plan.cache_clear()


def _same_everywhere(graph: Graph, x: np.ndarray, monkeypatch) -> None:
    runs = {t: _codes(graph, x, t, monkeypatch) for t in TIERS}
    ref = runs.pop("int64")
    for tier, codes in runs.items():
        for name, want in ref.items():
            assert_array_equal(codes[name], want, err_msg=f"{tier}: {name}")


CONFIGS = (BuildConfig(requantize=True), BuildConfig(requantize=True, input_type="fixed<16,6>"))


def _graph(path: Path) -> Graph | None:
    """The fixture compiled as it can be (a float input given a type), or None for one fpgaq
    refuses (float weights: those fixtures are for the refusal and for `fpgaq compress`)."""
    for config in CONFIGS:
        try:
            graph = compile_file(str(path), config)
        except FpgaqError:
            continue
        return graph if len(graph.inputs) == 1 else None
    return None


COMPILED = {p: g for p in FIXTURES if (g := _graph(p)) is not None}


def test_most_fixtures_compile():
    assert len(COMPILED) >= len(FIXTURES) - 6 and len(COMPILED) >= 20


@pytest.mark.parametrize("path", list(COMPILED), ids=[str(p.relative_to(TESTS / "fixtures")) for p in COMPILED])
def test_fixture_models_same_in_every_tier(path, monkeypatch):
    graph = COMPILED[path]
    _same_everywhere(graph, random_inputs(graph, 300, seed=5), monkeypatch)


def test_jet_tagger_runs_in_float32_and_chunks_do_not_matter(monkeypatch):
    graph = compile_file(str(EXAMPLE), BuildConfig())
    plan = emulate._plan(graph)
    assert plan.floats and plan.float32
    x = random_inputs(graph, 5000, seed=2)
    whole = emulate.run(graph, x)[0]
    assert whole.dtype == np.float64
    monkeypatch.setattr(emulate, "CHUNK_VALUES", 64 * 7)      # odd chunks of 7 rows ... 64: the floor
    emulate._plan.cache_clear()
    try:
        assert emulate._plan(graph).rows == 64
        assert_array_equal(emulate.run(graph, x)[0], whole)
        assert_array_equal(emulate.run(graph, x[:1])[0], whole[:1])
    finally:
        emulate._plan.cache_clear()
    _same_everywhere(graph, x[:500], monkeypatch)


ROUNDINGS = ["ROUND", "HALF_UP", "HALF_DOWN", "FLOOR", "CEIL", "UP", "DOWN", "HALF_EVEN"]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**16), modes=st.lists(st.sampled_from(ROUNDINGS), min_size=3, max_size=3),
       in_bits=st.integers(2, 16), act_bits=st.integers(2, 12), w_bits=st.integers(2, 12),
       signed=st.booleans(), relu=st.booleans())
def test_random_networks_same_in_every_tier(monkeypatch, seed, modes, in_bits, act_bits, w_bits, signed, relu):
    """Widths below and past the float32 limit (2**23): the emulator picks a number type from
    the intervals; held to each, the integers agree."""
    model = mg.qonnx_mlp([10, 24, 12], rng=seed, rounding_mode=modes, in_bits=in_bits, act_bits=act_bits,
                         w_bits=w_bits, act_signed=signed, relu=relu, check_exact=False)
    graph = compile_model(model, "net", BuildConfig())
    _same_everywhere(graph, random_inputs(graph, 200, seed=seed), monkeypatch)
