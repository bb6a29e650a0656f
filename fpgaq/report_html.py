"""report.html: the report of a project (report.json's data) as one self-contained page, with
charts of where the latency and the resources go, the sparsity of each layer (a heat-map of
each dense layer's non-zero weights) and the accumulators beside hls4ml's, then report.md's
tables and sections.

The charts are SVG drawn by fpgaq.charts and the weight maps PNG, inline: no script, no
network, nothing beside the file, no plotting library to import. The same data give a
byte-identical file (no ids, no dates, text as text).
"""
from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable

import numpy as np

from .charts import Panel, Series, bar_chart, png, shade
from .ir.graph import Graph
from .ir.ops import Dense
from .report import report_markdown

REPORT_HTML = "report.html"
MAX_MAPS = 32           # heat-maps of the first dense layers; a deeper network's others are left out

INK, MUTED, ZERO = "#1f2937", "#6b7280", "#e5e7eb"
PALETTE = {"latency": "#2563eb", "lut": "#059669", "ff": "#7c3aed", "dsp": "#dc2626", "bram": "#d97706",
           "adders": "#059669", "adder_bits": "#0d9488", "nonzero": "#2563eb", "fpgaq": "#2563eb",
           "auto": "#9ca3af", "default": "#d1d5db", "overflow": "#dc2626"}

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2937; margin: 0;
       background: #f9fafb; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.6em; margin: 0.2em 0 0.4em; }
h2 { font-size: 1.2em; margin: 2em 0 0.5em; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; }
p.note { color: #4b5563; font-size: 0.92em; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 18px 0; }
.card { background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 10px 14px; min-width: 110px; }
.card .label { color: #6b7280; font-size: 0.8em; text-transform: uppercase; letter-spacing: 0.04em; }
.card .value { font-size: 1.35em; font-weight: 600; }
.card .sub { color: #6b7280; font-size: 0.85em; }
figure { margin: 8px 0 16px; background: #fff; border: 1px solid #e5e7eb; border-radius: 8px; padding: 8px; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #4b5563; font-size: 0.88em; margin-top: 4px; }
.maps { display: flex; flex-wrap: wrap; gap: 10px; }
.maps figure { flex: 0 1 auto; }
figure.map img { image-rendering: pixelated; image-rendering: crisp-edges; display: block;
                 border: 1px solid #e5e7eb; }
.maptitle { font-weight: 600; font-size: 0.9em; margin-bottom: 4px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; background: #fff; font-size: 0.88em; }
th, td { border: 1px solid #e5e7eb; padding: 4px 8px; white-space: nowrap; }
th { background: #f3f4f6; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f4f6; padding: 0 3px; border-radius: 3px; }
"""


def _names(layers: list[dict]) -> list[str]:
    return [e["name"] for e in layers]


def _count(v: float) -> str:
    return f"{v:,.0f}"


def latency_chart(data: dict) -> tuple[str, str]:
    """Cycles per layer (an HLS estimate; a Verilog layer's pipeline stages), and what the
    total has beyond the layers' sum (quantizers, streams, the output register)."""
    verilog = data.get("backend") == "verilog"
    key = "stages" if verilog else "latency_cycles"
    layers = [e for e in data["layers"] if key in e]
    names, values = _names(layers), [e[key] for e in layers]
    rest = data["total"]["latency_cycles"] - sum(values)
    if rest > 0:
        names.append("rest of the design")
        values.append(rest)
    svg = bar_chart(names, [Panel([Series(values, PALETTE["latency"], texts=[f"{v:g}" for v in values])])],
                    x_label="pipeline stages (cycles)" if verilog else "latency (cycles)", title="latency per layer")
    t = data["total"]
    caption = (f"Latency {t['latency_cycles']} cycles = {t['latency_ns']:g} ns at {data['clock_ns']:g} ns, "
               f"II {t['ii']}. ")
    caption += ("Each layer's pipeline stages in the generated design; the rest is the input and output registers."
                if verilog else
                "fpgaq's estimate per layer; the rest is what lies outside the dense layers "
                "(quantizers, activations, streams)." if rest > 0 else "fpgaq's estimate per layer.")
    if data.get("io") == "io_stream":
        caption += " In io_stream the stages overlap: the latency is that of a frame through them."
    return svg, caption


def resource_chart(data: dict) -> tuple[str, str]:
    """LUT, FF, DSP and BRAM per layer (HLS estimate), or adders and adder bits (Verilog)."""
    layers = data["layers"]
    names = _names(layers)
    if data.get("backend") == "verilog":
        keys = [("adders", "adders"), ("adder_bits", "adder bits (about a LUT each)")]
        extra: dict[str, float] = {}
        caption = ("Counted from the generated Verilog: constant products are shift-and-add, so adders "
                   "and their bits are its cost. `fpgaq synth DIR` counts LUTs with yosys.")
    else:
        keys = [("lut", "LUT"), ("ff", "FF"), ("dsp", "DSP"), ("bram", "BRAM")]
        extra = {k: max(data["total"][k] - sum(e.get(k, 0) for e in layers), 0) for k, _ in keys}
        caption = "fpgaq's estimates, not synthesis."
        if any(extra.values()):
            names = [*names, "rest of the design"]
            caption += (" The rest: what lies outside the dense layers (quantizers, activations"
                        + (", the streams' FIFOs)." if data.get("fifos") else ")."))
        else:
            extra = {}
    panels = []
    for key, label in keys:
        values = [e.get(key, 0) for e in layers] + ([max(extra.get(key, 0), 0)] if extra else [])
        panels.append(Panel([Series(values, PALETTE[key], texts=[_count(v) for v in values])],
                            title=f"{label}: {sum(values):,}"))
    width = 172 if len(keys) > 2 else 250
    return bar_chart(names, panels, panel_px=width, title="resources per layer"), caption


def sparsity_chart(data: dict) -> tuple[str, str] | None:
    """Non-zero and zero weights of each layer that has weights."""
    layers = [e for e in data["layers"] if e.get("weights")]
    if not layers:
        return None
    names = _names(layers)
    nz = [e["nonzero"] for e in layers]
    zero = [e["weights"] - e["nonzero"] for e in layers]
    texts = [f"{a:,} of {a + b:,} ({100 * a / (a + b):.0f}%)" for a, b in zip(nz, zero)]
    svg = bar_chart(names, [Panel([Series(nz, PALETTE["nonzero"], "non-zero"), Series(zero, ZERO, "zero", texts=texts)],
                                  stacked=True, span=1.4)], legend=True, title="weights per layer")
    t = data["total"]
    return svg, (f"{t['nonzero']:,} of {t['weights']:,} weights non-zero "
                 f"({100 * t['nonzero'] / max(t['weights'], 1):.1f}%): only those cost logic.")


MAP_PIXELS = 400          # a heat-map larger than this on a side shows blocks, shaded by their share


def heat_maps(masks: dict[str, np.ndarray]) -> list[str]:
    """A map of each dense layer's non-zero weights (rows: outputs, columns: inputs): a PNG
    (a pixel a weight, or a block of them on a large layer), inline, scaled without smoothing."""
    out = []
    for name, mask in list(masks.items())[:MAX_MAPS]:
        rows, cols = mask.shape
        block = -(-max(rows, cols) // MAP_PIXELS)
        share = mask.astype(np.float64)
        if block > 1:           # the share of non-zero weights in each block
            padded = np.zeros((-(-rows // block) * block, -(-cols // block) * block))
            padded[:rows, :cols] = share
            share = padded.reshape(padded.shape[0] // block, block, -1, block).mean(axis=(1, 3))
        image = png(shade(share, ZERO, PALETTE["nonzero"]))
        width = 260
        height = int(np.clip(round(width * rows / max(cols, 1)), 24, 360))
        nz = int(mask.sum())
        note = f"; a pixel a {block} x {block} block, darker where more are non-zero" if block > 1 else ""
        out.append(f'<figure class="map"><div class="maptitle">{html.escape(name)}</div>'
                   f'<img alt="non-zero weights of {html.escape(name)}" width="{width}" height="{height}" '
                   f'src="data:image/png;base64,{base64.b64encode(image).decode()}" />'
                   f"<figcaption>{rows} outputs x {cols} inputs: {nz:,} of {mask.size:,} non-zero "
                   f"({100 * nz / max(mask.size, 1):.0f}%){note}</figcaption></figure>")
    return out


_AP = re.compile(r"ap_u?fixed<(\d+),(-?\d+)>")


def accumulator_chart(data: dict) -> tuple[str, str] | None:
    """Each dense layer's accumulator width: fpgaq's exact one, and hls4ml's default and 'auto'."""
    layers = [e for e in data["layers"] if "hls4ml_accumulator" in e]
    if not layers:
        return None
    names = _names(layers)
    series = [Series([e["accumulator"]["width"] for e in layers], PALETTE["fpgaq"], "fpgaq (exact)",
                     texts=[f"{e['accumulator']['width']} bits" for e in layers])]
    for key, label in (("auto", "hls4ml 'auto'"), ("default", "hls4ml default")):
        h = [e["hls4ml_accumulator"] for e in layers]
        widths = [int(m.group(1)) if (m := _AP.match(x[key])) else 0 for x in h]
        overflows = [bool(x[f"{key}_overflows"]) for x in h]
        series.append(Series(widths, PALETTE[key], label, outlined=overflows,
                             texts=[f"{w} bits" + (", overflows" if o else "") for w, o in zip(widths, overflows)],
                             text_colors=[PALETTE["overflow"] if o else INK for o in overflows]))
    svg = bar_chart(names, [Panel(series, span=1.3, extra=2)], legend=True, outline_color=PALETTE["overflow"],
                    title="accumulator widths")
    return svg, ("fpgaq's accumulators hold each layer's exact range, no more; hls4ml's would be as "
                 "wide as shown, and 'overflows' where they cannot hold that range exactly.")


def weight_masks(graph: Graph) -> dict[str, np.ndarray]:
    """Where each dense layer of the compiled graph has non-zero weights (outputs x inputs)."""
    return {n.name: np.asarray(n.op.weight) != 0 for n in graph.nodes
            if isinstance(n.op, Dense) and n.op.weight.size}


# --- report.md as HTML -------------------------------------------------------------------------

def _inline(text: str) -> str:
    """Markdown's **bold** and `code` in escaped text."""
    text = html.escape(text, quote=False)
    text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def markdown_blocks(md: str) -> list[tuple[str, object]]:
    """report.md's blocks: ("h1"|"h2"|"p", text), ("ul", items), ("table", (head, aligns, rows))."""
    blocks: list[tuple[str, object]] = []
    lines = md.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("## "):
            blocks.append(("h2", line[3:]))
            i += 1
        elif line.startswith("# "):
            blocks.append(("h1", line[2:]))
            i += 1
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(_cells(lines[i]))
                i += 1
            aligns = ["r" if c.endswith(":") else "" for c in rows[1]] if len(rows) > 1 else []
            blocks.append(("table", (rows[0], aligns, rows[2:])))
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(lines[i][2:])
                i += 1
            blocks.append(("ul", items))
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not lines[i].startswith(("|", "- ", "#")):
                para.append(lines[i])
                i += 1
            blocks.append(("p", " ".join(para)))
    return blocks


def _block_html(kind: str, body) -> str:
    if kind in ("h1", "h2", "p"):
        return f"<{kind}>{_inline(body)}</{kind}>"
    if kind == "ul":
        return "<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in body) + "</ul>"
    head, aligns, rows = body

    def cls(j: int) -> str:
        return ' class="r"' if j < len(aligns) and aligns[j] else ""
    out = ['<div class="scroll"><table><thead><tr>']
    out += [f"<th{cls(j)}>{_inline(h)}</th>" for j, h in enumerate(head)]
    out.append("</tr></thead><tbody>")
    for r in rows:
        out.append("<tr>" + "".join(f"<td{cls(j)}>{_inline(x)}</td>" for j, x in enumerate(r)) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


# --- the page ----------------------------------------------------------------------------------

def _card(label: str, value: str, sub: str = "") -> str:
    return (f'<div class="card"><div class="label">{html.escape(label)}</div>'
            f'<div class="value">{html.escape(value)}</div>'
            + (f'<div class="sub">{html.escape(sub)}</div>' if sub else "") + "</div>")


def summary_cards(data: dict) -> str:
    t = data["total"]
    share = f"{100 * t['nonzero'] / max(t['weights'], 1):.1f}% of {t['weights']:,}"
    cards = [("latency", f"{t['latency_cycles']} cycles", f"{t['latency_ns']:g} ns at {data['clock_ns']:g} ns"),
             ("II", f"{t['ii']}", "cycles between " + ("frames" if data.get("io") == "io_stream" else "inputs")),
             ("non-zero weights", f"{t['nonzero']:,}", share)]
    if data.get("backend") == "verilog":
        cards += [("adders", f"{t['adders']:,}", f"at most {data['adder_budget']:g} in a row"),
                  ("adder bits", f"{t['adder_bits']:,}", "about a LUT each"),
                  ("FF", f"{t['ff']:,}", "pipeline register bits"), ("DSP", f"{t['dsp']:,}", "")]
    else:
        cards += [("multipliers", f"{t['multipliers']:,}", ""), ("LUT", f"{t['lut']:,}", "estimate"),
                  ("FF", f"{t['ff']:,}", "estimate"), ("DSP", f"{t['dsp']:,}", "estimate"),
                  ("BRAM", f"{t['bram']:,}", "estimate")]
    return '<div class="cards">' + "".join(_card(*c) for c in cards) + "</div>"


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{_inline(caption)}</figcaption></figure>"


def _section(ident: str, title: str, parts: Iterable[str]) -> list[str]:
    return [f'<section id="{ident}"><h2>{html.escape(title)}</h2>', *parts, "</section>"]


def report_html(data: dict, masks: dict[str, np.ndarray] | None = None) -> str:
    """The page for report data `data` (report.json), with a heat-map for each dense layer's
    non-zero weights in `masks` ({layer name: boolean matrix (outputs, inputs)})."""
    blocks = markdown_blocks(report_markdown(data))
    first_table = next((k for k, (kind, _) in enumerate(blocks) if kind == "table"), len(blocks))
    head, layer_table, rest = blocks[:first_table], blocks[first_table:first_table + 1], blocks[first_table + 1:]
    title = f"fpgaq report: {data['model']}"
    where = (f"Verilog design at {data['clock_ns']:g} ns" if data.get("backend") == "verilog"
             else f"Vitis HLS, part {data['part']} at {data['clock_ns']:g} ns")
    page = ['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8" />',
            '<meta name="viewport" content="width=device-width, initial-scale=1" />',
            f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body>", "<main>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p class="note">{html.escape(where)}, {data.get("io", "io_parallel")}.</p>',
            summary_cards(data)]
    page += _section("latency", "Where the latency goes", [_figure(*latency_chart(data))])
    page += _section("resources", "Where the resources go", [_figure(*resource_chart(data))])
    sparsity = sparsity_chart(data)
    if sparsity is not None:
        maps = heat_maps(masks or {})
        which = "each" if len(masks or {}) <= MAX_MAPS else f"the first {MAX_MAPS}"
        page += _section("sparsity", "Sparsity", [
            _figure(*sparsity),
            *([f'<p class="note">Non-zero weights of {which} dense layer as compiled (blue: non-zero; '
               "rows: outputs, columns: inputs).</p>", '<div class="maps">',
               *maps, "</div>"] if maps else [])])
    acc = accumulator_chart(data)
    if acc is not None:
        page += _section("accumulators", "Accumulators against hls4ml's", [_figure(*acc)])
    page += _section("report", "The report", [_block_html(k, b) for k, b in head if k != "h1"])
    page += _section("layers", "Per layer", [_block_html(k, b) for k, b in layer_table])
    page += [_block_html(k, b) for k, b in rest]
    page += ["</main>", "</body>", "</html>", ""]
    return "\n".join(page)
