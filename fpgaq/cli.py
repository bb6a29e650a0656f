"""`fpgaq build | csim | emulate | inspect`: the command line."""
from __future__ import annotations

import argparse
import signal
import threading
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .errors import FpgaqError


def _default_name(model: Path) -> str:
    from .names import identifier
    return identifier(model.stem, set(), fallback="model")


def cmd_build(args) -> int:
    from .config import load_config
    from .project import build
    model = Path(args.model)
    config = load_config(args.config)
    name = args.name or (config.name if args.config and config.name != "fpgaq_model" else _default_name(model))
    reuse = None if args.reuse is None else (args.reuse if args.reuse == "auto" else _positive(args.reuse, "--reuse"))
    config = config.with_overrides(name=name, part=args.part, clock_ns=args.clock_ns, tb_samples=args.tb_samples,
                                   backend=args.backend, reuse=reuse, dsp_budget=args.dsp_budget,
                                   max_ops=args.max_ops, requantize=args.requantize or None,
                                   requant_bits=args.requant_bits)
    out = Path(args.output or f"{model.stem}_hls")
    start = time.perf_counter()
    project = build(model, out, config, force=args.force, dump_ir=args.dump_ir)
    took = time.perf_counter() - start
    g = project.graph
    dense = [n for n in g.nodes if type(n.op).__name__ == "Dense"]
    nz = sum(int(np.count_nonzero(n.op.weight)) for n in dense)
    total = sum(n.op.model_weights for n in dense)
    print(f"built {out} in {took:.2f} s: top function {config.name}, {len(dense)} dense layers, "
          f"{nz} of {total} weights non-zero, part {config.part} at {config.clock_ns:g} ns")
    rq = project.report.get("requantization")
    if rq:
        for q in rq["requantizers"]:
            print(f"requantiser {q['name']} ({q['onnx_node']}): {q['multiplier_bits']}-bit multiplier, "
                  f"shift {q['shift']}, {q['channels']} channel(s)")
        from .deviation import deviation_text
        print(deviation_text(rq["deviation"]))
    if args.csim:
        return _csim(project, None, args.n, None)
    return 0


def _count(text: str) -> int:
    """argparse type: a positive integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _checked(args) -> None:
    """The import options of emulate and inspect, validated as a build's would be."""
    from .config import BuildConfig
    BuildConfig(requantize=args.requantize, requant_bits=args.requant_bits, max_ops=args.max_ops)


def _positive(text: str, flag: str) -> int:
    from .errors import ConfigError
    try:
        value = int(text)
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: give a positive integer or 'auto'") from None
    return value


def cmd_report(args) -> int:
    from .project import open_project
    from .report import report_data, report_json, report_markdown
    project = open_project(Path(args.project))
    data = report_data(project.graph, project.config)
    sys.stdout.write(report_json(data) if args.json else report_markdown(data))
    return 0


def _csim(project, x, n, output) -> int:
    from .backends.hls.csim import run_csim
    r = run_csim(project, x, n)
    how = "reused the cached binary" if r.cached else f"compiled in {r.compile_s:.1f} s"
    print(f"C-simulation: {how}, ran {r.n} inputs in {r.run_s:.2f} s")
    if output:
        _save_outputs(Path(output), r.outputs)
    return verdict(r.ok, r.n, sum(o.shape[1] for o in r.outputs), r.mismatch_count, r.mismatches)


def verdict(ok: bool, n: int, width: int, count: int, mismatches) -> int:
    """Print whether a simulation matched the emulator, with the first mismatches; the exit code."""
    if ok:
        print(f"bit-exact: all {n} x {width} outputs equal the emulator's")
        return 0
    print(f"MISMATCH: {count} outputs differ from the emulator's; first ones:", file=sys.stderr)
    print("  sample  output  expected  got", file=sys.stderr)
    for s, o, e, g in mismatches:
        print(f"  {s:6d}  {o:6d}  {e:8d}  {g}", file=sys.stderr)
    return 1


def cmd_csim(args) -> int:
    from .project import open_project, read_inputs
    project = open_project(Path(args.project))
    x = read_inputs(Path(args.inputs), project.graph) if args.inputs else None
    if x is not None and args.n is not None:
        x = x[:args.n]
    return _csim(project, x, 10_000 if args.n is None else args.n, args.output)


def _save_outputs(path: Path, outputs: list[np.ndarray]) -> None:
    """Write to exactly `path` (.npy for one output, an .npz archive for several)."""
    try:
        with open(path, "wb") as f:
            if len(outputs) == 1:
                np.save(f, outputs[0])
            else:
                np.savez(f, *outputs)
    except OSError as e:
        raise FpgaqError(f"cannot write {path}: {e.strerror}") from None
    print(f"wrote {path}")


def cmd_emulate(args) -> int:
    from . import emulate
    from .frontend.onnx_import import import_file
    from .passes.pipeline import run_pipeline
    from .project import read_inputs
    from .deviation import deviation, deviation_text, is_requantised
    _checked(args)
    graph = run_pipeline(import_file(args.model, args.max_ops, args.requantize, args.requant_bits))
    x = read_inputs(Path(args.inputs), graph)
    start = time.perf_counter()
    outputs = emulate.run(graph, x)
    took = time.perf_counter() - start
    print(f"emulated {len(x)} inputs in {took:.3f} s ({len(x) / max(took, 1e-9):,.0f} inputs/s)")
    if is_requantised(graph):
        print(deviation_text(deviation(graph, x)))
    _save_outputs(Path(args.output), outputs)
    return 0


def cmd_inspect(args) -> int:
    from .frontend.onnx_import import import_file
    from .ir.dump import dump_text
    from .passes.pipeline import run_pipeline
    _checked(args)
    graph = import_file(args.model, args.max_ops, args.requantize, args.requant_bits)
    if not args.raw:
        graph = run_pipeline(graph)
    sys.stdout.write(dump_text(graph))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="fpgaq", description="Compile quantized ONNX networks into bit-exact FPGA firmware.")
    p.add_argument("--version", action="version", version=f"fpgaq {__version__}")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="write a Vitis HLS project for a model")
    b.add_argument("model", help="ONNX / QONNX / QDQ model file")
    b.add_argument("-o", "--output", metavar="DIR", help="project folder (default: MODEL_hls)")
    b.add_argument("--config", metavar="YAML", help="build configuration file")
    b.add_argument("--part", help="FPGA part (default xcvu13p-flga2577-2-e)")
    b.add_argument("--clock-ns", type=float, help="clock period in ns (default 5)")
    b.add_argument("--name", help="name of the top function (default: from the model file)")
    b.add_argument("--backend", choices=("hls", "verilog"), help="Vitis HLS C++ (default) or Verilog")
    b.add_argument("--force", action="store_true", help="replace DIR if fpgaq made it")
    b.add_argument("--csim", action="store_true", help="C-simulate and check bit-exactness after building")
    b.add_argument("-n", type=_count, default=10_000, help="inputs for --csim (default 10000)")
    b.add_argument("--tb-samples", type=_count, help="samples written to tb_data for Vitis C-simulation (default 1000)")
    b.add_argument("--dump-ir", metavar="DIR", help="write the IR after every pass into DIR")
    b.add_argument("--reuse", metavar="R", help="reuse factor of every dense layer (default 1), or 'auto'")
    b.add_argument("--max-ops", type=_count, metavar="N", help="refuse models needing more than N "
                   "multiply-accumulates an input (default 10,000,000)")
    b.add_argument("--requantize", action="store_true", help="lower float (non-power-of-two) scales "
                   "to integer requantisation and report the deviation from the float model")
    b.add_argument("--requant-bits", type=_count, default=None, metavar="B",
                   help="significant bits of each requantisation multiplier (default 16)")
    b.add_argument("--dsp-budget", type=_count, metavar="N", help="DSPs the design may use, with --reuse auto")
    b.set_defaults(func=cmd_build)

    c = sub.add_parser("csim", help="C-simulate a built project against the emulator")
    c.add_argument("project", metavar="DIR")
    c.add_argument("--inputs", metavar="X.npy", help="real inputs, shape (N, features)")
    c.add_argument("-n", type=_count, help="number of inputs (default 10000 random ones)")
    c.add_argument("--output", metavar="Y.npy", help="write the real outputs C-simulation computed")
    c.set_defaults(func=cmd_csim)

    e = sub.add_parser("emulate", help="run the bit-exact emulator on inputs")
    e.add_argument("model")
    e.add_argument("--inputs", metavar="X.npy", required=True)
    e.add_argument("--output", metavar="Y.npy", required=True)
    e.add_argument("--requantize", action="store_true", help="lower float (non-power-of-two) scales "
                   "to integer requantisation and report the deviation from the float model")
    e.add_argument("--requant-bits", type=_count, default=16, metavar="B",
                   help="significant bits of each requantisation multiplier (default 16)")
    e.add_argument("--max-ops", type=_count, default=10_000_000, metavar="N", help=argparse.SUPPRESS)
    e.set_defaults(func=cmd_emulate)

    r = sub.add_parser("report", help="latency and resource estimates of a built project")
    r.add_argument("project", metavar="DIR")
    r.add_argument("--json", action="store_true", help="JSON for programs instead of Markdown")
    r.set_defaults(func=cmd_report)

    i = sub.add_parser("inspect", help="print the IR: a line a node, with types, shapes and sparsity")
    i.add_argument("model")
    i.add_argument("--raw", action="store_true", help="as imported, before the passes")
    i.add_argument("--requantize", action="store_true", help="lower float (non-power-of-two) scales "
                   "to integer requantisation and report the deviation from the float model")
    i.add_argument("--requant-bits", type=_count, default=16, metavar="B",
                   help="significant bits of each requantisation multiplier (default 16)")
    i.add_argument("--max-ops", type=_count, default=10_000_000, metavar="N",
                   help="refuse models needing more multiply-accumulates an input")
    i.set_defaults(func=cmd_inspect)

    from .backends.verilog import commands as rtl_commands
    rtl_commands.add_commands(sub)
    return p


def _terminate(signum, frame):
    # SIGTERM unwinds like Ctrl-C, so a build in progress removes its temporary folder
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except FpgaqError as e:
        if args.debug:
            raise
        print(f"fpgaq: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("fpgaq: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
