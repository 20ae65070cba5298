"""The net's records against the ledger: every sealed day of readings still hashes to its seal.

A ``RecordChecker`` for the log audit (``digital_village.audit`` composes it): the seal rows,
the readings they cover and the seal entries are read with this package's own queries.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.iot import seal, shapes
from digital_village.iot.models import Reading, ReadingSeal
from digital_village.ledger import merkle
from digital_village.ledger.audit import BATCH, Found, RecordChecker, entry_data, keyset
from digital_village.ledger.models import LedgerEntry


@dataclass
class _MetricSummary:
    """What a seal's stored readings of one metric add up to now."""

    count: int = 0
    total: float = 0.0
    low: tuple[float, int, int] | None = None  # (value, device, time_ms)
    high: tuple[float, int, int] | None = None
    first_ms: int | None = None
    last_ms: int | None = None

    def add(self, device_id: int, time_ms: int, value: float) -> None:
        self.count += 1
        self.total += value
        if self.low is None or value < self.low[0]:
            self.low = (value, device_id, time_ms)
        if self.high is None or value > self.high[0]:
            self.high = (value, device_id, time_ms)
        self.first_ms = time_ms if self.first_ms is None else min(self.first_ms, time_ms)
        self.last_ms = time_ms if self.last_ms is None else max(self.last_ms, time_ms)


@dataclass
class _SealedDay:
    """One seal's stored readings, gathered while streaming them in leaf order."""

    leaves: list[bytes] = field(default_factory=list)
    metrics: dict[str, _MetricSummary] = field(default_factory=dict)

    def add(self, reading: Any) -> None:
        """The next stored reading of this seal, in leaf order."""
        metric = shapes.METRIC_NAMES.get(reading.metric_id, str(reading.metric_id))
        self.leaves.append(
            merkle.hash_leaf(
                seal.leaf_bytes(
                    reading.device_id, reading.metric_id, reading.time_ms, reading.value
                )
            )
        )
        self.metrics.setdefault(metric, _MetricSummary()).add(
            reading.device_id, reading.time_ms, reading.value
        )


def _reading_name(metric: str, device_id: int, time_ms: int, value: float) -> str:
    when = shapes.ms_to_rfc3339(time_ms)
    return f"the {metric} reading of device {device_id} at {when} (value {value:g})"


def _what_changed(data: dict[str, Any], day: _SealedDay) -> str:
    """Compare the seal entry's per-metric summary with the readings stored now."""
    sealed: dict[str, dict[str, Any]] = {}
    for element in data.get("sensorElementList") or []:
        for report in element.get("sensorReport") or []:
            if isinstance(report, dict) and isinstance(report.get("dv:metric"), str):
                sealed[report["dv:metric"]] = report
    notes: list[str] = []
    for metric in sorted(set(sealed) | set(day.metrics)):
        was, now = sealed.get(metric), day.metrics.get(metric)
        if was is None:
            notes.append(f"{metric} readings are stored that the seal never covered")
            continue
        if now is None:
            notes.append(f"all {was.get('dv:count')} sealed {metric} readings were removed")
            continue
        if was.get("dv:count") != now.count:
            notes.append(
                f"{metric}: {was.get('dv:count')} readings sealed, {now.count} stored "
                "(readings removed or added)"
            )
        assert now.low is not None and now.high is not None
        if now.high[0] != was.get("maxValue"):
            notes.append(
                f"{metric}: sealed maximum {was.get('maxValue')}, stored maximum is "
                f"{_reading_name(metric, now.high[1], now.high[2], now.high[0])}"
            )
        if now.low[0] != was.get("minValue"):
            notes.append(
                f"{metric}: sealed minimum {was.get('minValue')}, stored minimum is "
                f"{_reading_name(metric, now.low[1], now.low[2], now.low[0])}"
            )
        mean = round(now.total / now.count, 6)
        if not notes and mean != was.get("meanValue"):
            notes.append(
                f"{metric}: sealed mean {was.get('meanValue')}, stored mean {mean} "
                "(a value inside the sealed range was changed)"
            )
    if not notes:
        return "a reading's value or time was changed without changing the per-metric summary"
    return "; ".join(notes)


def _stream_sealed_readings(session: Session) -> Iterator[Any]:
    """Every sealed reading, grouped by seal in leaf order, streamed (one sort, no index)."""
    query = (
        select(
            Reading.seal_id, Reading.device_id, Reading.metric_id, Reading.time_ms, Reading.value
        )
        .where(Reading.seal_id.is_not(None))
        .order_by(Reading.seal_id, Reading.device_id, Reading.metric_id, Reading.time_ms)
    )
    yield from session.execute(query.execution_options(yield_per=BATCH))


class SealChecker(RecordChecker):
    """Each sealed day's stored readings must hash to the root in its ledger entry.

    An edit is named by the seal's entry, parcel and day, and, where the seal's per-metric
    summary allows, by the reading.
    """

    def finish(self, session: Session, found: Found) -> dict[str, int]:
        """Check every seal; count the seals and the readings they cover."""
        counts = {"seals": 0, "sealed_readings": 0}
        seals = keyset(
            session,
            select(
                ReadingSeal.id,
                ReadingSeal.parcel_dkbm,
                ReadingSeal.day,
                ReadingSeal.part,
                ReadingSeal.count,
                ReadingSeal.root_hash,
                ReadingSeal.ledger_seq,
                LedgerEntry.kind,
                LedgerEntry.body,
            ).outerjoin(LedgerEntry, LedgerEntry.seq == ReadingSeal.ledger_seq),
            ReadingSeal.id,
        )
        readings = _stream_sealed_readings(session)
        pending = next(readings, None)
        for row in seals:
            counts["seals"] += 1
            day = _SealedDay()
            # Readings pointing at seals that do not exist are skipped here (the foreign key
            # forbids them); readings of this seal are gathered in leaf order.
            while pending is not None and pending.seal_id <= row.id:
                if pending.seal_id == row.id:
                    day.add(pending)
                    counts["sealed_readings"] += 1
                pending = next(readings, None)
            _check_seal(row, day, found)
        return counts


def _check_seal(row: Any, day: _SealedDay, found: Found) -> None:
    name = f"seal:{row.parcel_dkbm}/{row.day.isoformat()}/{row.part}"
    label = (
        f"parcel {row.parcel_dkbm}, sealed day {row.day.isoformat()} (part {row.part}, "
        f"ledger entry {row.ledger_seq})"
    )
    data = entry_data(row.body) if row.kind == seal.SEAL_KIND else None
    if data is None:
        found(row.ledger_seq, f"{label}: the ledger entry is not a readings seal", name)
        return
    recorded = {
        "parcel": data.get("parcel"),
        "day": data.get("day"),
        "part": data.get("part"),
        "count": data.get("count"),
        "root": data.get("root"),
    }
    stored = {
        "parcel": row.parcel_dkbm,
        "day": row.day.isoformat(),
        "part": row.part,
        "count": row.count,
        "root": row.root_hash.hex(),
    }
    edited = [key for key in recorded if recorded[key] != stored[key]]
    if edited:
        found(
            row.ledger_seq,
            f"{label}: the seal row's {', '.join(edited)} differ from its ledger entry "
            "(seal row edited)",
            name,
        )
    root = merkle.root_of(day.leaves)
    if root.hex() != recorded["root"] or len(day.leaves) != recorded["count"]:
        found(
            row.ledger_seq,
            f"{label}: the stored readings no longer hash to the sealed root (readings edited "
            f"after sealing): {_what_changed(data, day)}",
            name,
        )
