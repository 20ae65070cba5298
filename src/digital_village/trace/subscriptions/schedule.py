"""Query schedules of scheduled subscriptions (EPCIS 2.0 §8.2.5.3, the REST binding's
``query-schedule.json``): cron-like fields, read in UTC. Pure.

Each of ``second``, ``minute``, ``hour``, ``dayOfMonth``, ``month`` and ``dayOfWeek`` (1 = Monday
… 7 = Sunday) is a number, a range (``1-5`` or ``[1-5]``), a step (``0/30``, ``*/15``), a
comma-separated list of those, or ``*``. A field left out is ``*`` when it is coarser than the
finest field given, and its least value otherwise: ``{"hour": "1", "minute": "5"}`` runs every
day at 01:05:00, ``{"second": "0/30"}`` every 30 seconds.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from digital_village.errors import Invalid

# Finest first, with each field's range.
FIELDS: Final = (
    ("second", 0, 59),
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("dayOfMonth", 1, 31),
    ("month", 1, 12),
    ("dayOfWeek", 1, 7),
)
_PART: Final = re.compile(r"^\[?(\*|\d+)(?:-(\d+))?\]?(?:/(\d+))?$")
# How far ahead a schedule is searched for its next run (a 29 February schedule fits).
_HORIZON_DAYS: Final = 366 * 8


@dataclass(frozen=True)
class Schedule:
    """The allowed values of each field."""

    allowed: Mapping[str, frozenset[int]]

    def next_after(self, moment: dt.datetime) -> dt.datetime:
        """The first time strictly after ``moment`` (UTC, whole seconds) the schedule fires."""
        start = moment.astimezone(dt.UTC).replace(microsecond=0) + dt.timedelta(seconds=1)
        day = start.date()
        for _ in range(_HORIZON_DAYS):
            if (
                day.day in self.allowed["dayOfMonth"]
                and day.month in self.allowed["month"]
                and day.isoweekday() in self.allowed["dayOfWeek"]
            ):
                found = self._first_in_day(day, start)
                if found is not None:
                    return found
            day += dt.timedelta(days=1)
        raise Invalid("the schedule never fires", field="schedule")

    def _first_in_day(self, day: dt.date, start: dt.datetime) -> dt.datetime | None:
        for hour in sorted(self.allowed["hour"]):
            for minute in sorted(self.allowed["minute"]):
                for second in sorted(self.allowed["second"]):
                    candidate = dt.datetime(
                        day.year, day.month, day.day, hour, minute, second, tzinfo=dt.UTC
                    )
                    if candidate >= start:
                        return candidate
        return None


def _values(name: str, text: str, low: int, high: int) -> frozenset[int]:
    found: set[int] = set()
    for part in text.replace(" ", "").split(","):
        matched = _PART.match(part)
        if matched is None:
            raise Invalid(
                f"schedule {name}: {text!r} is not a number, range, step or *", field=name
            )
        first, last, step = matched.groups()
        if first == "*":
            begin, end = low, high
        else:
            begin = int(first)
            end = int(last) if last is not None else (high if step else begin)
        if not low <= begin <= end <= high:
            raise Invalid(f"schedule {name}: {text!r} is outside {low}-{high}", field=name)
        found.update(range(begin, end + 1, int(step) if step else 1))
    return frozenset(found)


def parse(schedule: Mapping[str, object]) -> Schedule:
    """Read a schedule object; unknown fields and malformed values are refused."""
    unknown = set(schedule) - {name for name, _, _ in FIELDS}
    if unknown:
        raise Invalid(f"schedule: unknown field {sorted(unknown)[0]!r}", field="schedule")
    if not schedule:
        raise Invalid('schedule: give at least one field, e.g. {"minute": "0"}', field="schedule")
    finest = min(i for i, (name, _, _) in enumerate(FIELDS) if name in schedule)
    allowed: dict[str, frozenset[int]] = {}
    for index, (name, low, high) in enumerate(FIELDS):
        if name in schedule:
            allowed[name] = _values(name, str(schedule[name]), low, high)
        elif index < finest:
            allowed[name] = frozenset({low})
        else:
            allowed[name] = frozenset(range(low, high + 1))
    return Schedule(allowed)
