"""Command-line subcommands of the Verilog back-end (`fpgaq rtlsim`, `fpgaq synth`)."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_commands(sub) -> None:
    """Register the RTL subcommands on the CLI's subparsers."""
    from ...cli import _count
    r = sub.add_parser("rtlsim", help="simulate a project's RTL with cocotb and compare with the emulator")
    r.add_argument("project", metavar="DIR")
    r.add_argument("--sim", choices=("icarus", "verilator"), default="icarus", help="simulator (default icarus)")
    r.add_argument("--inputs", metavar="X.npy", help="real inputs, shape (N, features)")
    r.add_argument("-n", type=_count, help="number of random inputs (default 1000)")
    r.add_argument("--output", metavar="Y.npy", help="write the real outputs the RTL computed")
    r.add_argument("--rtl", metavar="RTLDIR", help="Verilog exported by Vitis HLS (default: "
                   "DIR/NAME_prj/solution1/syn/verilog for an HLS project)")
    r.add_argument("--json", action="store_true", help="print the result as JSON")
    r.set_defaults(func=cmd_rtlsim)

    s = sub.add_parser("synth", help="synthesize a Verilog project with yosys and count LUT, CARRY, FF, DSP")
    s.add_argument("project", metavar="DIR")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    s.set_defaults(func=cmd_synth)


def cmd_rtlsim(args) -> int:
    from ... import emulate
    from ...cli import _save_outputs
    from ...project import open_project, read_inputs
    from .rtlsim import DEFAULT_N, project_design, run_rtlsim
    project = open_project(Path(args.project))
    x = read_inputs(Path(args.inputs), project.graph) if args.inputs else None
    if x is not None and args.n:
        x = x[:args.n]
    design = project_design(project, Path(args.rtl) if args.rtl else None)
    r = run_rtlsim(project, x, args.n or DEFAULT_N, args.sim, design)
    if args.output:
        outs = [emulate.to_real(o.astype(object) if o.dtype == object else o, p["frac"])
                for o, p in zip(r.outputs, project.meta["outputs"])]
        _save_outputs(Path(args.output), outs)
    if args.json:
        print(json.dumps(r.to_json(), indent=2))
        return 0 if r.ok else 1
    print(f"RTL simulation ({r.simulator}, {design.interface} ports): built in {r.build_s:.1f} s, "
          f"ran {r.n} inputs in {r.run_s:.2f} s")
    print(f"latency {r.latency_cycles} cycles, initiation interval {r.ii:g} cycles")
    from ...cli import verdict
    return verdict(r.ok, r.n, sum(p["features"] for p in project.meta["outputs"]), r.mismatch_count,
                   r.mismatches)


def cmd_synth(args) -> int:
    from ...project import open_project
    from .synth import run_synth, synth_table
    project = open_project(Path(args.project))
    r = run_synth(project)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        sys.stdout.write(synth_table(r))
    return 0
