"""The cocotb test bench of a streaming (io_stream) design of the Verilog back-end: frames of
pixels in, frames of pixels out, every code compared with the emulator's.

`fpgaq rtlsim` (fpgaq.backends.verilog.rtlsim) writes the input codes and the emulator's output
codes, a row a frame in ONNX (flat) order, and the bench file (FPGAQ_BENCH, JSON) says how a
frame's flat codes sit in the pixels of each port ("flat": for pixel p, channel c, the flat
index). The driver offers the frames back to back, a pixel a cycle while in_ready lets it; the
monitor takes each output port's pixels (out_ready low at random cycles where the bench asks
for back-pressure), checks out_last on a frame's last pixel, and puts each frame's codes back
in flat order. Measured: the latency of a frame (cycles from its first pixel taken to its last
result pixel given) and the initiation interval (cycles between frames, in the steady state:
between the last result pixels of the first and the last frame).
Cycles are counted at falling clock edges, where inputs are driven and outputs read.
"""
from __future__ import annotations

import json
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge, ReadOnly, RisingEdge

from .bench import Progress, pack, read_codes, scoreboard, unpack


class FramePort:
    """One output port: its pixels collected into frames, each put back in flat order."""

    def __init__(self, dut, port: dict):
        self.p = port
        self.valid = getattr(dut, f"{port['prefix']}_valid")
        self.ready = getattr(dut, f"{port['prefix']}_ready")
        self.data = getattr(dut, f"{port['prefix']}_data")
        self.last = getattr(dut, f"{port['prefix']}_last")
        self.pixels: list[list[int]] = []
        self.frames: list[list[int]] = []
        self.done: list[int] = []           # the cycle each frame's last pixel came
        self.framing = 0                    # pixels whose out_last was wrong

    def sample(self, cycle: int) -> None:
        """In the read-only phase: take the pixel given this cycle, if any."""
        if str(self.valid.value) != "1" or str(self.ready.value) != "1":
            return
        p = self.p
        try:
            px = unpack(self.data.value.to_unsigned(), p["channels"], p["width"], p["signed"])
        except ValueError:                  # X or Z on a valid output
            px = [None] * p["channels"]
        self.pixels.append(px)
        end = len(self.pixels) == p["pixels"]
        self.framing += int(str(self.last.value) != ("1" if end else "0"))
        if end:
            frame: list = [None] * (p["pixels"] * p["channels"])
            for q, row in enumerate(self.pixels):
                for c, v in enumerate(row):
                    frame[p["flat"][q][c]] = v
            self.frames.append(frame)
            self.done.append(cycle)
            self.pixels = []


@cocotb.test()
async def bit_exact_frames(dut):
    bench = json.loads(Path(os.environ["FPGAQ_BENCH"]).read_text())
    inp = bench["stream"]["input"]
    outs = bench["stream"]["outputs"]
    n_in = inp["pixels"] * inp["channels"]
    n_out = sum(o["pixels"] * o["channels"] for o in outs)
    frames = read_codes(bench["input_codes"], n_in)
    expected = read_codes(bench["expected_codes"], n_out)
    rng = random.Random(bench.get("seed", 1))
    backpressure = bench.get("backpressure", 0.0)
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())

    ports = [FramePort(dut, o) for o in outs]
    dut.in_valid.value = 0
    dut.in_data.value = 0
    for p in ports:
        p.ready.value = 0
    dut.rst.value = 1
    for _ in range(3):
        await RisingEdge(dut.clk)
    await FallingEdge(dut.clk)
    dut.rst.value = 0

    pixels = [[frame[i] for i in row] for frame in frames for row in inp["flat"]]   # every frame's pixels in order
    started: list[int] = []         # the cycle each frame's first pixel was taken
    k, cycle = 0, 0
    limit = bench["max_cycles"]
    progress = Progress(bench, len(frames))
    while min(len(p.frames) for p in ports) < len(frames) and cycle < limit:
        offer = k < len(pixels)
        dut.in_valid.value = int(offer)
        dut.in_data.value = pack(pixels[k], inp["width"]) if offer else 0
        for p in ports:
            p.ready.value = int(rng.random() >= backpressure)
        await ReadOnly()
        if offer and str(dut.in_ready.value) == "1":
            if k % inp["pixels"] == 0:
                started.append(cycle)
            k += 1
        for p in ports:
            p.sample(cycle)
        progress(min(len(p.frames) for p in ports))
        await FallingEdge(dut.clk)
        cycle += 1

    # scoreboard: a row a frame, the outputs' flat codes one after another
    got = [sum((p.frames[s] for p in ports), []) for s in range(min(len(p.frames) for p in ports))]
    count, mismatches = scoreboard(expected, got)
    missing = len(frames) - len(got)
    done = [max(p.done[s] for p in ports) for s in range(len(got))]
    lat = [d - a for a, d in zip(started, done)]
    ii = (done[-1] - done[0]) / (len(done) - 1) if len(done) > 1 else None
    framing = sum(p.framing for p in ports)
    result = {
        "n": len(frames), "received": len(got), "missing": missing,
        "mismatch_count": count + missing * n_out, "mismatches": mismatches, "framing_errors": framing,
        "latency_cycles": max(lat) if lat else None, "latency_min": min(lat) if lat else None,
        "ii": round(ii, 3) if ii is not None else None, "cycles": cycle,
        "outputs": [[v if isinstance(v, int) else 0 for v in row] for row in got],
    }
    Path(bench["results"]).write_text(json.dumps(result))
    assert missing == 0, f"{missing} of {len(frames)} frames never came within {limit} cycles"
    assert framing == 0, f"out_last was wrong on {framing} pixels"
    assert count == 0, f"{count} output codes differ from the emulator's; first: {mismatches[:5]}"
