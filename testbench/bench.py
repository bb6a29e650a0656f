"""The cocotb test bench of a network's RTL: driver, monitor and scoreboard.

The model is fpgaq's emulator: `fpgaq rtlsim` (fpgaq.backends.verilog.rtlsim) writes the input
codes and the emulator's output codes, and this bench streams the inputs into the design as
fast as it accepts them, collects every output, and compares each code exactly. It measures
the latency (cycles from an input's acceptance to its result) and the initiation interval.

Three port conventions, chosen by the bench file (FPGAQ_BENCH, JSON):
- "fpgaq": the Verilog back-end's core: clk, rst, in_valid, in_ready, in_data, out_valid, out_data
  (an input is taken where in_valid and in_ready are both high).
- "vitis": the RTL Vitis HLS exports from fpgaq's HLS project: ap_clk, ap_rst, ap_start,
  ap_ready, ap_done, ap_idle; each array as one port (ARRAY_RESHAPE) or a port an element
  (ARRAY_PARTITION: NAME_0, NAME_1, ...), with or without _ap_vld.
- "axis": fpgaq_axis.v (ip/), with random back-pressure on m_axis_tready when asked.
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

MAX_REPORTED = 20


def scoreboard(expected: list, got: list) -> tuple[int, list]:
    """How many codes differ between the expected and the simulated rows, and the first
    MAX_REPORTED as [sample, output, expected, got] (an X or Z shown as text)."""
    mismatches, count = [], 0
    for s, (e, g) in enumerate(zip(expected, got)):
        for o, (ev, gv) in enumerate(zip(e, g)):
            if ev != gv:
                count += 1
                if len(mismatches) < MAX_REPORTED:
                    mismatches.append([s, o, ev, gv if isinstance(gv, int) else str(gv)])
    return count, mismatches


class Progress:
    """How many results the bench has, written to the file the bench file names ("progress"),
    about a hundred times a run, for `fpgaq rtlsim` to show on a terminal."""

    def __init__(self, bench: dict, n: int):
        self.path = bench.get("progress")
        self.every = max(1, n // 100)
        self.written = 0

    def __call__(self, done: int) -> None:
        if self.path and done - self.written >= self.every:
            tmp = f"{self.path}.tmp"
            Path(tmp).write_text(str(done))
            os.replace(tmp, self.path)
            self.written = done


def read_codes(path: str, n_values: int) -> list[list[int]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            row = [int(v) for v in line.split()]
            assert len(row) == n_values, f"{path}: a line of {len(row)} codes, expected {n_values}"
            rows.append(row)
    return rows


def pack(codes: list[int], width: int) -> int:
    word, mask = 0, (1 << width) - 1
    for i, c in enumerate(codes):
        word |= (c & mask) << (i * width)
    return word


def unpack(word: int, n: int, width: int, signed: bool) -> list[int]:
    out, mask = [], (1 << width) - 1
    for i in range(n):
        c = (word >> (i * width)) & mask
        if signed and c >> (width - 1):
            c -= 1 << width
        out.append(c)
    return out


def split(row: list[int], tensors: list[dict]) -> list[list[int]]:
    parts, k = [], 0
    for t in tensors:
        parts.append(row[k:k + t["n"]])
        k += t["n"]
    return parts


def _handle(dut, name: str):
    try:
        return dut._id(name, extended=False)
    except (AttributeError, KeyError):
        return None


class TensorPorts:
    """Where one tensor's codes live: one packed port, or a port an element (Vitis naming)."""

    def __init__(self, dut, tensor: dict, base: str | None = None):
        self.t = tensor
        base = base or tensor["port"]
        self.packed = _handle(dut, base)
        self.elements = None
        self.valids = []
        if self.packed is None:
            for pattern in ("{b}_{i}", "{b}_{i}_V", "{b}_V_{i}"):
                hs = [_handle(dut, pattern.format(b=base, i=i)) for i in range(tensor["n"])]
                if all(h is not None for h in hs):
                    self.elements = hs
                    self.valids = [v for i in range(tensor["n"])
                                   if (v := _handle(dut, pattern.format(b=base, i=i) + "_ap_vld")) is not None]
                    break
            if self.elements is None:
                raise AssertionError(f"the design has no port {base} (nor {base}_0, ...) for tensor {tensor['name']}")
        else:
            v = _handle(dut, base + "_ap_vld")
            self.valids = [v] if v is not None else []

    def write(self, codes: list[int], valid: bool) -> None:
        w = self.t["width"]
        if self.packed is not None:
            self.packed.value = pack(codes, w)
        else:
            for h, c in zip(self.elements, codes):
                h.value = c & ((1 << w) - 1)
        for v in self.valids:
            v.value = int(valid)

    def read(self) -> list[int]:
        w, s = self.t["width"], self.t["signed"]
        if self.packed is not None:
            return unpack(self.packed.value.to_unsigned(), self.t["n"], w, s)
        return [unpack(h.value.to_unsigned(), 1, w, s)[0] for h in self.elements]

    def valid(self) -> bool | None:
        if not self.valids:
            return None
        return all(str(v.value) == "1" for v in self.valids)


class Interface:
    """One port convention: how to reset, offer an input, see it taken, and see a result."""

    def __init__(self, dut, bench: dict):
        self.dut = dut
        self.kind = bench["interface"]
        self.inputs, self.outputs = bench["inputs"], bench["outputs"]
        self.backpressure = bench.get("backpressure", 0.0)
        self.rng = random.Random(bench.get("seed", 1))
        if self.kind == "fpgaq":
            self.clk, self.rst, self.rst_level = dut.clk, dut.rst, 1
        elif self.kind == "axis":
            self.clk, self.rst, self.rst_level = dut.aclk, dut.aresetn, 0
        else:
            self.clk = dut.ap_clk
            high = _handle(dut, "ap_rst")
            self.rst, self.rst_level = (high, 1) if high is not None else (_handle(dut, "ap_rst_n"), 0)
            self.in_ports = [TensorPorts(dut, t) for t in self.inputs]
            self.out_ports = [TensorPorts(dut, t) for t in self.outputs]

    def idle(self) -> None:
        self.offer(None)
        if self.kind == "axis":
            self.dut.m_axis_tready.value = 0

    def offer(self, row: list[int] | None) -> None:
        """Drive input `row` (None: nothing) for the coming clock edge."""
        parts = split(row, self.inputs) if row is not None else [[0] * t["n"] for t in self.inputs]
        word = 0
        for t, codes in zip(self.inputs, parts):
            word |= pack(codes, t["width"]) << t["offset"]
        if self.kind == "fpgaq":
            self.dut.in_valid.value = int(row is not None)
            self.dut.in_data.value = word
        elif self.kind == "axis":
            self.dut.s_axis_tvalid.value = int(row is not None)
            self.dut.s_axis_tdata.value = word
            self.dut.s_axis_tlast.value = 0
            self.dut.m_axis_tready.value = int(self.rng.random() >= self.backpressure)
        else:
            self.dut.ap_start.value = int(row is not None)
            for p, codes in zip(self.in_ports, parts):
                p.write(codes, row is not None)

    def taken(self) -> bool:
        """In the read-only phase: will the offered input be taken at the coming edge?"""
        if self.kind == "fpgaq":         # a core of II 1 may have no in_ready
            ready = _handle(self.dut, "in_ready")
            return ready is None or str(ready.value) == "1"
        if self.kind == "axis":
            return str(self.dut.s_axis_tready.value) == "1"
        return str(self.dut.ap_ready.value) == "1"

    def result(self) -> list[int] | None:
        """In the read-only phase: the result delivered this cycle, if any."""
        if self.kind == "fpgaq":
            if str(self.dut.out_valid.value) != "1":
                return None
            word = self.dut.out_data.value.to_unsigned()
        elif self.kind == "axis":
            if str(self.dut.m_axis_tvalid.value) != "1" or str(self.dut.m_axis_tready.value) != "1":
                return None
            word = self.dut.m_axis_tdata.value.to_unsigned()
        else:
            flags = [p.valid() for p in self.out_ports]
            known = [f for f in flags if f is not None]
            ok = all(known) if known else str(self.dut.ap_done.value) == "1"
            if not ok:
                return None
            return [c for p in self.out_ports for c in p.read()]
        row = []
        for t in self.outputs:
            row += unpack(word >> t["offset"], t["n"], t["width"], t["signed"])
        return row


@cocotb.test()
async def bit_exact_stream(dut):
    bench = json.loads(Path(os.environ["FPGAQ_BENCH"]).read_text())
    n_in = sum(t["n"] for t in bench["inputs"])
    n_out = sum(t["n"] for t in bench["outputs"])
    inputs = read_codes(bench["input_codes"], n_in)
    expected = read_codes(bench["expected_codes"], n_out)
    io = Interface(dut, bench)
    cocotb.start_soon(Clock(io.clk, 10, unit="ns").start())

    # reset for a few cycles with nothing offered
    io.idle()
    io.rst.value = io.rst_level
    for _ in range(3):
        await RisingEdge(io.clk)
    await FallingEdge(io.clk)
    io.rst.value = 1 - io.rst_level

    # driver and monitor, cycle by cycle
    accepted, delivered, got = [], [], []
    k, cycle = 0, 0
    limit = bench.get("max_cycles", 100 * len(inputs) + 10_000)
    progress = Progress(bench, len(inputs))
    while len(got) < len(inputs) and cycle < limit:
        io.offer(inputs[k] if k < len(inputs) else None)
        await ReadOnly()
        if k < len(inputs) and io.taken():
            accepted.append(cycle)
            k += 1
        try:
            r = io.result()
        except ValueError:          # X or Z on a valid output
            r = ["X"] * n_out
        if r is not None:
            delivered.append(cycle)
            got.append(r)
            progress(len(got))
        await FallingEdge(io.clk)
        cycle += 1

    count, mismatches = scoreboard(expected, got)
    missing = len(inputs) - len(got)
    lat = [d - a for a, d in zip(accepted, delivered)]
    ii = (accepted[-1] - accepted[0]) / (len(accepted) - 1) if len(accepted) > 1 else 1.0
    result = {
        "n": len(inputs), "received": len(got), "missing": missing,
        "mismatch_count": count + missing * n_out, "mismatches": mismatches,
        "latency_cycles": max(lat) if lat else None, "latency_min": min(lat) if lat else None,
        "ii": round(ii, 3), "cycles": cycle,
        "outputs": [[v if isinstance(v, int) else 0 for v in row] for row in got],
    }
    Path(bench["results"]).write_text(json.dumps(result))
    assert missing == 0, f"{missing} of {len(inputs)} results never came within {limit} cycles"
    assert count == 0, f"{count} output codes differ from the emulator's; first: {mismatches[:5]}"
