"""fpgaq sweep: a grid of builds on Dask distributed (a LocalCluster, and a real `dask scheduler`
with two `dask worker` processes), sweep.json / sweep.md / pareto.svg, failed points, re-runs
that reuse what is done, and the Pareto marking against a brute-force check."""
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest

import modelgen
from fpgaq.errors import ConfigError, FpgaqError
from fpgaq.sweep import (FIGURES, grid_points, parse_grid, pareto_flags, point_id, run_sweep,
                         sweep_markdown)

pytest.importorskip("distributed", reason="fpgaq sweep needs pip install 'fpgaq[sweep]' (CI installs it)")

FIELDS = {"id", "dir", "params", *FIGURES, "cost", "source", "pareto", "error", "reused"}


@pytest.fixture(scope="module")
def mlp(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sweep_model") / "mlp.onnx"
    onnx.save(modelgen.qonnx_mlp([8, 6, 4], rng=0), str(path))
    return path


def run_cli(*args, env=None):
    """`python -m fpgaq ...` as a user runs it; (exit code, stdout, stderr)."""
    r = subprocess.run([sys.executable, "-m", "fpgaq", *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    return r.returncode, r.stdout, r.stderr


def brute_force_pareto(points, dsp_cost):
    """Ids of the points no other point beats or equals in both latency (ns) and cost while
    beating in one; failed or uncounted points excluded."""
    ok = [p for p in points if p["error"] is None and p["latency_ns"] is not None and p["lut"] is not None]
    cost = {p["id"]: p["lut"] + dsp_cost * p["dsp"] for p in ok}
    front = set()
    for a in ok:
        beaten = False
        for b in ok:
            le = b["latency_ns"] <= a["latency_ns"] and cost[b["id"]] <= cost[a["id"]]
            lt = b["latency_ns"] < a["latency_ns"] or cost[b["id"]] < cost[a["id"]]
            beaten |= le and lt
        if not beaten:
            front.add(a["id"])
    return front


def test_grid_parsing():
    grid = parse_grid(["reuse=1,2,auto", "clock-ns=2.5,5", "input_type=fixed<16,6>,fixed<8,3>",
                       "requantize=true,false", "backend=hls,verilog,hls"])
    assert grid == {"reuse": [1, 2, "auto"], "clock_ns": [2.5, 5], "input_type": ["fixed<16,6>", "fixed<8,3>"],
                    "requantize": [True, False], "backend": ["hls", "verilog"]}
    points = grid_points(grid)
    assert len(points) == 3 * 2 * 2 * 2 * 2
    assert points[0] == {"reuse": 1, "clock_ns": 2.5, "input_type": "fixed<16,6>", "requantize": True,
                         "backend": "hls"}
    assert len({point_id(p) for p in points}) == len(points)
    assert point_id({"b": 1, "a": 2}) == point_id({"a": 2, "b": 1})
    for bad, why in [("speed=1,2", "unknown setting"), ("reuse", "KEY=V1"), ("reuse=1,,2", "empty value")]:
        with pytest.raises(ConfigError, match=why):
            parse_grid([bad])
    with pytest.raises(ConfigError, match="twice"):
        parse_grid(["reuse=1", "reuse=2"])


def test_pareto_flags_match_brute_force():
    rng = random.Random(7)
    for _ in range(200):
        n = rng.randint(0, 12)
        pairs = [None if rng.random() < 0.15 else (float(rng.randint(1, 6)), float(rng.randint(1, 6)))
                 for _ in range(n)]
        points = [{"id": str(i), "error": None if p else "x", "latency_ns": p and p[0], "lut": p and p[1], "dsp": 0}
                  for i, p in enumerate(pairs)]
        flags = pareto_flags(pairs)
        assert {str(i) for i, f in enumerate(flags) if f} == brute_force_pareto(points, 55)


def test_sweep_on_a_local_cluster(mlp, tmp_path):
    out = tmp_path / "sweep"
    args = ["sweep", mlp, "-o", out, "--grid", "reuse=1,2", "--grid", "clock_ns=2.5,5", "--workers", "2", "--json"]
    start = time.perf_counter()
    code, stdout, stderr = run_cli(*args, env={"FPGAQ_PROGRESS": "1"})     # progress on: stderr only
    assert code == 0, stderr
    data = json.loads(stdout)                  # stdout is the JSON and nothing else
    assert data == json.loads((out / "sweep.json").read_text())
    points = data["points"]
    assert [p["params"] for p in points] == [{"reuse": 1, "clock_ns": 2.5}, {"reuse": 1, "clock_ns": 5},
                                             {"reuse": 2, "clock_ns": 2.5}, {"reuse": 2, "clock_ns": 5}]
    for p in points:
        assert FIELDS <= set(p), p
        assert p["error"] is None and not p["reused"]
        assert all(p[k] is not None for k in FIGURES)
        assert p["source"] == {k: "estimate" for k in FIGURES}
        assert p["cost"] == p["lut"] + 55 * p["dsp"]
        assert p["ii"] == p["params"]["reuse"]
        report = json.loads((out / p["dir"] / "report.json").read_text())
        assert report["total"]["latency_cycles"] == p["latency_cycles"] and report["total"]["lut"] == p["lut"]
    assert {p["id"] for p in points if p["pareto"]} == brute_force_pareto(points, 55) != set()
    assert data["summary"] == {"points": 4, "failed": 0, "reused": 0,
                               "pareto": [p["id"] for p in points if p["pareto"]]}
    md = (out / "sweep.md").read_text()
    assert md == sweep_markdown(data) and all(f"`{p['id']}`" in md for p in points)
    svg = (out / "pareto.svg").read_text()
    assert svg.startswith("<?xml") and "</svg>" in svg and "<dc:date>" not in svg
    first_run = time.perf_counter() - start

    # a re-run reuses every point: no build, no record written again, the same results
    stamps = {p["id"]: ((out / "points" / f"{p['id']}.json").stat().st_mtime_ns,
                        (out / p["dir"] / "fpgaq.json").stat().st_mtime_ns) for p in points}
    code, stdout, stderr = run_cli(*args)
    assert code == 0, stderr
    again = json.loads(stdout)
    assert again["summary"]["reused"] == 4
    assert all(p["reused"] for p in again["points"])
    assert stamps == {p["id"]: ((out / "points" / f"{p['id']}.json").stat().st_mtime_ns,
                                (out / p["dir"] / "fpgaq.json").stat().st_mtime_ns) for p in points}
    strip = ("reused", "seconds")
    assert [{k: v for k, v in p.items() if k not in strip} for p in again["points"]] == \
        [{k: v for k, v in p.items() if k not in strip} for p in points]
    assert (out / "pareto.svg").read_text() == svg          # a deterministic chart
    assert first_run < 60


def test_a_failed_point_does_not_stop_the_sweep(mlp, tmp_path):
    out = tmp_path / "sweep"
    data = run_sweep(mlp, out, parse_grid(["reuse=0,2", "clock_ns=5"]), workers=2)
    bad, good = data["points"]
    assert bad["params"] == {"reuse": 0, "clock_ns": 5} and "reuse 0 must be a positive integer" in bad["error"]
    assert not bad["pareto"] and all(bad[k] is None for k in FIGURES)
    assert good["error"] is None and good["pareto"] and good["latency_cycles"] > 0 and good["ii"] == 2
    assert data["summary"]["failed"] == 1
    saved = json.loads((out / "sweep.json").read_text())
    assert [p["error"] for p in saved["points"]] == [bad["error"], None]
    assert "reuse 0 must be" in (out / "sweep.md").read_text()


def test_cli_errors(mlp, tmp_path):
    code, stdout, stderr = run_cli("sweep", mlp, "-o", tmp_path / "s", "--grid", "speed=1,2")
    assert code == 1 and stdout == "" and "unknown setting 'speed'" in stderr and "Traceback" not in stderr


def test_missing_dask_names_the_extra(mlp, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask.distributed", None)       # as if not installed
    with pytest.raises(FpgaqError, match=r"fpgaq\[sweep\]"):
        run_sweep(mlp, tmp_path / "s", parse_grid(["reuse=1"]), workers=1)


def _wait_for(path: Path, seconds: float = 60) -> None:
    end = time.monotonic() + seconds
    while not path.is_file():
        assert time.monotonic() < end, f"{path} did not appear"
        time.sleep(0.2)


def test_sweep_on_a_dask_scheduler_with_two_workers(mlp, tmp_path):
    """A real cluster on localhost: `dask scheduler` and two `dask worker` processes."""
    from distributed import Client
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "FPGAQ_PROGRESS": "0"}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    procs = [subprocess.Popen([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                               "--scheduler-file", str(sched_file)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)]
    try:
        _wait_for(sched_file)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                           "--nthreads", "1", "--no-dashboard"], env=env,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          start_new_session=True))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
        out = tmp_path / "sweep"
        code, stdout, stderr = run_cli("sweep", mlp, "-o", out, "--grid", "reuse=1,2", "--scheduler", address,
                                       "--json")
        assert code == 0, stderr
        data = json.loads(stdout)
        assert [p["params"]["reuse"] for p in data["points"]] == [1, 2]
        assert all(p["error"] is None and p["latency_ns"] for p in data["points"])
        assert {p["id"] for p in data["points"] if p["pareto"]} == brute_force_pareto(data["points"], 55)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
