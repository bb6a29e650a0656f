"""`fpgaq build` imports only what a build needs: no plotting library (report.html's charts are
drawn as SVG text), no ONNX reference evaluator unless a node is evaluated on constants, no YAML
parser without a config file, and for an HLS design neither the Python API nor the Verilog
back-end's simulator and synthesis."""
import json
import subprocess
import sys

from conftest import EXAMPLE

HEAVY = ("matplotlib", "onnx.reference", "rich", "yaml", "fpgaq.api", "fpgaq.backends.verilog.rtlsim",
         "fpgaq.backends.verilog.synth", "fpgaq.backends.verilog.writer")


def test_a_build_leaves_heavy_modules_alone(tmp_path):
    code = ("import json, sys; from fpgaq.cli import main; "
            f"code = main(['build', {str(EXAMPLE)!r}, '-o', {str(tmp_path / 'p')!r}]); "
            f"print(json.dumps([code, [m for m in {HEAVY!r} if m in sys.modules]]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={"PATH": "", "XDG_CACHE_HOME": str(tmp_path / "cache"), "FPGAQ_PROGRESS": "0"})
    assert r.returncode == 0, r.stderr
    code, loaded = json.loads(r.stdout.strip().splitlines()[-1])
    assert code == 0 and loaded == []
    assert (tmp_path / "p" / "report.html").is_file()
