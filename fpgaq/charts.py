"""Small charts drawn straight to SVG text, and PNG images written with zlib: report.html's
horizontal bar charts and weight maps, with no plotting library to import (a build writes them
every time, so they must cost milliseconds) and the same bytes for the same data.

Text stays text (names escaped), sizes are CSS pixels, coordinates are printed with one
decimal, and nothing depends on fonts installed: label widths are estimated from their length.
"""
from __future__ import annotations

import html
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FONT = "DejaVu Sans, Verdana, Arial, sans-serif"
INK, MUTED = "#1f2937", "#6b7280"
CHAR_PX = 6.6          # a label character at 11 px, a generous average
ROW_PX = 22            # a layer's band
BAR_PX = 14            # a bar's thickness (grouped bars: GROUP_BAR_PX each)
GROUP_BAR_PX = 12


@dataclass
class Series:
    """One bar a row: values, a colour, and optionally a legend label, the text after each bar
    (its colour), and which bars get a red outline."""
    values: Sequence[float]
    color: str
    label: str = ""
    texts: Sequence[str] | None = None
    text_colors: Sequence[str] | None = None
    outlined: Sequence[bool] | None = None


@dataclass
class Panel:
    """Bars of one or more series a row, side by side (grouped) or end to end (stacked); the
    axis runs to `span` times the longest row."""
    series: list[Series]
    title: str = ""
    stacked: bool = False
    span: float = 1.28
    extra: float = 0.0                    # added to the axis length (room for a short bar's text)


def _f(v: float) -> str:
    """A coordinate: one decimal, no '-0.0', no trailing '.0'."""
    s = f"{v:.1f}"
    s = "0.0" if s == "-0.0" else s
    return s[:-2] if s.endswith(".0") else s


def _text(x: float, y: float, s: str, size: int = 11, color: str = INK, anchor: str = "start",
          weight: str = "") -> str:
    w = f' font-weight="{weight}"' if weight else ""
    return (f'<text x="{_f(x)}" y="{_f(y)}" font-size="{size}" fill="{color}" text-anchor="{anchor}"'
            f'{w} dy="0.35em">{html.escape(s, quote=False)}</text>')


def _rect(x: float, y: float, w: float, h: float, color: str, outline: str = "") -> str:
    stroke = f' stroke="{outline}" stroke-width="1.5"' if outline else ""
    return f'<rect x="{_f(x)}" y="{_f(y)}" width="{_f(max(w, 0.0))}" height="{_f(h)}" fill="{color}"{stroke}/>'


def bar_chart(names: Sequence[str], panels: Sequence[Panel], panel_px: float = 430, x_label: str = "",
              legend: bool = False, outline_color: str = "#dc2626", title: str = "") -> str:
    """Horizontal bars, a row a name (the first on top), one panel beside the other sharing the
    names on the left; a legend above of every labelled series; an axis label below."""
    n = max(len(names), 1)
    label_px = 12 + CHAR_PX * max((len(s) for s in names), default=4)
    groups = max((len(p.series) if not p.stacked else 1) for p in panels)
    band = ROW_PX if groups == 1 else GROUP_BAR_PX * groups + 10
    top = 6 + (20 if any(p.title for p in panels) else 0) + (20 if legend else 0)
    plot_h = band * n
    height = top + plot_h + 8 + (20 if x_label else 0)
    gap = 18
    width = label_px + len(panels) * panel_px + (len(panels) - 1) * gap + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
           f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{FONT}" role="img"'
           + (f' aria-label="{html.escape(title)}"' if title else "") + ">",
           _rect(0, 0, width, height, "#ffffff")]
    if legend:
        x = label_px
        for s in (s for p in panels for s in p.series if s.label):
            out.append(_rect(x, 6 + (20 if any(p.title for p in panels) else 0) + 3, 10, 10, s.color))
            out.append(_text(x + 14, 6 + (20 if any(p.title for p in panels) else 0) + 8, s.label, 11))
            x += 14 + CHAR_PX * len(s.label) + 16
    for k, p in enumerate(panels):
        x0 = label_px + k * (panel_px + gap)
        if p.title:
            out.append(_text(x0, 6 + 9, p.title, 12, INK, weight="bold"))
        totals = [sum(s.values[i] for s in p.series) if p.stacked else max(s.values[i] for s in p.series)
                  for i in range(len(names))]
        axis = (max(totals, default=0) or 1) * p.span + p.extra
        scale = (panel_px - 4) / axis
        for i in range(len(names)):
            y_band = top + i * band
            left = 0.0
            for j, s in enumerate(p.series):
                v = float(s.values[i])
                if p.stacked:
                    y, h, x = y_band + (band - BAR_PX) / 2, BAR_PX, x0 + left * scale
                    left += v
                elif len(p.series) == 1:
                    y, h, x = y_band + (band - BAR_PX) / 2, BAR_PX, x0
                else:
                    y, h, x = y_band + 5 + j * GROUP_BAR_PX, GROUP_BAR_PX - 1, x0
                outline = outline_color if s.outlined is not None and s.outlined[i] else ""
                out.append(_rect(x, y, v * scale, h, s.color, outline))
                if s.texts is not None:
                    end = x0 + (left if p.stacked else v) * scale
                    color = s.text_colors[i] if s.text_colors is not None else INK
                    out.append(_text(end + 4, y + h / 2, s.texts[i], 10 if len(p.series) > 1 else 11, color))
        out.append(f'<line x1="{_f(x0)}" y1="{_f(top)}" x2="{_f(x0)}" y2="{_f(top + plot_h)}" stroke="{MUTED}" '
                   'stroke-width="1"/>')
    for i, name in enumerate(names):
        out.append(_text(label_px - 6, top + i * band + band / 2, name, 11, INK, anchor="end"))
    if x_label:
        out.append(_text(label_px + (width - label_px) / 2, top + plot_h + 16, x_label, 11, INK, anchor="middle"))
    out.append("</svg>")
    return "\n".join(out)


def png(rgb: np.ndarray) -> bytes:
    """An 8-bit RGB PNG of an (height, width, 3) array of 0..255 (no date, no text chunks)."""
    h, w, _ = rgb.shape
    raw = np.zeros((h, 1 + 3 * w), dtype=np.uint8)              # filter type 0 a row
    raw[:, 1:] = np.asarray(rgb, dtype=np.uint8).reshape(h, 3 * w)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + chunk(b"IEND", b""))


def shade(values: np.ndarray, low: str, high: str) -> np.ndarray:
    """RGB of values in [0, 1], linearly from colour `low` to `high` ('#rrggbb')."""
    a, b = (np.array([int(c[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.float64) for c in (low, high))
    v = np.clip(np.asarray(values, dtype=np.float64), 0, 1)[..., None]
    return np.rint(a + (b - a) * v).astype(np.uint8)
