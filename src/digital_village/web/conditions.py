"""The growing conditions a consumer page charts: each harvested parcel's soil, day by day
up to its harvest, drawn from the seal entries of its readings (``parcel-readings:<dkbm>``:
what the ledger records, not the readings table). The note under the charts is a fact resting
on every one of those entries.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy.orm import Session

from digital_village.iot import metrics, seal
from digital_village.iot import queries as readings
from digital_village.ledger import reads
from digital_village.web import drawing, facts, history
from digital_village.web.facts import UNBOUND, Fact

DEFAULT_SEASON_DAYS: Final = 220


MAX_CHARTED_PARCELS: Final = 4


CHART_COLOURS: Final = {"soil_moisture": "#1e88e5", "soil_temperature": "#e65100"}


MONTHS_EN: Final = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
]


def _month_label(language: str) -> Any:
    if language == "en":
        return lambda day: MONTHS_EN[day.month - 1]
    return lambda day: f"{day.month}月"


@dataclass(frozen=True)
class Chart:
    metric: str
    unit: str
    svg: str


@dataclass(frozen=True)
class Conditions:
    dkbm: str
    label: str
    first: dt.date
    last: dt.date
    sealed_days: int
    charts: tuple[Chart, ...]
    fact: Fact = UNBOUND  # the seal entries the charts are drawn from


@dataclass
class _Day:
    """One metric on one day, from the day's seals (several parts: late readings)."""

    low: float
    high: float
    total: float  # mean × count, summed over the parts
    count: int

    def add(self, low: float, high: float, mean: float, count: int) -> None:
        self.low, self.high = min(self.low, low), max(self.high, high)
        self.total += mean * count
        self.count += count


def sealed_days(
    entries: Iterable[tuple[int, str, bytes]], first: dt.date, last: dt.date
) -> tuple[dict[str, dict[dt.date, _Day]], list[int]]:
    """Per metric and China day, the readings' range and mean as the seal entries of a parcel
    record them (the parts of a day combined); and the indexes of those entries."""
    found: dict[str, dict[dt.date, _Day]] = defaultdict(dict)
    seqs: list[int] = []
    for seq, kind, body in entries:
        if kind != seal.SEAL_KIND:
            continue
        data = reads.data_of(body)
        try:
            day = dt.date.fromisoformat(str(data.get("day")))
        except ValueError:
            seqs.append(seq)  # unreadable: its entry is still checked, and fails
            continue
        if not first <= day <= last:
            continue
        seqs.append(seq)
        for element in data.get("sensorElementList") or []:
            for report in (element or {}).get("sensorReport") or []:
                try:
                    metric = str(report["dv:metric"])
                    low, high = float(report["minValue"]), float(report["maxValue"])
                    mean, count = float(report["meanValue"]), int(report["dv:count"])
                except (KeyError, TypeError, ValueError):
                    continue
                if day in found[metric]:
                    found[metric][day].add(low, high, mean, count)
                else:
                    found[metric][day] = _Day(low, high, mean * count, count)
    return found, seqs


def conditions(
    session: Session,
    *,
    timeline: Sequence[history.Step],
    labels: Mapping[str, str],
    harvests: Mapping[str, dt.datetime],
    language: str,
) -> list[Conditions]:
    """Soil conditions per parcel and day up to its harvest, drawn from the seal entries of its
    readings (what the ledger records, not the readings table)."""
    sown: dict[str, dt.date] = {}
    found: list[Conditions] = []
    for step in timeline:
        if step.step == "step_planting":
            for dkbm in (d for d in labels if d[-5:] in step.parcels):
                sown.setdefault(dkbm, step.when.date())
    charted = sorted(harvests)[:MAX_CHARTED_PARCELS]
    chains = reads.chain_entries(session, [seal.chain_key(dkbm) for dkbm in charted])
    for dkbm in charted:
        last = history.local(harvests[dkbm]).date()
        first = sown.get(dkbm, last - dt.timedelta(days=DEFAULT_SEASON_DAYS))
        if first > last or (last - first).days > 400:
            first = last - dt.timedelta(days=DEFAULT_SEASON_DAYS)
        days, seqs = sealed_days(chains.get(seal.chain_key(dkbm), []), first, last)
        charts: list[Chart] = []
        for metric in readings.SUMMARY_METRICS:
            values = [
                drawing.DayValue(day, d.low, round(d.total / d.count, 3), d.high)
                for day, d in sorted(days.get(metric, {}).items())
                if d.count
            ]
            if not values:
                continue
            unit = metrics.CATALOGUE[metric].unit
            svg = drawing.daily_chart(
                values,
                first=first,
                last=last,
                unit=unit,
                colour=CHART_COLOURS.get(metric, "#555"),
                month_label=_month_label(language),
            )
            charts.append(Chart(metric, unit, svg))
        if charts:
            found.append(
                Conditions(
                    dkbm=dkbm,
                    label=labels.get(dkbm, dkbm[-5:]),
                    first=first,
                    last=last,
                    sealed_days=len({day for per_day in days.values() for day in per_day}),
                    charts=tuple(charts),
                    fact=facts.of_entries(seqs),
                )
            )
    return found
