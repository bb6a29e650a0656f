"""fpgaq against hls4ml (QONNX front end, Vitis back end, io_parallel, Latency and Resource).

First the three targets of issue 13 on the jet tagger, each measured in turns with hls4ml so
that a change of the machine's load hits both: `fpgaq csim` (compile + 10,000 inputs) against
hls4ml's compile + predict, `fpgaq build` as a whole process against hls4ml's import + convert +
write as a whole process, and the emulator's inputs a second. Then, on the jet tagger and on a
network 13.6x its size, in one run: build time, C-simulation compile time and throughput, the
emulator against hls4ml's `predict`, the multiplications each tool writes into its code, the
accumulator bits it gives the neurons, and whether each is bit-exact. It prints Markdown
tables, writes them to benchmarks/results/compare_hls4ml.md and puts them into the README
(section "fpgaq against hls4ml").

    python benchmarks/compare_hls4ml.py [--csim-inputs 10000] [--check-inputs 2000]
                                        [--emu-inputs 100000] [--keep] [--no-write]

fpgaq's user cache (compiled templates, the precompiled ap_types header, object files) lives in
the run's temporary folder: the warm-up fills the first two, as any earlier build of the user
would; object files are removed before every timed C-simulation, so each compiles its design.

A script, not a test: timings depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime
import io
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from fpgaq import emulate  # noqa: E402
from fpgaq.backends.hls import build_cache  # noqa: E402
from fpgaq.backends.hls.csim import compile_testbench, run_csim  # noqa: E402
from fpgaq.compile import compile_model  # noqa: E402
from fpgaq.config import BuildConfig  # noqa: E402
from fpgaq.frontend.importer import import_model  # noqa: E402
from fpgaq.frontend.model_file import load  # noqa: E402
from fpgaq.ir.fixed import FixedType  # noqa: E402
from fpgaq.ir.graph import Graph  # noqa: E402
from fpgaq.ir.ops import Dense, Gemm, MatMul  # noqa: E402
from fpgaq.projectdir import CSIM_WORK  # noqa: E402
from fpgaq.project import build, open_project  # noqa: E402
from fpgaq.stimulus import random_inputs  # noqa: E402
from hls4ml_flow import DEFAULT_PRECISION, hls4ml_clean, hls4ml_convert  # noqa: E402,F401

JET_TAGGER = ROOT / "examples" / "jet_tagger" / "jet_tagger.onnx"
LARGE_SIZES = (64, 256, 128, 64, 10)     # 57,984 weights: 13.6x the jet tagger's 4,256
LARGE_SEED = 20240612
STRATEGIES = ("Latency", "Resource")
RESULTS = ROOT / "benchmarks" / "results" / "compare_hls4ml.md"
README = ROOT / "README.md"
MARK_START, MARK_END = "<!-- compare_hls4ml:start -->", "<!-- compare_hls4ml:end -->"

# the input sets every tool runs, each compared exactly with fpgaq's emulator
INPUT_SETS = {
    "grid": "on the input grid (extremes, ties, saturating values)",
    "off": "off-grid float32, inside ±32",
    "far": "on-grid, 2% of values beyond ±32",
}


# --------------------------------------------------------------------------- measurements


@dataclass
class Exactness:
    """Outputs compared with the emulator's, exactly (no tolerance)."""
    n_outputs: int = 0
    differing: int = 0

    def text(self) -> str:
        if self.n_outputs == 0:
            return "-"
        if self.differing == 0:
            return "yes"
        return f"**no**: {self.differing / self.n_outputs:.1%} of outputs differ"


def compare(got: np.ndarray, expected: np.ndarray) -> Exactness:
    got = np.asarray(got, dtype=np.float64).reshape(expected.shape)
    return Exactness(expected.size, int(np.count_nonzero(got != expected)))


@dataclass
class Layer:
    """One dense layer as a tool emitted it."""
    shape: str                 # n_in x n_out
    products: int              # multiplications written into the code
    nonzero: int               # of them with a non-zero weight
    acc: str                   # accumulator type as written
    acc_bits: int              # accumulator width summed over the layer's neurons
    acc_bits_min: int = 0      # per-neuron minimum widths, summed (fpgaq derives these)


@dataclass
class Result:
    tool: str
    build_s: float = float("nan")
    compile_s: float = float("nan")
    csim_rate: float = float("nan")          # inputs/s of the C-simulation (hls4ml: predict)
    emu_rate: float = float("nan")           # inputs/s of the bit-exact model (hls4ml: predict)
    layers: list[Layer] = field(default_factory=list)
    exact: dict[str, Exactness] = field(default_factory=dict)
    input_type: str = ""
    quantizer_type: str = ""                 # hls4ml: the type it gives the input quantizer
    error: str | None = None


@contextlib.contextmanager
def quiet():
    """hls4ml and qonnx print pages of progress and warnings; keep the table readable."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def timed(fn, *args, **kw):
    start = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - start


# --------------------------------------------------------------------------- inputs


def input_sets(graph: Graph, n: int, n_check: int) -> dict[str, np.ndarray]:
    """n inputs on the grid (these are timed), n_check of each other kind (only compared)."""
    (inp,) = graph.inputs
    (q,) = graph.consumers(inp.name)
    span = (q.op.hi - q.op.lo) * 2.0 ** -q.type.frac
    rng = np.random.default_rng(2)
    grid = random_inputs(graph, n, seed=1)
    # what a float pipeline sends: values between the quantizer's codes, inside hls4ml's default range
    off = np.clip(rng.standard_normal((n_check, inp.size)) * span / 4, -31.9, 31.9)
    # on-grid values, some of them beyond the range of hls4ml's default input type (integers: on every grid)
    far = random_inputs(graph, n_check, seed=4).astype(np.float64)
    mask = rng.random(far.shape) < 0.02
    far[mask] = rng.choice([-1, 1], size=int(mask.sum())) * rng.integers(32, 100, size=int(mask.sum()))
    return {"grid": grid, "off": off.astype(np.float32), "far": far.astype(np.float32)}


# --------------------------------------------------------------------------- fpgaq


def fpgaq_layers(graph: Graph, project_root: Path) -> list[Layer]:
    """Products and accumulators of every Dense node; the emitted accumulator type is read
    from the generated parameters.h, the per-neuron minimum from the node's exact ranges."""
    emitted = re.findall(r"n_out = (\d+);\s*static const int n_nonzero = (\d+);.*?typedef (ap_u?int<(\d+)>) acc_t;",
                         (project_root / "firmware" / "parameters.h").read_text(), flags=re.S)
    dense = [n for n in graph.nodes if isinstance(n.op, Dense)]
    layers = []
    for i, node in enumerate(dense):
        op = node.op
        n_out, n_in = op.weight.shape
        per_neuron = sum(FixedType.holding(iv, node.type.frac).width for iv in node.out.channels)
        if len(emitted) == len(dense) and int(emitted[i][0]) == n_out and int(emitted[i][1]) == op.nonzero:
            acc, width = emitted[i][2], int(emitted[i][3])
        else:  # the template changed shape: fall back to the IR's layer type
            acc, width = str(node.type), node.type.width
        layers.append(Layer(f"{n_in}x{n_out}", op.nonzero, op.nonzero, acc, width * n_out, per_neuron))
    return layers


def run_fpgaq(model: Path, work: Path, xs: dict, refs: dict, n_emu: int) -> Result:
    r = Result("fpgaq")
    project, r.build_s = timed(build, model, work / f"fpgaq_{model.stem}", BuildConfig(name="model"))
    objects_cold()
    cs = run_csim(project, xs["grid"])
    if cs.cached:
        raise RuntimeError("the C-simulation binary came from a cache; its compile time would be wrong")
    r.compile_s, r.csim_rate = cs.build_s, cs.n / cs.run_s
    # the simulation returns output codes; the emulator's references are real values
    r.exact["grid"] = compare(project.graph.real_outputs(0, cs.outputs[0]), refs["grid"])
    for k in ("off", "far"):
        r.exact[k] = compare(project.graph.real_outputs(0, run_csim(project, xs[k]).outputs[0]), refs[k])
    xe = random_inputs(project.graph, n_emu, seed=3)
    emulate.run(project.graph, xe[:100])                      # warm the emulator's caches
    _, emu_s = timed(emulate.run, project.graph, xe)
    r.emu_rate = n_emu / emu_s
    r.layers = fpgaq_layers(project.graph, project.root)
    r.input_type = "the input quantizer's codes"
    return r


# --------------------------------------------------------------------------- issue 13's targets


BUILD_REPEATS, CSIM_REPEATS, EMU_REPEATS = 9, 3, 5
GOAL_CSIM, GOAL_BUILD, GOAL_EMULATOR = 0.25, 0.5, 1.5e6


@dataclass
class Targets:
    """Times of each side, in turns; the load average after each pair."""
    csim: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))     # fpgaq, hls4ml
    build: tuple[list[float], list[float]] = field(default_factory=lambda: ([], []))
    emulator: list[float] = field(default_factory=list)                                # inputs/s
    loads: list[float] = field(default_factory=list)


def objects_cold() -> None:
    """Remove the user cache's object files: the C-simulation compiles its whole design (the
    precompiled ap_types header stays: it is made once a user and compiler)."""
    root = build_cache.cache_root()
    if root is not None:
        shutil.rmtree(root / "objects", ignore_errors=True)


def process_seconds(cmd: list[str]) -> float:
    """Wall time of a command as a whole process."""
    start = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - start
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
    return took


def measure_targets(model: Path, work: Path, n_csim: int, n_emu: int) -> Targets:
    t = Targets()
    fq_out, h_out = work / "targets_fpgaq", work / "targets_hls4ml"
    fq = [sys.executable, "-m", "fpgaq", "build", str(model), "-o", str(fq_out), "--force", "--name", "model"]
    h = [sys.executable, str(ROOT / "benchmarks" / "hls4ml_flow.py"), str(model), str(h_out)]
    print("targets: build as a process ...", file=sys.stderr, flush=True)
    for _ in range(BUILD_REPEATS):
        t.build[0].append(process_seconds(fq))
        shutil.rmtree(h_out, ignore_errors=True)
        t.build[1].append(process_seconds(h))
        t.loads.append(os.getloadavg()[0])
    project = open_project(fq_out)
    x = random_inputs(project.graph, n_csim, seed=1)
    print("targets: C-simulation against compile + predict ...", file=sys.stderr, flush=True)
    for i in range(CSIM_REPEATS):
        objects_cold()
        shutil.rmtree(fq_out / CSIM_WORK, ignore_errors=True)
        r, took = timed(run_csim, project, x)
        if r.cached or not r.ok:
            raise RuntimeError("the timed C-simulation came from a cache or was not exact")
        t.csim[0].append(took)
        with quiet():
            hls_model = hls4ml_convert(model, "Latency", work / f"targets_hls4ml_csim_{i}")
            start = time.perf_counter()
            hls4ml_compile(hls_model)
            predict(hls_model, x)
            t.csim[1].append(time.perf_counter() - start)
        t.loads.append(os.getloadavg()[0])
    xe = random_inputs(project.graph, n_emu, seed=3)
    emulate.run(project.graph, xe[:100])
    for _ in range(EMU_REPEATS):
        _, took = timed(emulate.run, project.graph, xe)
        t.emulator.append(n_emu / took)
    t.loads.append(os.getloadavg()[0])
    return t


def _spread(values: list[float], fmt) -> str:
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def targets_table(t: Targets, n_csim: int, n_emu: int) -> str:
    def ratio_row(what: str, pair: tuple[list[float], list[float]], goal: float) -> str:
        ratios = [a / b for a, b in zip(*pair)]
        q = statistics.median(ratios)
        return (f"| {what} | {_spread(pair[0], fmt_s)} | {_spread(pair[1], fmt_s)} | "
                f"{q:.2f}x ({min(ratios):.2f}–{max(ratios):.2f}) | ≤ {goal:g}x | {'yes' if q <= goal else '**no**'} |")
    rate = statistics.median(t.emulator)
    lines = [
        "| target (issue 13) | fpgaq (s) | hls4ml (s) | fpgaq / hls4ml | goal | met |",
        "|---|---|---|---|---|---|",
        ratio_row(f"`fpgaq csim`, compile + {n_csim:,} inputs / hls4ml compile + predict "
                  f"({len(t.csim[0])} turns)", t.csim, GOAL_CSIM),
        ratio_row(f"`fpgaq build` as a process / hls4ml import + convert + write as a process "
                  f"({len(t.build[0])} turns)", t.build, GOAL_BUILD),
        f"| emulator, {n_emu:,} inputs ({len(t.emulator)} runs) | "
        f"{_spread([n_emu / r for r in t.emulator], fmt_s)}: {rate / 1e6:.2f} M inputs/s | - | - | "
        f"≥ {GOAL_EMULATOR / 1e6:g} M inputs/s | {'yes' if rate >= GOAL_EMULATOR else '**no**'} |",
    ]
    return "\n".join(lines) + (f"\n\nMedians, (min–max) of the turns; the ratio is the median of each turn's "
                               f"ratio. Load average {min(t.loads):.1f}–{max(t.loads):.1f} on "
                               f"{os.cpu_count()} cores during these measurements.")


# --------------------------------------------------------------------------- hls4ml


def hls4ml_compile(hls_model) -> None:
    # write() already ran in the build; _compile() is compile() without writing the project again
    getattr(hls_model, "_compile", hls_model.compile)()


def predict(hls_model, x: np.ndarray) -> np.ndarray:
    return hls_model.predict(np.ascontiguousarray(x))


def short_type(precision) -> str:
    """fixed<16,6,TRN,WRAP,0> -> fixed<16,6>; fixed<8,3,RND_CONV,SAT,0> -> fixed<8,3,RND_CONV,SAT>."""
    s = re.sub(r",TRN,WRAP,0>$", ">", str(precision))
    return re.sub(r"(,[A-Z_]+,[A-Z_]+),0>$", r"\1>", s)


def weights_in_header(path: Path) -> tuple[int, int]:
    """(entries, non-zero entries) of the initializer hls4ml writes into a weight header."""
    body = re.search(r"=\s*\{([^}]*)\}", path.read_text())
    values = np.array([float(v) for v in body.group(1).split(",") if v.strip()])
    return values.size, int(np.count_nonzero(values))


def hls4ml_layers(hls_model, out: Path) -> list[Layer]:
    layers = []
    for layer in hls_model.graph.values():
        if layer.class_name != "Dense":
            continue
        n_in, n_out = layer.get_attr("n_in"), layer.get_attr("n_out")
        total, nonzero = weights_in_header(out / "firmware" / "weights" / f"{layer.weights['weight'].name}.h")
        if total != n_in * n_out:
            raise RuntimeError(f"{layer.name}: {total} weights written for a {n_in}x{n_out} layer")
        acc = layer.types["accum_t"].precision
        layers.append(Layer(f"{n_in}x{n_out}", total, nonzero, short_type(acc), acc.width * n_out))
    return layers


def first_quantizer_type(hls_model) -> str:
    """The type hls4ml gives the model's input quantizer (the layer right after the input)."""
    (name,) = hls_model.inputs
    (first,) = [L for L in hls_model.graph.values() if name in L.inputs]
    return short_type(first.get_output_variable().type.precision)


def run_hls4ml(model: Path, strategy: str, work: Path, xs: dict, refs: dict) -> Result:
    r = Result(f"hls4ml {strategy}")
    out = work / f"hls4ml_{model.stem}_{strategy}"
    try:
        with quiet():
            hls_model, r.build_s = timed(hls4ml_convert, model, strategy, out)
            _, r.compile_s = timed(hls4ml_compile, hls_model)
            predict(hls_model, xs["grid"][:10])                  # the first call reads the weight files
            y, predict_s = timed(predict, hls_model, xs["grid"])
            ys = {k: predict(hls_model, xs[k]) for k in ("off", "far")}
    except Exception as e:  # a failed path is a finding: report it, keep the other columns
        lines = str(e).strip().splitlines()
        r.error = f"{type(e).__name__}: {lines[-1] if lines else ''}"
        return r
    r.csim_rate = r.emu_rate = len(xs["grid"]) / predict_s
    r.exact = {"grid": compare(y, refs["grid"]), **{k: compare(ys[k], refs[k]) for k in ys}}
    r.layers = hls4ml_layers(hls_model, out)
    r.input_type = f"`{short_type(hls_model.get_input_variables()[0].type.precision)}` (default)"
    r.quantizer_type = first_quantizer_type(hls_model)
    return r


def run_hls4ml_typed_input(model: Path, work: Path, xs: dict, refs: dict, quantizer_type: str) -> Result:
    """hls4ml Latency again, its input type set to the input quantizer's own type and modes."""
    r = Result("hls4ml Latency, typed input", input_type=quantizer_type)
    if not quantizer_type:
        r.error = "the Latency conversion failed, so there is no quantizer type to try"
        return r
    try:
        with quiet():
            hls_model = hls4ml_convert(model, "Latency", work / f"hls4ml_{model.stem}_typed", r.input_type)
            hls4ml_compile(hls_model)
            r.exact = {k: compare(predict(hls_model, x), refs[k]) for k, x in xs.items() if k != "grid"}
    except Exception as e:
        r.error = f"{type(e).__name__}: {e}"
    return r


# --------------------------------------------------------------------------- the table


def fmt_s(v: float) -> str:
    return "-" if v != v else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def fmt_rate(v: float) -> str:
    return "-" if v != v else f"{v:,.0f}"


def fmt_count(v: float) -> str:
    return "-" if v != v else f"{int(v):,}"


def fmt_ratio(a: float, b: float) -> str:
    if a != a or b != b or b == 0:
        return "-"
    q = a / b
    return f"{q:.2f}x" if q < 10 else f"{q:.1f}x"


@dataclass
class ModelRun:
    label: str
    weights: int
    nonzero: int
    n_csim: int
    fpgaq: Result
    hls: list[Result]
    typed: Result
    qonnx: dict[str, Exactness]
    sizes: dict[str, int]


def rows(run: ModelRun) -> list[list[str]]:
    f, hs = run.fpgaq, run.hls

    def numeric(name, get, fmt, note_f="", note_h=""):
        cells = [name, fmt(get(f)) + note_f]
        cells += ["failed" if r.error else fmt(get(r)) + note_h for r in hs]
        cells += ["-" if r.error else fmt_ratio(get(r), get(f)) for r in hs]
        return cells

    def total(attr):
        return lambda r: sum(getattr(L, attr) for L in r.layers)

    n = f"{run.n_csim:,}"
    out = [
        numeric("build (s)", lambda r: r.build_s, fmt_s),
        numeric("C-sim compile, fresh (s)", lambda r: r.compile_s, fmt_s),
        numeric(f"C-sim throughput, {n} inputs (inputs/s)", lambda r: r.csim_rate, fmt_rate,
                note_h=" (predict)"),
        numeric("bit-exact model throughput (inputs/s)", lambda r: r.emu_rate, fmt_rate,
                note_f=" (emulator)", note_h=" (predict)"),
        numeric("multiplications in the generated code", total("products"), fmt_count),
        numeric("... with a non-zero weight", total("nonzero"), fmt_count),
        numeric("accumulator bits, summed over neurons", total("acc_bits"), fmt_count),
        ["... per-neuron minimum (fpgaq derives it)", fmt_count(total("acc_bits_min")(f)),
         *["" for _ in hs], *["" for _ in hs]],
    ]
    for key, what in INPUT_SETS.items():
        out.append([f"bit-exact, {run.sizes[key]:,} inputs {what}", f.exact[key].text(),
                    *["failed" if r.error else r.exact[key].text() for r in hs], *["" for _ in hs]])
    return out


def table(runs: list[ModelRun]) -> str:
    hs = runs[0].hls
    head = ["metric", "fpgaq", *[r.tool for r in hs], *[f"{r.tool.split()[1]} / fpgaq" for r in hs]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        title = f"**{run.label}**: {run.weights:,} weights, {run.nonzero:,} non-zero"
        lines.append("| " + " | ".join([title] + [""] * (len(head) - 1)) + " |")
        lines += ["| " + " | ".join(r) + " |" for r in rows(run)]
    return "\n".join(lines)


def layer_table(run: ModelRun) -> str:
    """Per layer: what each tool multiplies and accumulates in."""
    tools = [run.fpgaq] + [r for r in run.hls if r.error is None]
    head = ["layer"] + [f"{t.tool}" for t in tools] + ["fpgaq per-neuron minimum"]
    lines = [f"{run.label}:", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, fl in enumerate(run.fpgaq.layers):
        cells = [str(i + 1)]
        for t in tools:
            L = t.layers[i] if i < len(t.layers) else None
            cells.append("-" if L is None else f"{L.shape}: {L.products:,} products, `{L.acc}` ({L.acc_bits:,} bits)")
        cells.append(f"{fl.acc_bits_min:,} bits")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def notes(run: ModelRun) -> list[str]:
    out = []
    q = ", ".join(f"{k} {e.text()}" for k, e in run.qonnx.items())
    out.append(f"- {run.label}: fpgaq's emulator against qonnx's reference execution: {q}.")
    for r in [run.fpgaq, *run.hls]:
        if r.error:
            out.append(f"- {run.label}, {r.tool}: failed: `{r.error}`")
        elif r.input_type:
            out.append(f"- {run.label}, {r.tool}: its top function takes {r.input_type}.")
    t = run.typed
    if t.error:
        out.append(f"- {run.label}, {t.tool}: failed: `{t.error}`")
    else:
        e = ", ".join(f"{k} {x.text()}" for k, x in t.exact.items())
        out.append(f"- {run.label}: hls4ml Latency with its input type set to the input quantizer's, "
                   f"`{t.input_type}`: {e}.")
    return out


def environment(load_start: tuple, elapsed: float) -> str:
    gxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return (f"{datetime.date.today().isoformat()}; Python {platform.python_version()}, "
            f"hls4ml {version('hls4ml')}, qonnx {version('qonnx')}, {gxx}; {os.cpu_count()} cores; "
            f"load average {load_start[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; "
            f"whole run {elapsed:.0f} s")


def report(runs: list[ModelRun], targets: str, env: str, command: str) -> str:
    parts = [
        f"`{command}`: {env}.", "",
        "Issue 13's targets, on the jet tagger:", "",
        targets, "",
        "Everything, on two models:", "",
        table(runs), "",
        "Ratios are hls4ml / fpgaq: above 1 fpgaq wins for times, multiplications and bits, "
        "below 1 it wins for throughputs. Bit-exact compares every output with fpgaq's emulator "
        "(fpgaq: its C-simulation; hls4ml: its `predict`), exactly.", "",
        "Notes:", "",
    ]
    for run in runs:
        parts += notes(run)
    parts += ["", "Per layer: multiplications written into the code, accumulator type, its bits "
              "summed over the layer's neurons.", ""]
    for run in runs:
        parts += [layer_table(run), ""]
    return "\n".join(parts).rstrip()


# --------------------------------------------------------------------------- main


def large_model(folder: Path) -> Path:
    import modelgen
    model = modelgen.qonnx_mlp(list(LARGE_SIZES), rng=LARGE_SEED, sparsity=0.7)  # checks acc < 2**24
    return Path(modelgen.save(model, folder / "mlp_64_256_128_64_10.onnx"))


def model_weights(imported: Graph) -> tuple[int, int]:
    """(weights, non-zero weights) of the model's dense layers, as imported (before any pass
    removes one): the weight operand of each Gemm and MatMul."""
    mats = [imported[n.inputs[1]].out.value for n in imported.nodes if isinstance(n.op, (Gemm, MatMul))]
    if any(w is None for w in mats):
        raise RuntimeError("a layer's weight is not a constant in the imported graph")
    return sum(w.size for w in mats), sum(int(np.count_nonzero(w)) for w in mats)


def measure(label: str, model: Path, work: Path, n_csim: int, n_check: int, n_emu: int) -> ModelRun:
    from qonnx_reference import run_reference

    proto = load(model)
    graph = compile_model(proto, model.stem, BuildConfig())
    xs = input_sets(graph, n_csim, n_check)
    refs = {k: emulate.run(graph, x)[0] for k, x in xs.items()}
    print(f"{label}: fpgaq ...", file=sys.stderr, flush=True)
    fq = run_fpgaq(model, work, xs, refs, n_emu)
    hls = []
    for strategy in STRATEGIES:
        print(f"{label}: hls4ml {strategy} ...", file=sys.stderr, flush=True)
        hls.append(run_hls4ml(model, strategy, work, xs, refs))
    print(f"{label}: hls4ml Latency with a typed input, qonnx ...", file=sys.stderr, flush=True)
    typed = run_hls4ml_typed_input(model, work, xs, refs, hls[0].quantizer_type)
    with quiet():
        qonnx = {k: compare(run_reference(model, x)[0], refs[k]) for k, x in xs.items()}
    weights, nonzero = model_weights(import_model(proto, model.stem))
    return ModelRun(label, weights, nonzero, n_csim, fq, hls, typed, qonnx, {k: len(x) for k, x in xs.items()})


def update_readme(text: str) -> None:
    if not README.is_file():
        return
    old = README.read_text()
    if MARK_START in old and MARK_END in old:
        head, rest = old.split(MARK_START, 1)
        _, tail = rest.split(MARK_END, 1)
        README.write_text(f"{head}{MARK_START}\n{text}\n{MARK_END}{tail}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csim-inputs", type=int, default=10_000, help="inputs for C-simulation and predict")
    ap.add_argument("--check-inputs", type=int, default=2_000,
                    help="inputs of each off-grid and out-of-range set (only compared, not timed)")
    ap.add_argument("--emu-inputs", type=int, default=100_000, help="inputs for fpgaq's emulator")
    ap.add_argument("--keep", action="store_true", help="keep the generated projects and say where")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results/ and README.md alone")
    ap.add_argument("--targets-only", action="store_true",
                    help="only the three targets' table (printed; results/ and README.md are left alone)")
    args = ap.parse_args(argv)
    sizes = args.csim_inputs, args.check_inputs, args.emu_inputs
    load_start, start = os.getloadavg(), time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="fpgaq_vs_hls4ml_"))
    os.environ["XDG_CACHE_HOME"] = str(work / "user_cache")      # this run's own fpgaq user cache
    try:
        # warm both tools up (imports, templates, the precompiled header), so that times are
        # steady-state: what a user sees after a first build and C-simulation
        with quiet():
            compile_testbench(build(JET_TAGGER, work / "warmup_fpgaq", BuildConfig(name="warmup")))
            hls4ml_convert(JET_TAGGER, "Latency", work / "warmup_hls4ml")
        targets = measure_targets(JET_TAGGER, work, args.csim_inputs, args.emu_inputs)
        if args.targets_only:
            print(targets_table(targets, args.csim_inputs, args.emu_inputs))
            return 0
        large = large_model(work)
        runs = [
            measure("jet tagger 16-64-32-32-5", JET_TAGGER, work, *sizes),
            measure("MLP " + "-".join(map(str, LARGE_SIZES)), large, work, *sizes),
        ]
    finally:
        if args.keep:
            print(f"projects kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    command = " ".join(["python benchmarks/compare_hls4ml.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(runs, targets_table(targets, args.csim_inputs, args.emu_inputs),
                  environment(load_start, time.perf_counter() - start), command)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# fpgaq against hls4ml\n\n" + text + "\n")
        update_readme("### Latest results\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
