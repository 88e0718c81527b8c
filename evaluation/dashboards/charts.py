"""Server-side chart geometry (no Django, no JavaScript): each function returns a Chart of SVG primitives that
the template evaluation/metrics/_chart.html draws with autoescaping, so label names (user text) never
reach the page unescaped.

Chart kinds: horizontal bars, histogram, heatmap, line chart, interval (dot-and-whisker) chart and grouped
bars.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

PALETTE = ["#2f5bea", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0ea5e9", "#ec4899", "#84cc16"]
INK, MUTED, GRID = "#1d2330", "#6b7280", "#e5e7eb"


@dataclass
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str = ""


@dataclass
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    stroke: str = GRID
    width: float = 1.0
    dash: str = ""


@dataclass
class Text:
    x: float
    y: float
    text: str
    anchor: str = "start"
    size: int = 12
    fill: str = INK
    weight: str = "normal"


@dataclass
class Circle:
    cx: float
    cy: float
    r: float
    fill: str
    title: str = ""


@dataclass
class Chart:
    width: int
    height: int
    title: str
    rects: list[Rect] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    texts: list[Text] = field(default_factory=list)
    circles: list[Circle] = field(default_factory=list)
    polylines: list[tuple[str, str]] = field(default_factory=list)  # (points, stroke)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (name, colour)

    @property
    def is_empty(self) -> bool:
        return not (self.rects or self.circles or self.polylines)


def _format(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    return f"{value:.{digits}f}"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def _truncate(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bar_chart(
    categories: Sequence[str], values: Sequence[float], *, title: str, width: int = 560, digits: int = 0
) -> Chart:
    """Horizontal bars, one per category, with the value at the end of each bar."""
    row, left, right, top = 24, 170, 60, 10
    chart = Chart(width, top + row * len(categories) + 10, title)
    scale = (width - left - right) / _nice_max(max(values, default=0))
    for i, (name, value) in enumerate(zip(categories, values, strict=True)):
        y = top + i * row
        chart.texts.append(Text(left - 8, y + 16, _truncate(str(name)), anchor="end"))
        chart.rects.append(
            Rect(
                left, y + 4, max(1.0, value * scale), row - 8, PALETTE[0], f"{name}: {_format(value, digits)}"
            )
        )
        chart.texts.append(Text(left + value * scale + 6, y + 16, _format(value, digits), fill=MUTED))
    return chart


def histogram(
    edges: Sequence[float],
    counts: Sequence[int],
    *,
    title: str,
    width: int = 560,
    height: int = 200,
    colour: str = PALETTE[0],
) -> Chart:
    """Vertical bars over bins [edges[i], edges[i+1]). No values at all is an empty chart (the template says "No
    data yet"), not a frame of zero-height bars."""
    left, right, top, bottom = 44, 12, 10, 34
    chart = Chart(width, height, title)
    if not any(counts):
        return chart
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max(counts, default=0))
    for tick in (0, peak / 2, peak):
        y = top + plot_h - tick / peak * plot_h
        chart.lines.append(Line(left, y, width - right, y))
        chart.texts.append(
            Text(
                left - 6,
                y + 4,
                _format(tick, 0 if float(tick).is_integer() else 1),
                anchor="end",
                size=11,
                fill=MUTED,
            )
        )
    bar_w = plot_w / max(1, len(counts))
    for i, count in enumerate(counts):
        h = count / peak * plot_h
        label = f"{_format(edges[i])}–{_format(edges[i + 1])}: {count}"
        chart.rects.append(Rect(left + i * bar_w + 1, top + plot_h - h, bar_w - 2, h, colour, label))
    for i in range(0, len(edges), max(1, len(edges) // 6)):
        chart.texts.append(
            Text(left + i * bar_w, height - 14, _format(edges[i]), anchor="middle", size=11, fill=MUTED)
        )
    return chart


def heatmap(
    matrix: Sequence[Sequence[float]],
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    *,
    title: str,
    row_title: str = "",
    column_title: str = "",
) -> Chart:
    """Cells shaded by count relative to the row total (so each row reads as "where did these go")."""
    cell, left, top = 56, 150, 64
    n_rows, n_cols = len(row_labels), len(column_labels)
    chart = Chart(left + cell * n_cols + 20, top + cell * n_rows + 16, title)
    if column_title:
        chart.texts.append(
            Text(left + cell * n_cols / 2, 14, column_title, anchor="middle", fill=MUTED, weight="bold")
        )
    if row_title:
        chart.texts.append(Text(8, top - 10, row_title, fill=MUTED, weight="bold"))
    for j, name in enumerate(column_labels):
        chart.texts.append(
            Text(left + j * cell + cell / 2, top - 10, _truncate(str(name), 9), anchor="middle", size=11)
        )
    for i, name in enumerate(row_labels):
        row_total = sum(matrix[i]) or 1
        chart.texts.append(
            Text(left - 8, top + i * cell + cell / 2 + 4, _truncate(str(name), 20), anchor="end")
        )
        for j in range(n_cols):
            value = matrix[i][j]
            share = value / row_total
            colour = f"rgba(47, 91, 234, {0.06 + 0.9 * share:.3f})"
            tooltip = f"{row_labels[i]} → {column_labels[j]}: {_format(value, 0)} ({share:.0%} of row)"
            chart.rects.append(
                Rect(left + j * cell + 1, top + i * cell + 1, cell - 2, cell - 2, colour, tooltip)
            )
            chart.texts.append(
                Text(
                    left + j * cell + cell / 2,
                    top + i * cell + cell / 2 + 4,
                    _format(value, 0),
                    anchor="middle",
                    fill="#fff" if share > 0.55 else INK,
                    weight="bold" if i == j else "normal",
                )
            )
    return chart


def line_chart(
    x_labels: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    width: int = 560,
    height: int = 220,
    y_min: float | None = None,
    y_max: float | None = None,
) -> Chart:
    """One polyline per series; None values break nothing (they are skipped)."""
    left, right, top, bottom = 44, 12, 10, 40
    chart = Chart(width, height, title)
    values = [v for vs in series.values() for v in vs if v is not None]
    low = y_min if y_min is not None else min(values, default=0.0)
    high = y_max if y_max is not None else max(values, default=1.0)
    if high <= low:
        high = low + 1
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(1, len(x_labels) - 1)

    def point(i: int, v: float) -> tuple[float, float]:
        return left + i / n * plot_w, top + plot_h - (v - low) / (high - low) * plot_h

    for k in range(5):
        tick = low + (high - low) * k / 4
        y = point(0, tick)[1]
        chart.lines.append(Line(left, y, width - right, y))
        chart.texts.append(Text(left - 6, y + 4, _format(tick), anchor="end", size=11, fill=MUTED))
    for i in range(0, len(x_labels), max(1, len(x_labels) // 6)):
        chart.texts.append(
            Text(point(i, low)[0], height - 20, str(x_labels[i]), anchor="middle", size=11, fill=MUTED)
        )
    for s, (name, vs) in enumerate(series.items()):
        colour = PALETTE[s % len(PALETTE)]
        points = [(i, v) for i, v in enumerate(vs) if v is not None]
        chart.polylines.append(
            (" ".join(f"{x:.1f},{y:.1f}" for x, y in (point(i, v) for i, v in points)), colour)
        )
        for i, v in points:
            x, y = point(i, v)
            chart.circles.append(Circle(x, y, 3, colour, f"{name} {x_labels[i]}: {_format(v)}"))
        chart.legend.append((name, colour))
    return chart


def interval_chart(
    rows: Sequence[tuple[str, float, float, float]],
    *,
    title: str,
    width: int = 560,
    x_min: float | None = None,
    x_max: float | None = None,
) -> Chart:
    """Leaderboard: a dot per player at its rating with a whisker over its interval, best at the top.
    The axis spans the intervals (padded) unless x_min/x_max fix it (e.g. 0–100 for percentages)."""
    row, left, right, top = 28, 170, 70, 24
    chart = Chart(width, top + row * len(rows) + 14, title)
    if not rows:
        return chart
    low = min(r[2] for r in rows)
    high = max(r[3] for r in rows)
    pad = max(5.0, (high - low) * 0.08)
    low = x_min if x_min is not None else low - pad
    high = x_max if x_max is not None else high + pad
    plot_w = width - left - right

    def x_of(value: float) -> float:
        return left + (value - low) / (high - low) * plot_w

    for k in range(5):
        tick = low + (high - low) * k / 4
        chart.lines.append(Line(x_of(tick), top - 4, x_of(tick), top + row * len(rows)))
        chart.texts.append(
            Text(x_of(tick), 12, _format(round(tick), 0), anchor="middle", size=11, fill=MUTED)
        )
    for i, (name, value, lo, hi) in enumerate(rows):
        y = top + i * row + row / 2
        chart.texts.append(Text(left - 8, y + 4, _truncate(str(name)), anchor="end"))
        chart.lines.append(Line(x_of(lo), y, x_of(hi), y, stroke=PALETTE[0], width=2))
        chart.lines.append(Line(x_of(lo), y - 5, x_of(lo), y + 5, stroke=PALETTE[0], width=2))
        chart.lines.append(Line(x_of(hi), y - 5, x_of(hi), y + 5, stroke=PALETTE[0], width=2))
        chart.circles.append(
            Circle(x_of(value), y, 5, PALETTE[1], f"{name}: {value:.1f} [{lo:.1f}, {hi:.1f}]")
        )
        chart.texts.append(Text(width - right + 8, y + 4, f"{value:.0f}", fill=MUTED))
    return chart


def grouped_bar_chart(
    categories: Sequence[str],
    series: dict[str, Sequence[float | None]],
    *,
    title: str,
    width: int = 560,
    height: int = 240,
    y_max: float | None = None,
) -> Chart:
    """Vertical bars: one group per category, one bar per series inside it."""
    left, right, top, bottom = 44, 12, 10, 46
    chart = Chart(width, height, title)
    values = [v for vs in series.values() for v in vs if v is not None]
    peak = y_max if y_max is not None else _nice_max(max(values, default=0))
    plot_w, plot_h = width - left - right, height - top - bottom
    for k in range(5):
        tick = peak * k / 4
        y = top + plot_h - tick / peak * plot_h
        chart.lines.append(Line(left, y, width - right, y))
        chart.texts.append(Text(left - 6, y + 4, _format(tick), anchor="end", size=11, fill=MUTED))
    group_w = plot_w / max(1, len(categories))
    bar_w = group_w * 0.8 / max(1, len(series))
    for c, name in enumerate(categories):
        fits = max(4, int(group_w / 6.5))  # ~6.5 px per character at 11 px
        chart.texts.append(
            Text(
                left + c * group_w + group_w / 2,
                height - 26,
                _truncate(str(name), min(fits, 28)),
                anchor="middle",
                size=11,
            )
        )
    for s, (series_name, vs) in enumerate(series.items()):
        colour = PALETTE[s % len(PALETTE)]
        for c, value in enumerate(vs):
            if value is None:
                continue
            h = value / peak * plot_h
            x = left + c * group_w + group_w * 0.1 + s * bar_w
            chart.rects.append(
                Rect(
                    x,
                    top + plot_h - h,
                    bar_w - 2,
                    h,
                    colour,
                    f"{categories[c]} · {series_name}: {_format(value, 3)}",
                )
            )
        chart.legend.append((series_name, colour))
    return chart
