"""report.html: the report of a project (report.json's data) as one self-contained page, with
charts of where the latency and the resources go, the sparsity of each layer (a heat-map of
each dense layer's non-zero weights) and the accumulators beside hls4ml's, then report.md's
tables and sections.

The charts are matplotlib SVG, inline: no script, no network, nothing beside the file. The same
data give a byte-identical file (a fixed hash salt for the SVG ids, a different one a chart so
no two share an id; no date in the SVG metadata; text as text, not as glyph paths).
"""
from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Iterable

import numpy as np

from .ir.graph import Graph
from .ir.ops import Dense
from .report import report_markdown

REPORT_HTML = "report.html"
MAX_MAPS = 32           # heat-maps of the first dense layers; a deeper network's others are left out

INK, MUTED, ZERO = "#1f2937", "#6b7280", "#e5e7eb"
PALETTE = {"latency": "#2563eb", "lut": "#059669", "ff": "#7c3aed", "dsp": "#dc2626", "bram": "#d97706",
           "adders": "#059669", "adder_bits": "#0d9488", "nonzero": "#2563eb", "fpgaq": "#2563eb",
           "auto": "#9ca3af", "default": "#d1d5db", "overflow": "#dc2626"}

RC = {"svg.fonttype": "none", "font.family": "DejaVu Sans", "font.size": 9, "axes.titlesize": 10,
      "axes.titleweight": "bold", "axes.spines.top": False, "axes.spines.right": False,
      "axes.edgecolor": MUTED, "axes.labelcolor": INK, "xtick.color": MUTED, "ytick.color": INK,
      "text.color": INK, "svg.image_inline": True, "figure.dpi": 72}

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


def _matplotlib():
    try:
        import matplotlib
        import matplotlib.colors
        import matplotlib.image
        from matplotlib.figure import Figure
    except ImportError:
        from .errors import ToolError
        raise ToolError("report.html's charts need matplotlib; install it with `pip install matplotlib` "
                        "(it is one of fpgaq's dependencies: `pip install fpgaq` brings it)") from None
    return matplotlib, Figure


class _Charts:
    """Figures drawn to inline SVG, each with its own hash salt (ids unique in the page)."""

    def __init__(self) -> None:
        self.matplotlib, self.Figure = _matplotlib()
        self.count = 0

    def figure(self, width: float, height: float, names: list[str], top: float = 0.1, bottom: float = 0.1,
               wspace: float = 0.08):
        """A figure whose plots are `width` x `height` inches, with room on the left for the
        labels `names` and `top` / `bottom` inches for titles, legends and axis labels (a fixed
        layout: "tight" would draw every chart twice)."""
        left = 0.15 + 0.068 * max((len(n) for n in names), default=4)
        w, h = width + left + 0.1, height + top + bottom
        fig = self.Figure(figsize=(w, h))
        fig.subplots_adjust(left=left / w, right=1 - 0.1 / w, top=1 - top / h, bottom=bottom / h, wspace=wspace)
        return fig

    def svg(self, fig) -> str:
        self.count += 1
        buf = io.StringIO()
        with self.matplotlib.rc_context({"svg.hashsalt": f"fpgaq-report-{self.count}"}):
            fig.savefig(buf, format="svg", metadata={"Date": None})
        text = buf.getvalue()
        return _prefix_ids(text[text.index("<svg"):].strip(), f"c{self.count}-")


def _prefix_ids(svg: str, prefix: str) -> str:
    """Every id of one chart (matplotlib numbers its groups from 1 in each figure) and every
    reference to one, prefixed: no two charts of the page share an id."""
    svg = re.sub(r'\bid="([^"]+)"', lambda m: f'id="{prefix}{m.group(1)}"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", lambda m: f"url(#{prefix}{m.group(1)})", svg)
    return re.sub(r'((?:xlink:)?href)="#([^"]+)"', lambda m: f'{m.group(1)}="#{prefix}{m.group(2)}"', svg)


def _names(layers: list[dict]) -> list[str]:
    return [e["name"] for e in layers]


def _bars(ax, names: list[str], values: list[float], color: str, fmt=lambda v: f"{v:,.0f}",
          invert: bool = True) -> None:
    """Horizontal bars, the first layer on top, each labelled with its value (`invert`: False
    for an axis that shares its y with one already inverted)."""
    y = np.arange(len(names))
    ax.barh(y, values, color=color, height=0.65)
    ax.set_yticks(y, names)
    if invert:
        ax.invert_yaxis()
    top = max(values, default=0) or 1
    ax.set_xlim(0, top * 1.28)
    for i, v in zip(y, values):
        ax.text(v + top * 0.01, i, fmt(v), va="center", fontsize=8, color=INK)
    ax.tick_params(axis="y", length=0)
    ax.set_xticks([])             # each bar says its value; ticks cost most of the drawing
    ax.spines["bottom"].set_visible(False)


def _height(rows: int) -> float:
    return 0.28 * max(rows, 1)


def latency_chart(c: _Charts, data: dict) -> tuple[str, str]:
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
    fig = c.figure(6.0, _height(len(names)), names, bottom=0.4)
    ax = fig.add_subplot()
    _bars(ax, names, values, PALETTE["latency"], fmt=lambda v: f"{v:g}")
    ax.set_xlabel("pipeline stages (cycles)" if verilog else "latency (cycles)")
    t = data["total"]
    caption = (f"Latency {t['latency_cycles']} cycles = {t['latency_ns']:g} ns at {data['clock_ns']:g} ns, "
               f"II {t['ii']}. ")
    caption += ("Each layer's pipeline stages in the generated design; the rest is the input and output registers."
                if verilog else
                "fpgaq's estimate per layer; the rest is what lies outside the dense layers "
                "(quantizers, activations, streams)." if rest > 0 else "fpgaq's estimate per layer.")
    if data.get("io") == "io_stream":
        caption += " In io_stream the stages overlap: the latency is that of a frame through them."
    return c.svg(fig), caption


def resource_chart(c: _Charts, data: dict) -> tuple[str, str]:
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
    fig = c.figure(min(2.4 * len(keys), 9.6), _height(len(names)), names, top=0.3)
    axes = fig.subplots(1, len(keys), sharey=True)
    for i, (ax, (key, label)) in enumerate(zip(np.atleast_1d(axes), keys)):
        values = [e.get(key, 0) for e in layers] + ([max(extra.get(key, 0), 0)] if extra else [])
        _bars(ax, names, values, PALETTE[key], invert=i == 0)
        ax.set_title(f"{label}: {sum(values):,}", loc="left")
        if i:
            ax.tick_params(axis="y", labelleft=False)
    return c.svg(fig), caption


def sparsity_chart(c: _Charts, data: dict) -> tuple[str, str] | None:
    """Non-zero and zero weights of each layer that has weights."""
    layers = [e for e in data["layers"] if e.get("weights")]
    if not layers:
        return None
    names = _names(layers)
    nz = [e["nonzero"] for e in layers]
    zero = [e["weights"] - e["nonzero"] for e in layers]
    y = np.arange(len(names))
    fig = c.figure(6.0, _height(len(names)), names, top=0.3)
    ax = fig.add_subplot()
    ax.barh(y, nz, color=PALETTE["nonzero"], height=0.65, label="non-zero")
    ax.barh(y, zero, left=nz, color=ZERO, height=0.65, label="zero")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    top = max(a + b for a, b in zip(nz, zero)) or 1
    ax.set_xlim(0, top * 1.4)
    for i, (a, b) in enumerate(zip(nz, zero)):
        ax.text(a + b + top * 0.01, i, f"{a:,} of {a + b:,} ({100 * a / (a + b):.0f}%)", va="center", fontsize=8)
    ax.tick_params(axis="y", length=0)
    ax.set_xticks([])
    ax.spines["bottom"].set_visible(False)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=3, frameon=False, fontsize=8)
    t = data["total"]
    return c.svg(fig), (f"{t['nonzero']:,} of {t['weights']:,} weights non-zero "
                        f"({100 * t['nonzero'] / max(t['weights'], 1):.1f}%): only those cost logic.")


MAP_PIXELS = 400          # a heat-map larger than this on a side shows blocks, shaded by their share


def heat_maps(c: _Charts, masks: dict[str, np.ndarray]) -> list[str]:
    """A map of each dense layer's non-zero weights (rows: outputs, columns: inputs): a PNG
    (a pixel a weight, or a block of them on a large layer), inline, scaled without smoothing."""
    colors = c.matplotlib.colors
    cmap = colors.LinearSegmentedColormap.from_list("fpgaq_nonzero", [ZERO, PALETTE["nonzero"]])
    out = []
    for name, mask in list(masks.items())[:MAX_MAPS]:
        rows, cols = mask.shape
        block = -(-max(rows, cols) // MAP_PIXELS)
        shade = mask.astype(np.float64)
        if block > 1:           # the share of non-zero weights in each block
            padded = np.zeros((-(-rows // block) * block, -(-cols // block) * block))
            padded[:rows, :cols] = shade
            shade = padded.reshape(padded.shape[0] // block, block, -1, block).mean(axis=(1, 3))
        buf = io.BytesIO()
        c.matplotlib.image.imsave(buf, shade, cmap=cmap, vmin=0, vmax=1, format="png",
                                  metadata={"Software": None})
        width = 260
        height = int(np.clip(round(width * rows / max(cols, 1)), 24, 360))
        nz = int(mask.sum())
        note = f"; a pixel a {block} x {block} block, darker where more are non-zero" if block > 1 else ""
        out.append(f'<figure class="map"><div class="maptitle">{html.escape(name)}</div>'
                   f'<img alt="non-zero weights of {html.escape(name)}" width="{width}" height="{height}" '
                   f'src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}" />'
                   f"<figcaption>{rows} outputs x {cols} inputs: {nz:,} of {mask.size:,} non-zero "
                   f"({100 * nz / max(mask.size, 1):.0f}%){note}</figcaption></figure>")
    return out


_AP = re.compile(r"ap_u?fixed<(\d+),(-?\d+)>")


def accumulator_chart(c: _Charts, data: dict) -> tuple[str, str] | None:
    """Each dense layer's accumulator width: fpgaq's exact one, and hls4ml's default and 'auto'."""
    layers = [e for e in data["layers"] if "hls4ml_accumulator" in e]
    if not layers:
        return None
    names = _names(layers)
    series = [("fpgaq (exact)", [e["accumulator"]["width"] for e in layers], [False] * len(layers), "fpgaq")]
    for key, label in (("auto", "hls4ml 'auto'"), ("default", "hls4ml default")):
        h = [e["hls4ml_accumulator"] for e in layers]
        widths = [int(m.group(1)) if (m := _AP.match(x[key])) else 0 for x in h]
        series.append((label, widths, [x[f"{key}_overflows"] for x in h], key))
    y = np.arange(len(names))
    bar = 0.26
    fig = c.figure(6.0, 0.62 * len(names), names, top=0.3)
    ax = fig.add_subplot()
    for k, (label, widths, overflows, color) in enumerate(series):
        pos = y + (k - 1) * bar
        ax.barh(pos, widths, height=bar * 0.92, color=PALETTE[color], label=label,
                edgecolor=[PALETTE["overflow"] if o else "none" for o in overflows], linewidth=1.2)
        for p, w, o in zip(pos, widths, overflows):
            ax.text(w + 0.3, p, f"{w} bits" + (", overflows" if o else ""), va="center", fontsize=7,
                    color=PALETTE["overflow"] if o else INK)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(max(s[1]) for s in series) * 1.3 + 2)
    ax.set_xticks([])
    ax.spines["bottom"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1), ncol=3, frameon=False, fontsize=8)
    return c.svg(fig), ("fpgaq's accumulators hold each layer's exact range, no more; hls4ml's would be as "
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
    c = _Charts()
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
    with c.matplotlib.rc_context(RC):
        page += _section("latency", "Where the latency goes", [_figure(*latency_chart(c, data))])
        page += _section("resources", "Where the resources go", [_figure(*resource_chart(c, data))])
        sparsity = sparsity_chart(c, data)
        if sparsity is not None:
            maps = heat_maps(c, masks or {})
            which = "each" if len(masks or {}) <= MAX_MAPS else f"the first {MAX_MAPS}"
            page += _section("sparsity", "Sparsity", [
                _figure(*sparsity),
                *([f'<p class="note">Non-zero weights of {which} dense layer as compiled (blue: non-zero; '
                   "rows: outputs, columns: inputs).</p>", '<div class="maps">',
                   *maps, "</div>"] if maps else [])])
        acc = accumulator_chart(c, data)
        if acc is not None:
            page += _section("accumulators", "Accumulators against hls4ml's", [_figure(*acc)])
    page += _section("report", "The report", [_block_html(k, b) for k, b in head if k != "h1"])
    page += _section("layers", "Per layer", [_block_html(k, b) for k, b in layer_table])
    page += [_block_html(k, b) for k, b in rest]
    page += ["</main>", "</body>", "</html>", ""]
    return "\n".join(page)
