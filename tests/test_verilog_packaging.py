"""A plain (not editable) `pip install .` carries ip/ and testbench/ as package data."""
import os
import shutil
import subprocess
import sys

from conftest import EXAMPLE, ROOT


def test_plain_install_has_ip_and_testbench(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__",
                                                             ".pytest_cache", ".hypothesis", ".rtlsim"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--target", str(target), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    for rel in ("ip/fpgaq_ext.v", "templates/verilog/adder.j2", "ip/fpgaq_requant.v", "ip/fpgaq_trigger_top.v", "ip/fpgaq_axis.v",
                "testbench/bench.py", "templates/verilog/top.v.j2"):
        assert (target / "fpgaq" / rel).is_file(), rel
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, "-c", "import sys; from fpgaq.cli import main; "
                        f"sys.exit(main(['build', r'{EXAMPLE}', '-o', r'{tmp_path / 'p'}', '--backend', 'verilog']))"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "p" / "rtl" / "jet_tagger.v").is_file()
    assert (tmp_path / "p" / "rtl" / "fpgaq_axis.v").is_file()
    r = subprocess.run([sys.executable, "-c", "import fpgaq.testbench.bench, fpgaq; print(fpgaq.__file__)"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target))
