"""A plain (not editable) `pip install .` carries the templates as package data."""
import os
import shutil
import subprocess
import sys

from conftest import EXAMPLE, ROOT


def test_plain_install_builds_a_project(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__",
                                                             ".pytest_cache", ".hypothesis"))
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--target", str(target), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (target / "fpgaq" / "templates" / "hls" / "firmware" / "fpgaq_kernels.h").is_file()
    env = dict(os.environ, PYTHONPATH=str(target))
    r = subprocess.run([sys.executable, "-c", "import fpgaq, sys; from fpgaq.cli import main; "
                        f"print(fpgaq.__file__); sys.exit(main(['build', r'{EXAMPLE}', '-o', r'{tmp_path / 'p'}']))"],
                       capture_output=True, text=True, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(str(target))
    assert (tmp_path / "p" / "firmware" / "parameters.h").is_file()
