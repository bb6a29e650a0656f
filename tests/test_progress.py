"""Progress on a terminal (fpgaq.progress): shown on stderr only where stderr is a terminal (or
FPGAQ_PROGRESS=1), never on stdout, never in CI or a pipe; `--json` stays pure JSON with it on."""
import io
import json
import os
import subprocess
import sys
import time

import pytest

import modelgen
from conftest import need_gxx
from verilog_helpers import need, need_cocotb

from fpgaq import progress
from fpgaq.config import BuildConfig
from fpgaq.progress import polling, step
from fpgaq.project import build


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def terminal(monkeypatch):
    """stderr is a terminal outside CI, and a step shows at once. (Set in the test's own call:
    pytest puts its capture back on sys.stderr after the fixtures.)"""
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(progress, "DELAY_S", 0.0)

    def tty() -> FakeTTY:
        fake = FakeTTY()
        monkeypatch.setattr(sys, "stderr", fake)
        return fake
    return tty


def _slow_step(name="compiling the thing", **kw):
    with step(name, **kw) as s:
        time.sleep(0.4)
    return s


def test_terminal_shows_the_step_on_stderr(terminal, capsys):
    terminal = terminal()
    _slow_step("C-simulation: compiling net with g++")
    text = terminal.getvalue()
    assert "C-simulation: compiling net with g++" in text
    assert "0:00:0" in text                     # the elapsed time
    assert capsys.readouterr().out == ""         # never on stdout


def test_count_from_polling(terminal):
    terminal = terminal()
    done = iter(range(1, 1000))
    with step("RTL simulation of net", total=500, unit="inputs") as s, polling(s, lambda: next(done), every=0.02):
        time.sleep(0.5)
    assert "/500 inputs" in terminal.getvalue()
    s.update(done=7)                             # after the display: nothing breaks
    assert s.count() == "7/500 inputs"


def test_nested_steps_share_one_display(terminal):
    terminal = terminal()
    with step("outer"):
        time.sleep(0.2)
        _slow_step("inner")
        time.sleep(0.2)
    text = terminal.getvalue()
    assert "outer" in text and "inner" in text
    assert progress._display is None and progress._shown == 0


def test_nothing_without_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    assert not progress.enabled()                # pytest's captured stderr is no terminal
    _slow_step()
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize("env", [{"CI": "true"}, {"TERM": "dumb"}, {progress.ENV: "0"}])
def test_off_in_ci_dumb_terminals_and_when_asked(terminal, monkeypatch, env):
    terminal = terminal()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert not progress.enabled()
    _slow_step()
    assert terminal.getvalue() == ""


def test_forced_on_without_a_terminal(monkeypatch, capsys):
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv(progress.ENV, "1")
    monkeypatch.setattr(progress, "DELAY_S", 0.0)
    _slow_step("yosys: synthesizing net")
    out = capsys.readouterr()
    assert "yosys: synthesizing net" in out.err and out.out == ""


def test_a_quick_step_shows_nothing(terminal, monkeypatch):
    terminal = terminal()
    monkeypatch.setattr(progress, "DELAY_S", 0.3)
    with step("quick"):
        time.sleep(0.01)
    time.sleep(0.4)
    assert terminal.getvalue() == ""


def _cli(*args, progress_on=True, cache=None):
    env = {**os.environ, progress.ENV: "1" if progress_on else "0", "COLUMNS": "200"}
    if cache is not None:                 # an empty cache: the compile or build really runs
        env["XDG_CACHE_HOME"] = str(cache)
    r = subprocess.run([sys.executable, "-m", "fpgaq", *map(str, args)], capture_output=True, text=True, env=env)
    return r.returncode, r.stdout, r.stderr


def test_cli_csim_progress_on_stderr_only(tmp_path):
    need_gxx()
    path = tmp_path / "net.onnx"
    modelgen.save(modelgen.qonnx_mlp([6, 8, 3], rng=1), path)
    build(path, tmp_path / "p", BuildConfig(name="net"))
    code, out, err = _cli("csim", tmp_path / "p", "-n", "50", cache=tmp_path / "cache")
    assert code == 0, err
    assert "C-simulation: compiling net with g++" in err
    assert "\x1b" not in out and out.startswith("C-simulation: compiled in")
    code, out, err = _cli("csim", tmp_path / "p", "-n", "50", progress_on=False)
    assert code == 0 and err == ""


def test_cli_rtlsim_json_stays_json_with_progress(tmp_path):
    need_cocotb()
    need("iverilog", "Icarus Verilog")
    path = tmp_path / "net.onnx"
    modelgen.save(modelgen.qonnx_mlp([4, 6, 3], rng=0), path)
    build(path, tmp_path / "v", BuildConfig(name="net", backend="verilog"))
    code, out, err = _cli("rtlsim", tmp_path / "v", "-n", "300", "--json", cache=tmp_path / "cache")
    assert code == 0, err
    assert json.loads(out)["mismatches"] == 0            # stdout: the JSON alone
    assert "RTL simulation of net (Icarus Verilog)" in err
    assert "/300 inputs" in err                          # the bench's count of results


def test_cli_synth_json_stays_json_with_progress(tmp_path):
    need("yosys", "yosys")
    path = tmp_path / "layer.onnx"
    modelgen.save(modelgen.qonnx_mlp([4, 4], rng=2, sparsity=0.5), path)
    build(path, tmp_path / "p", BuildConfig(name="layer", backend="verilog"))
    code, out, err = _cli("synth", tmp_path / "p", "--json")
    assert code == 0, err
    assert json.loads(out)["yosys"]["lut"] > 0
    assert "yosys: synthesizing layer" in err
