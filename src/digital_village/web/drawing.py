"""Inline SVG for the pages: a map of parcels and daily sensor charts.

Pure: shapes in, SVG text out; no ORM, no web framework, no external tiles or fonts. The map is
drawn from the parcels' own geometry projected to metres (the caller passes Gauss-Krüger
shapes), so its proportions and scale bar are true; charts show one metric per day as a band
(minimum to maximum) under a line (the mean), with gaps where there was no reading.

Everything is sized in viewBox units and scales to the phone's width; numbers are rounded to
keep the markup small. Text is escaped here, since the templates insert the result as markup.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any

MAP_WIDTH = 320.0
MAP_PADDING = 14.0
CHART_WIDTH = 320.0
CHART_HEIGHT = 120.0
_NICE_STEPS = (1, 2, 2.5, 5)
LABEL_CHAR_WIDTH = 5.6  # viewBox units per character of a 10-unit label
MIN_LABEL_SIZE = 6.0  # smaller labels are not drawn at all (then no parcel is labelled)


@dataclass(frozen=True)
class MapShape:
    """A parcel to draw: its label, its shape in metres (x east, y north), and emphasis."""

    label: str
    shape: Any  # a shapely Polygon or MultiPolygon in a projected CRS
    highlighted: bool = True


def _nice(value: float) -> float:
    """The largest 1, 2, 2.5 or 5 × 10^n not above ``value``."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    return float(max(step * power for step in _NICE_STEPS if step * power <= value))


def _fmt(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _rings(shape: Any) -> list[Any]:
    polygons = list(shape.geoms) if hasattr(shape, "geoms") else [shape]
    rings: list[Any] = []
    for polygon in polygons:
        rings.append(polygon.exterior)
        rings.extend(polygon.interiors)
    return rings


def parcel_map(shapes: Sequence[MapShape], *, scale_label: Callable[[float], str]) -> str:
    """An SVG map of the parcels with their labels, a scale bar and a north arrow."""
    if not shapes:
        return ""
    xs: list[float] = []
    ys: list[float] = []
    for item in shapes:
        minx, miny, maxx, maxy = item.shape.bounds
        xs += [minx, maxx]
        ys += [miny, maxy]
    min_x, max_x, min_y, max_y = min(xs), max(xs), min(ys), max(ys)
    span_x = max(max_x - min_x, 1.0)
    span_y = max(max_y - min_y, 1.0)
    inner = MAP_WIDTH - 2 * MAP_PADDING
    scale = inner / max(span_x, span_y / 0.75)  # at most 3:4 tall, phone screens are narrow
    height = span_y * scale + 2 * MAP_PADDING + 18  # room for the scale bar

    def point(x: float, y: float) -> str:
        px = MAP_PADDING + (x - min_x) * scale
        return f"{_fmt(px)} {_fmt(MAP_PADDING + (max_y - y) * scale)}"

    parts = [
        f'<svg class="map" viewBox="0 0 {_fmt(MAP_WIDTH)} {_fmt(height)}" role="img" '
        'xmlns="http://www.w3.org/2000/svg">',
        f'<rect width="{_fmt(MAP_WIDTH)}" height="{_fmt(height)}" fill="#f3f1e7"/>',
    ]
    for item in sorted(shapes, key=lambda s: s.highlighted):
        path = " ".join(
            "M" + " L".join(point(x, y) for x, y in list(ring.coords)[:-1]) + "Z"
            for ring in _rings(item.shape)
        )
        # Presentation attributes, not style="…": the pages' policy allows no inline styles.
        paint = (
            'fill="#9ccc65" stroke="#33691e"'
            if item.highlighted
            else 'fill="#e0dccb" stroke="#a39e88"'
        )
        parts.append(f'<path d="{path}" fill-rule="evenodd" {paint} stroke-width="1"/>')
    # Every parcel drawn is labelled, or none is: one font size for all, the largest (up to
    # 10) at which each label fits its parcel's width; none when that is too small to read.
    fitting = [
        (item.shape.bounds[2] - item.shape.bounds[0]) * scale / (len(item.label) or 1)
        for item in shapes
    ]
    size = min([10.0, *(room / LABEL_CHAR_WIDTH * 10 for room in fitting)])
    for item in shapes if size >= MIN_LABEL_SIZE else ():
        where = item.shape.representative_point()
        x, y = point(where.x, where.y).split()
        parts.append(
            f'<text x="{x}" y="{y}" font-size="{size:.1f}" text-anchor="middle"'
            f' dominant-baseline="middle" fill="#1b3a0b">{escape(item.label)}</text>'
        )
    # Scale bar: a round length of at most a third of the width, at the bottom left.
    metres = _nice(inner / 3 / scale)
    bar = metres * scale
    base_y = height - 10
    parts.append(
        f'<path d="M{_fmt(MAP_PADDING)} {_fmt(base_y - 4)}v4h{_fmt(bar)}v-4" '
        'fill="none" stroke="#333" stroke-width="1.2"/>'
        f'<text x="{_fmt(MAP_PADDING + bar + 4)}" y="{_fmt(base_y)}" font-size="9" '
        f'fill="#333">{escape(scale_label(metres))}</text>'
    )
    # North arrow at the top right.
    nx = MAP_WIDTH - 14
    parts.append(
        f'<path d="M{_fmt(nx)} 6l4 10h-8z" fill="#333"/>'
        f'<text x="{_fmt(nx)} " y="26" font-size="8" text-anchor="middle" fill="#333">N</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True)
class DayValue:
    """One day of one metric: minimum, mean, maximum."""

    day: dt.date
    low: float
    mean: float
    high: float


def _ticks(low: float, high: float, count: int = 3) -> list[float]:
    step = _nice((high - low) / max(count - 1, 1)) or 1.0
    if (high - low) / step > count + 1:
        step *= 2
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 6))
        value += step
    return ticks or [low]


def _months(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """The first of each month within ``first`` … ``last`` (where the chart ticks)."""
    month = dt.date(first.year, first.month, 1)
    while month <= last:
        if month >= first:
            yield month
        month = dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def _runs(days: Sequence[DayValue]) -> list[list[DayValue]]:
    """Runs of consecutive days: a missing day breaks the band and the line."""
    runs: list[list[DayValue]] = []
    for item in sorted(days, key=lambda d: d.day):
        if runs and (item.day - runs[-1][-1].day).days == 1:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def daily_chart(
    days: Sequence[DayValue],
    *,
    first: dt.date,
    last: dt.date,
    unit: str,
    colour: str,
    month_label: Callable[[dt.date], str],
    marks: Sequence[tuple[dt.date, str]] = (),
) -> str:
    """An SVG chart of daily values from ``first`` to ``last`` (band: min–max, line: mean)."""
    if not days:
        return ""
    left, right, top, bottom = 30.0, 6.0, 8.0, 18.0
    width = CHART_WIDTH - left - right
    height = CHART_HEIGHT - top - bottom
    span_days = max((last - first).days, 1)
    low = min(d.low for d in days)
    high = max(d.high for d in days)
    if high - low < 1e-9:
        low, high = low - 1, high + 1
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad
    ticks = _ticks(low, high)
    low, high = min(low, ticks[0]), max(high, ticks[-1])

    def x_of(day: dt.date) -> float:
        return left + (day - first).days / span_days * width

    def y_of(value: float) -> float:
        return top + (high - value) / (high - low) * height

    parts = [
        f'<svg class="chart" viewBox="0 0 {_fmt(CHART_WIDTH)} {_fmt(CHART_HEIGHT)}" role="img" '
        'xmlns="http://www.w3.org/2000/svg" font-size="8" fill="#555">'
    ]
    for tick in ticks:
        y = _fmt(y_of(tick))
        parts.append(
            f'<path d="M{_fmt(left)} {y}h{_fmt(width)}" stroke="#e3e3e3" stroke-width="0.6"/>'
            f'<text x="{_fmt(left - 3)}" y="{y}" text-anchor="end" dominant-baseline="middle">'
            f"{_fmt(tick)}</text>"
        )
    parts.append(
        f'<text x="{_fmt(left - 3)}" y="{_fmt(CHART_HEIGHT - 4)}" text-anchor="end">'
        f"{escape(unit)}</text>"
    )
    for month in _months(first, last):
        x = _fmt(x_of(month))
        parts.append(
            f'<path d="M{x} {_fmt(top + height)}v3" stroke="#999" stroke-width="0.6"/>'
            f'<text x="{x}" y="{_fmt(CHART_HEIGHT - 4)}" text-anchor="middle">'
            f"{escape(month_label(month))}</text>"
        )
    for day, label in marks:
        if first <= day <= last:
            x = _fmt(x_of(day))
            parts.append(
                f'<path d="M{x} {_fmt(top)}v{_fmt(height)}" stroke="#8d6e63" '
                'stroke-width="0.8" stroke-dasharray="2 2"/>'
                f'<text x="{x}" y="{_fmt(top + 6)}" text-anchor="middle" fill="#6d4c41">'
                f"{escape(label)}</text>"
            )
    for run in _runs(days):
        upper = " L".join(f"{_fmt(x_of(d.day))} {_fmt(y_of(d.high))}" for d in run)
        lower = " L".join(f"{_fmt(x_of(d.day))} {_fmt(y_of(d.low))}" for d in reversed(run))
        line = " L".join(f"{_fmt(x_of(d.day))} {_fmt(y_of(d.mean))}" for d in run)
        parts.append(f'<path d="M{upper} L{lower}Z" fill="{colour}" fill-opacity="0.22"/>')
        parts.append(
            f'<path d="M{line}" fill="none" stroke="{colour}" stroke-width="1.3" '
            'stroke-linejoin="round"/>'
        )
    parts.append("</svg>")
    return "".join(parts)


def parcel_labels(dkbms: Iterable[str]) -> dict[str, str]:
    """Short labels for parcels shown together, never two alike: the DKBM's 5-digit sequence
    (``00011``) when that is unique among them; else with its group (``01-00011``), its
    village and group (``201-01-00011``), or the whole code."""
    codes = sorted(set(dkbms))
    schemes: tuple[Callable[[str], str], ...] = (
        lambda d: d[-5:],
        lambda d: f"{d[12:14]}-{d[-5:]}",
        lambda d: f"{d[9:12]}-{d[12:14]}-{d[-5:]}",
        lambda d: d,
    )
    for scheme in schemes:
        labels = {code: scheme(code) for code in codes}
        if len(set(labels.values())) == len(codes):
            return labels
    return {code: code for code in codes}
