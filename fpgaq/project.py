"""The driver: model -> IR -> passes -> back-end -> project folder, all or nothing; and a
built project opened again."""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from . import __version__, emulate
from .backends import backend
from .compile import compile_model
from .config import BuildConfig
from .errors import FpgaqError
from .estimate import estimate
from .frontend.model_file import load
from .ir.graph import Graph
from .projectdir import (BUILD_PRODUCTS, MARKER, MODEL_COPY, REPORT_JSON, REPORT_MD, TB_INPUTS, TB_OUTPUTS,
                         TB_REAL_INPUTS, Project, codes_text, port, read_marker)
from .progress import Step, step
from .report import preprocessing, report_data, report_json, report_markdown
from .report_html import REPORT_HTML, report_html, weight_masks
from .stimulus import random_inputs


def testbench_data(graph: Graph, x: np.ndarray) -> dict[str, str]:
    in_codes = [emulate.input_codes(graph, x)]
    out_codes = emulate.output_codes(graph, x)
    return {TB_INPUTS: codes_text(in_codes), TB_OUTPUTS: codes_text(out_codes)}


def build(model_path: Path, out_dir: Path, config: BuildConfig, force: bool = False,
          dump_ir: Path | None = None) -> Project:
    """Import, compile and write the project of the configured back-end into `out_dir`."""
    model_path, out_dir = Path(model_path), Path(out_dir)
    with step(f"fpgaq build {out_dir}") as progress:       # on a terminal, when it takes a while
        return _build(model_path, out_dir, config, force, dump_ir, progress)


def _build(model_path: Path, out_dir: Path, config: BuildConfig, force: bool, dump_ir: Path | None,
           progress: Step) -> Project:
    target = backend(config.backend)
    _check_target(out_dir, force)
    inner = _dump_inside(dump_ir, out_dir)
    progress.update(detail=f"importing {model_path.name}")
    model = load(model_path)
    progress.update(detail="compiling")
    graph, dumps = _compile(model, model_path.stem, config, target.prepare(config), dump_ir, inner)
    progress.update(detail=f"writing the {config.backend} design")
    files = target.render(graph, config)
    progress.update(detail="the test bench's data")
    x = random_inputs(graph, config.tb_samples)
    files.update(testbench_data(graph, x))
    meta = {
        "fpgaq": __version__, "top": config.name, "source": model_path.name,
        "config": config.to_dict(), "model": MODEL_COPY,
        "inputs": [port(q) for q in graph.firmware_inputs],
        "outputs": [port(graph[o]) for o in graph.outputs],
    }
    if graph.preprocessing:       # outside the firmware: the host applies it to real inputs
        meta["preprocessing"] = preprocessing(graph)
    files[MARKER] = json.dumps(meta, indent=2, sort_keys=True) + "\n"
    progress.update(detail="the report")
    data = project_report(graph, config, x)
    files[REPORT_MD] = report_markdown(data)
    files[REPORT_JSON] = report_json(data)
    progress.update(detail=f"the report's charts ({REPORT_HTML})")
    files[REPORT_HTML] = report_html(data, weight_masks(graph))
    if inner is not None:
        own = [*files, MODEL_COPY, TB_REAL_INPUTS]
        if any(k == inner or k.startswith(f"{inner}/") or inner.startswith(f"{k}/") for k in own):
            raise FpgaqError(f"--dump-ir {dump_ir}: fpgaq writes that folder itself as part of the project; "
                             f"choose another, such as {out_dir / 'ir'}")
        files.update(dumps)
    progress.update(detail=f"writing {out_dir}")
    tmp = _staging_folder(out_dir)
    try:
        write_files(tmp, files)
        (tmp / MODEL_COPY).write_bytes(model.SerializeToString(deterministic=True))
        np.save(tmp / TB_REAL_INPUTS, x)
        _replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Project(out_dir, graph, config, meta, data)


def project_report(graph: Graph, config: BuildConfig, x: np.ndarray | None = None) -> dict:
    """The report of a build (report.json): the design's own numbers where its back-end counts
    them (Verilog), else fpgaq's estimate of the HLS design."""
    summary = getattr(backend(config.backend), "summary", None)
    design = summary(graph, config, [e["name"] for e in estimate(graph, config)["layers"]]) if summary else None
    data = report_data(graph, config, x, design=design)
    fifos = getattr(backend(config.backend), "fifos", lambda *_: None)(graph, config)
    if fifos is not None:           # io_stream: the streams' FIFOs join the totals
        data["fifos"] = fifos["fifos"]
        data["total"]["lut"] += fifos["lut"]
        data["total"]["bram"] += fifos["bram"]
    return data


def write_report_html(project: Project) -> Path:
    """Render DIR/report.html again from the project (the same page as its build wrote, with the
    deviation measured on the test bench's inputs); its path."""
    real = project.root / TB_REAL_INPUTS
    x = np.load(real) if real.is_file() else None
    data = project_report(project.graph, project.config, x)
    path = project.root / REPORT_HTML
    try:
        path.write_text(report_html(data, weight_masks(project.graph)))
    except OSError as e:
        raise FpgaqError(f"cannot write {path}: {e.strerror or e}") from None
    return path


def open_project(root: Path) -> Project:
    """A project folder that `build` wrote, its IR derived again from the model copy."""
    root = Path(root)
    config, meta = read_marker(root)
    target = backend(config.backend)
    graph = compile_model(load(root / MODEL_COPY), Path(meta.get("source", "model")).stem, config,
                          target.prepare(config))
    return Project(root, graph, config, meta)


def clean(root: Path) -> dict[str, int]:
    """Remove the build products of C-simulation, RTL simulation and yosys from a project folder
    (Verilator's alone can reach hundreds of MB); {folder name: bytes freed}. The project's
    own files stay; the next simulation builds again."""
    root = Path(root)
    read_marker(root)                     # only a project folder
    freed = {}
    for name in BUILD_PRODUCTS:
        folder = root / name
        if folder.is_dir() and not folder.is_symlink():
            freed[name] = sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())
            shutil.rmtree(folder)
    return freed


def write_files(root: Path, files: dict[str, str]) -> None:
    for rel, text in sorted(files.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _compile(model, name: str, config: BuildConfig, extra, dump_ir: Path | None,
             inner: str | None) -> tuple[Graph, dict[str, str]]:
    """The compiled graph, and the IR dumps that go into the project ({relative path: text})
    when `dump_ir` is a folder inside it (`inner`): the build replaces the folder, so they are
    written with the project's own files."""
    if inner is None:
        return compile_model(model, name, config, extra, dump_ir), {}
    with tempfile.TemporaryDirectory(prefix="fpgaq-ir.") as staging:
        graph = compile_model(model, name, config, extra, Path(staging))
        return graph, {f"{inner}/{p.name}": p.read_text() for p in sorted(Path(staging).iterdir())}


def _dump_inside(dump_ir: Path | None, out_dir: Path) -> str | None:
    """Where `dump_ir` lies inside the project folder (a relative POSIX path), or None when
    it lies outside; the project folder itself is refused (the build replaces it)."""
    if dump_ir is None:
        return None
    dump, out = Path(dump_ir).resolve(), out_dir.resolve()
    if dump == out:
        raise FpgaqError(f"--dump-ir {dump_ir} is the project folder; give a folder beside it or inside it, "
                         f"such as {out_dir / 'ir'}")
    return dump.relative_to(out).as_posix() if out in dump.parents else None


def _cannot_make(out_dir: Path, why: str) -> FpgaqError:
    return FpgaqError(f"cannot make the project folder {out_dir}: {why}; choose another folder with -o")


def _not_a_folder(path: Path) -> Path | None:
    """The nearest existing ancestor of `path` if it is not a folder (a file, a device)."""
    for p in path.parents:
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


def _staging_folder(out_dir: Path) -> Path:
    """A new, empty folder beside `out_dir`, where the project is written before it moves into place."""
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    except OSError as e:
        blocker = _not_a_folder(out_dir)
        raise _cannot_make(out_dir, f"{blocker} is not a folder" if blocker else
                           f"{e.strerror or e} in {out_dir.parent}") from None


def _check_target(out_dir: Path, force: bool) -> None:
    blocker = _not_a_folder(out_dir)
    if blocker is not None:          # found before compiling, not after
        raise _cannot_make(out_dir, f"{blocker} is {'a file' if blocker.is_file() else 'not a folder'}")
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
