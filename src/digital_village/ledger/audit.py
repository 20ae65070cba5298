"""The full audit behind ``dv ledger verify``: recompute everything from the stored bytes.

It streams entries, stored hashes and checkpoints in index order, keeping only the tree's right
border (O(log n) hashes) in memory, and checks: every leaf hash against its bytes, every bytes
as canonical JSON, every hash-chain link and per-thing chain link, every stored tree hash, every
checkpoint's root, origin and signature, and that the newest checkpoint covers every entry (so
the server cannot be serving an older one as current).

Then the rows the ledger vouches for (``records``): every sealed day of sensor readings must
still hash to the root its seal entry carries, and every parcel's stored geometry must be the
one its registration entry hashed. An edit of any of these rows is named: the entry, the
parcel and day of the seal (and, where the seal's per-metric summary allows, the reading), the
parcel whose geometry changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import shapely
from sqlalchemy import and_, func, literal, literal_column, select
from sqlalchemy.orm import Session, aliased

from digital_village.iot import seal as readings_seal
from digital_village.iot import shapes as reading_shapes
from digital_village.iot.models import Reading, ReadingSeal
from digital_village.ledger import canonical, merkle, note
from digital_village.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerHash, LedgerKey
from digital_village.parcels.models import Parcel

BATCH = 2000
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class Problem:
    """One thing found wrong, at the entry index (or checkpoint size) where it shows.

    ``subject`` names the row when the problem is in a record the ledger vouches for
    (``parcel:<dkbm>``, ``seal:<dkbm>/<day>/<part>``); None for the log's own tables.
    """

    index: int
    what: str
    subject: str | None = None

    def __str__(self) -> str:
        return f"index {self.index}: {self.what}"


Found = Callable[..., None]


@dataclass
class AuditReport:
    entries: int = 0
    stored_hashes: int = 0
    checkpoints: int = 0
    root: str | None = None
    seals: int = 0
    readings: int = 0
    parcels: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "stored_hashes": self.stored_hashes,
            "checkpoints": self.checkpoints,
            "root": self.root,
            "seals": self.seals,
            "sealed_readings": self.readings,
            "parcels": self.parcels,
            "first_bad_index": self.problems[0].index if self.problems else None,
            "problems": [
                {"index": p.index, "what": p.what, "subject": p.subject} for p in self.problems
            ],
        }


class _Frontier:
    """The perfect subtrees on the tree's right border: enough to extend and to root it."""

    def __init__(self) -> None:
        self.by_index: dict[int, bytes] = {}
        self.levels: list[tuple[int, int, bytes]] = []  # (level, storage index, hash), big first

    def read(self, indexes: Sequence[int]) -> list[bytes]:
        return [self.by_index[i] for i in indexes]

    def push(self, size: int, rows: list[tuple[int, bytes]]) -> None:
        """Record leaf ``size - 1``'s rows; the last row is the new largest subtree it closed."""
        completed = len(rows) - 1
        for _ in range(completed):
            _level, idx, _hash = self.levels.pop()
            del self.by_index[idx]
        idx, node = rows[-1]
        self.levels.append((completed, idx, node))
        self.by_index[idx] = node

    def root(self) -> bytes:
        if not self.levels:
            return merkle.EMPTY_ROOT
        node = self.levels[-1][2]
        for _level, _idx, left in reversed(self.levels[:-1]):
            node = merkle.hash_children(left, node)
        return node


def _keyset(session: Session, query: Any, key: Any, start: int) -> Iterator[Any]:
    """Stream rows ordered by ``key`` in batches: constant memory on both backends."""
    after = start - 1
    while True:
        rows = session.execute(query.where(key > after).order_by(key).limit(BATCH)).all()
        if not rows:
            return
        yield from rows
        after = rows[-1][0]


def audit(
    session: Session,
    *,
    origin: str,
    extra_vkeys: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    records: bool = True,
) -> AuditReport:
    """Check the whole log and (``records``) the rows it vouches for; first bad index first."""
    report = AuditReport()
    problems = report.problems

    def found(index: int, what: str, subject: str | None = None) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(Problem(index, what, subject))

    verifiers = {}
    for vkey in [*session.scalars(select(LedgerKey.vkey)), *extra_vkeys]:
        try:
            parsed = note.Verifier.parse(vkey)
            verifiers[parsed.key_id.hex()] = parsed
        except note.NoteError as error:
            found(-1, f"a stored verifier key is malformed: {error}")

    previous = aliased(LedgerEntry)
    entries = _keyset(
        session,
        select(
            LedgerEntry.seq,
            LedgerEntry.kind,
            LedgerEntry.body,
            LedgerEntry.leaf_hash,
            LedgerEntry.prev_hash,
            LedgerEntry.chain_key,
            LedgerEntry.chain_prev_seq,
            previous.leaf_hash.label("chain_prev_leaf"),
            previous.chain_key.label("chain_prev_key"),
        ).outerjoin(previous, previous.seq == LedgerEntry.chain_prev_seq),
        LedgerEntry.seq,
        0,
    )
    hashes = _keyset(session, select(LedgerHash.idx, LedgerHash.hash), LedgerHash.idx, 0)
    checkpoints = _keyset(
        session,
        select(LedgerCheckpoint.size, LedgerCheckpoint.root_hash, LedgerCheckpoint.note),
        LedgerCheckpoint.size,
        0,
    )
    next_checkpoint = next(checkpoints, None)
    frontier = _Frontier()
    expected_prev: bytes | None = None
    size = 0
    newest_signed = 0
    for row in entries:
        if row.seq != size:
            found(size, f"entry missing: the next stored entry has index {row.seq}")
            break
        _check_entry(row, expected_prev, found)
        rows = merkle.stored_hashes_for_leaf(size, row.leaf_hash, frontier.read)
        for idx, recomputed in rows:
            stored = next(hashes, None)
            report.stored_hashes += stored is not None
            if stored is None or stored.idx != idx:
                found(size, f"stored tree hash {idx} is missing")
            elif stored.hash != recomputed:
                found(size, f"stored tree hash {idx} differs from the one the leaves give")
        size += 1
        frontier.push(size, rows)
        expected_prev = row.leaf_hash
        while next_checkpoint is not None and next_checkpoint.size <= size:
            if next_checkpoint.size == size:
                _check_checkpoint(next_checkpoint, frontier.root(), origin, verifiers, found)
                report.checkpoints += 1
                newest_signed = size
            next_checkpoint = next(checkpoints, None)
        if progress is not None:
            progress(size)
    report.entries = size
    report.root = frontier.root().hex()
    for leftover in hashes:
        found(size, f"stored tree hash {leftover.idx} belongs to no entry")
        break
    while next_checkpoint is not None:
        found(
            next_checkpoint.size - 1,
            f"a checkpoint was signed at size {next_checkpoint.size} but the log has only "
            f"{size} entries: entries were removed",
        )
        next_checkpoint = next(checkpoints, None)
    if size > newest_signed and not any("entries were removed" in p.what for p in problems):
        # Under READ COMMITTED an append may have committed entries and their checkpoint after
        # the checkpoints were read: they commit together, so a fresh look settles it.
        newest_signed = max(
            newest_signed, session.scalar(select(func.max(LedgerCheckpoint.size))) or 0
        )
    if size > newest_signed and not any("entries were removed" in p.what for p in problems):
        # Every appending transaction signs the tree it leaves, in the same transaction.
        found(
            newest_signed,
            f"no signed checkpoint covers entries {newest_signed} to {size - 1}: the newest "
            f"checkpoint is at size {newest_signed} of {size} (newer checkpoints were removed; "
            "an old checkpoint would be served as current)",
        )
    if records:
        _audit_seals(session, report, found)
        _audit_parcels(session, report, found)
    problems.sort(key=lambda p: p.index)
    return report


def _check_entry(row: Any, expected_prev: bytes | None, found: Callable[[int, str], None]) -> None:
    seq = row.seq
    if merkle.hash_leaf(row.body) != row.leaf_hash:
        found(seq, "the entry's bytes do not match its leaf hash (entry edited)")
    if row.prev_hash != expected_prev:
        found(seq, "the stored previous-entry hash does not match the previous entry")
    try:
        envelope = json.loads(row.body)
        is_canonical = canonical.dumps(envelope) == row.body
    except (ValueError, canonical.CanonicalizationError):
        found(seq, "the entry's bytes are not JSON")
        return
    if not is_canonical:
        found(seq, "the entry's bytes are not RFC 8785 canonical JSON")
    if not isinstance(envelope, dict):
        found(seq, "the entry is not a JSON object")
        return
    if envelope.get("prev") != (expected_prev.hex() if expected_prev else None):
        found(seq, "the hash chain is broken: 'prev' does not name the previous entry")
    if envelope.get("kind") != row.kind:
        found(seq, "the stored kind differs from the entry's")
    chain = envelope.get("chain")
    if row.chain_key is None and chain is None:
        return
    if not isinstance(chain, dict) or chain.get("key") != row.chain_key:
        found(seq, "the stored chain key differs from the entry's")
        return
    if row.chain_prev_seq is None:
        if chain.get("prev") is not None:
            found(seq, "the entry names a previous chain entry that is not stored")
        return
    if row.chain_prev_key != row.chain_key or chain.get("prev") != row.chain_prev_leaf.hex():
        found(seq, f"the chain '{row.chain_key}' is broken at this entry")


def _check_checkpoint(
    row: Any,
    root: bytes,
    origin: str,
    verifiers: dict[str, note.Verifier],
    found: Callable[[int, str], None],
) -> None:
    where = row.size - 1
    if row.root_hash != root:
        found(where, f"the checkpoint at size {row.size} has a root the entries do not produce")
    try:
        opened = note.open_note(row.note, list(verifiers.values()))
        checkpoint = note.Checkpoint.parse(opened.text)
    except note.NoteError as error:
        found(where, f"the checkpoint at size {row.size} fails signature checks: {error}")
        return
    except ValueError as error:
        found(where, f"the checkpoint at size {row.size} is malformed: {error}")
        return
    if checkpoint.origin != origin:
        found(where, f"the checkpoint at size {row.size} names origin {checkpoint.origin!r}")
    if checkpoint.size != row.size or checkpoint.root_hash != row.root_hash:
        found(where, f"the signed checkpoint text at size {row.size} differs from its stored row")


# --- the rows the ledger vouches for ------------------------------------------------------------


def _body_data(body: bytes | None) -> dict[str, Any] | None:
    """The ``data`` object of an entry's bytes, or None when there is none to read."""
    if body is None:
        return None
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return None
    return data if isinstance(data, dict) else None


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


def _reading_name(metric: str, device_id: int, time_ms: int, value: float) -> str:
    when = reading_shapes.ms_to_rfc3339(time_ms)
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


def _audit_seals(session: Session, report: AuditReport, found: Found) -> None:
    """Each sealed day's stored readings must hash to the root in its ledger entry."""
    seals = _keyset(
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
        0,
    )
    readings = _stream_sealed_readings(session)
    pending = next(readings, None)
    for row in seals:
        report.seals += 1
        day = _SealedDay()
        # Readings pointing at seals that do not exist are skipped here (the foreign key
        # forbids them); readings of this seal are gathered in leaf order.
        while pending is not None and pending.seal_id <= row.id:
            if pending.seal_id == row.id:
                metric = reading_shapes.METRIC_NAMES.get(pending.metric_id, str(pending.metric_id))
                day.leaves.append(
                    merkle.hash_leaf(
                        readings_seal.leaf_bytes(
                            pending.device_id, pending.metric_id, pending.time_ms, pending.value
                        )
                    )
                )
                day.metrics.setdefault(metric, _MetricSummary()).add(
                    pending.device_id, pending.time_ms, pending.value
                )
                report.readings += 1
            pending = next(readings, None)
        _check_seal(row, day, found)


def _check_seal(row: Any, day: _SealedDay, found: Found) -> None:
    name = f"seal:{row.parcel_dkbm}/{row.day.isoformat()}/{row.part}"
    label = (
        f"parcel {row.parcel_dkbm}, sealed day {row.day.isoformat()} (part {row.part}, "
        f"ledger entry {row.ledger_seq})"
    )
    data = _body_data(row.body) if row.kind == readings_seal.SEAL_KIND else None
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


def _audit_parcels(session: Session, report: AuditReport, found: Found) -> None:
    """Each parcel's stored geometry must be the one its registration entry hashed."""
    registration = aliased(LedgerEntry)
    postgis = session.get_bind().dialect.name == "postgresql"
    # On PostgreSQL spatial queries use the PostGIS column, kept from the WKB by a trigger:
    # an edit of that column alone would move the parcel on every map and search.
    geom_matches = (
        literal_column(
            "ST_OrderingEquals(parcel.geom, ST_SetSRID(ST_GeomFromWKB(parcel.geometry_wkb), 4490))"
        )
        if postgis
        else literal(True)
    )
    rows = _keyset(
        session,
        select(
            Parcel.id,
            Parcel.dkbm,
            Parcel.geometry_wkb,
            Parcel.geometry_sha256,
            Parcel.area_m2,
            Parcel.min_lon,
            Parcel.min_lat,
            Parcel.max_lon,
            Parcel.max_lat,
            Parcel.last_seq,
            geom_matches.label("geom_matches"),
            registration.seq.label("registered_seq"),
            registration.body.label("registered_body"),
        ).outerjoin(
            registration,
            and_(
                registration.chain_key == literal("parcel:") + Parcel.dkbm,
                registration.chain_prev_seq.is_(None),
            ),
        ),
        Parcel.id,
        0,
    )
    for row in rows:
        report.parcels += 1
        _check_parcel(row, found)


def _check_parcel(row: Any, found: Found) -> None:
    name = f"parcel:{row.dkbm}"
    data = _body_data(row.registered_body)
    if data is None or "geometry_sha256" not in data:
        found(
            row.last_seq if row.last_seq is not None else -1,
            f"parcel {row.dkbm} has no registration entry in the ledger",
            name,
        )
        return
    seq = row.registered_seq
    digest = hashlib.sha256(row.geometry_wkb).hexdigest()
    if digest != data["geometry_sha256"]:
        found(
            seq,
            f"parcel {row.dkbm}: the stored geometry (sha256 {digest[:16]}…) is not the one "
            f"registered in ledger entry {seq} (sha256 {str(data['geometry_sha256'])[:16]}…): "
            "geometry edited",
            name,
        )
    elif row.geometry_sha256 != digest:
        found(seq, f"parcel {row.dkbm}: the stored geometry hash column was edited", name)
    if not row.geom_matches:
        found(
            seq,
            f"parcel {row.dkbm}: the PostGIS geometry (parcel.geom) differs from the registered "
            "geometry bytes: geom edited, so maps and spatial searches show another shape",
            name,
        )
    try:
        bounds = tuple(shapely.from_wkb(row.geometry_wkb).bounds)
    except shapely.errors.GEOSException:
        found(seq, f"parcel {row.dkbm}: the stored geometry bytes are not WKB", name)
        return
    if bounds != (row.min_lon, row.min_lat, row.max_lon, row.max_lat):
        found(
            seq,
            f"parcel {row.dkbm}: the stored bounding box differs from its geometry (edited: "
            "spatial searches would find the parcel elsewhere)",
            name,
        )
    if "area_m2" in data and round(row.area_m2, 2) != data["area_m2"]:
        found(
            seq,
            f"parcel {row.dkbm}: stored area {row.area_m2:.2f} m² differs from the "
            f"{data['area_m2']} m² registered in ledger entry {seq}",
            name,
        )


def count_entries(session: Session) -> int:
    """How many entries the log holds (for progress bars)."""
    return int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
