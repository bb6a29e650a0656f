"""The C-simulation build cache: a precompiled ap_types header and object files per user, keyed
on what makes them; a hit compiles nothing, any change compiles again, a damaged entry is
never used, and runs at the same time share it safely."""
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE, need_gxx

from fpgaq.backends.hls import build_cache
from fpgaq.backends.hls.csim import compile_testbench, run_csim
from fpgaq.config import BuildConfig
from fpgaq.project import build, open_project

pytestmark = pytest.mark.usefixtures("gxx")


@pytest.fixture
def gxx():
    need_gxx()


@pytest.fixture(scope="module")
def warm(tmp_path_factory) -> Path:
    """A user cache with the precompiled header made (once for the module: it takes seconds)."""
    need_gxx()
    home = tmp_path_factory.mktemp("xdg")
    mp = pytest.MonkeyPatch()
    mp.setenv("XDG_CACHE_HOME", str(home))
    try:
        p = build(EXAMPLE, tmp_path_factory.mktemp("w") / "jet", BuildConfig(name="warm"))
        compile_testbench(p)
    finally:
        mp.undo()
    return home


@pytest.fixture
def home(warm, tmp_path, monkeypatch) -> Path:
    """A copy of the warm cache for one test (they damage it)."""
    h = tmp_path / "xdg"
    shutil.copytree(warm, h)
    monkeypatch.setenv("XDG_CACHE_HOME", str(h))
    return h / "fpgaq" / "csim"


def _objects(home: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (home / "objects").glob("*.o")}


def _jet(tmp_path: Path, name: str = "jet_tagger", folder: str = "jet"):
    return build(EXAMPLE, tmp_path / folder, BuildConfig(name=name))


def test_unchanged_project_compiles_nothing(home, tmp_path):
    a = _jet(tmp_path, folder="a")
    r = run_csim(a, n=200)
    assert r.ok and not r.cached and r.build_s > 0
    stored = _objects(home)
    assert len(stored) == 4                       # the warm project's two and these two
    # the same design built again elsewhere: both objects from the cache, linked, exact
    b = _jet(tmp_path, folder="b")
    r = run_csim(b, n=200)
    assert r.ok and r.cached
    assert _objects(home) == stored
    # and the project keeps its binary: the next run does not even link
    binary, seconds, reused = compile_testbench(open_project(b.root))
    assert reused and seconds == 0.0 and binary.parent == b.root / ".csim"


def test_changed_source_compiles_again(home, tmp_path):
    p = _jet(tmp_path)
    assert run_csim(p, n=300).ok
    before = _objects(home)
    params = p.root / "firmware" / "parameters.h"
    text = params.read_text()
    start = text.index("w_dense[")
    brace = text.index("{", start) + 1
    end = text.index(",", brace)
    params.write_text(text[:brace] + str(int(text[brace:end]) + 1) + text[end:])
    r = run_csim(open_project(p.root), n=300)
    assert not r.cached and not r.ok                # the changed weight was compiled in: it shows
    after = _objects(home)
    # only the firmware includes parameters.h: one new object, the test bench's was reused
    assert set(before) <= set(after) and len(after) == len(before) + 1


def test_source_key_follows_includes(tmp_path):
    fw = tmp_path / "fw"
    fw.mkdir()
    (fw / "top.cpp").write_text('#include "a.h"\n#include <vector>\nint f() { return A; }\n')
    (fw / "a.h").write_text('#include "b.h"\n#define A B\n')
    (fw / "b.h").write_text("#define B 1\n")
    (fw / "c.h").write_text("#define C 1\n")
    k = build_cache.source_key(fw / "top.cpp", [fw])
    (fw / "c.h").write_text("#define C 2\n")                      # not included: same key
    assert build_cache.source_key(fw / "top.cpp", [fw]) == k
    (fw / "b.h").write_text("#define B 2\n")                      # included by an include
    k2 = build_cache.source_key(fw / "top.cpp", [fw])
    assert k2 != k
    moved = tmp_path / "elsewhere"
    shutil.copytree(fw, moved)                                    # the place does not matter
    assert build_cache.source_key(moved / "top.cpp", [moved]) == k2
    (fw / "top.cpp").write_text('#include HEADER\nint f() { return 0; }\n')   # computed: every file
    k3 = build_cache.source_key(fw / "top.cpp", [fw])
    (fw / "c.h").write_text("#define C 3\n")
    assert build_cache.source_key(fw / "top.cpp", [fw]) != k3


def test_damaged_object_is_not_used(home, tmp_path):
    warm = set(_objects(home))
    p = _jet(tmp_path, folder="a")
    assert run_csim(p, n=100).ok
    mine = [home / "objects" / name for name in set(_objects(home)) - warm]
    assert len(mine) == 2
    data = bytearray(mine[0].read_bytes())
    data[len(data) // 2] ^= 0xFF                      # one flipped byte, as a bad disk would
    mine[0].write_bytes(bytes(data))
    mine[1].write_bytes(b"")                          # and one emptied
    r = run_csim(_jet(tmp_path, folder="b"), n=500)
    assert r.ok and not r.cached                      # compiled again, not linked from damage
    for entry in mine:                                # and put back whole
        head, _, body = entry.read_bytes().partition(b"\n")
        assert body and head.endswith(build_cache.hashlib.sha256(body).hexdigest().encode())


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_damaged_precompiled_header_is_made_again(home, tmp_path, damage):
    (folder,) = (home / "pch").iterdir()
    gch = folder / f"{build_cache.PCH_NAME}.gch"
    size = gch.stat().st_size
    if damage == "truncated":
        gch.write_bytes(gch.read_bytes()[: size // 2])
    else:                                             # the same size, not a header g++ reads
        gch.write_bytes(b"\0" * size)
    r = run_csim(_jet(tmp_path, name="other"), n=300)
    assert r.ok and not r.cached
    if damage == "garbage":                           # g++ refused it: removed, made by the next build
        assert not list((home / "pch").iterdir())
        assert run_csim(_jet(tmp_path, name="third", folder="t"), n=100).ok
    (again,) = (home / "pch").iterdir()               # seen as damaged before use: made again
    assert build_cache._whole(again) and (again / f"{build_cache.PCH_NAME}.gch").read_bytes()[:4] == b"gpch"


def test_another_compiler_or_headers_compile_again(home, tmp_path, monkeypatch):
    p = _jet(tmp_path, folder="a")
    assert run_csim(p, n=100).ok
    q = _jet(tmp_path, folder="b")
    real = build_cache.compiler_id
    monkeypatch.setattr(build_cache, "compiler_id", lambda cxx: real(cxx) + "an upgrade")
    assert not run_csim(q, n=100).cached
    ap = tmp_path / "ap"
    ap.mkdir()
    (ap / "ap_fixed.h").write_text("// 1\n")
    h = build_cache.tree_hash(ap)
    (ap / "ap_fixed.h").write_text("// 2\n")
    assert build_cache.tree_hash(ap) != h


def test_concurrent_runs_share_a_cold_cache(tmp_path, monkeypatch):
    """Two builds at once, the cache empty: both compile, both are exact, the cache holds
    one precompiled header and whole objects."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cold"))
    projects = [_jet(tmp_path, folder=f"p{i}") for i in range(2)]
    results: list = [None, None]

    def run(i):
        results[i] = run_csim(projects[i], n=200)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and r.ok for r in results)
    np.testing.assert_array_equal(results[0].outputs[0], results[1].outputs[0])
    home = tmp_path / "cold" / "fpgaq" / "csim"
    (folder,) = [p for p in (home / "pch").iterdir() if not p.name.startswith(".")]
    assert build_cache._whole(folder)
    assert not [p for p in (home / "pch").iterdir() if p.name.startswith(".tmp-")]
    assert len(_objects(home)) == 2


def test_no_cache_where_it_cannot_be_written(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    assert build_cache.cache_root() is None
    assert run_csim(_jet(tmp_path), n=100).ok          # compiled without a cache


def test_fast_code_files_equal_the_exact_ones():
    """codes_text (one formatting call for int64 codes) writes what formatting every value on
    its own writes, for int64, wide (object), float-held and empty codes; parse_codes (numpy
    where every code fits int64) reads what splitting every line reads, and codes past int64
    go the exact way."""
    from fpgaq.projectdir import codes_text, parse_codes

    def plain(codes):
        rows = zip(*[np.asarray(c).reshape(len(c), -1).tolist() for c in codes])
        return "".join(" ".join(str(int(v)) for part in row for v in part) + "\n" for row in rows)

    def plain_parse(text, widths):
        rows = [[int(v) for v in line.split()] for line in text.splitlines()]
        edges = np.cumsum([0, *widths])
        return [[r[a:b] for r in rows] for a, b in zip(edges[:-1], edges[1:])]

    rng = np.random.default_rng(1)
    codes = [rng.integers(-2**61, 2**61, (40, 3)), rng.integers(-5, 5, (40, 4)).astype(np.int32)]
    text = codes_text(codes)
    assert text == plain(codes)
    for fast, exact, original in zip(parse_codes(text, [3, 4]), plain_parse(text, [3, 4]), codes):
        assert fast.dtype == np.int64
        np.testing.assert_array_equal(fast, np.array(exact))
        np.testing.assert_array_equal(fast, original)
    wide = [np.array([[2**70, -1], [-(2**70), 3]], dtype=object), np.array([[1.0], [-2.0]])]
    assert codes_text(wide) == plain(wide) == "1180591620717411303424 -1 1\n-1180591620717411303424 3 -2\n"
    assert codes_text([np.zeros((2, 0), dtype=np.int64)]) == "\n\n"
    (back,) = parse_codes(codes_text(wide[:1]), [2])
    assert back.dtype == object and back[0, 0] == 2**70 and back[1, 0] == -(2**70)
    with pytest.raises(ValueError):
        parse_codes("1 2 x\n", [3])


def test_a_real_compile_error_keeps_the_precompiled_header(home, tmp_path):
    from fpgaq.errors import ToolError
    p = _jet(tmp_path)
    top = p.root / "firmware" / "jet_tagger.cpp"
    top.write_text(top.read_text() + "\nthis is not C++;\n")
    with pytest.raises(ToolError, match="g\\+\\+ failed to compile"):
        run_csim(open_project(p.root), n=10)
    (folder,) = (home / "pch").iterdir()
    assert build_cache._whole(folder)
