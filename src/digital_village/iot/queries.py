"""Reading queries: a device's or a parcel's series, downsampled buckets, latest values, and the
per-parcel daily summary the consumer page charts.

A parcel's readings are those of the devices installed on it, each over its installation
period, so a device that moved shows its old readings on its old parcel.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.errors import Forbidden, Invalid
from digital_village.iot import devices, ingest, metrics, readings, seal, shapes
from digital_village.iot.models import Device

DEFAULT_SPAN_MS = 7 * readings.DAY_MS
MAX_RAW_POINTS = 100_000
_BUCKET = re.compile(r"^(\d{1,4})(m|h|d)$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": readings.DAY_MS}
SUMMARY_METRICS = ("soil_moisture", "soil_temperature")


def parse_bucket(text: str | None) -> int | None:
    """``15m``, ``1h``, ``1d`` … → milliseconds (None: no downsampling)."""
    if text is None or text == "":
        return None
    match = _BUCKET.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise Invalid(f"bucket {text!r} must look like 15m, 1h, 6h or 1d")
    size = int(match.group(1)) * _UNIT_MS[match.group(2)]
    if size > 31 * readings.DAY_MS:
        raise Invalid(f"bucket {text!r} is longer than 31 days")
    return size


def parse_metric(name: str) -> int:
    """A catalogue metric name → its stored code; Invalid listing the known ones."""
    try:
        return shapes.METRIC_CODES[metrics.get_metric(name).name]
    except metrics.UnknownMetricError as error:
        raise Invalid(str(error), known=list(error.known)) from None


def parse_instant(value: str | None, what: str) -> int | None:
    """An RFC 3339 time or epoch milliseconds from a query string."""
    if value is None or value == "":
        return None
    text = value.strip()
    try:
        return int(text) if text.isdigit() else shapes.parse_time(text)
    except ValueError as error:
        raise Invalid(f"{what}: {error}") from None


def time_window(start: str | None, end: str | None) -> tuple[int, int]:
    """[from, to) in ms; default: the last seven days up to now."""
    end_ms = parse_instant(end, "to")
    start_ms = parse_instant(start, "from")
    if end_ms is None:
        end_ms = ingest.now_ms() + shapes.MAX_FUTURE_MS
    if start_ms is None:
        start_ms = end_ms - DEFAULT_SPAN_MS
    if start_ms >= end_ms:
        raise Invalid("from must be before to")
    return start_ms, end_ms


def _point(row: readings.StoredReading) -> dict[str, Any]:
    point: dict[str, Any] = {"time": shapes.ms_to_rfc3339(row.time_ms), "value": row.value}
    if row.flagged:
        point["flagged"] = True
    return point


def _bucket(item: readings.Bucket) -> dict[str, Any]:
    return {
        "start": shapes.ms_to_rfc3339(item.start_ms),
        "count": item.count,
        "min": item.minimum,
        "max": item.maximum,
        "mean": round(item.mean, 6),
    }


def readable_device(*, session: Session, actor: Actor, device_id: int) -> Device:
    """The device, if ``actor`` may read its readings: an admin, the manager of the device's
    cooperative, or the device itself. Consumers get the parcels' per-day summaries instead
    (``parcel_daily``), which is what the pages show."""
    device = devices.get_device(session=session, device_id=device_id)
    if (
        actor.is_admin
        or (actor.role is Role.MANAGER and actor.cooperative_id == device.cooperative_id)
        or (actor.role is Role.DEVICE and actor.device_id == device.id)
    ):
        return device
    raise Forbidden(
        f"a {actor.role.value} token may not read the readings of device {device_id}; they are "
        "its cooperative's (the parcels' daily conditions are public)",
        role=actor.role.value,
    )


def device_readings(
    *,
    session: Session,
    actor: Actor,
    device_id: int,
    metric: str,
    start: str | None,
    end: str | None,
    bucket: str | None,
    limit: int = 10_000,
) -> dict[str, Any]:
    """One metric of one device over a time range, raw or in buckets."""
    device = readable_device(session=session, actor=actor, device_id=device_id)
    metric_id = parse_metric(metric)
    start_ms, end_ms = time_window(start, end)
    bucket_ms = parse_bucket(bucket)
    name = shapes.METRIC_NAMES[metric_id]
    body: dict[str, Any] = {
        "device_id": device.id,
        "metric": name,
        "unit": metrics.CATALOGUE[name].unit,
        "from": shapes.ms_to_rfc3339(start_ms),
        "to": shapes.ms_to_rfc3339(end_ms),
        "bucket": bucket,
    }
    if bucket_ms is None:
        limit = max(1, min(limit, MAX_RAW_POINTS))
        rows = readings.series(
            session,
            device_id=device.id,
            metric_ids=[metric_id],
            start_ms=start_ms,
            end_ms=end_ms,
            limit=limit + 1,
        )
        body["truncated"] = len(rows) > limit
        body["readings"] = [_point(row) for row in rows[:limit]]
        return body
    body["buckets"] = [
        _bucket(item)
        for item in readings.buckets(
            session,
            device_id=device.id,
            metric_ids=[metric_id],
            start_ms=start_ms,
            end_ms=end_ms,
            bucket_ms=bucket_ms,
            offset_ms=readings.CHINA_OFFSET_MS,
        )
    ]
    return body


def latest_values(*, session: Session, actor: Actor, device_id: int) -> dict[str, Any]:
    """The newest reading of each metric of a device."""
    device = readable_device(session=session, actor=actor, device_id=device_id)
    rows = readings.latest(session, device_id=device.id, metric_ids=list(shapes.METRIC_NAMES))
    return {
        "device_id": device.id,
        "latest": {
            shapes.METRIC_NAMES[row.metric_id]: {
                **_point(row),
                "unit": metrics.CATALOGUE[shapes.METRIC_NAMES[row.metric_id]].unit,
            }
            for row in rows
        },
    }


@dataclass
class _Agg:
    count: int = 0
    low: float = float("inf")
    high: float = float("-inf")
    total: float = 0.0

    def merge(self, item: readings.Bucket) -> None:
        self.count += item.count
        self.low = min(self.low, item.minimum)
        self.high = max(self.high, item.maximum)
        self.total += item.total


def _parcel_periods(
    session: Session, dkbm: str, start_ms: int, end_ms: int, cooperative_id: int | None = None
) -> list[tuple[int, int, int]]:
    """(device, from ms, to ms) of every installation on the parcel, clipped to the range (of
    one cooperative's devices only, when ``cooperative_id`` is given)."""
    found: list[tuple[int, int, int]] = []
    start = shapes.EPOCH + dt.timedelta(milliseconds=start_ms)
    end = shapes.EPOCH + dt.timedelta(milliseconds=end_ms)
    for row in devices.installations_on(session=session, dkbm=dkbm, start=start, end=end):
        if cooperative_id is not None and (
            devices.get_device(session=session, device_id=row.device_id).cooperative_id
            != cooperative_id
        ):
            continue
        begin = max(start_ms, shapes.datetime_to_ms(row.installed_at))
        finish = (
            end_ms if row.removed_at is None else min(end_ms, shapes.datetime_to_ms(row.removed_at))
        )
        if begin < finish:
            found.append((row.device_id, begin, finish))
    return found


def _parcel_buckets(
    session: Session,
    dkbm: str,
    metric_ids: Sequence[int],
    start_ms: int,
    end_ms: int,
    bucket_ms: int,
    cooperative_id: int | None = None,
) -> dict[tuple[int, int], _Agg]:
    merged: dict[tuple[int, int], _Agg] = {}
    for device_id, begin, finish in _parcel_periods(
        session, dkbm, start_ms, end_ms, cooperative_id
    ):
        for item in readings.buckets(
            session,
            device_id=device_id,
            metric_ids=metric_ids,
            start_ms=begin,
            end_ms=finish,
            bucket_ms=bucket_ms,
            offset_ms=readings.CHINA_OFFSET_MS,
        ):
            merged.setdefault((item.metric_id, item.start_ms), _Agg()).merge(item)
    return merged


def parcel_readings(
    *,
    session: Session,
    actor: Actor,
    dkbm: str,
    metric: str,
    start: str | None,
    end: str | None,
    bucket: str | None,
    limit: int = 10_000,
) -> dict[str, Any]:
    """One metric on one parcel, raw or in buckets: from every device installed there for an
    admin, from its own cooperative's devices for a manager."""
    if not actor.is_admin and actor.role is not Role.MANAGER:
        raise Forbidden(
            f"a {actor.role.value} token may not read a parcel's readings; they are the "
            "cooperatives' whose devices stand there (the parcel's daily conditions are public)",
            role=actor.role.value,
        )
    only = None if actor.is_admin else actor.cooperative_id
    metric_id = parse_metric(metric)
    start_ms, end_ms = time_window(start, end)
    bucket_ms = parse_bucket(bucket)
    name = shapes.METRIC_NAMES[metric_id]
    body: dict[str, Any] = {
        "parcel": dkbm,
        "metric": name,
        "unit": metrics.CATALOGUE[name].unit,
        "from": shapes.ms_to_rfc3339(start_ms),
        "to": shapes.ms_to_rfc3339(end_ms),
        "bucket": bucket,
    }
    if bucket_ms is None:
        limit = max(1, min(limit, MAX_RAW_POINTS))
        points: list[tuple[int, int, dict[str, Any]]] = []
        for device_id, begin, finish in _parcel_periods(session, dkbm, start_ms, end_ms, only):
            for row in readings.series(
                session,
                device_id=device_id,
                metric_ids=[metric_id],
                start_ms=begin,
                end_ms=finish,
                limit=limit + 1,
            ):
                points.append((row.time_ms, device_id, {**_point(row), "device_id": device_id}))
        points.sort(key=lambda item: (item[0], item[1]))
        body["truncated"] = len(points) > limit
        body["readings"] = [point for _, _, point in points[:limit]]
        return body
    merged = _parcel_buckets(session, dkbm, [metric_id], start_ms, end_ms, bucket_ms, only)
    body["buckets"] = [
        {
            "start": shapes.ms_to_rfc3339(start_at),
            "count": agg.count,
            "min": agg.low,
            "max": agg.high,
            "mean": round(agg.total / agg.count, 6),
        }
        for (_, start_at), agg in sorted(merged.items(), key=lambda kv: kv[0][1])
    ]
    return body


def parcel_daily(
    *,
    session: Session,
    dkbm: str,
    first: dt.date | None,
    last: dt.date | None,
    metric_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Per China day: min / mean / max / count of each metric on the parcel, and its seals."""
    names = list(metric_names) if metric_names else list(SUMMARY_METRICS)
    metric_ids = [parse_metric(name) for name in names]
    last_day = last or seal.today()
    first_day = first or last_day - dt.timedelta(days=183)
    if first_day > last_day:
        raise Invalid("from must not be after to")
    if (last_day - first_day).days > 800:
        raise Invalid("ask for at most 800 days at a time")
    start_ms = readings.day_bounds_ms(first_day)[0]
    end_ms = readings.day_bounds_ms(last_day)[1]
    merged = _parcel_buckets(session, dkbm, metric_ids, start_ms, end_ms, readings.DAY_MS)
    days: dict[dt.date, dict[str, Any]] = {}
    for (metric_id, start_at), agg in merged.items():
        day = readings.local_day(start_at)
        name = shapes.METRIC_NAMES[metric_id]
        days.setdefault(day, {"day": day.isoformat()})[name] = {
            "min": agg.low,
            "mean": round(agg.total / agg.count, 3),
            "max": agg.high,
            "count": agg.count,
        }
    for made in seal.seals_of(session=session, dkbm=dkbm):
        if first_day <= made.day <= last_day:
            days.setdefault(made.day, {"day": made.day.isoformat()}).setdefault("seals", []).append(
                {
                    "part": made.part,
                    "count": made.count,
                    "root": made.root_hash.hex(),
                    "ledger_seq": made.ledger_seq,
                    "proof_url": f"/api/v1/ledger/entries/{made.ledger_seq}/proof",
                }
            )
    return {
        "parcel": dkbm,
        "timezone": "+08:00",
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "metrics": {name: metrics.CATALOGUE[name].unit for name in names},
        "days": [days[day] for day in sorted(days)],
    }
