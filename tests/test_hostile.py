"""Hostile models: names that try to inject code, external data that reaches outside."""
import re
from pathlib import Path

import onnx
import pytest

import modelgen
from fpgaq.config import BuildConfig
from fpgaq.errors import FpgaqError
from fpgaq.frontend.model_file import load
from fpgaq.project import build

HOSTILE = ['x; system("rm -rf ~"); //', "int", "module", "", "a-b", "a_b", "a.b", "*/ #include </etc/passwd>",
           "\\\nevil();", "end"]


def rename_everything(model: onnx.ModelProto) -> onnx.ModelProto:
    """Give every node and tensor a hostile name (several clash once sanitised)."""
    g = model.graph
    names = {}
    tensors = [vi.name for vi in g.input] + [t.name for t in g.initializer] + [o for n in g.node for o in n.output]
    for i, t in enumerate(dict.fromkeys(tensors)):
        names[t] = HOSTILE[i % len(HOSTILE)] + ("" if i < len(HOSTILE) else f"{i}")
        if names[t] == "":
            names[t] = "\u202e"   # an invisible right-to-left override, not empty: ONNX needs a name
    for vi in list(g.input) + list(g.output):
        vi.name = names.get(vi.name, vi.name)
    for t in g.initializer:
        t.name = names[t.name]
    for i, n in enumerate(g.node):
        n.name = HOSTILE[i % len(HOSTILE)]
        n.input[:] = [names.get(x, x) for x in n.input]
        n.output[:] = [names.get(x, x) for x in n.output]
    return model


def test_hostile_names_never_reach_code(tmp_path):
    model = rename_everything(modelgen.qonnx_mlp([6, 8, 3], rng=0))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    build(path, tmp_path / "hls", BuildConfig(name="net"))
    build(path, tmp_path / "rtl", BuildConfig(name="net", backend="verilog"))
    code_files = [f for f in (tmp_path / "hls").rglob("*") if f.suffix in (".h", ".cpp", ".c", ".tcl")]
    for f in code_files + list((tmp_path / "rtl").rglob("*.v")):
        text = f.read_text()
        code = "\n".join(line.split("//")[0] for line in text.splitlines())   # outside comments
        for bad in ("system(", "rm -rf", "#include </etc", "evil", "\u202e"):
            assert bad not in code, (f, bad)
        for line in text.splitlines():   # and comments cannot be closed or continued
            assert not line.rstrip().endswith("\\"), (f, line)
        identifiers = set(re.findall(r"\b[A-Za-z_]\w*\b", code))
        assert not identifiers & {"int_1", "module_1"}
    for f in (tmp_path / "hls" / "report.html", tmp_path / "rtl" / "report.html"):    # names are text there
        html = f.read_text()
        assert "</etc/passwd>" not in html and "<script" not in html and "<int" not in html, f


def test_external_data_outside_the_folder_is_refused(tmp_path):
    model = modelgen.qonnx_mlp([6, 8, 3], rng=0)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    inner = tmp_path / "models"
    inner.mkdir()
    t = model.graph.initializer[0]
    t.ClearField("raw_data")
    del t.float_data[:]
    t.data_location = onnx.TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", "16")):
        e = t.external_data.add()
        e.key, e.value = k, v
    onnx.save(model, inner / "m.onnx")
    with pytest.raises(FpgaqError, match=r"external data location '\.\./secret\.bin' leaves the model's folder"):
        load(inner / "m.onnx")
    t.external_data[0].value = "missing.bin"
    onnx.save(model, inner / "m2.onnx")
    with pytest.raises(FpgaqError, match=r"external data file 'missing\.bin' is missing"):
        load(inner / "m2.onnx")


def test_external_data_beside_the_model_is_read(tmp_path):
    model = modelgen.qonnx_mlp([6, 8, 3], rng=0)
    path = Path(modelgen.save(model, tmp_path / "m.onnx", external_data=True))
    assert any(p.suffix == ".data" or p.name.endswith(".data") for p in tmp_path.iterdir())
    build(path, tmp_path / "p", BuildConfig(name="net"))
