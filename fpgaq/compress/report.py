"""The report of a compression: the data (compress.json, and `--json`), a Markdown table
(compress.md), and a chart of the explored designs (compress.svg): metric against estimated
cost, the Pareto front and the chosen design marked."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import FpgaqError
from ..pareto import pareto_flags
from .evaluate import Evaluator, Measured
from .floatnet import Layer, Net
from .plan import Plan, input_point
from .reference import INSTALL
from .quantize import after_relu
from .search import Search

SVG_SALT = "fpgaq-compress"
METRIC_NAMES = {"accuracy": "accuracy", "agreement": "argmax agreement with the float model",
                "rms": "relative RMS error"}


def pareto(points: list[tuple[float, float]], higher_is_better: bool) -> list[bool]:
    """Which (metric, cost) points no other point beats: as good or better in both, better in
    one (fpgaq.pareto, with a metric to raise turned into one to lower)."""
    return pareto_flags([(-m if higher_is_better else m, c) for m, c in points])


def _layer_numbers(m: Measured, layer: Layer) -> dict:
    rows = [v for k, v in m.layers.items() if k == layer.name or k.startswith(layer.name + "/")]
    return {k: sum(r[k] for r in rows) for k in ("lut", "ff", "dsp", "latency_cycles")}


def _design(m: Measured, ev: Evaluator, plan: Plan, dsp_cost: float) -> dict:
    return {"metric_tune": m.metric, "metric_held_out": m.held_metric,
            "drop_held_out": ev.drop(m.held_metric, held=True),
            "logit_error": m.error, "lut": m.lut, "ff": m.ff, "dsp": m.dsp, "bram": m.bram,
            "cost": m.cost(dsp_cost), "latency_cycles": m.latency_cycles, "latency_ns": m.latency_ns,
            "bitops": m.bitops, "nonzero_weights": sum(lq.nonzero for lq in plan.layers.values())}


def report_data(*, model: str, output: str, net: Net, kind: str, why: str, max_drop: float, prune: bool, seed: int,
                sizes: tuple[int, int], float_metric: tuple[float, float], evaluator: Evaluator,
                search: Search | None, uniform: tuple[str, Plan, Measured], chosen: tuple[Plan, Measured],
                dsp_cost: float, max_latency_ns: float | None) -> dict:
    u_type, u_plan, u_m = uniform
    c_plan, c_m = chosen
    ev = evaluator
    layers = []
    for layer in net.weighted:
        assert layer.weight is not None
        lq, out_t = c_plan.layers[layer.name], after_relu(net, layer)
        rows_kept = int(np.count_nonzero(np.any(lq.weight.reshape(len(lq.weight), -1) != 0, axis=1)))
        sens = {}
        if search is not None:
            sens = {"weights_4bit": search.sensitivity_of("w", layer.name),
                    "activations_4bit": search.sensitivity_of("a", out_t),
                    "sparsity_50": search.sensitivity_of("s", layer.name),
                    "neurons_25": search.sensitivity_of("r", layer.name)}
        layers.append({
            "name": layer.name, "kind": layer.kind, "weights": int(layer.weight.size),
            "weight_bits": lq.w_bits, "weight_type": f"fixed<{lq.w_bits},{lq.w_bits - lq.w_frac}>",
            "input_bits": c_plan.acts[input_point(net, layer.inputs[0])].bits,
            "activation_bits": c_plan.acts[out_t].bits if out_t in c_plan.acts else None,
            "activation_type": str(c_plan.acts[out_t].type) if out_t in c_plan.acts else None,
            "nonzero": lq.nonzero, "sparsity": round(1.0 - lq.nonzero / layer.weight.size, 4),
            "neurons": int(layer.weight.shape[0]), "neurons_kept": rows_kept,
            "sensitivity": sens,
            "before": _layer_numbers(u_m, layer), "after": _layer_numbers(c_m, layer)})
    explored = []
    if search is not None:
        marks = pareto([(p.measured.metric, p.measured.cost(dsp_cost)) for p in search.explored], kind != "rms")
        chosen_state = None if search is None else next(
            (p.state for p in search.explored if p.measured is c_m), None)
        for p, on_front in zip(search.explored, marks):
            explored.append({"phase": p.phase, "metric_tune": p.measured.metric, "cost": p.measured.cost(dsp_cost),
                             "lut": p.measured.lut, "dsp": p.measured.dsp, "latency_ns": p.measured.latency_ns,
                             "bitops": p.measured.bitops, "pareto": on_front, "chosen": p.state == chosen_state,
                             "weight_bits": list(p.choice.w_bits), "activation_bits": list(p.choice.a_bits),
                             "sparsity": list(p.choice.sparsity), "removed": list(p.choice.removed)})
    return {
        "fpgaq_version": __version__, "model": model, "output": output,
        "metric": {"kind": kind, "name": METRIC_NAMES[kind], "why": why, "float_tune": float_metric[0],
                   "float_held_out": float_metric[1]},
        "data": {"tune": sizes[0], "held_out": sizes[1], "seed": seed},
        "max_drop": max_drop, "prune": prune, "dsp_cost": dsp_cost, "max_latency_ns": max_latency_ns,
        "latency_met": max_latency_ns is None or c_m.latency_ns <= max_latency_ns,
        "held_out_met": ev.drop(c_m.held_metric, held=True) <= max_drop + 1e-12,
        "softmax_dropped": net.dropped_softmax, "input": {"name": net.input, "type": str(c_plan.acts[net.input].type)},
        "uniform": {"type": u_type, **_design(u_m, ev, u_plan, dsp_cost)},
        "chosen": _design(c_m, ev, c_plan, dsp_cost),
        "search": None if search is None else {
            "designs_measured": len(search.explored),
            "sensitivity": "relative RMS error of the logits, measured with the emulator, with one knob at its "
                           "reference level (4-bit weights, 4-bit activations, 50% sparsity, 25% of the neurons "
                           "removed) and the rest at the start (8-bit weights, 12-bit activations)"},
        "layers": layers, "explored": explored,
    }


def _pct(v: float | None, kind: str = "accuracy") -> str:
    if v is None:
        return "–"
    return f"{100 * v:.2f}%" if kind != "rms" else f"{v:.4f}"


def _sens(v: float | None) -> str:
    return "–" if v is None else f"{v:.3g}"


def markdown(data: dict) -> str:
    kind = data["metric"]["kind"]
    m, u, c = data["metric"], data["uniform"], data["chosen"]
    lines = [f"# fpgaq compress: {Path(data['model']).name} -> {Path(data['output']).name}", "",
             f"Metric: {m['name']} ({m['why']}), on {data['data']['held_out']} held-out inputs "
             f"({data['data']['tune']} tuned on); allowed drop {_pct(data['max_drop'], kind)}"
             + (f"; latency at most {data['max_latency_ns']:g} ns" if data["max_latency_ns"] else "") + ".", ""]
    if not data["held_out_met"]:
        lines += [f"On the held-out part the drop is {_pct(data['chosen']['drop_held_out'], kind)}, over the limit: "
                  "the tuning part was too small to show it. Give more calibration inputs or a lower --max-drop.", ""]
    if not data["latency_met"]:
        lines += [f"No design measured met the latency limit: the chosen one takes {data['chosen']['latency_ns']:g} "
                  "ns (raise the clock period in --config, or the limit).", ""]
    if data["softmax_dropped"]:
        lines += [f"The final Softmax ('{data['softmax_dropped']}') is dropped: the model gives the logits (the "
                  "argmax is the same).", ""]
    lines += ["| | metric (held-out) | drop | LUT | DSP | latency (ns) | bit-operations | non-zero weights |",
              "|---|---:|---:|---:|---:|---:|---:|---:|",
              f"| float | {_pct(m['float_held_out'], kind)} | | | | | | |"]
    for name, d in ((f"uniform {u['type']}", u), ("chosen", c)):
        lines.append(f"| {name} | {_pct(d['metric_held_out'], kind)} | {_pct(d['drop_held_out'], kind)} | "
                     f"{d['lut']:,} | {d['dsp']:,} | {d['latency_ns']:g} | {d['bitops']:,} | "
                     f"{d['nonzero_weights']:,} |")
    if u["bitops"]:
        lines += ["", f"Chosen / uniform: LUT {c['lut'] / max(u['lut'], 1):.3f}, bit-operations "
                      f"{c['bitops'] / u['bitops']:.3f}."]
    lines += ["", "## Layers", "",
              "| layer | weights | weight type | sparsity | neurons kept | output type | sens. w4 | sens. a4 | "
              "sens. s50 | sens. n25 | LUT before | LUT after | DSP before | DSP after | cycles before | cycles after |",
              "|---|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for la in data["layers"]:
        s, b, a = la["sensitivity"], la["before"], la["after"]
        lines.append(f"| {la['name']} | {la['weights']:,} | {la['weight_type']} | {100 * la['sparsity']:.1f}% | "
                     f"{la['neurons_kept']}/{la['neurons']} | {la['activation_type'] or '–'} | "
                     f"{_sens(s.get('weights_4bit'))} | {_sens(s.get('activations_4bit'))} | "
                     f"{_sens(s.get('sparsity_50'))} | {_sens(s.get('neurons_25'))} | {b['lut']:,} | {a['lut']:,} | "
                     f"{b['dsp']} | {a['dsp']} | {b['latency_cycles']} | {a['latency_cycles']} |")
    lines += ["", f"Input: `{data['input']['name']}` as {data['input']['type']}."]
    if data["search"]:
        s = data["search"]
        lines += ["", f"Sensitivity: {s['sensitivity']}.", "",
                  f"{s['designs_measured']} designs measured"
                  + ". Before = the uniform design, after = the chosen one (fpgaq's estimate)."]
    return "\n".join(lines) + "\n"


def chart_svg(data: dict) -> str:
    """Explored designs: the tuning metric against LUT + DSP cost."""
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise FpgaqError(f"fpgaq compress draws its chart with matplotlib: {INSTALL}") from None
    kind = data["metric"]["kind"]
    pts = data["explored"]
    scale = 1.0 if kind == "rms" else 100.0
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.add_subplot(1, 1, 1)
    others = [p for p in pts if not p["pareto"]]
    front = sorted((p for p in pts if p["pareto"]), key=lambda p: p["cost"])
    ax.scatter([p["cost"] for p in others], [scale * p["metric_tune"] for p in others], s=12, color="#9aa5b1",
               label="explored")
    ax.plot([p["cost"] for p in front], [scale * p["metric_tune"] for p in front], "o-", color="#1f6feb",
            markersize=4, label="Pareto front")
    u = data["uniform"]
    ax.scatter([u["cost"]], [scale * u["metric_tune"]], marker="s", s=40, color="#d29922",
               label=f"uniform {u['type']}")
    c = data["chosen"]
    ax.scatter([c["cost"]], [scale * c["metric_tune"]], marker="*", s=160, color="#cf222e", label="chosen",
               zorder=5)
    floor = scale * (data["metric"]["float_tune"] - data["max_drop"] if kind != "rms" else data["max_drop"])
    ax.axhline(floor, color="#cf222e", linewidth=0.8, linestyle="--", label="allowed drop")
    ax.set_xscale("log")
    ax.set_xlabel(f"estimated cost: LUT + {data['dsp_cost']:g} x DSP")
    ax.set_ylabel(data["metric"]["name"] + (" (%)" if kind != "rms" else "") + ", tuning data")
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, linewidth=0.3)
    fig.tight_layout()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def write_report(data: dict, folder: str | Path) -> list[Path]:
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        files = {"compress.json": json.dumps(data, indent=2) + "\n", "compress.md": markdown(data)}
        if data["explored"]:
            files["compress.svg"] = chart_svg(data)
        paths = []
        for name, text in files.items():
            (folder / name).write_text(text)
            paths.append(folder / name)
        return paths
    except OSError as e:
        raise FpgaqError(f"--report {folder}: cannot write ({e.strerror or e})") from None


__all__ = ["report_data", "markdown", "write_report", "chart_svg", "pareto"]
