"""C-simulation: compile the generated firmware and test bench with g++ against the ap_types
headers that the installed hls4ml ships, run it, and compare with the emulator."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ... import emulate
from ...errors import ToolError
from ...progress import step
from ...projectdir import CSIM_WORK, Project, codes_text, parse_codes
from ...stimulus import random_inputs
from ..base import Simulation, compare
from . import build_cache

CXXFLAGS = ["-std=c++14", "-O2", "-Wno-uninitialized", "-Wno-unknown-pragmas",
            "-Wno-unused-variable", "-Wno-unused-but-set-variable"]


def ap_types_dir() -> Path:
    """The ap_int / ap_fixed headers inside the installed hls4ml package (never copied)."""
    try:
        import hls4ml
    except ImportError:
        raise ToolError("C-simulation needs the ap_types headers that the hls4ml package ships; "
                        "install it with `pip install hls4ml`") from None
    d = Path(hls4ml.__file__).parent / "templates" / "vivado" / "ap_types"
    if not (d / "ap_fixed.h").is_file():
        raise ToolError(f"hls4ml is installed but {d} has no ap_fixed.h; reinstall hls4ml")
    return d


def compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++")
    if not cxx:
        raise ToolError("C-simulation needs g++; install it (Debian: apt-get install -y g++)")
    return cxx


def compile_testbench(project: Project) -> tuple[Path, float, bool]:
    """Build (or reuse) the C-simulation binary; returns (path, seconds, reused). The project
    keeps its last binary; the user's cache keeps the ap_types headers precompiled and every
    object file by what it is made of, so only a changed translation unit is compiled."""
    root, top = project.root, project.config.name
    if project.config.backend != "hls":
        raise ToolError(f"{root} is a {project.config.backend} project; C-simulation is for HLS projects "
                        "(use `fpgaq rtlsim` for Verilog)")
    sources = [root / "firmware" / f"{top}.cpp", root / "tb" / f"{top}_test.cpp"]
    missing = [str(p.relative_to(root)) for p in sources + [root / "firmware" / "parameters.h"] if not p.is_file()]
    if missing:
        raise ToolError(f"{root} lacks {', '.join(missing)}; rebuild the project with `fpgaq build --force`")
    inc = ap_types_dir()
    cxx = compiler()
    build_key = build_cache.key(build_cache.compiler_id(cxx), *CXXFLAGS, build_cache.tree_hash(inc))
    firmware = root / "firmware"
    unit_keys = [build_cache.key(build_key, build_cache.source_key(s, [firmware])) for s in sources]
    cache = root / CSIM_WORK
    binary = cache / f"csim_{build_cache.key(*unit_keys)[:16]}"
    if binary.is_file():
        return binary, 0.0, True
    cache.mkdir(exist_ok=True)
    start = time.perf_counter()
    user = build_cache.cache_root()
    objects = build_cache.ObjectCache(user) if user is not None else None
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        objs = [Path(tmp) / f"{i}.o" for i in range(len(sources))]
        todo = [(s, o, k) for s, o, k in zip(sources, objs, unit_keys) if objects is None or not objects.get(k, o)]
        if todo:
            with step(f"C-simulation: compiling {top} with g++"):
                _compile(cxx, [*CXXFLAGS, "-isystem", str(inc)], ["-I", str(firmware)], todo, user, build_key)
            if objects is not None:
                for _, o, k in todo:
                    objects.put(k, o)
        tmp_bin = Path(tmp) / "csim"
        r = subprocess.run([cxx, *map(str, objs), "-o", str(tmp_bin)], capture_output=True, text=True)
        if r.returncode:
            raise ToolError("g++ failed to link the C-simulation:\n" + r.stderr[-4000:])
        for old in cache.glob("csim_*"):
            old.unlink()
        os.replace(tmp_bin, binary)
    return binary, time.perf_counter() - start, not todo


def _compile(cxx: str, flags: list[str], includes: list[str], units: list[tuple[Path, Path, str]],
             user: Path | None, build_key: str) -> None:
    """Compile each (source, object) with g++, one a core, with the user's precompiled
    ap_types header where there is one (where g++ cannot make one, the units include the
    headers themselves); a header g++ refuses or cannot find is removed and the units are
    compiled again without it."""
    pch = build_cache.precompiled_header(user, cxx, flags, build_key) if user is not None else None
    runs = _run_units(cxx, flags + includes + (["-Winvalid-pch", "-include", str(pch)] if pch else []), units)
    if pch is not None and any(build_cache.PCH_NAME in r.stderr for r in runs):
        build_cache.drop_precompiled_header(pch)          # damaged, or removed meanwhile
        runs = _run_units(cxx, flags + includes, units)
    for r in runs:
        if r.returncode:
            raise ToolError("g++ failed to compile the generated project:\n" + r.stderr[-4000:])


def _run_units(cxx: str, flags: list[str], units: list[tuple[Path, Path, str]]) -> list:
    # one translation unit a core: the firmware and the test bench compile side by side
    with ThreadPoolExecutor(max_workers=max(len(units), 1)) as pool:
        return list(pool.map(lambda u: subprocess.run([cxx, *flags, "-c", str(u[0]), "-o", str(u[1])],
                                                      capture_output=True, text=True), units))


def run_csim(project: Project, x: np.ndarray | None = None, n: int = 10_000, seed: int = 1) -> Simulation:
    """C-simulate on real inputs x (default: n random inputs over the whole input range) and
    compare every output code with the emulator's."""
    graph = project.graph
    if x is None:
        x = random_inputs(graph, n, seed)
    widths = [graph[o].size for o in graph.outputs]
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max_workers=1) as pool:
        # g++ runs while the emulator computes what the outputs must be
        compiling = pool.submit(compile_testbench, project)
        work = Path(tmp)
        expected = emulate.output_codes(graph, x)
        (work / "in.dat").write_text(codes_text([emulate.input_codes(graph, x)]))
        (work / "exp.dat").write_text(codes_text(expected))
        binary, compile_s, cached = compiling.result()
        start = time.perf_counter()
        with step(f"C-simulation: running {len(x):,} input{'' if len(x) == 1 else 's'}"):
            r = subprocess.run([str(binary), str(work / "in.dat"), str(work / "exp.dat"), str(work / "out.dat")],
                               capture_output=True, text=True)
        run_s = time.perf_counter() - start
        if r.returncode not in (0, 1):
            raise ToolError(f"the C-simulation binary failed (exit {r.returncode}):\n{r.stderr[-2000:]}")
        produced = parse_codes((work / "out.dat").read_text(), widths)
    if len(produced[0]) != len(x):
        raise ToolError(f"the C-simulation produced {len(produced[0])} samples for {len(x)} inputs")
    count, first = compare(expected, produced)
    if (r.returncode == 0) != (count == 0):
        raise ToolError("the C-simulation test bench and fpgaq disagree about whether outputs match; "
                        f"test bench said: {r.stdout.strip()[-500:]}")
    return Simulation(n=len(x), simulator="g++", mismatch_count=count, mismatches=first, outputs=produced,
                      build_s=compile_s, run_s=run_s, cached=cached)

