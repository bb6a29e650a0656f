"""The one compile path of build, emulate and inspect: read the model, import it, run the
pass pipeline (and a back-end's preparation passes), optionally writing the IR after each."""
from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import onnx

from .config import BuildConfig
from .errors import FpgaqError
from .frontend.importer import import_model
from .frontend.model_file import load
from .ir.dump import dump_text
from .ir.fixed import FixedType
from .ir.graph import Graph
from .passes.pipeline import Hook, Pass, pipeline, run_pipeline


def dump_hook(folder: Path) -> Hook:
    """A hook writing the IR after every pass into `folder` (fpgaq build --dump-ir)."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise FpgaqError(f"--dump-ir {folder}: {blocker} is a file, not a folder; give a folder (fpgaq makes it)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FpgaqError(f"--dump-ir {folder}: cannot make that folder ({e.strerror or e})") from None

    def hook(i: int, p: Pass | None, graph: Graph) -> None:
        name = "import" if p is None else p.name
        path = folder / f"{i:02d}_{name}.txt"
        try:
            path.write_text(dump_text(graph))
        except OSError as e:
            raise FpgaqError(f"--dump-ir: cannot write {path} ({e.strerror or e})") from None
    return hook


def compile_model(model: onnx.ModelProto, name: str, config: BuildConfig, extra: Sequence[Pass] = (),
                  dump_ir: Path | None = None, passes: bool = True) -> Graph:
    """Import `model` and run the pipeline of `config`, then `extra` (a back-end's preparation);
    with `passes` False, the graph as imported."""
    input_type = None if config.input_type is None else FixedType.parse(config.input_type)
    graph = import_model(model, name=name, max_ops=config.max_ops, requantize=config.requantize,
                         input_type=input_type)
    if not passes:
        return graph
    return run_pipeline(graph, pipeline(config) + tuple(extra), hook=dump_hook(dump_ir) if dump_ir else None)


def compile_file(path: str | os.PathLike, config: BuildConfig, extra: Sequence[Pass] = (),
                 dump_ir: Path | None = None, passes: bool = True) -> Graph:
    return compile_model(load(path), Path(path).stem, config, extra, dump_ir, passes)
