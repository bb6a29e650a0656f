"""A built project folder, as the driver writes it and the back-ends and the CLI read it:
the file names, the metadata, and the text format of codes in test-bench files."""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import BuildConfig, config_from_dict
from .errors import FpgaqError
from .ir.fixed import compact_codes
from .ir.graph import Graph, Node

MARKER = "fpgaq.json"
MODEL_COPY = "model.onnx"
TB_INPUTS = "tb_data/tb_input_codes.dat"
TB_OUTPUTS = "tb_data/tb_output_codes.dat"
TB_REAL_INPUTS = "tb_data/tb_input_real.npy"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"
# what the simulators and synthesis build inside a project folder (`fpgaq clean` removes them)
CSIM_WORK = ".csim"
RTLSIM_WORK = ".rtlsim"
SYNTH_WORK = ".synth"
BUILD_PRODUCTS = (CSIM_WORK, RTLSIM_WORK, SYNTH_WORK)


@dataclass(frozen=True)
class Project:
    root: Path
    graph: Graph
    config: BuildConfig
    meta: dict
    report: dict | None = None      # what build wrote into report.json


def read_marker(root: Path) -> tuple[BuildConfig, dict]:
    """The config and metadata of a project folder; an error if it is not one."""
    root = Path(root)
    marker = root / MARKER
    if root.is_file():
        raise FpgaqError(f"{root} is a model file, not a project "
                         f"folder; build a project from it first with `fpgaq build {root} -o DIR`, then give DIR"
                         if root.suffix.lower() == ".onnx" else
                         f"{root} is a file, not a project folder; give the folder `fpgaq build` wrote")
    if not root.exists():
        raise FpgaqError(f"{root}: no such project folder; build one with `fpgaq build MODEL.onnx -o {root}`")
    if not marker.is_file():
        raise FpgaqError(f"{root} is not an fpgaq project (no {MARKER}); build one with `fpgaq build MODEL.onnx -o {root}`")
    try:
        meta = json.loads(marker.read_text())
        config = config_from_dict(meta["config"], str(marker))
    except (ValueError, KeyError, TypeError) as e:
        raise FpgaqError(f"{marker} is damaged ({e}); rebuild the project") from None
    return config, meta


def port(node: Node) -> dict:
    """A tensor at the design's boundary, as fpgaq.json lists it."""
    t = node.type
    assert t is not None
    return {"name": node.name, "features": node.size, "signed": t.signed, "width": t.width, "frac": t.frac}


def codes_text(codes: list[np.ndarray]) -> str:
    """One sample a line, every code of every tensor in order, as decimal integers."""
    table = np.concatenate([np.asarray(c).reshape(len(c), -1) for c in codes], axis=1)
    if table.dtype.kind == "f":
        table = table.astype(np.int64)
    if table.dtype != object and table.size:          # one formatting call (a C-simulation's inputs)
        return ((" ".join(["%d"] * table.shape[1]) + "\n") * len(table)) % tuple(table.ravel().tolist())
    return "".join(" ".join(str(int(v)) for v in row) + "\n" for row in table.tolist())


def parse_codes(text: str, widths: list[int]) -> list[np.ndarray]:
    """Inverse of codes_text for tensors of `widths` values each: read by numpy where the text
    is whole lines of integers that fit int64 (what a test bench writes for outputs narrower
    than 63 bits), else value by value, exactly (which also says what is wrong)."""
    total = sum(widths)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            flat = np.fromstring(text, dtype=np.int64, sep=" ")
        except (ValueError, DeprecationWarning):
            flat = None
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    if flat is not None and total and flat.size == lines * total and np.abs(flat).max(initial=0) < 1 << 62:
        return list(np.split(flat.reshape(lines, total), np.cumsum(widths)[:-1], axis=1))
    rows = [line.split() for line in text.splitlines() if line.strip()]
    out, start = [], 0
    for w in widths:
        out.append(np.array([[int(v) for v in r[start:start + w]] for r in rows], dtype=object))
        start += w
    return [compact_codes(o) for o in out]
