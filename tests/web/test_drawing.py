"""The pages' inline SVG: maps true to the parcels' shapes and scale, charts with gaps."""

from __future__ import annotations

import datetime as dt
import re

from shapely.geometry import Polygon, box

from digital_village.web import drawing


def _numbers(path: str) -> list[float]:
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path)]


def test_a_map_keeps_proportions_and_draws_a_true_scale_bar() -> None:
    # A 200 m × 100 m field with a 20 m square pond in it, and a small one beside it.
    field = box(0, 0, 200, 100).difference(box(90, 40, 110, 60))
    svg = drawing.parcel_map(
        [drawing.MapShape("00001", field), drawing.MapShape("00002", box(210, 0, 216, 6), False)],
        scale_label=lambda m: f"{m:g} m",
    )
    paths = re.findall(r'<path d="(M[^"]+Z)" fill-rule="evenodd"', svg)
    assert len(paths) == 2
    outer, *holes = paths[1].split("Z M")  # the highlighted field is drawn last, on top
    assert len(holes) == 1  # the pond is a hole (even-odd fill)
    xs, ys = _numbers(outer)[0::2], _numbers(outer)[1::2]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    assert abs(width / height - 2.0) < 0.02
    # The scale bar is a round length drawn at the map's scale.
    bar = re.search(r'<path d="M[\d.]+ [\d.]+v4h([\d.]+)v-4"', svg)
    label = re.search(r">(\d+) m</text>", svg)
    assert bar and label
    metres_per_unit = 200 / width
    assert abs(float(bar.group(1)) * metres_per_unit - int(label.group(1))) < 1.0
    # Every parcel the map shows is labelled, or none: the 6 m field is too small for a
    # readable label, so neither is labelled rather than one of them.
    assert "</text>" in svg and ">00001</text>" not in svg and ">00002</text>" not in svg
    assert "<script" not in svg and "href" not in svg


def test_every_parcel_is_labelled_at_one_size_when_all_fit() -> None:
    shapes = [
        drawing.MapShape("00001", box(0, 0, 200, 100)),
        drawing.MapShape("00002", box(210, 0, 230, 40), False),
    ]
    svg = drawing.parcel_map(shapes, scale_label=lambda m: f"{m:g} m")
    sizes = set(re.findall(r'font-size="([\d.]+)" text-anchor="middle"\s+dominant-baseline', svg))
    assert ">00001</text>" in svg and ">00002</text>" in svg and len(sizes) == 1
    assert float(sizes.pop()) < 10  # shrunk so the narrower field's label fits it


def test_parcel_labels_never_read_alike() -> None:
    minan_1, minan_2 = "5106031012010100011", "5106031012010200011"
    qingping = "5106031012020100011"
    assert drawing.parcel_labels([minan_1, "5106031012010100012"]) == {
        minan_1: "00011",
        "5106031012010100012": "00012",
    }
    # Two groups' parcel 00011: each with its group.
    assert drawing.parcel_labels([minan_1, minan_2]) == {
        minan_1: "01-00011",
        minan_2: "02-00011",
    }
    # The same group number in two villages: with the village too.
    labels = drawing.parcel_labels([minan_1, qingping])
    assert labels == {minan_1: "201-01-00011", qingping: "202-01-00011"}


def test_labels_are_escaped() -> None:
    svg = drawing.parcel_map(
        [drawing.MapShape("<b>&", Polygon([(0, 0), (500, 0), (500, 300)]))],
        scale_label=lambda m: f"{m:g} m",
    )
    assert "&lt;b&gt;&amp;" in svg and "<b>" not in svg


def test_a_chart_breaks_where_days_are_missing() -> None:
    first = dt.date(2025, 10, 8)
    days = [
        drawing.DayValue(first + dt.timedelta(days=n), 10.0 + n, 12.0 + n, 14.0 + n)
        for n in (*range(0, 20), *range(30, 40))
    ]
    svg = drawing.daily_chart(
        days,
        first=first,
        last=first + dt.timedelta(days=40),
        unit="°C",
        colour="#e65100",
        month_label=lambda d: f"{d.month}月",
    )
    assert svg.count('fill-opacity="0.22"') == 2  # two runs: a band each
    assert svg.count('stroke-linejoin="round"') == 2  # and a line each
    assert ">11月</text>" in svg and ">°C</text>" in svg
    assert (
        drawing.daily_chart([], first=first, last=first, unit="", colour="", month_label=str) == ""
    )
