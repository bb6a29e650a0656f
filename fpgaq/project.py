"""Build a project folder from a model, atomically, and open one again later."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from . import __version__, emulate
from .config import BuildConfig, config_from_dict
from .errors import FpgaqError
from .frontend.onnx_import import import_model, load
from .ir.fixed import compact_codes
from .ir.graph import Graph
from .ir.ops import Input
from .report import report_data, report_json, report_markdown
from .passes.pipeline import dump_hook, pipeline, run_pipeline

MARKER = "fpgaq.json"
MODEL_COPY = "model.onnx"
TB_INPUTS = "tb_data/tb_input_codes.dat"
TB_OUTPUTS = "tb_data/tb_output_codes.dat"
TB_REAL_INPUTS = "tb_data/tb_input_real.npy"
REPORT_MD = "report.md"
REPORT_JSON = "report.json"


@dataclass(frozen=True)
class Project:
    root: Path
    graph: Graph
    config: BuildConfig
    meta: dict
    report: dict | None = None      # what build wrote into report.json


def compile_model(model: onnx.ModelProto, name: str, config: BuildConfig, dump_ir: Path | None = None) -> Graph:
    """Import and run the pass pipeline: the IR every back-end and the emulator use."""
    graph = import_model(model, name=name, max_ops=config.max_ops, requantize=config.requantize,
                         requant_bits=config.requant_bits)
    return run_pipeline(graph, pipeline(config), hook=dump_hook(dump_ir) if dump_ir else None)


def random_inputs(graph: Graph, n: int, seed: int = 0) -> np.ndarray:
    """Real inputs (float32) that cover the input quantizer's whole range: its extreme codes,
    zero, ties half-way between codes, values far beyond the range (saturation), then random."""
    (inp,) = graph.inputs
    (q,) = graph.consumers(inp.name)
    t = q.type
    lo, hi = (q.op.lo, q.op.hi) if hasattr(q.op, "lo") else (-1, 1)
    step = 2.0 ** -t.frac if getattr(q.op, "input_scale", None) is None else q.op.input_scale
    span = hi - lo
    special = np.array([lo, hi, 0, lo - 0.5, hi + 0.5, lo + 0.5, hi - 0.5, 0.5, -0.5,
                        lo - span, hi + span, lo - 1, hi + 1], dtype=np.float64) * step
    rng = np.random.default_rng(seed)
    f = inp.features
    rows = [np.full(f, v) for v in special]
    rows += [rng.choice(special, size=f) for _ in range(min(len(special), n))]
    k = max(n - len(rows), 0)
    # random codes, a quarter of them half-way between codes, some beyond the range
    codes = rng.integers(lo - span // 8 - 1, hi + span // 8 + 2, size=(k, f)).astype(np.float64)
    codes += np.where(rng.random((k, f)) < 0.25, 0.5, 0.0)
    x = np.concatenate([np.array(rows).reshape(-1, f), codes * step])[:n]
    return x.astype(np.float32)


def codes_text(codes: list[np.ndarray]) -> str:
    """One sample a line, every code of every tensor in order, as decimal integers."""
    parts = [np.asarray(c).reshape(len(c), -1) for c in codes]
    lines = []
    for i in range(len(parts[0])):
        lines.append(" ".join(str(int(v)) for p in parts for v in p[i]))
    return "\n".join(lines) + "\n"


def parse_codes(text: str, widths: list[int]) -> list[np.ndarray]:
    """Inverse of codes_text for tensors of `widths` values each."""
    rows = [line.split() for line in text.splitlines() if line.strip()]
    out, start = [], 0
    for w in widths:
        out.append(np.array([[int(v) for v in r[start:start + w]] for r in rows], dtype=object))
        start += w
    return [compact_codes(o) for o in out]


def testbench_data(graph: Graph, x: np.ndarray) -> dict[str, str]:
    in_codes = [emulate.input_codes(graph, x)]
    out_codes = emulate.output_codes(graph, x)
    return {TB_INPUTS: codes_text(in_codes), TB_OUTPUTS: codes_text(out_codes)}


def build(model_path: Path, out_dir: Path, config: BuildConfig, force: bool = False,
          dump_ir: Path | None = None) -> Project:
    """Import, compile and write the HLS project into `out_dir`, all or nothing."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    _check_target(out_dir, force)
    model = load(model_path)
    graph = compile_model(model, model_path.stem, config, dump_ir)
    files = render_backend(graph, config)
    x = random_inputs(graph, config.tb_samples)
    files.update(testbench_data(graph, x))
    meta = {
        "fpgaq": __version__, "top": config.name, "source": model_path.name,
        "config": config.to_dict(), "model": MODEL_COPY,
        "inputs": [_port(graph[graph.consumers(n.name)[0].name]) for n in graph.inputs],
        "outputs": [_port(graph[o]) for o in graph.outputs],
    }
    files[MARKER] = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    data = report_data(graph, config, x)
    files[REPORT_MD] = report_markdown(data)
    files[REPORT_JSON] = report_json(data)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        write_files(tmp, files)
        (tmp / MODEL_COPY).write_bytes(model.SerializeToString(deterministic=True))
        np.save(tmp / TB_REAL_INPUTS, x)
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Project(out_dir, graph, config, meta, data)


def render_backend(graph: Graph, config: BuildConfig) -> dict[str, str]:
    """{relative path: text} of the sources of the configured back-end."""
    if config.backend == "verilog":
        from .backends.verilog.writer import render_project
    else:
        from .backends.hls.writer import render_project
    return render_project(graph, config)


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _port(node) -> dict:
    t = node.type
    return {"name": node.name, "features": node.features, "signed": t.signed, "width": t.width, "frac": t.frac}


def _check_target(out_dir: Path, force: bool) -> None:
    if out_dir.exists() or out_dir.is_symlink():
        if not force:
            raise FpgaqError(f"{out_dir} already exists; choose another folder or pass --force to replace it")
        if out_dir.is_symlink() or not (out_dir / MARKER).is_file():
            raise FpgaqError(f"{out_dir} exists and was not made by fpgaq (no {MARKER} in it); "
                             "--force only replaces fpgaq's own projects. Remove it yourself or choose another folder")


def _replace(tmp: Path, out_dir: Path) -> None:
    """Move the finished project into place; an old fpgaq project there goes only after."""
    if out_dir.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old.", dir=out_dir.parent))
        os.replace(out_dir, old / "p")
        os.replace(tmp, out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out_dir)


def open_project(root: Path) -> Project:
    """Read a project folder that `build` wrote, re-deriving its IR from the model copy."""
    root = Path(root)
    marker = root / MARKER
    if not marker.is_file():
        raise FpgaqError(f"{root} is not an fpgaq project (no {MARKER}); build one with `fpgaq build MODEL.onnx -o {root}`")
    try:
        meta = json.loads(marker.read_text())
        config = config_from_dict(meta["config"], str(marker))
    except (ValueError, KeyError, TypeError) as e:
        raise FpgaqError(f"{marker} is damaged ({e}); rebuild the project") from None
    model = load(root / MODEL_COPY)
    graph = compile_model(model, Path(meta.get("source", "model")).stem, config)
    return Project(root, graph, config, meta)


def read_inputs(path: Path, graph: Graph) -> np.ndarray:
    """Real inputs from a .npy file, shaped (N, features)."""
    path = Path(path)
    if not path.is_file():
        raise FpgaqError(f"{path}: no such inputs file; give a .npy array of shape (N, features)")
    try:
        x = np.load(path, allow_pickle=False)
    except Exception as e:
        raise FpgaqError(f"{path}: not a readable .npy file ({e})") from None
    (inp,) = [n for n in graph.nodes if isinstance(n.op, Input)]
    if x.ndim == 1 and x.size == inp.features:
        x = x.reshape(1, -1)
    x = x.reshape(len(x), -1) if x.ndim > 2 else x
    if x.ndim != 2 or x.shape[1] != inp.features:
        raise FpgaqError(f"{path}: inputs have shape {x.shape}; the model takes (N, {inp.features})")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise FpgaqError(f"{path}: inputs are of type {x.dtype}; expected real numbers")
    if len(x) == 0:
        raise FpgaqError(f"{path}: holds no inputs; give at least one row")
    return x
