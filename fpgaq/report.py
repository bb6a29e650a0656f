"""The report a user reads before synthesis: per layer and total, as Markdown and JSON."""
from __future__ import annotations

import json
import math

import numpy as np

from .config import BuildConfig
from .deviation import describe_table, deviation, deviation_text, is_requantised, requantizers, tables
from .estimate import estimate
from .ir.fixed import FixedType
from .ir.graph import Graph
from .ir.ops import Dense
from .ir.interval import Interval
from .stimulus import random_inputs

HLS4ML_DEFAULT = FixedType(True, 16, 10)    # ap_fixed<16,6>


def hls4ml_auto_accumulator(x: FixedType, w: FixedType, n_in: int, bias: FixedType | None) -> FixedType:
    """The accumulator hls4ml 1.3's 'auto' precision infers for a dense layer
    (model/optimizer/passes/infer_precision.py): input + weight widths plus log2(n_in) bits,
    widened to hold the bias type. An unquantized bias counts as its default ap_fixed<16,6>."""
    grow = math.ceil(np.log2(n_in)) if n_in > 1 else 0
    width = w.width + x.width + grow
    integer = w.integer + x.integer + grow
    signed = w.signed or x.signed
    frac = width - integer
    if bias is not None:
        integer = max(integer + (bias.signed and not signed), bias.integer + (signed and not bias.signed)) + 1
        width = integer + max(frac, bias.width - bias.integer)
        signed = signed or bias.signed
    return FixedType(signed, width, width - integer)


def _ap(t: FixedType) -> str:
    return f"{'ap_fixed' if t.signed else 'ap_ufixed'}<{t.width},{t.integer}>"


def hls4ml_comparison(graph: Graph) -> dict[str, dict]:
    out = {}
    for n in graph.nodes:
        if not isinstance(n.op, Dense):
            continue
        x = graph[n.inputs[0]].type
        assert x is not None and n.type is not None and n.interval is not None
        codes = n.op.weight
        w = FixedType.holding(Interval(int(codes.min(initial=0)), int(codes.max(initial=0))), n.op.weight_frac)
        w = FixedType(True, w.signed_width, n.op.weight_frac)
        bias = HLS4ML_DEFAULT if np.any(n.op.bias != 0) else None
        auto = hls4ml_auto_accumulator(x, w, codes.shape[1], bias)
        out[n.name] = {"default": _ap(HLS4ML_DEFAULT), "auto": _ap(auto),
                       "default_overflows": not _holds(HLS4ML_DEFAULT, n.interval, n.type.frac),
                       "auto_overflows": not _holds(auto, n.interval, n.type.frac)}
    return out


def _holds(t: FixedType, iv: Interval, frac: int) -> bool:
    """Whether type t holds every value of codes `iv` at `frac` fraction bits exactly."""
    if t.frac < frac:
        return False
    scale = 1 << (t.frac - frac)
    return t.min_code <= iv.lo * scale and iv.hi * scale <= t.max_code


def report_data(graph: Graph, config: BuildConfig, x: np.ndarray | None = None,
                design: dict | None = None) -> dict:
    """Estimates, the hls4ml comparison and, for requantised graphs, the requantisers and
    their deviation from the float model on inputs x (default: 1,000 random ones). With
    `design` (the Verilog back-end's count of its own design), the layers and totals are that
    design's, not the HLS estimate's."""
    data = estimate(graph, config)
    data["backend"] = config.backend
    cmp = hls4ml_comparison(graph)
    for layer in data["layers"]:
        if layer["name"] in cmp:            # a dense layer; not a line buffer
            layer["hls4ml_accumulator"] = cmp[layer["name"]]
    if design is not None:
        _use_design(data, design)
    data["model"] = graph.name
    if config.input_type is not None:
        data["input_type"] = str(FixedType.parse(config.input_type))
    if graph.preprocessing:
        data["preprocessing"] = preprocessing(graph)
    if tables(graph):
        data["tables"] = tables(graph)
    if is_requantised(graph):
        data["requantization"] = {"requantizers": requantizers(graph),
                                  "deviation": deviation(graph, random_inputs(graph, 1000) if x is None else x)}
    return data


# what the HLS estimate says of a layer that a Verilog design's own numbers replace
HLS_ONLY = ("multipliers", "reuse", "latency_cycles", "ii", "dsp", "lut", "ff", "bram", "hls4ml_accumulator")


def _use_design(data: dict, design: dict) -> None:
    """Replace the HLS estimate's layers and totals in `data` by a Verilog design's own numbers."""
    for layer in data["layers"]:
        for key in HLS_ONLY:
            layer.pop(key, None)
        layer.update(design["layers"][layer["name"]])
    t = data["total"]
    data["total"] = {"weights": t["weights"], "nonzero": t["nonzero"], "accumulator_bits": t["accumulator_bits"],
                     "latency_cycles": design["latency_cycles"],
                     "latency_ns": round(design["latency_cycles"] * data["clock_ns"], 3), "ii": design["ii"],
                     "adders": design["adders"], "adder_bits": design["adder_bits"],
                     "ff": design["register_bits"], "dsp": design["dsp"],
                     "multipliers": design.get("multipliers", 0)}
    data["adder_budget"] = design["adder_budget"]


def preprocessing(graph: Graph) -> list[dict]:
    """What the host computes before the firmware's input quantizer, in order."""
    return [{"name": n.name, "op": n.op.describe(), "onnx_node": n.origin.onnx_name, "onnx_op": n.origin.onnx_op}
            for n in graph.preprocessing]


def report_json(data: dict) -> str:
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _flag(h: dict, key: str) -> str:
    return h[key] + (" (overflows)" if h[f"{key}_overflows"] else "")


def _input_notes(data: dict) -> list[str]:
    """What happens to the model's input before the firmware: --input-type, host pre-processing."""
    return [
        *([f"The model's input is quantized by fpgaq to `{data['input_type']}` (--input-type), rounding half "
           "to even and saturating.", ""] if "input_type" in data else []),
        *(["Pre-processing on the host, outside the firmware (in float32, as the model computes it; the "
           "firmware receives the input quantizer's codes): "
           + ", ".join(f"{p['op']} ({p['onnx_op']} {p['onnx_node']})" for p in data["preprocessing"]) + ".", ""]
          if "preprocessing" in data else []),
    ]


def _verilog_markdown(data: dict) -> list[str]:
    """The head and the per-layer table of a Verilog design, counted from the design."""
    t = data["total"]
    shared = t.get("multipliers", 0)
    parallel = data.get("io", "io_parallel") == "io_parallel"
    if shared:          # dense layers with reuse factors above 1
        how = (f"are shift-and-add at reuse factor 1; dense layers with a reuse factor above 1 compute theirs on "
               f"{shared} shared multipliers ({t['dsp']} DSP), and it takes a new input every {t['ii']} cycles. "
               if parallel else
               f"are shift-and-add at reuse factor 1; dense layers with a reuse factor R above 1 compute theirs on "
               f"{shared} shared multipliers ({t['dsp']} DSP), their stages a pixel every R cycles; a new frame "
               f"every {t['ii']} cycles (the report's latency is an estimate of what `fpgaq rtlsim` measures). ")
    elif parallel:
        how = "are shift-and-add, so it has no DSPs and no multipliers, and it takes a new input every cycle. "
    else:
        how = ("are shift-and-add, so it has no DSPs and no multipliers; it streams a pixel a cycle, a new frame "
               "every II cycles (the report's latency is an estimate above what `fpgaq rtlsim` measures). ")
    rows = [
        f"# fpgaq report: {data['model']}",
        "",
        f"Verilog design (fpgaq's own RTL) at {data['clock_ns']:g} ns: at most {data['adder_budget']:g} adders "
        "in a row between two registers. Counted from the generated design, not estimated: constant products "
        + how + "`fpgaq synth DIR` counts LUTs and carry chains with yosys; `fpgaq rtlsim DIR` measures the latency.",
        "",
        f"**Latency {t['latency_cycles']} cycles = {t['latency_ns']:g} ns, II {t['ii']}; "
        f"{t['nonzero']} of {t['weights']} weights non-zero, {t['adders']} adders ({t['adder_bits']} adder "
        f"bits), {t['ff']} pipeline register bits (FF), {t['dsp']} DSP.**",
        "",
        *_input_notes(data),
        "| layer | ONNX node | weights | non-zero | accumulator | adders | adder bits | pipeline stages |",
        "|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for e in data["layers"]:
        a = e["accumulator"]
        acc = _ap(FixedType(a["signed"], a["width"], a["frac"]))
        rows.append(f"| {e['name']} | {e['onnx_node']} | {e['weights']} | {e['nonzero']} | {acc} | {e['adders']} "
                    f"| {e['adder_bits']} | {e['stages']} |")
    rows.append(f"| **total** | | {t['weights']} | {t['nonzero']} | | {t['adders']} | {t['adder_bits']} "
                f"| {t['latency_cycles']} (with the output register) |")
    return rows


def report_markdown(data: dict) -> str:
    if data.get("backend") == "verilog":
        return _markdown_sections(data, _verilog_markdown(data))
    t = data["total"]
    rows = [
        f"# fpgaq report: {data['model']}",
        "",
        f"Part {data['part']}, clock {data['clock_ns']:g} ns. Estimates from fpgaq's model "
        "(see the README), not from synthesis. hls4ml columns: the accumulator hls4ml would use "
        "by default and with 'auto' precision; '(overflows)' where it cannot hold the exact range "
        "(or needs rounding).",
        "",
        f"**Latency {t['latency_cycles']} cycles = {t['latency_ns']:g} ns, II {t['ii']}; "
        f"{t['nonzero']} of {t['weights']} weights non-zero, {t['multipliers']} multipliers, "
        f"{t['dsp']} DSP, {t['lut']} LUT, {t['ff']} FF, {t['bram']} BRAM.**",
        "",
        *_input_notes(data),
        "| layer | ONNX node | weights | non-zero | multipliers | reuse | accumulator | per-neuron acc. bits "
        "| hls4ml default | hls4ml auto | latency | II | DSP | LUT | FF | BRAM |",
        "|---|---|---:|---:|---:|---:|---|---:|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in data["layers"]:
        a = e["accumulator"]
        acc = _ap(FixedType(a["signed"], a["width"], a["frac"]))
        h = e.get("hls4ml_accumulator")
        if h is None:       # a line buffer: its bits where the accumulator would be
            acc, flags = f"line buffer {e.get('line_buffer_bits', 0)} bits", "| - | -"
        else:
            flags = f"| {_flag(h, 'default')} | {_flag(h, 'auto')}"
        rows.append(
            f"| {e['name']} | {e['onnx_node']} | {e['weights']} | {e['nonzero']} | {e['multipliers']} "
            f"| {e['reuse']} | {acc} | {e['accumulator_bits']} {flags} | {e['latency_cycles']} | {e['ii']} "
            f"| {e['dsp']} | {e['lut']} | {e['ff']} | {e['bram']} |")
    rows.append(
        f"| **total** | | {t['weights']} | {t['nonzero']} | {t['multipliers']} | | | {t['accumulator_bits']} "
        f"| | | {t['latency_cycles']} | {t['ii']} | {t['dsp']} | {t['lut']} | {t['ff']} | {t['bram']} |")
    return _markdown_sections(data, rows)


def _markdown_sections(data: dict, rows: list[str]) -> str:
    """The report's head and table (`rows`), then its sections for both back-ends."""
    if "fifos" in data:
        f = data["fifos"]
        deep = [x for x in f if x["depth"] > 2]
        rows += ["", "## Streams (io_stream)", "",
                 f"{len(f)} FIFO{'s' if len(f) != 1 else ''} between the stages, {sum(x['bits'] for x in f):,} bits "
                 "(in the LUT and BRAM totals). Depth 2 where a stage feeds the next in step; deeper where a "
                 "branch waits for a join (computed from when each branch delivers its first pixel):"
                 + ("" if deep else " none here."),
                 *(f"- `{x['stream']}`: depth {x['depth']} of {x['channels']} x {x['width']} bits" for x in deep)]
    if "tables" in data:
        rows += ["", "## Softmax and table activations", "",
                 *(f"- {describe_table(t)}" for t in data["tables"])]
    if "requantization" in data and data["requantization"]["requantizers"]:
        rq = data["requantization"]
        rows += ["", "## Integer requantisation (--requantize)", "",
                 "Each quantizer of a float-scaled value is lowered either to thresholds (comparisons of the "
                 "integer codes with constants computed from the float model: exact) or to an integer "
                 "multiplier and shift (approximate: the ratio error below), whichever costs fewer LUTs "
                 "(config `thresholds`).", "",
                 "| requantiser | ONNX node | lowering | channels | multiplier bits | shift | output "
                 "| largest ratio error |",
                 "|---|---|---|---:|---:|---:|---|---:|"]
        for q in rq["requantizers"]:
            o = q["output"]
            out = _ap(FixedType(o["signed"], o["width"], o["frac"]))
            if q["lowering"] == "thresholds":
                rows.append(f"| {q['name']} | {q['onnx_node']} | {q['thresholds']} threshold(s) a channel "
                            f"| {q['channels']} | | | {out} | exact |")
            else:
                offset = " + bias offset" if q["offset"] else ""
                rows.append(f"| {q['name']} | {q['onnx_node']} | multiplier{offset} | {q['channels']} "
                            f"| {q['multiplier_bits']} | {q['shift']} | {out} | {q['largest_ratio_error']:.3g} |")
        for q in rq["requantizers"]:
            if q["fpgaq_output"]:
                o = q["output"]
                rows += ["", f"The output of {q['onnx_node']} has no quantizer in the model (a float tail): "
                             f"fpgaq gives it as `{_ap(FixedType(o['signed'], o['width'], o['frac']))}` "
                             "(16 bits, or --requant-bits; the most fraction bits that hold the float model's exact "
                             f"range, rounding half to even), by {q['name']}."]
    if "requantization" in data:
        rows += ["", "## Deviation from the float model", "", deviation_text(data["requantization"]["deviation"])]
    return "\n".join(rows) + "\n"
