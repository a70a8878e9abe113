"""Charts for the web pages as inline SVG, drawn on the server (no JavaScript, no CDN).

Both charts scale to the page width (a viewBox, width 100%), so they read on a phone. Every
text that goes into the SVG is escaped: labels come from the database.
"""

from __future__ import annotations

import math
from html import escape

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _tick(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def nice_max(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    base = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * base >= value:
            return step * base
    return 10 * base


def bar_chart(labels: list[str], values: list[float], title: str, y_label: str,
              highlight: set[int] | None = None, width: int = 640, height: int = 300) -> str:
    """Vertical bars, one per label, in the order given; bars whose index is in `highlight`
    are drawn in the second colour (the legend says what they are)."""
    left, right, top, bottom = 48, 10, 28, 84
    plot_w, plot_h = width - left - right, height - top - bottom
    top_value = nice_max(max(values, default=0))
    n = max(len(values), 1)
    step = plot_w / n
    parts = [_open(width, height, title), _title(width, title), _y_axis(left, top, plot_w, plot_h, top_value, y_label)]
    for i, (label, value) in enumerate(zip(labels, values)):
        h = plot_h * value / top_value
        x = left + i * step + step * 0.1
        colour = COLOURS[1] if highlight and i in highlight else COLOURS[0]
        parts.append(f'<rect class="bar" x="{_num(x)}" y="{_num(top + plot_h - h)}" width="{_num(step * 0.8)}" '
                     f'height="{_num(h)}" fill="{colour}"><title>{escape(label)}: {_tick(value)}</title></rect>')
        if n <= 40:
            cx, cy = x + step * 0.4, top + plot_h + 6
            short = label if len(label) <= 14 else label[:13] + "…"
            parts.append(f'<text x="{_num(cx)}" y="{_num(cy)}" font-size="9" text-anchor="end" '
                         f'transform="rotate(-60 {_num(cx)} {_num(cy)})">{escape(short)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(x: list[float], series: dict[str, list[float | None]], title: str, x_label: str,
               width: int = 640, height: int = 320) -> str:
    """One line per series over x (None values leave a gap), with a legend under the plot."""
    rows = math.ceil(len(series) / 3)
    left, right, top, bottom = 48, 10, 28, 44 + 16 * rows
    plot_w, plot_h = width - left - right, height - top - bottom
    finite = [v for vs in series.values() for v in vs if v is not None and math.isfinite(v)]
    top_value = nice_max(max(finite, default=0))
    x0, x1 = (min(x), max(x)) if x else (0, 1)
    span = (x1 - x0) or 1

    def px(value: float) -> float:
        return left + plot_w * (value - x0) / span

    def py(value: float) -> float:
        return top + plot_h - plot_h * value / top_value

    parts = [_open(width, height, title), _title(width, title), _y_axis(left, top, plot_w, plot_h, top_value, "")]
    for value in sorted({x0, x1, x0 + span / 2}):
        parts.append(f'<text x="{_num(px(value))}" y="{top + plot_h + 14}" font-size="10" '
                     f'text-anchor="middle">{_tick(value)}</text>')
    parts.append(f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h + 28}" font-size="11" '
                 f'text-anchor="middle">{escape(x_label)}</text>')
    for j, (name, values) in enumerate(series.items()):
        colour = COLOURS[j % len(COLOURS)]
        points = [(px(a), py(b)) for a, b in zip(x, values) if b is not None and math.isfinite(b)]
        path = " ".join(f"{_num(a)},{_num(b)}" for a, b in points)
        parts.append(f'<polyline class="line" data-series="{escape(name)}" points="{path}" fill="none" '
                     f'stroke="{colour}" stroke-width="2"/>')
        if len(points) <= 30:
            parts.extend(f'<circle cx="{_num(a)}" cy="{_num(b)}" r="2.5" fill="{colour}"/>' for a, b in points)
        lx, ly = left + (j % 3) * (plot_w / 3), top + plot_h + 44 + 16 * (j // 3)
        parts.append(f'<rect x="{_num(lx)}" y="{_num(ly - 8)}" width="10" height="10" fill="{colour}"/>'
                     f'<text x="{_num(lx + 14)}" y="{_num(ly + 1)}" font-size="11">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _open(width: int, height: int, title: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
            f'role="img" aria-label="{escape(title)}" class="chart">')


def _title(width: int, title: str) -> str:
    return f'<text x="{width / 2:.0f}" y="16" font-size="13" text-anchor="middle" font-weight="bold">{escape(title)}</text>'


def _y_axis(left: int, top: int, plot_w: float, plot_h: float, top_value: float, label: str) -> str:
    parts = []
    for i in range(5):
        value = top_value * i / 4
        y = top + plot_h - plot_h * i / 4
        parts.append(f'<line x1="{left}" x2="{_num(left + plot_w)}" y1="{_num(y)}" y2="{_num(y)}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{_num(y + 3)}" font-size="10" text-anchor="end">{_tick(value)}</text>')
    parts.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{_num(top + plot_h)}" stroke="#333"/>'
                 f'<line x1="{left}" x2="{_num(left + plot_w)}" y1="{_num(top + plot_h)}" '
                 f'y2="{_num(top + plot_h)}" stroke="#333"/>')
    if label:
        parts.append(f'<text x="12" y="{_num(top + plot_h / 2)}" font-size="11" text-anchor="middle" '
                     f'transform="rotate(-90 12 {_num(top + plot_h / 2)})">{escape(label)}</text>')
    return "".join(parts)
