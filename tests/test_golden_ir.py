"""Golden text of the example's IR, as imported and after the last pass: any change in the
importer, a pass or an op's rules shows here, line by line. After an intended change, write the
new text with FPGAQ_UPDATE_GOLDEN=1 and review the diff before committing it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import EXAMPLE
from fpgaq.backends import backend
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.ir.dump import dump_text

GOLDEN = Path(__file__).parent / "golden"


def _check(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("FPGAQ_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"the IR differs from {path}; see the docstring of this test"


@pytest.mark.parametrize("name, passes", [("jet_tagger.import.txt", False), ("jet_tagger.compiled.txt", True)])
def test_jet_tagger_ir(name, passes):
    _check(name, dump_text(compile_file(EXAMPLE, BuildConfig(), passes=passes)))


def test_jet_tagger_ir_for_verilog():
    """The Verilog back-end's preparation (ReLU into the quantizer after it) after the pipeline."""
    config = BuildConfig(backend="verilog")
    _check("jet_tagger.verilog.txt", dump_text(compile_file(EXAMPLE, config, backend(config.backend).prepare(config))))
