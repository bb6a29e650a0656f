"""Design-space sweeps: every point of a grid of build settings built (and optionally
synthesized with yosys, RTL-simulated or C-simulated) as a task on Dask distributed, with the
results in DIR/sweep.json, a table in DIR/sweep.md and a Pareto chart in DIR/pareto.svg.

A point is a BuildConfig: the base config (defaults, or a YAML file) with the grid's values.
Each point is built into DIR/points/<id>/ (its id: a short hash of its parameters) and its
record is kept in DIR/points/<id>.json; a re-run reuses a record made by the same fpgaq version
from the same model, base config, parameters and stages, and runs only the others. A point that
fails is recorded with its error; the sweep goes on.

Dask is an optional dependency (pip install 'fpgaq[sweep]'), imported only when a sweep runs.
The workers run `run_point`: with `--scheduler`, every worker needs fpgaq installed and the
model file and DIR at the same paths (a shared file system).
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from . import __version__, progress
from .config import BuildConfig, config_from_dict
from .errors import ConfigError, FpgaqError
from .pareto import pareto_flags
from .names import identifier


SWEEP_JSON = "sweep.json"
SWEEP_MD = "sweep.md"
PARETO_SVG = "pareto.svg"
POINTS = "points"
INSTALL_SWEEP = "pip install 'fpgaq[sweep]'"
FIGURES = ("latency_cycles", "latency_ns", "ii", "lut", "ff", "dsp", "bram")
# the cost axis of the Pareto front: LUTs + DSP_COST x DSPs (55 LUTs a DSP, as in HGQ and da4ml
# papers' resource comparisons); `--dsp-cost 1` gives the plain sum
DSP_COST = 55.0
SVG_SALT = "fpgaq-sweep"          # matplotlib's svg.hashsalt: the same chart gives the same bytes
WORKER_WAIT_S = 60.0              # how long a sweep waits for a first worker of an existing cluster
PROGRESS_ENV = "FPGAQ_PROGRESS"   # 0: no progress display (the workers' builds show none)


@dataclass(frozen=True)
class Stages:
    """What each point runs after its build. synth and rtlsim apply to Verilog points (yosys
    counts; measured latency and II), csim to HLS points (bit-exactness against the emulator)."""
    synth: bool = False
    rtlsim: bool = False
    csim: bool = False
    sim_n: int = 200                 # inputs for rtlsim and csim

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def applying_to(self, backend: str) -> dict:
        """The stages that change a point of this back-end (what a re-run compares)."""
        verilog = backend == "verilog"
        d: dict[str, Any] = {"synth": self.synth and verilog, "rtlsim": self.rtlsim and verilog, "csim": self.csim and not verilog}
        if d["rtlsim"] or d["csim"]:
            d["sim_n"] = self.sim_n
        return d


# --- the grid ------------------------------------------------------------------------------

def _split_values(text: str) -> list[str]:
    """Comma-separated values; commas inside <>, (), [] or {} belong to a value (fixed<16,6>)."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "<([{":
            depth += 1
        elif ch in ">)]}":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [v.strip() for v in out]


def parse_value(text: str) -> Any:
    """A value as a YAML config file would read it: 2 an int, 2.5 a float, auto a string,
    true/false booleans, null None."""
    try:
        return yaml.safe_load(text) if text else None
    except yaml.YAMLError:
        return text


def parse_grid(items: Sequence[str]) -> dict[str, list]:
    """`KEY=V1,V2,...` items (KEY a BuildConfig setting; - or _) as {key: [values]}, in the
    given order; repeated values once."""
    known = [f.name for f in fields(BuildConfig)]
    grid: dict[str, list] = {}
    for item in items:
        key, eq, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or not key:
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,... such as reuse=1,2,4")
        if key not in known:
            raise ConfigError(f"--grid {item!r}: unknown setting {key!r}; settings are {', '.join(known)}")
        if key in grid:
            raise ConfigError(f"--grid {key} is given twice; give all its values in one --grid {key}=V1,V2")
        parsed: list = []
        for v in _split_values(values):
            if v == "":
                raise ConfigError(f"--grid {item!r}: an empty value")
            value = parse_value(v)
            if value not in parsed:
                parsed.append(value)
        grid[key] = parsed
    return grid


def grid_points(grid: dict[str, list]) -> list[dict]:
    """The Cartesian product of the grid, as parameter dicts, the first key varying slowest."""
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def point_id(params: dict) -> str:
    """A short stable id of a point's parameters (its folder's name)."""
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --- one point (a Dask task) ---------------------------------------------------------------

def _error_text(e: BaseException) -> str:
    return str(e) if isinstance(e, FpgaqError) else f"{type(e).__name__}: {e}"


def _figures(project: Any, stages: Stages, out: dict) -> None:
    """Put the figures of a built project into `out`: its report's (an estimate), then yosys
    counts and measured latency/II where the stages ran; the source of each. A stage that fails
    leaves the figures found before it."""
    from .backends import backend
    from .stimulus import random_inputs

    total = (project.report or {}).get("total", {})
    out.update({k: total.get(k) for k in FIGURES})
    source: dict[str, str | None] = {k: ("estimate" if out[k] is not None else None) for k in FIGURES}
    out["source"] = source
    verilog = project.config.backend == "verilog"
    if verilog and stages.synth:
        from .backends.verilog.synth import run_synth
        y = run_synth(project)["yosys"]
        for k in ("lut", "ff", "dsp"):
            out[k], source[k] = y[k], "yosys"
        out["synth"] = {k: y[k] for k in ("lut", "carry8", "ff", "srl", "dsp", "logic_depth", "seconds") if k in y}
    if verilog and stages.rtlsim:
        from .backends.verilog.rtlsim import run_rtlsim
        r = run_rtlsim(project, n=stages.sim_n, sim=None)
        if r.latency_cycles is not None:
            out["latency_cycles"], source["latency_cycles"] = r.latency_cycles, "rtlsim"
            out["latency_ns"] = round(r.latency_cycles * project.config.clock_ns, 3)
            source["latency_ns"] = "rtlsim"
        if r.ii is not None:
            out["ii"], source["ii"] = r.ii, "rtlsim"
        out["bit_exact"] = r.ok
        out["rtlsim"] = {"simulator": r.simulator, "n": r.n, "mismatches": r.mismatch_count}
    if not verilog and stages.csim:
        r = backend("hls").simulate(project, random_inputs(project.graph, stages.sim_n, seed=1))
        out["bit_exact"] = r.ok
        out["csim"] = {"n": r.n, "mismatches": r.mismatch_count}


def run_point(model: str, root: str, pid: str, params: dict, base: dict, stages: dict, key: dict) -> dict:
    """Build one point into ROOT/points/<pid>/ (and run its stages); its record, also written
    to ROOT/points/<pid>.json. Never raises for the point's own failure: the record has its
    `error`. Runs on a Dask worker."""
    os.environ[PROGRESS_ENV] = "0"          # a worker's builds show nothing; the driver shows the sweep
    from .project import build

    start = time.perf_counter()
    record: dict[str, Any] = {"id": pid, "dir": f"{POINTS}/{pid}", "params": params, "error": None}
    record.update({k: None for k in FIGURES})
    try:
        config = config_from_dict({**base, **params}, where=f"point {pid}")
        project = build(Path(model), Path(root) / POINTS / pid, config, force=True)
        _figures(project, Stages(**stages), record)
    except Exception as e:        # noqa: BLE001 -- any failure is the point's, recorded; the sweep goes on
        record["error"] = _error_text(e)
    record["seconds"] = round(time.perf_counter() - start, 2)
    record["key"] = key
    _write_record(Path(root), record)
    return record


def _write_record(root: Path, record: dict) -> None:
    path = root / POINTS / f"{record['id']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2, default=str) + "\n")
    tmp.replace(path)


def _done_record(root: Path, pid: str, key: dict) -> dict | None:
    """The record of a point done before with the same key (fpgaq version, model, base config,
    parameters, stages), whose project folder is still there; else None."""
    path = root / POINTS / f"{pid}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("error") is not None or record.get("key") != key:
        return None
    if not (root / POINTS / pid / "fpgaq.json").is_file():
        return None
    return record


# --- the Pareto front ----------------------------------------------------------------------

def point_cost(point: dict, dsp_cost: float = DSP_COST) -> float | None:
    """LUTs + dsp_cost x DSPs, or None where the point has no such counts."""
    if point.get("lut") is None or point.get("dsp") is None:
        return None
    return float(point["lut"]) + dsp_cost * float(point["dsp"])


def _objectives(p: dict, dsp_cost: float) -> tuple[float, float] | None:
    cost = point_cost(p, dsp_cost)
    if p.get("error") is not None or p.get("latency_ns") is None or cost is None:
        return None
    return (float(p["latency_ns"]), cost)


# --- the sweep -----------------------------------------------------------------------------

def _client(workers: int | None, scheduler: str | None, n_tasks: int) -> tuple[Any, Any]:
    """A Dask client on an existing scheduler, or on a new LocalCluster of `workers` processes
    (default: one a CPU, at most one a task); (client, cluster or None)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise FpgaqError(f"fpgaq sweep runs its points on Dask distributed, which is not installed: "
                         f"{INSTALL_SWEEP}") from None
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, TimeoutError) as e:
            raise FpgaqError(f"cannot reach the Dask scheduler at {scheduler} ({e}); start one with "
                             "`dask scheduler` and workers with `dask worker ADDRESS`") from None
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except TimeoutError:
            client.close()
            raise FpgaqError(f"the Dask scheduler at {scheduler} has no worker after {WORKER_WAIT_S:g} s; "
                             f"start some with `dask worker {scheduler}`") from None
        return client, None
    n = workers or max(1, min(os.cpu_count() or 1, n_tasks))
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    return Client(cluster), cluster


def run_sweep(model: Path, out_dir: Path, grid: dict[str, list], base: BuildConfig | None = None, *,
              stages: Stages = Stages(), workers: int | None = None, scheduler: str | None = None,
              dsp_cost: float = DSP_COST, on_point: Callable[[dict], None] | None = None) -> dict:
    """Run every point of `grid` on Dask (points done before with the same key reused) and write
    OUT_DIR/sweep.json, sweep.md and pareto.svg; the data of sweep.json. `on_point` is called
    with each record as it arrives (reused ones first)."""
    model, out_dir = Path(model).resolve(), Path(out_dir).resolve()
    if not model.is_file():
        raise FpgaqError(f"{model}: no such model file")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers {workers}: give at least 1")
    if not grid:
        raise ConfigError("no --grid: give at least one, such as --grid reuse=1,2,4")
    base = base or BuildConfig()
    if base.name == BuildConfig.name:
        base = base.with_overrides(name=identifier(model.stem, set(), fallback="model"))
    base_dict = base.to_dict()
    try:
        (out_dir / POINTS).mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FpgaqError(f"cannot make {out_dir / POINTS}: {e.strerror or e}") from None
    model_hash = file_sha256(model)
    points = grid_points(grid)
    ids = [point_id(p) for p in points]
    records: dict[str, dict] = {}
    todo: list[tuple[str, dict, dict]] = []
    for pid, params in zip(ids, points):
        key = {"fpgaq": __version__, "model_sha256": model_hash, "base": base_dict, "params": params,
               "stages": stages.applying_to(str(params.get("backend", base.backend)))}
        key = json.loads(json.dumps(key, default=str))        # as it reads back from a record
        done = _done_record(out_dir, pid, key)
        if done is not None:
            done["reused"] = True
            records[pid] = done
            if on_point:
                on_point(done)
        else:
            todo.append((pid, params, key))
    start = time.perf_counter()
    if todo:
        _run_tasks(model, out_dir, todo, base_dict, stages, workers, scheduler, records, on_point)
    data = sweep_data(model, grid, base_dict, stages, dsp_cost, [records[i] for i in ids], model_hash)
    data["seconds"] = round(time.perf_counter() - start, 2)
    write_outputs(out_dir, data)
    return data


def _run_tasks(model: Path, out_dir: Path, todo: list[tuple[str, dict, dict]], base: dict, stages: Stages,
               workers: int | None, scheduler: str | None, records: dict[str, dict],
               on_point: Callable[[dict], None] | None) -> None:
    """Submit the points to Dask and collect their records into `records` as they finish."""
    client, cluster = _client(workers, scheduler, len(todo))
    from dask.distributed import as_completed       # installed: _client checked it
    try:
        futures = {}
        for pid, params, key in todo:
            f = client.submit(run_point, str(model), str(out_dir), pid, params, base, stages.to_dict(), key,
                              pure=False, key=f"fpgaq-point-{pid}-{os.urandom(4).hex()}")
            futures[f] = (pid, params, key)
        failed = 0
        with progress.step("fpgaq sweep", total=len(todo), unit="points") as s:
            for k, f in enumerate(as_completed(list(futures)), 1):
                pid, params, key = futures[f]
                try:
                    record = f.result()
                except Exception as e:      # noqa: BLE001 -- a worker died, or the task could not run
                    record = {"id": pid, "dir": f"{POINTS}/{pid}", "params": params, "error": _error_text(e),
                              **{k2: None for k2 in FIGURES}, "key": key}
                    _write_record(out_dir, record)
                record["reused"] = False
                records[pid] = record
                failed += record.get("error") is not None
                s.update(done=k, detail=f"{failed} failed" if failed else "")
                if on_point:
                    on_point(record)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def sweep_data(model: Path, grid: dict[str, list], base: dict, stages: Stages, dsp_cost: float,
               records: list[dict], model_hash: str) -> dict:
    """sweep.json: the sweep's settings and its points in grid order, each with its figures,
    their sources, its cost and whether it is on the Pareto front."""
    points = []
    for r in records:
        p: dict[str, Any] = {"id": r["id"], "dir": r["dir"], "params": r["params"]}
        p.update({k: r.get(k) for k in FIGURES})
        p["cost"] = point_cost(r, dsp_cost)
        p["source"] = r.get("source") or {k: None for k in FIGURES}
        for extra in ("bit_exact", "synth", "rtlsim", "csim"):
            if extra in r:
                p[extra] = r[extra]
        p["error"] = r.get("error")
        p["reused"] = bool(r.get("reused"))
        p["seconds"] = r.get("seconds")
        points.append(p)
    flags = pareto_flags([_objectives(p, dsp_cost) for p in points])
    for p, flag in zip(points, flags):
        p["pareto"] = flag
    failed = sum(p["error"] is not None for p in points)
    return {
        "fpgaq": __version__, "model": str(model), "model_sha256": model_hash,
        "grid": grid, "base": base, "stages": stages.to_dict(), "dsp_cost": dsp_cost,
        "summary": {"points": len(points), "failed": failed, "reused": sum(p["reused"] for p in points),
                    "pareto": [p["id"] for p in points if p["pareto"]]},
        "points": points,
    }


# --- outputs -------------------------------------------------------------------------------

def _fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def _sources(p: dict) -> str:
    """The sources of a point's figures, compactly: estimate, or e.g. lut/ff/dsp yosys."""
    by: dict[str, list[str]] = {}
    for k, s in (p.get("source") or {}).items():
        if s is not None:
            by.setdefault(s, []).append(k)
    if len(by) <= 1:
        return next(iter(by), "–")
    return "; ".join(f"{s}: {', '.join(ks)}" for s, ks in sorted(by.items()) if s != "estimate") + \
        ("; else estimate" if "estimate" in by else "")


def sweep_markdown(data: dict) -> str:
    """sweep.md: a summary, then the table of sweep_table."""
    s = data["summary"]
    return "\n".join([
        f"# fpgaq sweep of {Path(data['model']).name}", "",
        f"{s['points']} points, {s['failed']} failed, {s['reused']} reused from an earlier run; fpgaq {data['fpgaq']}. "
        "Pareto: no other point has both a lower or equal latency in ns and a lower or equal cost "
        f"(LUT + {data['dsp_cost']:g} × DSP). Verilog points have LUT counts only with --synth (yosys).", "",
        sweep_table(data)])


def sweep_table(data: dict) -> str:
    """A Markdown table, one row a point, in grid order."""
    keys = list(data["grid"])
    head = ["id", *keys, "latency (cycles)", "latency (ns)", "II", "LUT", "FF", "DSP", "BRAM",
            f"cost (LUT + {data['dsp_cost']:g}·DSP)", "Pareto", "source", "error"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in data["points"]:
        error = (p["error"] or "").replace("|", "\\|").replace("\n", " ")
        if len(error) > 200:
            error = error[:197] + "..."
        exact = p.get("bit_exact")
        row = [f"`{p['id']}`", *(_fmt(p["params"].get(k)) for k in keys),
               *(_fmt(p[k]) for k in FIGURES), _fmt(p["cost"]), "**yes**" if p["pareto"] else "",
               _sources(p) + ("" if exact is None else ("; bit-exact" if exact else "; **NOT bit-exact**")), error]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _label(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def pareto_svg(data: dict) -> str:
    """The Pareto chart: latency in ns against LUT + k·DSP, every point with both, the front
    marked and joined; a deterministic SVG (fixed hash salt, no date)."""
    import io
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise FpgaqError(f"fpgaq sweep draws its Pareto chart with matplotlib: {INSTALL_SWEEP}") from None

    pts = [p for p in data["points"] if p["error"] is None and p["latency_ns"] is not None and p["cost"] is not None]
    front = sorted((p for p in pts if p["pareto"]), key=lambda p: (p["cost"], p["latency_ns"]))
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "path"}):
        fig = Figure(figsize=(7, 4.5))
        ax = fig.add_subplot()
        others = [p for p in pts if not p["pareto"]]
        if others:
            ax.scatter([p["cost"] for p in others], [p["latency_ns"] for p in others], s=28, color="#9e9e9e",
                       label="point", zorder=2)
        if front:
            ax.step([p["cost"] for p in front], [p["latency_ns"] for p in front], where="post", color="#d62728",
                    linewidth=1, zorder=1)
            ax.scatter([p["cost"] for p in front], [p["latency_ns"] for p in front], s=46, marker="D",
                       color="#d62728", label="Pareto front", zorder=3)
            for p in front:
                ax.annotate(_label(p["params"]), (p["cost"], p["latency_ns"]), textcoords="offset points",
                            xytext=(5, 4), fontsize=7)
        if not pts:
            ax.text(0.5, 0.5, "no point has a latency and LUT/DSP counts", ha="center", va="center",
                    transform=ax.transAxes)
        ax.set_xlabel(f"cost: LUT + {data['dsp_cost']:g} × DSP")
        ax.set_ylabel("latency (ns)")
        ax.set_title(f"fpgaq sweep of {Path(data['model']).name}: {len(pts)} of {len(data['points'])} points")
        ax.grid(True, alpha=0.3)
        if pts:
            ax.margins(0.12)
            ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def write_outputs(out_dir: Path, data: dict) -> None:
    """sweep.json, sweep.md and pareto.svg in out_dir."""
    try:
        (out_dir / SWEEP_JSON).write_text(json.dumps(data, indent=2, default=str) + "\n")
        (out_dir / SWEEP_MD).write_text(sweep_markdown(data))
        (out_dir / PARETO_SVG).write_text(pareto_svg(data))
    except OSError as e:
        raise FpgaqError(f"cannot write the sweep's results into {out_dir}: {e.strerror or e}") from None
