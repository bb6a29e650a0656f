"""Reading an ONNX file: what is missing, corrupt, too large or reaches outside its folder is
refused before anything is decoded."""
from __future__ import annotations

import os
from pathlib import Path

import onnx

from ..errors import FpgaqError, ModelError

MAX_MODEL_BYTES = 2 << 30


def load(path: str | os.PathLike) -> onnx.ModelProto:
    """Parse an ONNX file, refusing what is missing, corrupt or reaches outside its folder."""
    path = Path(path)
    if path.is_dir():
        raise FpgaqError(f"{path} is a folder; give the path of an .onnx file")
    if not path.is_file():
        raise FpgaqError(f"{path}: no such model file; give the path of an .onnx file")
    data = path.read_bytes()
    if len(data) > MAX_MODEL_BYTES:
        raise FpgaqError(f"{path}: {len(data)} bytes is larger than fpgaq accepts (2 GiB)")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # protobuf raises DecodeError and friends
        raise FpgaqError(f"{path}: not a readable ONNX file (truncated or corrupt: {e}); "
                         "export the model again") from None
    if not model.HasField("graph") or len(model.graph.node) == 0:
        raise FpgaqError(f"{path}: the file parses but holds no ONNX graph (truncated or not a model); "
                         "export the model again")
    _load_external_data(model, path.parent)
    return model


def _load_external_data(model: onnx.ModelProto, folder: Path) -> None:
    root = folder.resolve()
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        target = (folder / info.get("location", "")).resolve()
        if root not in target.parents:
            raise FpgaqError(f"initializer '{t.name}': external data location "
                             f"'{info.get('location')}' leaves the model's folder; refusing to read it")
        if not target.is_file():
            raise FpgaqError(f"initializer '{t.name}': external data file '{info.get('location')}' "
                             "is missing; put it beside the model")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(folder))
    except Exception as e:
        raise FpgaqError(f"cannot read the model's external data: {e}") from None


DEFAULT_MAX_OPS = 10_000_000     # multiply-accumulates a model may need (weights held in memory)
MAX_NODES = 100_000


def check_size(model: onnx.ModelProto, max_ops: int) -> None:
    """Refuse, before decoding anything, what would take unbounded time or memory."""
    g = model.graph
    if len(g.node) > MAX_NODES:
        raise ModelError([f"the graph has {len(g.node)} nodes, more than fpgaq handles ({MAX_NODES})"])
    total = 0
    for t in g.initializer:
        n = 1
        for d in t.dims:
            n *= max(int(d), 0)
        total += n
        if n > max_ops:
            raise ModelError([f"initializer '{t.name}' holds {n:,} values, more than the limit of {max_ops:,}; "
                              "raise it with --max-ops if the model really is that large"])
    if total > 4 * max_ops:
        raise ModelError([f"the initializers hold {total:,} values in all, more than 4 x the limit of "
                          f"{max_ops:,}; raise it with --max-ops if the model really is that large"])


def not_text(g) -> str | None:
    """What in the graph should be a string but is not (protobuf returns invalid UTF-8 as bytes)."""
    named = [("graph input", vi.name) for vi in g.input] + [("graph output", vi.name) for vi in g.output]
    named += [("initializer name", t.name) for t in g.initializer]
    for i, n in enumerate(g.node):
        where = f"node #{i}"
        named += [(f"{where} name", n.name), (f"{where} op type", n.op_type), (f"{where} domain", n.domain)]
        named += [(f"{where} input", t) for t in n.input] + [(f"{where} output", t) for t in n.output]
        named += [(f"{where} attribute name", a.name) for a in n.attribute]
    return next((f"{what} {text!r}" for what, text in named if not isinstance(text, str)), None)
