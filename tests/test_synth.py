"""`fpgaq synth`: yosys synth_xilinx on one small layer (yosys is slow on large designs)."""
import json
import subprocess
import sys
from pathlib import Path

import modelgen
from verilog_helpers import need

from fpgaq.backends.verilog.synth import count_cells, yosys_script
from fpgaq.config import BuildConfig
from fpgaq.project import build


def test_count_cells():
    c = count_cells({"LUT2": 3, "LUT6": 2, "INV": 1, "CARRY4": 3, "FDRE": 7, "FDSE": 1, "DSP48E2": 1})
    assert (c["lut"], c["carry4"], c["carry8"], c["ff"], c["dsp"]) == (6, 3, 2, 8, 1)


def test_script_skips_alumacc_and_dsps():
    d = Path("/prj")
    text = yosys_script([d / "a.v"], "top", d, d / "s.json")
    assert "alumacc" not in text and "-nodsp" in text and "-family xcup" in text


def test_synth_small_layer(tmp_path):
    need("yosys", "yosys")
    path = tmp_path / "layer.onnx"
    modelgen.save(modelgen.qonnx_mlp([8, 8], rng=2, sparsity=0.5), path)
    build(path, tmp_path / "p", BuildConfig(name="layer", backend="verilog"))
    r = subprocess.run([sys.executable, "-m", "fpgaq", "synth", str(tmp_path / "p"), "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    y = data["yosys"]
    assert y["lut"] > 0 and y["carry4"] > 0 and y["ff"] > 0 and y["dsp"] == 0
    assert data["rtl"]["adders"] > 0 and data["rtl"]["latency_cycles"] >= 1
    # beside the Verilog design's own numbers (those of its report), not the HLS estimate
    report = json.loads((tmp_path / "p" / "report.json").read_text())["total"]
    assert "estimate" not in data
    assert data["rtl"] == {"latency_cycles": report["latency_cycles"], "adders": report["adders"],
                           "adder_bits": report["adder_bits"], "ff": report["ff"], "dsp": 0,
                           "adder_budget": data["rtl"]["adder_budget"]}
    assert 0.5 * data["rtl"]["ff"] <= y["ff"] <= data["rtl"]["ff"]
    r = subprocess.run([sys.executable, "-m", "fpgaq", "synth", str(tmp_path / "p")], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("yosys synth_xilinx -family xcup of layer")
    assert "estimate" not in r.stdout and " RTL" in r.stdout.splitlines()[1]
