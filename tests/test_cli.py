"""The command line: builds, refusals, determinism, and errors without tracebacks."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE, need_gxx

import modelgen
from fpgaq import emulate
from fpgaq.cli import main
from fpgaq.frontend.importer import import_file


def run_cli(*args, cwd=None):
    """Run `python -m fpgaq` as a user would; returns (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "fpgaq", *map(str, args)], capture_output=True, text=True,
                       cwd=cwd)
    return r.returncode, r.stdout, r.stderr


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".csim" not in p.parts}


def test_build_is_deterministic(tmp_path):
    assert main(["build", str(EXAMPLE), "-o", str(tmp_path / "a")]) == 0
    assert main(["build", str(EXAMPLE), "-o", str(tmp_path / "b")]) == 0
    a, b = tree(tmp_path / "a"), tree(tmp_path / "b")
    assert a.keys() == b.keys()
    assert {"build_prj.tcl", "fpgaq.json", "model.onnx", "firmware/jet_tagger.cpp",
            "firmware/parameters.h", "firmware/fpgaq_kernels.h", "tb/jet_tagger_test.cpp",
            "tb_data/tb_input_codes.dat", "tb_data/tb_output_codes.dat"} <= set(a)
    for k in a:
        assert a[k] == b[k], k


def test_build_refuses_existing_folder_without_force(tmp_path):
    out = tmp_path / "prj"
    assert main(["build", str(EXAMPLE), "-o", str(out)]) == 0
    code, _, err = run_cli("build", EXAMPLE, "-o", out)
    assert code == 1
    assert err.startswith(f"fpgaq: error: {out} already exists; choose another folder or pass --force")
    assert "Traceback" not in err
    assert main(["build", str(EXAMPLE), "-o", str(out), "--force"]) == 0


def test_force_never_replaces_a_folder_fpgaq_did_not_make(tmp_path):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    code, _, err = run_cli("build", EXAMPLE, "-o", out, "--force")
    assert code == 1
    assert "was not made by fpgaq" in err
    assert (out / "thesis.tex").read_text() == "years of work"


def test_failed_build_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.onnx"
    modelgen.save(modelgen.with_op(modelgen.qonnx_mlp([4, 6, 3], rng=0), "Erf"), bad)
    code, out, err = run_cli("build", bad, "-o", tmp_path / "prj")
    assert code == 1
    assert "Erf" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.onnx"]


@pytest.mark.parametrize("content, pattern", [
    (None, r"^fpgaq: error: .*missing\.onnx: no such model file"),
    (b"\x08\x07garbage\xff\xff\xff", r"^fpgaq: error: .*: not a readable ONNX file \(truncated or corrupt"),
])
def test_unreadable_model_is_one_clear_line(tmp_path, content, pattern):
    import re
    path = tmp_path / "missing.onnx"
    if content is not None:
        path.write_bytes(content)
    code, _, err = run_cli("build", path, "-o", tmp_path / "prj")
    assert code == 1
    assert re.match(pattern, err), err
    assert "Traceback" not in err


def test_truncated_model(tmp_path):
    data = EXAMPLE.read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 3])
    code, _, err = run_cli("inspect", path)
    assert code == 1
    assert "Traceback" not in err and err.startswith("fpgaq: error:")


def test_build_csim_in_one_go(tmp_path):
    need_gxx()
    code, out, err = run_cli("build", EXAMPLE, "-o", tmp_path / "prj", "--csim", "-n", "1000")
    assert code == 0, err
    assert "bit-exact: all 1000 x 5 outputs equal the emulator's" in out


def test_csim_command_with_inputs_and_output(tmp_path):
    need_gxx()
    assert main(["build", str(EXAMPLE), "-o", str(tmp_path / "prj")]) == 0
    x = np.random.default_rng(5).normal(0, 2, size=(1200, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run_cli("csim", tmp_path / "prj", "--inputs", tmp_path / "x.npy",
                             "--output", tmp_path / "y.npy")
    assert code == 0, err
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, emulate.run(import_file(EXAMPLE), x)[0])


def test_csim_reports_mismatches_and_fails(tmp_path):
    need_gxx()
    assert main(["build", str(EXAMPLE), "-o", str(tmp_path / "prj")]) == 0
    params = tmp_path / "prj" / "firmware" / "parameters.h"
    text = params.read_text()
    i = text.index("b_dense[")
    j = text.index("{", i) + 1
    k = text.index(",", j)
    params.write_text(text[:j] + str(int(text[j:k]) + 7) + text[k:])
    code, out, err = run_cli("csim", tmp_path / "prj", "-n", "1000")
    assert code == 1
    assert "MISMATCH" in err and "sample  output  expected  got" in err


def test_emulate_command(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, err = run_cli("emulate", EXAMPLE, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert code == 0, err
    y = np.load(tmp_path / "y.npy")
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, emulate.run(import_file(EXAMPLE), x)[0])


def test_emulate_rejects_wrong_input_shape(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 7), dtype=np.float32))
    code, _, err = run_cli("emulate", EXAMPLE, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert code == 1
    assert "the model takes (N, 16)" in err and "Traceback" not in err


def test_inspect_prints_a_line_a_node(tmp_path):
    code, out, err = run_cli("inspect", EXAMPLE)
    assert code == 0, err
    lines = out.splitlines()
    dense = [l for l in lines if " = dense " in l]
    assert len(dense) == 4
    assert "nonzero 307/1024 (70.0% sparse)" in dense[0]
    assert all(":" in l and "[" in l for l in lines[:-1])
    assert lines[-1].startswith("outputs: ")


def test_bad_config_is_reported(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("clock_ns: fast\nReuseFactor: 2\n")
    code, _, err = run_cli("build", EXAMPLE, "-o", tmp_path / "p", "--config", cfg)
    assert code == 1
    assert "unknown setting(s) ReuseFactor; valid settings are" in err


@pytest.mark.parametrize("args, pattern", [
    (["-n", "0"], r"argument -n: 0 must be at least 1"),
    (["-n", "-5"], r"argument -n: -5 must be at least 1"),
    (["--reuse", "x"], r"--reuse 'x': give a positive integer or 'auto'"),
    (["--dsp-budget", "10"], r"dsp_budget only applies with reuse 'auto'"),
    (["--requant-bits", "1"], r"argument --requant-bits: 1 must be at least 1|requant_bits 1 must be"),
])
def test_bad_build_options(tmp_path, args, pattern):
    import re
    code, _, err = run_cli("build", EXAMPLE, "-o", tmp_path / "p", *args)
    assert code != 0 and "Traceback" not in err
    assert re.search(pattern, err), err


@pytest.mark.parametrize("yaml_text, pattern", [
    ("reuse: true\n", r"reuse True must be a positive integer or 'auto'"),
    ("tb_samples: yes\n", r"tb_samples True must be between"),
    ("name: 5\n", r"name 5 must be text"),
])
def test_yaml_values_of_the_wrong_type(tmp_path, yaml_text, pattern):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    code, _, err = run_cli("build", EXAMPLE, "-o", tmp_path / "p", "--config", cfg)
    assert code == 1 and "Traceback" not in err
    assert pattern.split("(")[0][:20] in err or __import__("re").search(pattern, err), err


def test_csim_refuses_a_verilog_project(tmp_path):
    assert main(["build", str(EXAMPLE), "-o", str(tmp_path / "v"), "--backend", "verilog"]) == 0
    code, _, err = run_cli("csim", tmp_path / "v", "-n", "5")
    assert code == 1 and "Traceback" not in err
    assert "is a verilog project; C-simulation is for HLS projects (use `fpgaq rtlsim` for Verilog)" in err


def test_empty_or_complex_inputs_and_unwritable_outputs(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 16), dtype=np.float32))
    np.save(tmp_path / "complex.npy", np.zeros((3, 16), dtype=np.complex64))
    np.save(tmp_path / "x.npy", np.zeros((3, 16), dtype=np.float32))
    for name, pattern in (("empty.npy", "holds no inputs"), ("complex.npy", "expected real numbers")):
        code, _, err = run_cli("emulate", EXAMPLE, "--inputs", tmp_path / name, "--output", tmp_path / "y.npy")
        assert code == 1 and pattern in err and "Traceback" not in err
    code, _, err = run_cli("emulate", EXAMPLE, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "no" / "y.npy")
    assert code == 1 and "cannot write" in err and "Traceback" not in err
    code, _, err = run_cli("emulate", EXAMPLE, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.out")
    assert code == 0 and (tmp_path / "y.out").is_file()


def test_damaged_project_folders(tmp_path):
    assert main(["build", str(EXAMPLE), "-o", str(tmp_path / "p")]) == 0
    (tmp_path / "p" / "firmware" / "sub").mkdir()
    (tmp_path / "p" / "tb" / "jet_tagger_test.cpp").unlink()
    code, _, err = run_cli("csim", tmp_path / "p", "-n", "5")
    assert code == 1 and "lacks tb/jet_tagger_test.cpp; rebuild the project" in err
    (tmp_path / "p" / "fpgaq.json").write_text("[1, 2]")
    code, _, err = run_cli("csim", tmp_path / "p", "-n", "5")
    assert code == 1 and "is damaged" in err and "Traceback" not in err


@pytest.mark.parametrize("backend, last", [("hls", "tile_by_reuse"), ("verilog", "fuse_relu_quant")])
def test_dump_ir_writes_the_graph_after_import_and_every_pass(tmp_path, backend, last):
    from fpgaq.passes.pipeline import pipeline
    dump = tmp_path / "ir"
    assert main(["build", str(EXAMPLE), "-o", str(tmp_path / "p"), "--backend", backend, "--dump-ir", str(dump)]) == 0
    names = sorted(p.name for p in dump.iterdir())
    assert names[0] == "00_import.txt" and names[-1].endswith(f"_{last}.txt")
    assert [n.split("_", 1)[1][:-4] for n in names[1:len(pipeline()) + 1]] == [p.name for p in pipeline()]
    imported, final = (dump / names[0]).read_text(), (dump / names[-1]).read_text()
    assert "gemm" in imported and "const" in imported            # the ONNX graph, mirrored
    assert "gemm" not in final and " = dense " in final


def test_no_command_prints_the_help(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: fpgaq") and "build" in out


def test_a_folder_as_the_model_says_so(tmp_path):
    code, out, err = run_cli("build", tmp_path, "-o", tmp_path / "p")
    assert code == 1 and "is a folder; give the path of an .onnx file" in err and "Traceback" not in err


def test_counts_are_singular_for_one(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 16), dtype=np.float32))
    code, out, err = run_cli("emulate", EXAMPLE, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert code == 0 and "emulated 1 input in" in out


def test_a_verilog_build_without_output_is_named_for_its_backend(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["build", str(EXAMPLE), "--backend", "verilog"]) == 0
    assert (tmp_path / "jet_tagger_v" / "fpgaq.json").is_file() and not (tmp_path / "jet_tagger_hls").exists()


@pytest.mark.parametrize("where", ["file", "/dev/null/x", "/proc/x"])
def test_an_output_folder_that_cannot_be_made_is_one_line(tmp_path, where):
    if where == "file":
        (tmp_path / "a_file").write_text("not a folder")
        where = str(tmp_path / "a_file" / "x")
    code, out, err = run_cli("build", EXAMPLE, "-o", where)
    assert code == 1 and "Traceback" not in err, err
    assert len(err.splitlines()) == 1 and err.startswith(f"fpgaq: error: cannot make the project folder {where}")
    assert "choose another folder with -o" in err


def test_dump_ir_naming_a_file_is_one_line(tmp_path):
    (tmp_path / "a_file").write_text("not a folder")
    for dump in (tmp_path / "a_file", tmp_path / "a_file" / "ir"):
        code, out, err = run_cli("build", EXAMPLE, "-o", tmp_path / "p", "--dump-ir", dump)
        assert code == 1 and "Traceback" not in err and len(err.splitlines()) == 1, err
        assert "is a file, not a folder" in err
    assert not (tmp_path / "p").exists()


def test_dump_ir_inside_the_project_folder_is_kept(tmp_path):
    out = tmp_path / "p"
    for force in ([], ["--force"]):          # a new project, then one replacing it
        assert main(["build", str(EXAMPLE), "-o", str(out), "--dump-ir", str(out / "ir"), *force]) == 0
        names = sorted(p.name for p in (out / "ir").iterdir())
        assert names[0] == "00_import.txt" and names[-1].endswith("_tile_by_reuse.txt")
    for own in ("firmware", "tb_data/tb_input_real.npy", "model.onnx/ir"):
        code, _, err = run_cli("build", EXAMPLE, "-o", out, "--force", "--dump-ir", out / own)
        assert code == 1 and "fpgaq writes that folder itself" in err and "Traceback" not in err, err
    code, _, err = run_cli("build", EXAMPLE, "-o", out, "--force", "--dump-ir", out)
    assert code == 1 and "is the project folder" in err and "Traceback" not in err


def test_debug_after_the_command_shows_the_traceback(tmp_path):
    code, _, err = run_cli("build", tmp_path / "none.onnx", "--debug")
    assert code != 0 and "Traceback" in err and "no such model file" in err


def test_a_model_file_given_as_the_project_says_so(tmp_path):
    code, _, err = run_cli("csim", EXAMPLE)
    assert code == 1 and "Traceback" not in err
    assert f"-o {EXAMPLE}`" not in err
    assert f"{EXAMPLE} is a model file, not a project folder; build a project from it first with " \
           f"`fpgaq build {EXAMPLE} -o DIR`, then give DIR" in err
    code, _, err = run_cli("report", tmp_path / "nothing")
    assert code == 1 and f"{tmp_path / 'nothing'}: no such project folder" in err


def test_a_yaml_syntax_error_is_one_line_with_its_place(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: [a\nreuse: 2\n")
    code, _, err = run_cli("build", EXAMPLE, "-o", tmp_path / "p", "--config", cfg)
    assert code == 1 and len(err.splitlines()) == 1, err
    assert err.startswith(f"fpgaq: error: {cfg}: not valid YAML at line 2, column 6: expected ',' or ']'")


def test_short_times_are_not_printed_as_zero(tmp_path):
    from fpgaq.cli import duration
    assert duration(0.0004) == "under 1 ms" and duration(0.0042) == "4 ms" and duration(0.25) == "250 ms"
    assert duration(1.234) == "1.23 s" and duration(75.4) == "75.4 s"
    np.save(tmp_path / "x.npy", np.zeros((500, 16), dtype=np.float32))
    code, out, err = run_cli("emulate", EXAMPLE, "--inputs", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert code == 0 and " in 0.00" not in out and re.search(r"emulated 500 inputs in (under )?\d+ ms", out), out


@pytest.mark.parametrize("part, warned", [("nonsense", True), ("xcvu13p-flga2577-2-e", False),
                                          ("xc7a35tcpg236-1", False), ("xczu9eg-ffvb1156-2-e", False),
                                          ("xcku115-flvb2104-2-e", False), ("xcau15p-ffvb676-2-e", False),
                                          ("xcve2802-vsvh1760-2MP-e-S", False), ("XCU250-figd2104-2L-e", False)])
def test_an_unknown_part_family_is_warned_about(tmp_path, part, warned):
    code, out, err = run_cli("build", EXAMPLE, "-o", tmp_path / "p", "--part", part)
    assert code == 0, err
    assert ("fpgaq: warning: part 'nonsense' is not of an AMD/Xilinx family fpgaq knows" in err) == warned, err
    assert json.loads((tmp_path / "p" / "fpgaq.json").read_text())["config"]["part"] == part


def test_reuse_auto_says_what_it_chose(tmp_path):
    model = tmp_path / "wide.onnx"             # products of 10 x 10 bits: DSPs
    modelgen.save(modelgen.qonnx_mlp([16, 32, 5], rng=0, w_bits=10, in_bits=10, in_frac=4, act_bits=10,
                                     check_exact=False), model)
    code, out, err = run_cli("build", model, "-o", tmp_path / "p", "--reuse", "auto", "--dsp-budget", "10")
    assert code == 0, err
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    chosen = ", ".join(f"{layer['name']} {layer['reuse']}" for layer in report["layers"])
    assert any(layer["reuse"] > 1 for layer in report["layers"])
    assert f"reuse auto (at most 10 DSPs): {chosen}; {report['total']['dsp']} DSPs estimated" in out, out


def test_a_verilog_projects_report_describes_the_verilog_design(tmp_path):
    """Its cycles, adders and registers, counted from the RTL; no DSP, multiplier or hls4ml columns."""
    from fpgaq.backends.verilog.context import project_context
    from fpgaq.project import open_project
    out = tmp_path / "v"
    assert main(["build", str(EXAMPLE), "-o", str(out), "--backend", "verilog"]) == 0
    md = (out / "report.md").read_text()
    data = json.loads((out / "report.json").read_text())
    code, shown, err = run_cli("report", out)
    assert code == 0 and shown == md, err
    code, shown, err = run_cli("report", out, "--json")
    assert code == 0 and json.loads(shown) == data, err
    assert "hls4ml" not in md and "| DSP |" not in md and "multipliers |" not in md and "BRAM" not in md
    assert "**Latency 5 cycles = 25 ns, II 1;" in md and "0 DSP" in md
    project = open_project(out)
    ctx = project_context(project.graph, project.config)
    t = data["total"]
    assert data["backend"] == "verilog"
    assert (t["latency_cycles"], t["adders"], t["dsp"]) == (ctx["latency"], ctx["adders"], 0)
    assert sum(layer["adders"] for layer in data["layers"]) == t["adders"]
    assert sum(layer["stages"] for layer in data["layers"]) + 1 == t["latency_cycles"]
    # a Verilog layer has no hls4ml comparison; at reuse 1 it multiplies by shift-and-add (no DSP)
    assert not any("hls4ml_accumulator" in layer for layer in data["layers"])
    assert all(layer.get("dsp", 0) == 0 and layer.get("multipliers", 0) == 0 for layer in data["layers"])
    hls = json.loads(_built(tmp_path / "h").joinpath("report.json").read_text())
    assert hls["backend"] == "hls" and "hls4ml_accumulator" in hls["layers"][0] and hls["total"]["latency_cycles"] == 12


def _built(out):
    assert main(["build", str(EXAMPLE), "-o", str(out)]) == 0
    return out


@pytest.mark.parametrize("args, code", [(["build", "missing.onnx"], 1), (["inspect", str(EXAMPLE)], 0)])
def test_the_command_exits_quickly_but_completely(tmp_path, args, code):
    """`fpgaq` skips Python's teardown of its modules, not the rest of an exit: the exit code,
    every line written to a pipe, and exit handlers registered during the run."""
    script = ("import atexit, sys; atexit.register(lambda: print('exit handler ran', file=sys.stderr)); "
              f"sys.argv = ['fpgaq', *{args!r}]; from fpgaq.cli import run; run()")
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == code
    assert r.stderr.rstrip().endswith("exit handler ran")
    if code == 0:
        assert r.stdout == run_cli(*args, cwd=tmp_path)[1] and len(r.stdout.splitlines()) > 10
    else:
        assert "fpgaq: error: missing.onnx" in r.stderr
