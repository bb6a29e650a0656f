"""What a Verilog design is, counted from the design itself (not from the HLS estimate model):
its latency in cycles, its adders and their bits, its pipeline registers, a layer at a time.
The report of a Verilog project and `fpgaq synth` show these."""
from __future__ import annotations

from ...config import BuildConfig
from ...ir.graph import Graph
from .context import project_context
from .stream import datapath_bits, stream_context


def register_bits(ctx: dict) -> int:
    """Flip-flops of the pipeline: the delay registers, the output register, the valid bits, and
    where dense layers have reuse factors above 1, their held inputs, accumulators, phase
    counters and the input gap counter."""
    return (sum(r["width"] * len(r["taps"]) for r in ctx["registers"]) + ctx["out_bits"] + ctx["latency"]
            + sum(n["state_bits"] for n in ctx["layers"]) + (ctx["ii_bits"] if ctx["ii"] > 1 else 0))


def design_summary(graph: Graph, config: BuildConfig, layer_names: list[str]) -> dict:
    """The design's totals and, for each of `layer_names` (the report's layers, in order), the
    adders of that layer and of the nodes after it up to the next one (its ReLU and
    quantizer), and the pipeline stages it adds."""
    if config.io == "io_stream":
        return stream_summary(graph, config, layer_names)
    ctx = project_context(graph, config)
    rows = {name: {"adders": 0, "adder_bits": 0, "stage": 0, "multipliers": 0, "dsp": 0, "reuse": 1}
            for name in layer_names}
    current = layer_names[0] if layer_names else None
    for node in ctx["layers"]:
        current = node["name"] if node["name"] in rows else current
        if current is None:
            continue
        row = rows[current]
        row["adders"] += node["adders"]
        row["adder_bits"] += node["adder_bits"]
        row["multipliers"] += node["multipliers"]
        row["dsp"] += node["dsp"]
        row["reuse"] = max(row["reuse"], node["reuse"])
        row["stage"] = max(row["stage"], node["stage"])
    previous = 0
    for name in layer_names:       # stages a layer adds: from the previous layer's to its own
        rows[name]["stages"] = max(rows[name].pop("stage") - previous, 0)
        previous += rows[name]["stages"]
    return {"latency_cycles": ctx["latency"], "ii": ctx["ii"], "adders": ctx["adders"],
            "adder_bits": sum(n["adder_bits"] for n in ctx["layers"]), "register_bits": register_bits(ctx),
            "multipliers": ctx["multipliers"], "dsp": sum(n["dsp"] for n in ctx["layers"]),
            "adder_budget": ctx["budget"], "layers": rows}


def stream_summary(graph: Graph, config: BuildConfig, layer_names: list[str]) -> dict:
    """An io_stream design's numbers: the adders of each stage's datapath (one pixel's), its
    registers (pipelines, line buffers, frame buffers) and FIFO bits; II the slowest stage's
    cycles a frame; the latency of a frame as the stream model gives it (its first pixel through
    every stage, then the slowest stage's frame): `fpgaq rtlsim` measures both."""
    ctx = stream_context(graph, config)
    rows = {name: {"adders": 0, "adder_bits": 0, "stages": 0, "multipliers": 0, "dsp": 0, "reuse": 1}
            for name in layer_names}
    current = layer_names[0] if layer_names else None
    regs = 0
    for st in ctx["stages"]:
        regs += st.get("bits", 0)
        d = st.get("datapath")
        if d is None:
            continue
        regs += datapath_bits(d) + d["latency"] + (d["ii_bits"] if d["ii"] > 1 else 0)   # its valid bits and gap
        current = st["name"] if st["name"] in rows else current
        if current is None:
            continue
        rows[current]["adders"] += d["adders"]
        rows[current]["adder_bits"] += d["adder_bits"]
        rows[current]["stages"] += d["latency"]
        rows[current]["multipliers"] += d["multipliers"]
        rows[current]["dsp"] += d["dsp"]
        rows[current]["reuse"] = max(rows[current]["reuse"], d["ii"])
    planner = ctx["planner"]
    ii = max(st["pixels"] for st in ctx["stages"])
    first = max(planner.ready[planner.stream[o]] for o in graph.outputs)
    adders = sum(d["adders"] for d in ctx["datapaths"])
    return {"latency_cycles": first + ii, "ii": ii, "adders": adders,
            "adder_bits": sum(d["adder_bits"] for d in ctx["datapaths"]), "register_bits": regs,
            "fifo_bits": sum(f["depth"] * f["width"] for f in ctx["fifos"]),
            "multipliers": sum(d["multipliers"] for d in ctx["datapaths"]),
            "dsp": sum(d["dsp"] for d in ctx["datapaths"]),
            "adder_budget": ctx["budget"], "layers": rows}
