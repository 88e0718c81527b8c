"""Server-rendered SVG bar charts (no JavaScript, no CDN): the geometry here, the <svg> in a template."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CHART_WIDTH = 360
CHART_HEIGHT = 120


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    count: int
    low: float
    high: float


@dataclass(frozen=True)
class Histogram:
    title: str
    bars: list[Bar]
    low: float
    high: float
    total: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


def histogram(
    title: str, values: Sequence[float], *, bins: int = 10, low: float = 0.0, high: float = 1.0
) -> Histogram:
    """Counts of `values` in `bins` equal bins over [low, high] (values outside are clipped in), as bars
    scaled to the chart box; the tallest bar fills the height."""
    data = np.clip(np.asarray([v for v in values if v is not None], dtype=np.float64), low, high)
    counts, edges = np.histogram(data, bins=bins, range=(low, high))
    tallest = max(1, int(counts.max())) if len(counts) else 1
    slot = CHART_WIDTH / bins
    bars = [
        Bar(
            x=round(i * slot + 1, 2),
            y=round(CHART_HEIGHT - CHART_HEIGHT * int(count) / tallest, 2),
            width=round(slot - 2, 2),
            height=round(CHART_HEIGHT * int(count) / tallest, 2),
            count=int(count),
            low=float(edges[i]),
            high=float(edges[i + 1]),
        )
        for i, count in enumerate(counts)
    ]
    return Histogram(title, bars, low, high, int(data.size))
