"""report.html: written by every build, self-contained (inline SVG charts, no script, nothing
fetched), well-formed, with the report's numbers; byte-identical for the same input; `fpgaq
report DIR --html` writes it again; it loads in a headless Chromium with its charts."""
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

import modelgen
from conftest import TESTS

from fpgaq.config import BuildConfig
from fpgaq.project import build
from fpgaq.report_html import REPORT_HTML, markdown_blocks, report_html

SVG = "{http://www.w3.org/2000/svg}svg"
XHTML_FREE = re.compile(r"^<!DOCTYPE html>\n")
REQUANT_MODEL = TESTS / "fixtures" / "brevitas_qonnx_float" / "model.onnx"


def _model(tmp_path: Path, sizes=(8, 12, 6, 3)) -> Path:
    path = tmp_path / "net.onnx"
    modelgen.save(modelgen.qonnx_mlp(list(sizes), rng=3, sparsity=0.6), path)
    return path


def _page(root: Path) -> tuple[str, ET.Element]:
    """The file and its tree: the page is well-formed XML (XHTML syntax) after its doctype."""
    text = (root / REPORT_HTML).read_text()
    assert XHTML_FREE.match(text)
    return text, ET.fromstring(XHTML_FREE.sub("", text))


def _sections(tree: ET.Element) -> dict[str, ET.Element]:
    return {s.get("id"): s for s in tree.iter("section")}


def _charts(section: ET.Element) -> int:
    return sum(1 for _ in section.iter(SVG))


def test_build_writes_a_self_contained_page(tmp_path):
    p = build(_model(tmp_path), tmp_path / "p", BuildConfig(name="net"))
    text, tree = _page(p.root)
    t = p.report["total"]
    assert tree.find("head/title").text == "fpgaq report: net"
    s = _sections(tree)
    assert set(s) >= {"latency", "resources", "sparsity", "accumulators", "report", "layers"}
    assert _charts(s["latency"]) == 1 and _charts(s["resources"]) == 1 and _charts(s["accumulators"]) == 1
    assert _charts(s["sparsity"]) == 1                        # the chart, and a heat-map a dense layer:
    maps = [i for i in s["sparsity"].iter("img")]
    assert len(maps) == 3 and all(i.get("src").startswith("data:image/png;base64,") for i in maps)
    # the summary's numbers
    cards = {c[0].text: c[1].text for c in tree.iter("div") if c.get("class") == "card"}
    assert cards["latency"] == f"{t['latency_cycles']} cycles"
    assert cards["LUT"] == f"{t['lut']:,}" and cards["DSP"] == f"{t['dsp']:,}" and cards["FF"] == f"{t['ff']:,}"
    assert cards["BRAM"] == f"{t['bram']:,}" and cards["non-zero weights"] == f"{t['nonzero']:,}"
    # the per-layer table is report.md's
    rows = [[td.text or "".join(td.itertext()) for td in tr] for tr in s["layers"].iter("tr")]
    assert [r[0] for r in rows[1:]] == [e["name"] for e in p.report["layers"]] + ["total"]
    # the layers' values drawn, as text in the SVG
    for e in p.report["layers"]:
        assert f">{e['lut']:,}<" in text and f">{e['name']}<" in text
    # self-contained: no script, no stylesheet or image fetched
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"""(src|href)=["'](https?:|//)""", text)
    assert not re.search(r"url\((?!#)", text)                # CSS: only the SVG's own clip paths
    assert all(src.startswith("data:") for src in re.findall(r'src="([^"]*)"', text))


def test_same_input_same_bytes(tmp_path):
    model = _model(tmp_path)
    a = build(model, tmp_path / "a", BuildConfig(name="net"))
    # another process, another hash seed: the same file
    r = subprocess.run([sys.executable, "-m", "fpgaq", "build", str(model), "-o", str(tmp_path / "b"),
                        "--name", "net"], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "7"})
    assert r.returncode == 0, r.stderr
    assert (a.root / REPORT_HTML).read_bytes() == (tmp_path / "b" / REPORT_HTML).read_bytes()
    text = (a.root / REPORT_HTML).read_text()
    assert "<dc:date>" not in text
    ids = re.findall(r'\bid="([^"]+)"', text)
    assert len(ids) == len(set(ids))                          # no two charts share an id


def test_report_html_rewrites_it(tmp_path):
    p = build(_model(tmp_path), tmp_path / "p", BuildConfig(name="net"))
    page = p.root / REPORT_HTML
    before = page.read_bytes()
    page.unlink()
    r = subprocess.run([sys.executable, "-m", "fpgaq", "report", str(p.root), "--html"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"{page}\n"
    assert page.read_bytes() == before                        # what the build wrote
    r = subprocess.run([sys.executable, "-m", "fpgaq", "report", str(p.root), "--html", "--json"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "not allowed with" in r.stderr


def test_verilog_page_has_its_own_numbers(tmp_path):
    p = build(_model(tmp_path), tmp_path / "v", BuildConfig(name="net", backend="verilog"))
    text, tree = _page(p.root)
    t = p.report["total"]
    cards = {c[0].text: c[1].text for c in tree.iter("div") if c.get("class") == "card"}
    assert cards["latency"] == f"{t['latency_cycles']} cycles"
    assert cards["adders"] == f"{t['adders']:,}" and cards["adder bits"] == f"{t['adder_bits']:,}"
    assert "LUT" not in cards and "multipliers" not in cards   # the HLS estimate is not this design's
    assert "accumulators" not in _sections(tree)
    assert "pipeline stages (cycles)" in text and "adder bits" in text


def test_stream_and_requantised_sections(tmp_path):
    p = build(REQUANT_MODEL, tmp_path / "rq", BuildConfig(name="rq", requantize=True))
    text, tree = _page(p.root)
    assert "Integer requantisation (--requantize)" in text and "Deviation from the float model" in text
    heads = [h.text for h in tree.iter("h2")]
    assert "Integer requantisation (--requantize)" in heads
    cnn = TESTS / "fixtures" / "brevitas_cnn" / "residual.onnx"
    s = build(cnn, tmp_path / "s", BuildConfig(name="res", io="io_stream"))
    text, tree = _page(s.root)
    assert "Streams (io_stream)" in [h.text for h in tree.iter("h2")]
    assert ">rest of the design<" in text                      # the FIFOs' LUTs beside the layers'


def test_large_layer_map_shows_blocks(tmp_path):
    p = build(_model(tmp_path), tmp_path / "p", BuildConfig(name="net"))
    mask = np.zeros((1000, 30), dtype=bool)
    mask[::3] = True
    page = report_html(p.report, {"wide": mask})
    assert "1000 outputs x 30 inputs: 10,020 of 30,000 non-zero (33%); a pixel a 3 x 3 block" in page


def test_markdown_blocks():
    md = "# T\n\nsome **bold** and `code`\nmore\n\n| a | b |\n|---|---:|\n| 1 | 2 |\n\n## S\n\n- x\n- y\n"
    assert markdown_blocks(md) == [("h1", "T"), ("p", "some **bold** and `code` more"),
                                   ("table", (["a", "b"], ["", "r"], [["1", "2"]])), ("h2", "S"),
                                   ("ul", ["x", "y"])]


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    pytest.skip("Chromium is not installed (Debian: apt-get install -y chromium; CI installs it)")


def test_loads_in_headless_chromium(tmp_path):
    browser = _chromium()
    p = build(_model(tmp_path), tmp_path / "p", BuildConfig(name="net"))
    page = (p.root / REPORT_HTML).resolve()
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
             "--window-size=1200,2400"]
    r = subprocess.run([*flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    dom = r.stdout
    assert "<title>fpgaq report: net</title>" in dom
    assert dom.count("<svg") == 4                  # latency, resources, sparsity, accumulators
    assert dom.count('<img alt="non-zero weights of') == 3      # a heat-map a dense layer
    assert "CONSOLE" not in r.stderr and "Uncaught" not in r.stderr
    shot = tmp_path / "page.png"
    r = subprocess.run([*flags, f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True,
                       timeout=180)
    assert r.returncode == 0 and shot.stat().st_size > 20_000     # drawn, not blank
