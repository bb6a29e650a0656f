"""Shared fixtures. tests/ is put on sys.path so test files can import modelgen and helpers.

The tests never read or write the user's cache (compiled templates, precompiled headers, object
files, simulator builds): each test process gets its own empty one, so a result never depends
on what an earlier run left there."""
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
sys.path.insert(0, str(TESTS))

EXAMPLE = ROOT / "examples" / "jet_tagger" / "jet_tagger.onnx"
os.environ["XDG_CACHE_HOME"] = _CACHE = tempfile.mkdtemp(prefix="fpgaq-test-cache-")
atexit.register(shutil.rmtree, _CACHE, True)


def need_gxx():
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed (CI installs it)")


def csim_exact(model, out: Path, x, **config):
    """Build `model` (HLS) into `out` and C-simulate x: every output must equal the emulator's."""
    from fpgaq.backends.hls.csim import run_csim
    from fpgaq.config import BuildConfig
    from fpgaq.project import build
    need_gxx()
    project = build(model, out, BuildConfig(**config))
    r = run_csim(project, x)
    assert r.ok, r.mismatches
    return project


@pytest.fixture
def example_model() -> Path:
    return EXAMPLE


def pytest_sessionfinish(session, exitstatus):
    """In CI every tool is installed, so a skipped test is a failure."""
    import os
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("CI") and skipped and exitstatus == 0:
        reporter.write_line(f"CI: {len(skipped)} test(s) skipped; in CI nothing may skip", red=True)
        session.exitstatus = 1
