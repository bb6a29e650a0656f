"""fpgaq against hls4ml on convolutional networks (QONNX front end, Vitis back end, io_parallel
and io_stream).

Three models, each in both I/O styles (`--io`): the brevitas_cnn fixtures conv2d (3x3,
depthwise 3x3 with stride 2 and asymmetric padding, 1x1, dense) and maxpool2d (3x3, 2x2 max
pool, 3x3 with padding, 3x3 max pool with stride 2 and padding, dense), and the scale model
cnn100k (3 x 32 x 32, 3x3 convolutions of 16, 32 and 64 channels each with a 2x2 max pool,
dense 72 and 10: 97,920 weights, half pruned; `benchmarks/models/make_cnn100k.py`, run when the
file is missing). For each model and style it measures build time, C-simulation compile time
(fresh) and run time, whether the C-simulation equals fpgaq's emulator, how many outputs of
each tool equal qonnx's reference execution of the model, and fpgaq's estimated latency, II
and resources. hls4ml goes through its documented QONNX recipe (qonnx clean-up, channels last,
Gemm -> MatMul, clean-up: `hls4ml_clean` of compare_hls4ml.py), a granularity='name'
configuration, the Latency strategy, io_type io_parallel or io_stream; each hls4ml run is a
child process killed after `--hls4ml-timeout` seconds. A model or style a tool refuses (or a
run that times out) is a row in the table, not a failure. It prints a short summary and the
full Markdown table and writes both to benchmarks/results/compare_hls4ml_cnn.md.

    python benchmarks/compare_hls4ml_cnn.py [--io io_parallel,io_stream] [--models conv2d,maxpool2d,cnn100k]
                                            [--csim-inputs 10000] [--check-inputs 300]
                                            [--scale-inputs 100] [--scale-check 10]
                                            [--hls4ml-timeout 600] [--keep] [--no-write]

A script, not a test: timings depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from compare_hls4ml import (JET_TAGGER, ROOT, environment, fmt_ratio, fmt_s, hls4ml_compile,  # noqa: E402
                            hls4ml_convert, input_sets, predict, quiet, short_type, timed)

from fpgaq import emulate  # noqa: E402
from fpgaq.backends.hls.csim import run_csim  # noqa: E402
from fpgaq.compile import compile_model  # noqa: E402
from fpgaq.config import BuildConfig  # noqa: E402
from fpgaq.errors import FpgaqError  # noqa: E402
from fpgaq.frontend.model_file import load  # noqa: E402
from fpgaq.project import build  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "brevitas_cnn"
SCALE = "cnn100k"
SCALE_DIR = ROOT / "benchmarks" / "models"
MODELS = {
    "conv2d": "conv2d: (1, 8, 8) -> 3x3 conv -> depthwise 3x3, stride 2 -> 1x1 conv -> dense 5",
    "maxpool2d": "maxpool2d: (3, 12, 12) -> 3x3 conv -> 2x2 max pool -> 3x3 conv -> 3x3 max pool, "
                 "stride 2, padding 1 -> dense 5",
    SCALE: "cnn100k: (3, 32, 32) -> 3x3 conv 16, 32, 64, each ReLU + 2x2 max pool -> dense 72 -> dense 10; "
           "97,920 weights, 50% pruned",
}
IO_STYLES = ("io_parallel", "io_stream")
STRATEGY = "Latency"
RESULTS = ROOT / "benchmarks" / "results" / "compare_hls4ml_cnn.md"

# the input sets compared with qonnx: the first is also the timed set (its first --check-inputs)
CHECK_SETS = {
    "grid": "on the input grid (extremes, ties, saturating values)",
    "fixture": "the fixture's own inputs (PyTorch's float32, off-grid, some beyond the input range)",
    "off": "off-grid float32, inside ±32",
    "far": "on-grid, 2% of values beyond ±32",
}


# --------------------------------------------------------------------------- measurements


@dataclass
class Count:
    """Outputs exactly equal to a reference (no tolerance)."""
    equal: int = 0
    total: int = 0

    def text(self) -> str:
        if self.total == 0:
            return "-"
        s = f"{self.equal:,} / {self.total:,}"
        return s if self.equal == self.total else f"**{s}**"

    def __add__(self, other: Count) -> Count:
        return Count(self.equal + other.equal, self.total + other.total)


def count(got: np.ndarray, expected: np.ndarray) -> Count:
    got = np.asarray(got, dtype=np.float64).reshape(expected.shape)
    return Count(int(np.count_nonzero(got == expected)), expected.size)


@dataclass
class Result:
    tool: str
    io: str
    build_s: float = float("nan")
    compile_s: float = float("nan")
    run_s: float = float("nan")              # C-simulation of the timed set (hls4ml: predict)
    emu_s: float = float("nan")              # fpgaq's emulator on the timed set
    csim_emu: Count = field(default_factory=Count)              # fpgaq: C-sim against the emulator
    exact: dict[str, Count] = field(default_factory=dict)        # C-sim (hls4ml: predict)
    emu_exact: dict[str, Count] = field(default_factory=dict)    # fpgaq's emulator
    estimates: dict[str, str] = field(default_factory=dict)      # latency, ii, lut, ff, dsp, bram
    weights: str = ""
    input_type: str = ""
    quantizer_type: str = ""                 # hls4ml: the type it gives the input quantizer
    error: str | None = None                 # a refusal, a failure, a crash or a timeout: the message
    phase: str = ""                          # hls4ml: the last phase done (for a timeout)

    def all_exact(self) -> Count:
        return sum(self.exact.values(), Count())


NOT_RUN = "not run (timing only)"
ESTIMATES = {"latency": "latency_cycles", "ii": "ii", "lut": "lut", "ff": "ff", "dsp": "dsp", "bram": "bram"}


def error_text(e: Exception) -> str:
    """The whole message on one line (a ModelError lists its problems on lines of their own)."""
    lines = [s.strip() for s in str(e).strip().splitlines() if s.strip()]
    return f"{type(e).__name__}: {' '.join(lines)}".replace("|", "\\|")


def short_error(text: str, limit: int = 110) -> str:
    """A table cell's refusal: the first problem (without fpgaq's list header), cut at `limit`
    characters."""
    first = re.sub(r"^ModelError: \d+ problems? in the model: (1\. )?", "", text).split(" 2. ")[0]
    return first if len(first) <= limit else first[:limit - 3].rstrip() + "..."


def model_path(name: str) -> Path:
    """A fixture, or the scale model (made by its script when it is missing)."""
    if name != SCALE:
        return FIXTURES / f"{name}.onnx"
    path = SCALE_DIR / f"{SCALE}.onnx"
    if not path.is_file():
        print(f"{SCALE}: making {path.relative_to(ROOT)} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, str(SCALE_DIR / f"make_{SCALE}.py"), "--out", str(path)], check=True,
                       stdout=subprocess.DEVNULL)
    return path


def model_inputs(name: str, graph, n: int, n_check: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The timed set (n inputs on the grid) and the check sets, all in the model's input shape."""
    shape = graph.inputs[0].shape
    xs = {k: np.ascontiguousarray(x.reshape((len(x),) + tuple(shape))) for k, x in input_sets(graph, n, n_check).items()}
    timed_set = xs.pop("grid")
    checks = {"grid": timed_set[:n_check]}
    if (FIXTURES / f"inputs_{name}.npy").is_file():
        checks["fixture"] = np.load(FIXTURES / f"inputs_{name}.npy").astype(np.float32)
    return timed_set, {**checks, **xs}


# --------------------------------------------------------------------------- fpgaq


def run_fpgaq(model: Path, work: Path, io: str, x: np.ndarray, checks: dict, refs: dict) -> Result:
    r = Result("fpgaq", io)
    try:
        project, r.build_s = timed(build, model, work / f"fpgaq_{model.stem}_{io}", BuildConfig(name="model", io=io))
    except FpgaqError as e:  # a refusal (io_parallel: a convolution too large to unroll) is a row
        r.error = error_text(e)
        return r
    cs = run_csim(project, x)
    if cs.cached:
        raise RuntimeError("the C-simulation binary came from a cache; its compile time would be wrong")
    r.compile_s, r.run_s = cs.build_s, cs.run_s
    n_out = cs.outputs[0].size
    r.csim_emu = Count(n_out - cs.mismatch_count, n_out)
    g = project.graph
    emulate.run(g, x[:100])                                  # warm the emulator's caches
    _, r.emu_s = timed(emulate.run, g, x)
    for k, xc in checks.items():
        # the simulation returns output codes; qonnx returns real values
        r.exact[k] = count(g.real_outputs(0, run_csim(project, xc).outputs[0]), refs[k])
        r.emu_exact[k] = count(emulate.run(g, xc)[0], refs[k])
    t = project.report["total"]
    r.estimates = {k: f"{t[v]:,}" for k, v in ESTIMATES.items()}
    r.weights = f"{t['weights']:,} weights, {t['nonzero']:,} non-zero"
    r.input_type = "the input quantizer's codes"
    return r


# --------------------------------------------------------------------------- hls4ml


def input_quantizer_type(hls_model) -> str:
    """The type hls4ml gives the model's input quantizer: the first Quant activation
    (after the input's Transpose, when hls4ml keeps one)."""
    for layer in hls_model.graph.values():
        if layer.class_name == "Activation" and layer.name.startswith("Quant"):
            return short_type(layer.get_output_variable().type.precision)
    return ""


def run_hls4ml(model: Path, work: Path, io: str, x: np.ndarray, checks: dict, refs: dict, done) -> Result:
    """hls4ml with its default input type; done(result) after each phase."""
    r = Result(f"hls4ml {STRATEGY}", io)
    try:
        with quiet():
            hls_model, r.build_s = timed(hls4ml_convert, model, STRATEGY, work / f"hls4ml_{model.stem}_{io}",
                                         io_type=io)
            r.phase = "converted"
            done(r)
            _, r.compile_s = timed(hls4ml_compile, hls_model)
            r.phase = "compiled"
            done(r)
            predict(hls_model, x[:10])                            # the first call reads the weight files
            _, r.run_s = timed(predict, hls_model, x)
            r.exact = {k: count(predict(hls_model, xc), refs[k]) for k, xc in checks.items()}
            r.phase = "predicted"
    except Exception as e:  # a refusal is a finding: report it, keep fpgaq's column
        r.error = error_text(e)
        return r
    r.estimates = {k: "needs Vitis" for k in ESTIMATES}
    r.input_type = f"`{short_type(hls_model.get_input_variables()[0].type.precision)}` (default)"
    r.quantizer_type = input_quantizer_type(hls_model)
    return r


def run_hls4ml_typed_input(model: Path, work: Path, io: str, checks: dict, refs: dict, quantizer_type: str) -> Result:
    """hls4ml again, its input type set to the input quantizer's own type and modes."""
    r = Result(f"hls4ml {STRATEGY}, typed input", io, input_type=quantizer_type)
    if not quantizer_type:
        r.error = "the first conversion failed, so there is no quantizer type to try"
        return r
    try:
        with quiet():
            hls_model = hls4ml_convert(model, STRATEGY, work / f"hls4ml_{model.stem}_{io}_typed", quantizer_type,
                                       io_type=io)
            hls4ml_compile(hls_model)
            r.exact = {k: count(predict(hls_model, xc), refs[k]) for k, xc in checks.items()}
    except Exception as e:
        r.error = error_text(e)
    return r


def hls4ml_job(model: Path, work: Path, io: str, x: np.ndarray, checks: dict, refs: dict, typed: bool, send) -> None:
    """Both hls4ml runs (the typed one if asked), sending (result, typed result or None) after
    each phase."""
    r = run_hls4ml(model, work, io, x, checks, refs, lambda partial: send((partial, None)))
    send((r, run_hls4ml_typed_input(model, work, io, checks, refs, r.quantizer_type) if typed else None))


@dataclass
class ChildEnd:
    last: object             # the last thing the child sent, or None
    timed_out: bool
    exitcode: int | None     # negative: killed by that signal
    stderr: str              # what the child wrote to its standard error


def in_child(timeout: float, log: Path, job, *args) -> ChildEnd:
    """job(*args, send) in a forked child that leads its own process group (hls4ml's g++ runs in
    it), its standard error in `log`; the group is killed after `timeout` seconds."""
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child():
        os.setsid()
        with open(log, "w") as err:
            os.dup2(err.fileno(), 2)
        job(*args, send.send)

    proc = ctx.Process(target=child)
    proc.start()
    send.close()
    last, timed_out, deadline = None, True, time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        if recv.poll(left):
            try:
                last = recv.recv()
            except EOFError:                       # the child is done (or died)
                timed_out = False
                break
    if timed_out:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.join()
    return ChildEnd(last, timed_out, proc.exitcode, log.read_text(errors="replace") if log.is_file() else "")


def crash_text(end: ChildEnd) -> str:
    """Why the child died: its signal or exit code, and a failed assertion or its last line."""
    code = end.exitcode
    how = signal.Signals(-code).name if code is not None and code < 0 else f"exit code {code}"
    lines = [s.strip() for s in end.stderr.splitlines() if s.strip() and "warn" not in s.lower()]
    asserted = [s for s in lines if "Assertion" in s]
    why = (asserted or lines or [""])[-1]
    m = re.search(r"(nnet_\w+\.h:\d+): .*?(nnet::\w+).*?(Assertion .* failed)", why)
    if m:                                       # the header and function, not the project's path and types
        why = " ".join(m.groups())
    return f"crashed ({how}): {why}".replace("|", "\\|").replace("`", "'").rstrip(": ")


def measure_hls4ml(model: Path, work: Path, io: str, x, checks, refs, typed: bool, timeout: float):
    """(result, typed result) of hls4ml, run in a child process capped at `timeout` seconds."""
    end = in_child(timeout, work / f"hls4ml_{model.stem}_{io}.stderr", hls4ml_job, model, work, io, x, checks,
                   refs, typed)
    r, t = end.last or (Result(f"hls4ml {STRATEGY}", io), None)
    ended = f"timed out: killed after {timeout:.0f} s" if end.timed_out else crash_text(end)
    if not r.error and r.phase != "predicted":
        where = f", after it {r.phase}" if r.phase else ", while converting"
        r = replace(r, error=f"{ended}{where}" if end.timed_out else f"{ended} (after it {r.phase or 'started'})")
    if t is None:
        t = Result(f"hls4ml {STRATEGY}, typed input", io,
                   error=NOT_RUN if not typed else "not run: the first run did not finish" if r.error else ended)
    return r, t


# --------------------------------------------------------------------------- the table


@dataclass
class ModelRun:
    name: str
    io: str
    n: int
    sizes: dict[str, int]
    fpgaq: Result
    hls: Result
    typed: Result

    @property
    def label(self) -> str:
        return f"{MODELS[self.name]}; {self.io}"


def failure(r: Result) -> str:
    """'refused: ' before a refusal's message; nothing before a timeout's or a crash's, which say so."""
    return "" if r.error.startswith(("timed out", "crashed")) else "refused: "


def cell(r: Result, text: str) -> str:
    return "-" if r.error else text


def rows(run: ModelRun) -> list[list[str]]:
    f, h = run.fpgaq, run.hls

    def numeric(name, get, fmt, note_h=""):
        return [name, cell(f, fmt(get(f))), cell(h, fmt(get(h)) + note_h),
                "-" if f.error or h.error else fmt_ratio(get(h), get(f))]

    def refused(r: Result, text: str) -> str:
        return f"{failure(r)}`{short_error(r.error)}` (notes)" if r.error else text

    n = f"{run.n:,}"
    out = [
        ["build / convert (s)", refused(f, fmt_s(f.build_s)), refused(h, fmt_s(h.build_s)),
         "-" if f.error or h.error else fmt_ratio(h.build_s, f.build_s)],
        numeric("C-sim compile, fresh (s)", lambda r: r.compile_s, fmt_s),
        numeric(f"C-sim run, {n} inputs (s)", lambda r: r.run_s, fmt_s, " (predict)"),
        [f"C-sim outputs equal to the emulator, {n} inputs", cell(f, f.csim_emu.text()), "", ""],
        [f"bit-exact model, {n} inputs (s)", cell(f, fmt_s(f.emu_s) + " (emulator)"),
         cell(h, fmt_s(h.run_s) + " (predict)"), "-" if f.error or h.error else fmt_ratio(h.run_s, f.emu_s)],
    ]
    for key, size in run.sizes.items():
        m = f"{size:,} inputs {CHECK_SETS[key]}"
        out.append([f"outputs equal to qonnx, {m}: C-sim / predict", cell(f, f.exact.get(key, Count()).text()),
                    cell(h, h.exact.get(key, Count()).text()), ""])
    for key in run.sizes:
        out.append([f"outputs equal to qonnx, {key}: fpgaq emulator", cell(f, f.emu_exact.get(key, Count()).text()), "", ""])
    for key, what in (("latency", "latency (cycles)"), ("ii", "II (cycles)"), ("lut", "LUT"), ("ff", "FF"),
                      ("dsp", "DSP"), ("bram", "BRAM (18 kb)")):
        out.append([f"estimated {what}", cell(f, f.estimates.get(key, "")), cell(h, h.estimates.get(key, "")), ""])
    return out


def table(runs: list[ModelRun]) -> str:
    head = ["metric", "fpgaq", f"hls4ml {STRATEGY}", f"{STRATEGY} / fpgaq"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        lines.append("| " + " | ".join([f"**{run.label}**"] + [""] * (len(head) - 1)) + " |")
        lines += ["| " + " | ".join(r) + " |" for r in rows(run)]
    return "\n".join(lines)


def summary_row(run: ModelRun, r: Result) -> list[str]:
    name = f"{run.name}, {run.io}"
    if r.error:
        done = f" (convert {fmt_s(r.build_s)} s)" if r.build_s == r.build_s else ""
        return [name, r.tool, f"{failure(r)}{short_error(r.error, 120)}{done}", "-", "-", "-", "-", "-"]
    est = r.estimates
    lat = f"{est['latency']} / {est['ii']}" if r.tool == "fpgaq" else "needs Vitis"
    res = f"{est['lut']} / {est['dsp']} / {est['bram']}" if r.tool == "fpgaq" else "needs Vitis"
    run_s = f"{run.n:,} in {fmt_s(r.run_s)}" + ("" if r.tool == "fpgaq" else " (predict)")
    exact = r.all_exact().text()
    if r.tool != "fpgaq" and run.typed.exact:
        exact += f" (typed input: {run.typed.all_exact().text()})"
    return [name, r.tool, fmt_s(r.build_s), fmt_s(r.compile_s), run_s, exact, lat, res]


def summary(runs: list[ModelRun]) -> str:
    """The short table: one row a tool, model and style."""
    head = ["model, I/O", "tool", "build (s)", "C-sim compile (s)", "C-sim run: inputs in s",
            "outputs equal to qonnx", "est. latency / II (cycles)", "est. LUT / DSP / BRAM"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        lines += ["| " + " | ".join(summary_row(run, r)) + " |" for r in (run.fpgaq, run.hls)]
    return "\n".join(lines)


def notes(run: ModelRun) -> list[str]:
    name = f"{run.name}, {run.io}"
    out = []
    if run.fpgaq.weights:
        out.append(f"- {name}: {run.fpgaq.weights} (fpgaq's report).")
    for r in (run.fpgaq, run.hls):
        if r.error:
            out.append(f"- {name}, {r.tool}: {failure(r)}`{r.error}`")
        elif r.input_type:
            out.append(f"- {name}, {r.tool}: its top function takes {r.input_type}.")
    if run.name == "maxpool2d" and run.io == "io_parallel" and not h_exact(run.hls):
        out.append("- maxpool2d, io_parallel: diagnosed with hls4ml 1.3.0's trace: every layer equals qonnx up to "
                   "the 3x3 max pool with padding 1. hls4ml's io_parallel `pooling2d_cl` fills the padding with "
                   "`pad_val` (nnet_pooling.h), the type with its top bit set: the most negative value of a "
                   "signed type, but 0.5 for the unsigned `ufixed<8,0>` after the ReLU quantizer, so a window "
                   "over the padding returns at least 0.5. The input type cannot fix it.")
    t = run.typed
    if t.error == NOT_RUN:
        pass
    elif t.error:
        out.append(f"- {name}, {t.tool}: failed: `{t.error}`")
    else:
        e = ", ".join(f"{k} {x.text()}" for k, x in t.exact.items())
        out.append(f"- {name}: hls4ml {STRATEGY} with its input type set to the input quantizer's, "
                   f"`{t.input_type}`, outputs equal to qonnx: {e}.")
    return out


def h_exact(r: Result) -> bool:
    return r.error is None and all(c.equal == c.total for c in r.exact.values())


def report(runs: list[ModelRun], env: str, command: str, timeout: float) -> str:
    parts = [
        f"`{command}`: {env}.", "",
        "Summary (one row a tool, model and I/O style; times in seconds; C-sim run: the timed set; "
        "outputs equal to qonnx: every check set together, and for hls4ml again with its input type set "
        "to the input quantizer's (typed input); details below):", "",
        summary(runs), "",
        "In full:", "",
        table(runs), "",
        "Ratios are hls4ml / fpgaq: above 1 fpgaq is faster. \"Outputs equal to qonnx\" counts the "
        "outputs (samples x outputs) that equal qonnx's reference execution of the model "
        "(`tests/qonnx_reference.run_reference`) exactly, no tolerance: fpgaq's C-simulation and "
        "emulator, hls4ml's `predict` (its compiled C++). \"C-sim outputs equal to the emulator\" "
        "is fpgaq's own check of the timed set (`run_csim`). The grid set is the first inputs of "
        "the timed set. Every tool takes the same arrays, channels first as the model's input "
        "(hls4ml keeps the input's Transpose, or drops it for one channel). fpgaq's estimates are "
        "its build's report.json (io_stream: a frame's latency and the II between frames, the "
        "FIFOs' and line buffers' memory in LUT / BRAM); hls4ml's come from Vitis HLS synthesis, "
        "which this machine does not have. fpgaq's build time includes computing its test bench's "
        "1,000 expected outputs with the emulator.", "",
        "Notes:", "",
        f"- hls4ml's QONNX recipe needs qonnx's `GemmToMatMul` after the channels-last conversion: "
        f"without it the converter refuses the dense layer (`Exception: ERROR: Unsupported operation "
        f"type: Gemm`). Strategy {STRATEGY}, default precision `fixed<16,6>` where the model gives none. "
        f"Each hls4ml model runs in a child process killed after {timeout:.0f} s.",
    ]
    for run in runs:
        parts += notes(run)
    return "\n".join(parts).rstrip()


# --------------------------------------------------------------------------- main


def references(name: str, model: Path, checks: dict) -> dict[str, np.ndarray]:
    from qonnx_reference import run_reference

    # a fixture's Reshape has batch 1 written in: one run a sample; cnn100k takes any batch
    batch = "auto" if name == SCALE else False
    with quiet():
        return {k: run_reference(model, xc, batch=batch)[0] for k, xc in checks.items()}


def measure(name: str, styles: list[str], work: Path, args) -> list[ModelRun]:
    scale = name == SCALE
    n, n_check = (args.scale_inputs, args.scale_check) if scale else (args.csim_inputs, args.check_inputs)
    model = model_path(name)
    graph = compile_model(load(model), model.stem, BuildConfig(io="io_stream"))   # the input quantizer
    x, checks = model_inputs(name, graph, n, n_check)
    print(f"{name}: qonnx reference ...", file=sys.stderr, flush=True)
    refs = references(name, model, checks)
    runs = []
    for io in styles:
        print(f"{name}, {io}: fpgaq ...", file=sys.stderr, flush=True)
        fq = run_fpgaq(model, work, io, x, checks, refs)
        print(f"{name}, {io}: hls4ml ...", file=sys.stderr, flush=True)
        # the typed-input run, besides: not for cnn100k in io_parallel (minutes of g++)
        typed = not scale or io == "io_stream"
        hls, typed = measure_hls4ml(model, work, io, x, checks, refs, typed, args.hls4ml_timeout)
        runs.append(ModelRun(name, io, n, {k: len(xc) for k, xc in checks.items()}, fq, hls, typed))
    return runs


def choices(ap, text: str, known, what: str) -> list[str]:
    got = [m for m in text.split(",") if m]
    unknown = [m for m in got if m not in known]
    if unknown or not got:
        ap.error(f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}")
    return got


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--io", default=",".join(IO_STYLES), help=f"comma-separated, of {', '.join(IO_STYLES)}")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--csim-inputs", type=int, default=10_000, help="inputs timed in C-simulation and predict")
    ap.add_argument("--check-inputs", type=int, default=300,
                    help="inputs of each set compared with qonnx (its reference runs one sample at a time)")
    ap.add_argument("--scale-inputs", type=int, default=100, help=f"{SCALE}: inputs timed in C-simulation")
    ap.add_argument("--scale-check", type=int, default=10, help=f"{SCALE}: inputs of each set compared with qonnx")
    ap.add_argument("--hls4ml-timeout", type=float, default=600, help="seconds an hls4ml model may take in all")
    ap.add_argument("--keep", action="store_true", help="keep the generated projects and say where")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results/ alone")
    args = ap.parse_args(argv)
    names = choices(ap, args.models, MODELS, "model(s)")
    styles = choices(ap, args.io, IO_STYLES, "I/O style(s)")
    load_start, start = os.getloadavg(), time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="fpgaq_vs_hls4ml_cnn_"))
    try:
        # warm both tools up (imports, templates), so that build times are steady-state
        with quiet():
            build(JET_TAGGER, work / "warmup_fpgaq", BuildConfig(name="warmup"))
            hls4ml_convert(JET_TAGGER, STRATEGY, work / "warmup_hls4ml")
        runs = [run for name in names for run in measure(name, styles, work, args)]
    finally:
        if args.keep:
            print(f"projects kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    command = " ".join(["python benchmarks/compare_hls4ml_cnn.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(runs, environment(load_start, time.perf_counter() - start), command, args.hls4ml_timeout)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# fpgaq against hls4ml on convolutional networks\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
