"""Resource counts of a Verilog project: yosys `synth_xilinx` (UltraScale+), beside the estimates.

yosys' `alumacc` merges whole sums of products into one cell and then takes minutes on them;
the design already is an explicit tree of adders, so the script runs synth_xilinx in two parts
around its `coarse` step, without alumacc: each adder is mapped to LUTs and a carry chain as
written. `-nodsp` keeps constant multiplications out of DSPs (there are none to map anyway),
unless dense layers with reuse factors above 1 have shared multipliers meant for DSPs.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

from ...errors import FpgaqError, ToolError
from ...progress import step
from ...projectdir import SYNTH_WORK, Project
from .summary import design_summary
from .writer import RTL, core_sources

FAMILY = "xcup"
TIMEOUT_S = 3600


def yosys_script(sources: list[Path], top: str, include: Path, stat_json: Path, dsp: bool = False) -> str:
    synth = f"synth_xilinx -family {FAMILY}{'' if dsp else ' -nodsp'} -noiopad -noclkbuf -flatten -top {top}"
    return "\n".join([
        f"read_verilog -I{include} " + " ".join(str(s) for s in sources),
        f"{synth} -run begin:coarse",
        # the coarse step without alumacc and share
        "techmap -map +/cmp2lut.v -map +/cmp2lcu.v -D LUT_WIDTH=6",
        "opt",
        "opt_clean",
        f"{synth} -run map_memory:check",
        f"tee -q -o {stat_json} stat -json",
        "ltp -noff",
        "",
    ])


def count_cells(cells: dict[str, int]) -> dict:
    """LUTs (LUT1-6, and INV, which is a LUT1), carry blocks, flip-flops and DSPs by type."""
    lut = sum(v for k, v in cells.items() if k.startswith("LUT") or k == "INV")
    carry4 = cells.get("CARRY4", 0)
    carry8 = cells.get("CARRY8", 0)
    ff = sum(v for k, v in cells.items() if k.startswith("FD"))
    dsp = sum(v for k, v in cells.items() if k.startswith("DSP"))
    srl = sum(v for k, v in cells.items() if k.startswith("SRL"))
    return {"lut": lut, "carry4": carry4, "carry8": carry8 + (carry4 + 1) // 2, "ff": ff, "srl": srl,
            "dsp": dsp, "cells": dict(sorted(cells.items()))}


def run_yosys(sources: list[Path], top: str, include: Path, work: Path, dsp: bool = False) -> dict:
    """Synthesize; returns the counts, the logic depth (cells on the longest path) and the time."""
    yosys = shutil.which("yosys")
    if yosys is None:
        raise ToolError("yosys is not installed (Debian: apt-get install -y yosys)")
    work.mkdir(parents=True, exist_ok=True)
    stat = work / "stat.json"
    stat.unlink(missing_ok=True)
    script = work / "synth.ys"
    script.write_text(yosys_script(sources, top, include, stat, dsp))
    log = work / "yosys.log"
    start = time.perf_counter()
    try:
        with step(f"yosys: synthesizing {top} (synth_xilinx -family {FAMILY})"):
            r = subprocess.run([yosys, "-q", "-l", str(log), str(script)], capture_output=True, text=True,
                               timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise ToolError(f"yosys took longer than {TIMEOUT_S} s; see {log}") from None
    took = time.perf_counter() - start
    if r.returncode != 0 or not stat.is_file():
        tail = "\n".join((r.stderr or r.stdout).splitlines()[-20:])
        raise ToolError(f"yosys failed (exit {r.returncode}); see {log}:\n{tail}")
    data = json.loads(stat.read_text())
    cells = data["design"]["num_cells_by_type"]
    depth = None
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("Longest topological path"):
            depth = int(line.rsplit("length=", 1)[1].rstrip("):"))
    return {**count_cells(cells), "logic_depth": depth, "seconds": round(took, 2)}


def run_synth(project: Project) -> dict:
    """yosys counts of a Verilog project, beside what the RTL itself says (its latency, adders,
    adder bits and pipeline register bits; not the HLS estimate, which models another design)."""
    if project.config.backend != "verilog":
        raise FpgaqError(f"{project.root} is an HLS project; `fpgaq synth` synthesizes fpgaq's own Verilog. "
                         "Build with --backend verilog (Vitis HLS reports its own resources)")
    top = project.config.name
    d = design_summary(project.graph, project.config, [])
    stream = project.config.io == "io_stream"
    counts = run_yosys([project.root / p for p in core_sources(top, stream)], top, project.root / RTL,
                       project.root / SYNTH_WORK, dsp=d["dsp"] > 0)
    return {"top": top, "family": FAMILY, "clock_ns": project.config.clock_ns,
            "rtl": {"latency_cycles": d["latency_cycles"], "adders": d["adders"], "adder_budget": d["adder_budget"],
                    "adder_bits": d["adder_bits"], "ff": d["register_bits"], "dsp": d["dsp"]},
            "yosys": counts}


def synth_table(r: dict) -> str:
    """yosys' counts beside the RTL's own: flip-flops against its pipeline register bits, LUTs
    beside its adder bits (a LUT a bit, less what yosys packs or removes)."""
    y, d = r["yosys"], r["rtl"]
    rows = [("LUT", y["lut"], None), ("adder bits", None, d["adder_bits"]),
            ("CARRY8 (CARRY4 / 2)", y["carry8"], None), ("FF", y["ff"], d["ff"]), ("DSP", y["dsp"], d["dsp"]),
            ("latency (cycles)", None, d["latency_cycles"])]
    lines = [f"yosys synth_xilinx -family {r['family']} of {r['top']} ({y['seconds']:.1f} s); "
             f"{d['adders']} adders, logic depth {y['logic_depth']} cells",
             f"{'':22s} {'yosys':>9s} {'RTL':>9s}"]
    for name, got, rtl in rows:
        lines.append(f"{name:22s} {'-' if got is None else got:>9} {'-' if rtl is None else rtl:>9}")
    return "\n".join(lines) + "\n"
