"""fpgaq against hls4ml on convolutional networks (QONNX front end, Vitis back end, io_parallel).

On the brevitas_cnn fixtures conv2d (3x3, depthwise 3x3 with stride 2 and asymmetric padding,
1x1, dense) and maxpool2d (3x3, 2x2 max pool, 3x3 with padding, 3x3 max pool with stride 2 and
padding, dense), in one run, it measures build time, C-simulation compile time and run time,
how many outputs of each tool equal qonnx's reference execution of the model, and fpgaq's
estimated latency and resources. hls4ml goes through its documented QONNX recipe (qonnx
clean-up, channels last, Gemm -> MatMul, clean-up: `hls4ml_clean` of compare_hls4ml.py), a
granularity='name' configuration, the Latency strategy. A model hls4ml refuses is a row in the
table, not a failure. It prints one Markdown table and writes it to
benchmarks/results/compare_hls4ml_cnn.md.

    python benchmarks/compare_hls4ml_cnn.py [--csim-inputs 10000] [--check-inputs 300]
                                            [--models conv2d,maxpool2d] [--keep] [--no-write]

A script, not a test: timings depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compare_hls4ml import (JET_TAGGER, ROOT, environment, fmt_ratio, fmt_s, hls4ml_compile,  # noqa: E402
                            hls4ml_convert, input_sets, predict, quiet, short_type, timed)

from fpgaq import emulate  # noqa: E402
from fpgaq.backends.hls.csim import run_csim  # noqa: E402
from fpgaq.compile import compile_model  # noqa: E402
from fpgaq.config import BuildConfig  # noqa: E402
from fpgaq.frontend.model_file import load  # noqa: E402
from fpgaq.project import build  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "brevitas_cnn"
MODELS = {
    "conv2d": "conv2d: (1, 8, 8) -> 3x3 conv -> depthwise 3x3, stride 2 -> 1x1 conv -> dense 5",
    "maxpool2d": "maxpool2d: (3, 12, 12) -> 3x3 conv -> 2x2 max pool -> 3x3 conv -> 3x3 max pool, "
                 "stride 2, padding 1 -> dense 5",
}
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
    """Outputs exactly equal to qonnx's reference execution (no tolerance)."""
    equal: int = 0
    total: int = 0

    def text(self) -> str:
        if self.total == 0:
            return "-"
        s = f"{self.equal:,} / {self.total:,}"
        return s if self.equal == self.total else f"**{s}**"


def count(got: np.ndarray, expected: np.ndarray) -> Count:
    got = np.asarray(got, dtype=np.float64).reshape(expected.shape)
    return Count(int(np.count_nonzero(got == expected)), expected.size)


@dataclass
class Result:
    tool: str
    build_s: float = float("nan")
    compile_s: float = float("nan")
    run_s: float = float("nan")              # C-simulation of the timed set (hls4ml: predict)
    emu_s: float = float("nan")              # fpgaq's emulator on the timed set
    exact: dict[str, Count] = field(default_factory=dict)        # C-sim (hls4ml: predict)
    emu_exact: dict[str, Count] = field(default_factory=dict)    # fpgaq's emulator
    latency: str = ""
    lut: str = ""
    dsp: str = ""
    input_type: str = ""
    quantizer_type: str = ""                 # hls4ml: the type it gives the input quantizer
    error: str | None = None


def error_text(e: Exception) -> str:
    lines = [s for s in str(e).strip().splitlines() if s.strip()]
    return f"{type(e).__name__}: {lines[-1] if lines else ''}".replace("|", "\\|")


def model_inputs(name: str, graph, n: int, n_check: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The timed set (n inputs on the grid) and the check sets, all in the model's input shape."""
    shape = graph.inputs[0].shape
    xs = {k: np.ascontiguousarray(x.reshape((len(x),) + tuple(shape))) for k, x in input_sets(graph, n, n_check).items()}
    timed_set = xs.pop("grid")
    fixture = np.load(FIXTURES / f"inputs_{name}.npy").astype(np.float32)
    return timed_set, {"grid": timed_set[:n_check], "fixture": fixture, **xs}


# --------------------------------------------------------------------------- fpgaq


def run_fpgaq(model: Path, work: Path, x: np.ndarray, checks: dict, refs: dict) -> Result:
    r = Result("fpgaq")
    project, r.build_s = timed(build, model, work / f"fpgaq_{model.stem}", BuildConfig(name="model"))
    cs = run_csim(project, x)
    if cs.cached:
        raise RuntimeError("the C-simulation binary came from a cache; its compile time would be wrong")
    r.compile_s, r.run_s = cs.build_s, cs.run_s
    g = project.graph
    emulate.run(g, x[:100])                                  # warm the emulator's caches
    _, r.emu_s = timed(emulate.run, g, x)
    for k, xc in checks.items():
        # the simulation returns output codes; qonnx returns real values
        r.exact[k] = count(g.real_outputs(0, run_csim(project, xc).outputs[0]), refs[k])
        r.emu_exact[k] = count(emulate.run(g, xc)[0], refs[k])
    t = project.report["total"]
    r.latency, r.lut, r.dsp = (f"{t[k]:,}" for k in ("latency_cycles", "lut", "dsp"))
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


def run_hls4ml(model: Path, work: Path, x: np.ndarray, checks: dict, refs: dict) -> Result:
    r = Result(f"hls4ml {STRATEGY}")
    out = work / f"hls4ml_{model.stem}"
    try:
        with quiet():
            hls_model, r.build_s = timed(hls4ml_convert, model, STRATEGY, out)
            _, r.compile_s = timed(hls4ml_compile, hls_model)
            predict(hls_model, x[:10])                            # the first call reads the weight files
            _, r.run_s = timed(predict, hls_model, x)
            r.exact = {k: count(predict(hls_model, xc), refs[k]) for k, xc in checks.items()}
    except Exception as e:  # a refusal is a finding: report it, keep fpgaq's column
        r.error = error_text(e)
        return r
    r.latency = r.lut = r.dsp = "needs Vitis"
    r.input_type = f"`{short_type(hls_model.get_input_variables()[0].type.precision)}` (default)"
    r.quantizer_type = input_quantizer_type(hls_model)
    return r


def run_hls4ml_typed_input(model: Path, work: Path, checks: dict, refs: dict, quantizer_type: str) -> Result:
    """hls4ml again, its input type set to the input quantizer's own type and modes."""
    r = Result(f"hls4ml {STRATEGY}, typed input", input_type=quantizer_type)
    if not quantizer_type:
        r.error = "the first conversion failed, so there is no quantizer type to try"
        return r
    try:
        with quiet():
            hls_model = hls4ml_convert(model, STRATEGY, work / f"hls4ml_{model.stem}_typed", quantizer_type)
            hls4ml_compile(hls_model)
            r.exact = {k: count(predict(hls_model, xc), refs[k]) for k, xc in checks.items()}
    except Exception as e:
        r.error = error_text(e)
    return r


# --------------------------------------------------------------------------- the table


@dataclass
class ModelRun:
    label: str
    n: int
    sizes: dict[str, int]
    fpgaq: Result
    hls: Result
    typed: Result


def rows(run: ModelRun) -> list[list[str]]:
    f, h = run.fpgaq, run.hls
    fail = f"refused: `{h.error}`" if h.error else None

    def numeric(name, get, fmt, note_h=""):
        if fail:
            return [name, fmt(get(f)), "-", "-"]
        return [name, fmt(get(f)), fmt(get(h)) + note_h, fmt_ratio(get(h), get(f))]

    n = f"{run.n:,}"
    out = [
        ["build / convert (s)", fmt_s(f.build_s), fail or fmt_s(h.build_s),
         "-" if fail else fmt_ratio(h.build_s, f.build_s)],
        numeric("C-sim compile, fresh (s)", lambda r: r.compile_s, fmt_s),
        numeric(f"C-sim run, {n} inputs (s)", lambda r: r.run_s, fmt_s, " (predict)"),
        [f"bit-exact model, {n} inputs (s)", fmt_s(f.emu_s) + " (emulator)",
         "-" if fail else fmt_s(h.run_s) + " (predict)", "-" if fail else fmt_ratio(h.run_s, f.emu_s)],
    ]
    for key, what in CHECK_SETS.items():
        m = f"{run.sizes[key]:,} inputs {what}"
        out.append([f"outputs equal to qonnx, {m}: C-sim / predict", f.exact[key].text(),
                    "-" if fail else h.exact[key].text(), ""])
    for key in CHECK_SETS:
        out.append([f"outputs equal to qonnx, {key}: fpgaq emulator", f.emu_exact[key].text(), "", ""])
    out += [
        ["estimated latency (cycles)", f.latency, "-" if fail else h.latency, ""],
        ["estimated LUT", f.lut, "-" if fail else h.lut, ""],
        ["estimated DSP", f.dsp, "-" if fail else h.dsp, ""],
    ]
    return out


def table(runs: list[ModelRun]) -> str:
    head = ["metric", "fpgaq", f"hls4ml {STRATEGY}", f"{STRATEGY} / fpgaq"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for run in runs:
        lines.append("| " + " | ".join([f"**{run.label}**"] + [""] * (len(head) - 1)) + " |")
        lines += ["| " + " | ".join(r) + " |" for r in rows(run)]
    return "\n".join(lines)


def notes(run: ModelRun) -> list[str]:
    name = run.label.split(":")[0]
    out = []
    for r in (run.fpgaq, run.hls):
        if r.error:
            out.append(f"- {name}, {r.tool}: refused: `{r.error}`")
        elif r.input_type:
            out.append(f"- {name}, {r.tool}: its top function takes {r.input_type}.")
    if name == "maxpool2d" and not h_exact(run.hls):
        out.append("- maxpool2d: diagnosed with hls4ml 1.3.0's trace: every layer equals qonnx up to the 3x3 "
                   "max pool with padding 1. hls4ml's io_parallel `pooling2d_cl` fills the padding with "
                   "`pad_val` (nnet_pooling.h), the type with its top bit set: the most negative value of a "
                   "signed type, but 0.5 for the unsigned `ufixed<8,0>` after the ReLU quantizer, so a window "
                   "over the padding returns at least 0.5. The input type cannot fix it.")
    t = run.typed
    if t.error:
        out.append(f"- {name}, {t.tool}: failed: `{t.error}`")
    else:
        e = ", ".join(f"{k} {x.text()}" for k, x in t.exact.items())
        out.append(f"- {name}: hls4ml {STRATEGY} with its input type set to the input quantizer's, "
                   f"`{t.input_type}`, outputs equal to qonnx: {e}.")
    return out


def h_exact(r: Result) -> bool:
    return r.error is None and all(c.equal == c.total for c in r.exact.values())


def report(runs: list[ModelRun], env: str, command: str) -> str:
    parts = [
        f"`{command}`: {env}.", "",
        table(runs), "",
        "Ratios are hls4ml / fpgaq: above 1 fpgaq is faster. \"Outputs equal to qonnx\" counts the "
        "outputs (samples x 5) that equal qonnx's reference execution of the model "
        "(`tests/qonnx_reference.run_reference`) exactly, no tolerance: fpgaq's C-simulation and "
        "emulator, hls4ml's `predict` (its compiled C++). The grid set is the first inputs of the "
        "timed set. Every tool takes the same arrays, channels first as the model's input "
        "(hls4ml keeps the input's Transpose, or drops it for one channel). hls4ml's estimates "
        "come from Vitis HLS synthesis, which this machine does not have.", "",
        "Notes:", "",
        f"- hls4ml's QONNX recipe needs qonnx's `GemmToMatMul` after the channels-last conversion: "
        f"without it the converter refuses the dense layer (`Exception: ERROR: Unsupported operation "
        f"type: Gemm`). Strategy {STRATEGY}, default precision `fixed<16,6>` where the model gives none.",
    ]
    for run in runs:
        parts += notes(run)
    return "\n".join(parts).rstrip()


# --------------------------------------------------------------------------- main


def measure(name: str, work: Path, n: int, n_check: int) -> ModelRun:
    from qonnx_reference import run_reference

    model = FIXTURES / f"{name}.onnx"
    graph = compile_model(load(model), model.stem, BuildConfig())
    x, checks = model_inputs(name, graph, n, n_check)
    print(f"{name}: qonnx reference ...", file=sys.stderr, flush=True)
    with quiet():  # the graph's Reshape has batch 1 written in: one run a sample
        refs = {k: run_reference(model, xc, batch=False)[0] for k, xc in checks.items()}
    print(f"{name}: fpgaq ...", file=sys.stderr, flush=True)
    fq = run_fpgaq(model, work, x, checks, refs)
    print(f"{name}: hls4ml ...", file=sys.stderr, flush=True)
    hls = run_hls4ml(model, work, x, checks, refs)
    typed = run_hls4ml_typed_input(model, work, checks, refs, hls.quantizer_type)
    return ModelRun(MODELS[name], n, {k: len(xc) for k, xc in checks.items()}, fq, hls, typed)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--csim-inputs", type=int, default=10_000, help="inputs timed in C-simulation and predict")
    ap.add_argument("--check-inputs", type=int, default=300,
                    help="inputs of each set compared with qonnx (its reference runs one sample at a time)")
    ap.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--keep", action="store_true", help="keep the generated projects and say where")
    ap.add_argument("--no-write", action="store_true", help="print only; leave results/ alone")
    args = ap.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        ap.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODELS)}")
    load_start, start = os.getloadavg(), time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="fpgaq_vs_hls4ml_cnn_"))
    try:
        # warm both tools up (imports, templates), so that build times are steady-state
        with quiet():
            build(JET_TAGGER, work / "warmup_fpgaq", BuildConfig(name="warmup"))
            hls4ml_convert(JET_TAGGER, STRATEGY, work / "warmup_hls4ml")
        runs = [measure(name, work, args.csim_inputs, args.check_inputs) for name in names]
    finally:
        if args.keep:
            print(f"projects kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    command = " ".join(["python benchmarks/compare_hls4ml_cnn.py", *(sys.argv[1:] if argv is None else argv)])
    text = report(runs, environment(load_start, time.perf_counter() - start), command)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text("# fpgaq against hls4ml on convolutional networks\n\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
