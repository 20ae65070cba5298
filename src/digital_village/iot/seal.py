"""Readings committed to the chain: per parcel and day, the Merkle root of that day's readings.

Each (parcel, China Standard Time day) gets a ledger entry ``iot.readings.sealed`` carrying the
RFC 9162 Merkle root and count of the readings it covers, with an EPCIS 2.0
``sensorElementList`` summary (min / max / mean per metric). A leaf is the RFC 8785 canonical
JSON of one reading, ``{"device", "metric", "time", "unit", "value"}``, and leaves are ordered
by (device, metric, time).

Only finished days are sealed. Readings that arrive after their day was sealed go into a later
supplementary seal (part 2, 3, ...) of the same parcel and day; a sealed root never changes,
because each reading records the seal that covers it. ``dv iot seal`` seals on demand (cron);
the API server also seals finished days in the background (``sealer.py``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from digital_village.db import note_lock_taken, utcnow
from digital_village.errors import Conflict, Invalid, NotFound
from digital_village.iot import metrics, readings, shapes
from digital_village.iot.models import DeviceInstallation, ReadingSeal
from digital_village.ledger import canonical, log, merkle
from digital_village.ledger.log import EntryIn, Ledger

SEAL_KIND = "iot.readings.sealed"
# The sealer takes it exclusively: two sealers never seal the same rows, and late ingest waits.
SEAL_LOCK_KEY = readings.SEAL_LOCK_KEY
LEAF_FORMAT = "digital-village/reading-leaf@v1"

# EPCIS 2.0 sensorReport type (GS1 Web Vocabulary, bare word) and UN/ECE Rec 20 unit per metric.
EPCIS_TYPES: dict[str, tuple[str, str]] = {
    "soil_moisture": ("VolumeFraction", "P1"),
    "soil_temperature": ("Temperature", "CEL"),
    "soil_ec": ("Conductivity", "H61"),
    "air_temperature": ("Temperature", "CEL"),
    "air_humidity": ("RelativeHumidity", "P1"),
    "rainfall": ("Length", "MMT"),
    "illuminance": ("Illuminance", "LUX"),
    "soil_ph": ("Dimensionless", "C62"),
    "soil_n": ("MassConcentration", "NA"),
    "soil_p": ("MassConcentration", "NA"),
    "soil_k": ("MassConcentration", "NA"),
    "battery": ("Voltage", "VLT"),
}


def leaf_bytes(device_id: int, metric_id: int, time_ms: int, value: float) -> bytes:
    """The canonical bytes of one reading, as hashed into its day's tree."""
    name = shapes.METRIC_NAMES[metric_id]
    return canonical.dumps(
        {
            "device": device_id,
            "metric": name,
            "time": shapes.ms_to_rfc3339(time_ms),
            "unit": metrics.CATALOGUE[name].unit,
            "value": value,
        }
    )


def chain_key(dkbm: str) -> str:
    """The ledger chain of a parcel's sealed days: ``parcel-readings:<DKBM>``."""
    return f"parcel-readings:{dkbm}"


def _leaves(rows: Sequence[readings.StoredReading]) -> list[bytes]:
    return [leaf_bytes(r.device_id, r.metric_id, r.time_ms, r.value) for r in rows]


def _key(row: readings.StoredReading) -> tuple[int, int, int]:
    return (row.device_id, row.metric_id, row.time_ms)


def _lock(session: Session) -> None:
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEAL_LOCK_KEY})
        note_lock_taken(session.connection())
    # SQLite: write sessions began with BEGIN IMMEDIATE and hold the only write lock.


def today() -> dt.date:
    """Today in China Standard Time."""
    return utcnow().astimezone(readings.CHINA_TIME).date()


def first_unsealable_day() -> dt.date:
    """Days before this one are over (by the sealing grace period) and may be sealed."""
    return readings.sealable_before(shapes.datetime_to_ms(utcnow()))


@dataclass(frozen=True)
class SealMade:
    """A seal just appended."""

    parcel: str
    day: dt.date
    part: int
    count: int
    root_hash: bytes
    ledger_seq: int


def _sensor_elements(rows: Sequence[readings.StoredReading], day: dt.date) -> list[dict[str, Any]]:
    by_metric: dict[int, list[float]] = defaultdict(list)
    times: dict[int, list[int]] = defaultdict(list)
    for row in rows:
        by_metric[row.metric_id].append(row.value)
        times[row.metric_id].append(row.time_ms)
    elements: list[dict[str, Any]] = []
    for metric_id in sorted(by_metric):
        name = shapes.METRIC_NAMES[metric_id]
        kind, uom = EPCIS_TYPES[name]
        values = by_metric[metric_id]
        elements.append(
            {
                "sensorMetadata": {
                    "startTime": shapes.ms_to_rfc3339(min(times[metric_id])),
                    "endTime": shapes.ms_to_rfc3339(max(times[metric_id])),
                },
                "sensorReport": [
                    {
                        "type": kind,
                        "minValue": min(values),
                        "maxValue": max(values),
                        "meanValue": round(sum(values) / len(values), 6),
                        "uom": uom,
                        "dv:metric": name,
                        "dv:count": len(values),
                    }
                ],
            }
        )
    return elements


# (device, first ms, end ms): where a parcel's readings of a day are, device by device.
Span = tuple[int, int, int]
ALL_METRICS = list(shapes.METRIC_NAMES)


@dataclass(frozen=True)
class SpanRead:
    """One span of a pending (device, day) pair's readings, as the plan read it: the parcel the
    device was installed at and how many unsealed readings the span held."""

    pair: tuple[int, dt.date]
    dkbm: str
    span: Span
    count: int
    # The time of the latest unsealed reading read, if any.
    last_ms: int | None = None


def _unsealed_by_parcel(
    session: Session, device_ids: Sequence[int], day: dt.date, read: list[SpanRead]
) -> dict[str, list[readings.StoredReading]]:
    """Each parcel's unsealed readings of ``day`` from these devices, in leaf order; every span
    read onto ``read``."""
    day_start, day_end = readings.day_bounds_ms(day)
    groups: dict[str, list[readings.StoredReading]] = defaultdict(list)
    for device_id in device_ids:
        for installation in session.scalars(
            select(DeviceInstallation).where(DeviceInstallation.device_id == device_id)
        ):
            begin = max(day_start, shapes.datetime_to_ms(installation.installed_at))
            end = day_end
            if installation.removed_at is not None:
                end = min(end, shapes.datetime_to_ms(installation.removed_at))
            if begin >= end:
                continue
            found = readings.series(
                session,
                device_id=device_id,
                metric_ids=ALL_METRICS,
                start_ms=begin,
                end_ms=end,
                limit=10_000_000,
                unsealed_only=True,
            )
            read.append(
                SpanRead(
                    (device_id, day),
                    installation.parcel_dkbm,
                    (device_id, begin, end),
                    len(found),
                    max((row.time_ms for row in found), default=None),
                )
            )
            groups[installation.parcel_dkbm].extend(found)
    return {dkbm: sorted(rows, key=_key) for dkbm, rows in groups.items() if rows}


@dataclass(frozen=True)
class PlannedSeal:
    """One seal as planned: a parcel's unsealed readings of a day, its part and root."""

    dkbm: str
    day: dt.date
    part: int
    rows: list[readings.StoredReading]
    root: bytes
    # The seal's ledger entry, made when planned: under the writer it is only appended.
    entry: EntryIn


@dataclass(frozen=True)
class SealPlan:
    """What sealing would append (``plan_seals``): the seals, the pending (device, day) pairs
    they clear, and every span of those pairs' readings that was read."""

    seals: list[PlannedSeal]
    pairs: list[tuple[int, dt.date]]
    read: list[SpanRead]


def plan_seals(
    session: Session, *, day: dt.date | None = None, before: dt.date | None = None
) -> SealPlan:
    """The seals of one finished day, or of every finished day with unsealed readings (before
    ``before``): their readings read and their roots computed, nothing written."""
    limit = first_unsealable_day()
    if day is not None and day >= limit:
        raise Invalid(
            f"day {day.isoformat()} is not over yet (China Standard Time; a day is sealed "
            f"from {readings.SEAL_GRACE_MS // 60_000} minutes after midnight)"
        )
    if day is not None:
        pairs = [pair for pair in readings.pending_days(session, before=limit) if pair[1] == day]
    else:
        pairs = readings.pending_days(session, before=min(before or limit, limit))
    devices_by_day: dict[dt.date, list[int]] = defaultdict(list)
    for device_id, pending_day in pairs:
        devices_by_day[pending_day].append(device_id)
    planned: list[PlannedSeal] = []
    read: list[SpanRead] = []
    for pending_day in sorted(devices_by_day):
        groups = _unsealed_by_parcel(session, devices_by_day[pending_day], pending_day, read)
        for dkbm in sorted(groups):
            rows = groups[dkbm]
            root = merkle.root_of([merkle.hash_leaf(leaf) for leaf in _leaves(rows)])
            part = _next_part(session, dkbm, pending_day)
            entry = _seal_entry(dkbm, pending_day, part, rows, root)
            planned.append(PlannedSeal(dkbm, pending_day, part, rows, root, entry))
    return SealPlan(planned, pairs, read)


def _seal_entry(
    dkbm: str, day: dt.date, part: int, rows: Sequence[readings.StoredReading], root: bytes
) -> EntryIn:
    return EntryIn(
        SEAL_KIND,
        {
            "parcel": dkbm,
            "day": day.isoformat(),
            "timezone": "+08:00",
            "part": part,
            "count": len(rows),
            "root": root.hex(),
            "leaf_format": LEAF_FORMAT,
            "devices": sorted({row.device_id for row in rows}),
            "sensorElementList": _sensor_elements(rows, day),
        },
        chain_key(dkbm),
    )


def split_plan(plan: SealPlan) -> list[SealPlan]:
    """The plan as parts that can be stored in transactions of their own: each pending pair
    with every seal of its readings, and each seal with every pair it covers (a device moved
    during a day links two parcels' seals), so that a pair is cleared in the transaction that
    stores the last of its seals. Pairs that gave no seal are a part each."""
    parent: dict[Any, Any] = {}

    def root(node: Any) -> Any:
        while parent.setdefault(node, node) != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for read in plan.read:
        parent[root(("pair", read.pair))] = root(("seal", read.dkbm, read.pair[1]))
    parts: dict[Any, SealPlan] = {}

    def part(node: Any) -> SealPlan:
        return parts.setdefault(root(node), SealPlan([], [], []))

    for planned in plan.seals:
        part(("seal", planned.dkbm, planned.day)).seals.append(planned)
    for pair in plan.pairs:
        part(("pair", pair)).pairs.append(pair)
    for read in plan.read:
        part(("pair", read.pair)).read.append(read)
    return list(parts.values())


def store_planned(session: Session, ledger: Ledger, plan: SealPlan) -> list[SealMade]:
    """In a write transaction: take the sealer's lock and append what of ``plan`` still holds.

    The long part of sealing (reading a day of readings, hashing them) runs before, in a read
    transaction; this part only checks and appends. Readings are only ever added, and marked
    sealed by a seal of their parcel and day, never changed. So a planned seal still holds
    when no seal of its parcel-day was made since (its part is still the next one): its
    readings are still unsealed, and it seals exactly them (``_store``; in a span that gained
    readings since it was read, the newcomers are left unsealed). A planned seal of a
    parcel-day sealed meanwhile is left out. A pair keeps its pending mark when readings were
    added to it or its seal was left out, so the next pass seals what is left as a later part.

    Counting decides how a span's readings are marked, so that the usual cases mark with one
    statement and read no keys: a span that gained nothing is marked whole; one whose
    newcomers all came after the latest reading planned (sensors send in time order) is marked
    up to that reading; any other is marked reading by reading (``_seal_grown_span``).
    """
    _lock(session)
    stale = {
        (planned.dkbm, planned.day)
        for planned in plan.seals
        if _next_part(session, planned.dkbm, planned.day) != planned.part
    }
    marks: dict[Span, Span | None] = {}
    for read in plan.read:
        if _unsealed(session, read.span) == read.count:
            continue
        device_id, begin, end = read.span
        marks[read.span] = None
        if read.last_ms is not None:
            so_far = (device_id, begin, min(end, read.last_ms + 1))
            if _unsealed(session, so_far) == read.count:
                marks[read.span] = so_far
    still = {
        read.pair for read in plan.read if read.span in marks or (read.dkbm, read.pair[1]) in stale
    }
    return _store(
        session,
        ledger,
        SealPlan(
            [planned for planned in plan.seals if (planned.dkbm, planned.day) not in stale],
            [pair for pair in plan.pairs if pair not in still],
            plan.read,
        ),
        marks,
    )


def seal_days(
    *, session: Session, ledger: Ledger, day: dt.date | None = None, before: dt.date | None = None
) -> list[SealMade]:
    """Seal one finished day, or every finished day with unsealed readings (before ``before``).

    Appends one ledger entry per (parcel, day) in one ``append_many``, in the session's
    transaction; returns what was sealed (nothing when nothing was pending). Everything runs
    under the sealer's lock; the server's sealer reads first and locks only to store
    (``plan_seals``, then ``store_planned``).
    """
    _lock(session)
    return _store(session, ledger, plan_seals(session, day=day, before=before), marks={})


def _unsealed(session: Session, span: Span) -> int:
    device_id, begin, end = span
    return readings.count_unsealed(
        session, device_id=device_id, metric_ids=ALL_METRICS, start_ms=begin, end_ms=end
    )


def _store(
    session: Session, ledger: Ledger, plan: SealPlan, marks: dict[Span, Span | None]
) -> list[SealMade]:
    """Append the plan's seals and mark their readings, under the sealer's lock: span by span,
    or over the part of a span ``marks`` names (the rest holds newcomers), or reading by
    reading where it names none (``_seal_grown_span``)."""
    made: list[SealMade] = []
    spans: dict[tuple[str, dt.date], list[Span]] = defaultdict(list)
    for read in plan.read:
        spans[(read.dkbm, read.pair[1])].append(read.span)
    if plan.seals:
        appended = ledger.append_many(session, [planned.entry for planned in plan.seals])
        for planned, entry in zip(plan.seals, appended, strict=True):
            seal = ReadingSeal(
                parcel_dkbm=planned.dkbm,
                day=planned.day,
                part=planned.part,
                count=len(planned.rows),
                root_hash=planned.root,
                ledger_seq=entry.seq,
            )
            session.add(seal)
            session.flush()
            for span in spans[(planned.dkbm, planned.day)]:
                target = marks.get(span, span)
                if target is None:
                    _seal_grown_span(session, seal.id, planned, span)
                else:
                    device_id, begin, end = target
                    readings.set_seal_span(
                        session,
                        seal.id,
                        device_id=device_id,
                        metric_ids=ALL_METRICS,
                        start_ms=begin,
                        end_ms=end,
                    )
            made.append(
                SealMade(
                    planned.dkbm,
                    planned.day,
                    planned.part,
                    len(planned.rows),
                    planned.root,
                    entry.seq,
                )
            )
    readings.clear_pending(session, plan.pairs)
    return made


def _seal_grown_span(session: Session, seal_id: int, planned: PlannedSeal, span: Span) -> None:
    """Mark the planned readings of a span that gained readings since the plan read it: the
    whole span at once and the newcomers unmarked again when they are fewer (one statement over
    the span is cheaper than an update a key), else the planned ones by key."""
    device_id, begin, end = span
    mine = {
        _key(row)
        for row in planned.rows
        if row.device_id == device_id and begin <= row.time_ms < end
    }
    now = readings.unsealed_keys(
        session, device_id=device_id, metric_ids=ALL_METRICS, start_ms=begin, end_ms=end
    )
    newcomers = [key for key in now if key not in mine]
    if len(newcomers) >= len(mine):
        readings.set_seal(session, seal_id, sorted(mine))
        return
    readings.set_seal_span(
        session, seal_id, device_id=device_id, metric_ids=ALL_METRICS, start_ms=begin, end_ms=end
    )
    readings.set_seal(session, None, newcomers)


def _next_part(session: Session, dkbm: str, day: dt.date) -> int:
    last = session.scalar(
        select(func.max(ReadingSeal.part)).where(
            ReadingSeal.parcel_dkbm == dkbm, ReadingSeal.day == day
        )
    )
    return int(last or 0) + 1


def seals_of(*, session: Session, dkbm: str, day: dt.date | None = None) -> Sequence[ReadingSeal]:
    """A parcel's seals (of one day), by day and part."""
    query = select(ReadingSeal).where(ReadingSeal.parcel_dkbm == dkbm)
    if day is not None:
        query = query.where(ReadingSeal.day == day)
    return session.scalars(query.order_by(ReadingSeal.day, ReadingSeal.part)).all()


def last_sealed_day(*, session: Session, device_id: int) -> dt.date | None:
    """The latest day for which some of the device's readings are sealed."""
    from digital_village.iot.models import Reading

    latest = session.scalar(
        select(func.max(Reading.time_ms)).where(
            Reading.device_id == device_id, Reading.seal_id.is_not(None)
        )
    )
    return None if latest is None else readings.local_day(int(latest))


@dataclass(frozen=True)
class SealCheck:
    """Whether a seal's stored readings still hash to the root in the ledger."""

    seal: ReadingSeal
    count: int
    root_hash: bytes

    @property
    def ok(self) -> bool:
        return self.count == self.seal.count and self.root_hash == self.seal.root_hash


def check_seal(*, session: Session, seal: ReadingSeal) -> SealCheck:
    """Recompute a seal's root from the stored readings it covers."""
    rows = readings.sealed_by(session, seal.id)
    root = merkle.root_of([merkle.hash_leaf(leaf) for leaf in _leaves(rows)])
    return SealCheck(seal, len(rows), root)


def _in_memory_hashes(leaf_hashes: Sequence[bytes]) -> merkle.ReadHashes:
    stored: dict[int, bytes] = {}

    def read(indexes: Sequence[int]) -> list[bytes]:
        return [stored[i] for i in indexes]

    for index, leaf_hash in enumerate(leaf_hashes):
        stored.update(merkle.stored_hashes_for_leaf(index, leaf_hash, read))
    return read


def reading_proof(*, session: Session, device_id: int, metric: str, time_ms: int) -> dict[str, Any]:
    """Everything needed to check one reading offline: leaf, Merkle path, seal, ledger proof."""
    try:
        metric_id = shapes.METRIC_CODES[metrics.get_metric(metric).name]
    except metrics.UnknownMetricError as error:
        raise Invalid(str(error), known=list(error.known)) from None
    row = readings.get(session, device_id=device_id, metric_id=metric_id, time_ms=time_ms)
    if row is None:
        raise NotFound(
            f"device {device_id} has no {metric} reading at {shapes.ms_to_rfc3339(time_ms)}"
        )
    if row.seal_id is None:
        raise NotFound(
            f"that reading is not sealed yet: its day "
            f"{readings.local_day(time_ms).isoformat()} is sealed after it ends"
        )
    seal = session.get(ReadingSeal, row.seal_id)
    assert seal is not None
    covered = readings.sealed_by(session, seal.id)
    leaves = _leaves(covered)
    leaf_hashes = [merkle.hash_leaf(leaf) for leaf in leaves]
    root = merkle.root_of(leaf_hashes)
    if root != seal.root_hash or len(covered) != seal.count:
        raise Conflict(
            f"the stored readings of parcel {seal.parcel_dkbm} on {seal.day} (part {seal.part}) "
            "no longer hash to the sealed root: they were changed after sealing"
        )
    index = [_key(r) for r in covered].index(_key(row))
    path = merkle.inclusion_proof(index, len(leaves), _in_memory_hashes(leaf_hashes))
    return {
        "format": "digital-village/reading-proof@v1",
        "reading": {
            "device": device_id,
            "metric": shapes.METRIC_NAMES[metric_id],
            "time": shapes.ms_to_rfc3339(time_ms),
            "value": row.value,
            "unit": metrics.CATALOGUE[shapes.METRIC_NAMES[metric_id]].unit,
        },
        "leaf": leaves[index].decode(),
        "leaf_index": index,
        "tree_size": len(leaves),
        "inclusion_proof": [node.hex() for node in path],
        "root": seal.root_hash.hex(),
        "seal": {
            "parcel": seal.parcel_dkbm,
            "day": seal.day.isoformat(),
            "part": seal.part,
            "ledger_seq": seal.ledger_seq,
        },
        "ledger_proof": log.inclusion_proof_file(session, seal.ledger_seq).decode(),
    }
