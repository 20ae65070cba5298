"""Capture: check EPCIS events by the chain's rules, then record them, all or nothing.

In the caller's transaction: what the document's events name is loaded in bulk
(:mod:`digital_village.trace.snapshot`), every event is checked in order against the state the
earlier ones left (a harvest may create a lot that the next event presses; see
:mod:`digital_village.trace.rules`), then all are appended to the ledger with one checkpoint,
stored, and linked into the lineage. Any problem raises one domain error whose ``errors``
name the event by a JSON pointer, and nothing is written.

The capture interface's bookkeeping (reading a received document, recording the capture job
whatever its outcome) is :mod:`digital_village.trace.jobs`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import current_cost, utcnow
from digital_village.errors import Conflict, Forbidden, Invalid, PayloadTooLarge
from digital_village.ledger.log import Ledger, entries_since, entry_count
from digital_village.trace import event_hash, lineage, snapshot, store, writing
from digital_village.trace.epcis import (
    EventModel,
    default_context,
    dump_epcis,
)
from digital_village.trace.footprint import Footprint
from digital_village.trace.identifiers import lot_uri
from digital_village.trace.pending import (
    Pending,
    Ref,
    collect_refs,
    fail,
    parcel_refs,
    rfc3339,
)
from digital_village.trace.rules import DEFAULT_MAX_QUANTITY, CaptureState
from digital_village.trace.stock import UsedUpBefore, used_up
from digital_village.trace.vocab import DV_PREFIX, PLANTING

_DEFAULT_CONTEXT: Final = default_context()
# Clocks of phones in the field drift; an event a few minutes ahead is not "in the future".
FUTURE_TOLERANCE: Final = dt.timedelta(minutes=5)
# No farm event of this registry is older than the land reforms: an earlier date is a typo
# (as for parcel changes, which may not start before 1950 either).
EARLIEST_EVENT_TIME: Final = dt.datetime(1950, 1, 1, tzinfo=dt.UTC)
CAPTURE_EVENT_LIMIT: Final = 10_000


@dataclass(frozen=True)
class CapturedEvent:
    """What the caller learns about one stored event."""

    event_id: str
    event_type: str
    biz_step: str | None
    ledger_seq: int
    lots: tuple[str, ...]  # Digital Link URIs of the lots it produced
    # Our CBV 2.0 hash, when the event came with a different hash-style eventID (kept as sent).
    computed_event_id: str | None = None


@dataclass(frozen=True)
class CaptureResult:
    capture_id: str | None
    events: tuple[CapturedEvent, ...]


def check_limit(count: int) -> None:
    """Refuse a capture of more events than the advertised GS1-CAPTURE-limit (413)."""
    if count > CAPTURE_EVENT_LIMIT:
        raise PayloadTooLarge(
            f"a capture holds at most {CAPTURE_EVENT_LIMIT} events; this one has {count}",
            limit=CAPTURE_EVENT_LIMIT,
        )


def capture(
    *,
    session: Session,
    ledger: Ledger,
    actor: Actor,
    events: Sequence[EventModel],
    base_url: str,
    context: object = None,
    capture_id: str | None = None,
    pointer: str | None = "/epcisBody/eventList",
    strict_hash: bool = False,
    max_quantity: float = DEFAULT_MAX_QUANTITY,
    reader: Session | None = None,
) -> CaptureResult:
    """Check and record events, all or nothing, in the session's transaction.

    Errors point into the document at ``pointer``/<index>; ``pointer=None`` is for a single
    event sent on its own, whose fields are pointed at from its root. A declared hash-style
    eventID that differs from the event's CBV 2.0 hash is kept as sent and the difference
    recorded with the event (its ledger entry holds our hash too); ``strict_hash`` refuses
    such an event instead.

    With ``reader``, a read session beside ``session``, the checks run before the write lock
    is taken (:func:`_checked_before_lock`), so that the database's one writer is held only to
    store; without it, or when ``session`` has already begun its transaction, they run under
    the lock.
    """
    if actor.role is Role.DEVICE:
        raise Forbidden("a device token may not record events; devices send readings")
    if not events:
        raise Invalid(f"{pointer or '/'}: there are no events to capture", errors=[])
    check_limit(len(events))
    now = utcnow()
    request = _Request(
        actor=actor,
        events=events,
        base_url=base_url,
        context=context if context is not None else default_context(),
        pointer=pointer,
        now=now,
        strict_hash=strict_hash,
        max_quantity=max_quantity,
    )
    checked = None
    if reader is not None and not session.in_transaction():
        checked = _checked_before_lock(session, reader, ledger, request)
    if checked is None:
        # From here to the commit no other capture runs: what the checks read stays true.
        ledger.lock(session)
        checked = _check(session, request)
    pendings, computed = checked.pendings, checked.batch.computed
    appended = writing.write(
        session,
        checked.work,
        pendings,
        checked.effects,
        ledger=ledger,
        now=now,
        capture_id=capture_id,
        computed=computed,
    )
    return CaptureResult(
        capture_id=capture_id,
        events=tuple(
            _captured(pending, entry.seq, base_url, computed.get(pending.index))
            for pending, entry in zip(pendings, appended, strict=True)
        ),
    )


# How many times a capture checks outside the write lock before it checks under it: each try
# that finds its reads changed meanwhile starts again from a fresh read.
OPTIMISTIC_TRIES: Final = 3
# Entries appended between a capture's read and its lock that it looks through to see whether
# they touch what it read; beyond that many it reads again.
APPENDED_LOOK_LIMIT: Final = 2_000


def _checked_before_lock(
    session: Session, reader: Session, ledger: Ledger, request: _Request
) -> _Checked | None:
    """Check the events in ``reader``, outside the write lock, then take the lock in
    ``session``: if no entry appended since the checks began touches what they read
    (:mod:`digital_village.trace.footprint`), their result stands and is returned; else the
    lock is let go and the checks run again, up to OPTIMISTIC_TRIES times (None: check under
    the lock instead).

    Why the log suffices: the products, lots, items, events and parcels the checks read
    change only in transactions that append to the log, under its lock. What they read off
    the log (a cooperative's name) may change meanwhile; the capture then stands as if it had
    been checked and stored just before that change. A refusal found on the fresh read is
    final: it is what a capture stored at that moment would have met.
    """
    for _ in range(OPTIMISTIC_TRIES):
        try:
            size = entry_count(reader)
            checked = _check(reader, request, locked=False)
            loaded = list(reader.identity_map.values())
        finally:
            reader.close()  # the rows read stay usable, detached, with what was read
        footprint = Footprint.of(checked.pendings, checked.work)
        ledger.lock(session)
        appended = entries_since(session, size, APPENDED_LOOK_LIMIT + 1)
        if len(appended) <= APPENDED_LOOK_LIMIT and not any(
            footprint.touched_by(*entry) for entry in appended
        ):
            # The rows the capture changes (lot totals, items' status) are written through
            # this session.
            session.add_all(loaded)
            return checked
        session.rollback()
        cost = current_cost()
        if cost is not None:
            cost.stale_reads += 1
    return None


@dataclass(frozen=True)
class _Request:
    """One capture as asked for: what every check of it needs."""

    actor: Actor
    events: Sequence[EventModel]
    base_url: str
    context: object
    pointer: str | None
    now: dt.datetime
    strict_hash: bool
    max_quantity: float


@dataclass(frozen=True)
class _Checked:
    """A capture's events checked, and what storing them will write."""

    batch: _Batch
    work: CaptureState
    effects: list[dict[str, Any]]  # per event: what its ledger entry records of its rows

    @property
    def pendings(self) -> list[Pending]:
        return self.batch.pendings


def _check(session: Session, request: _Request, *, locked: bool = True) -> _Checked:
    """Every event checked in order against what is stored and what the earlier ones did
    (``locked``: in the writer's session, under the log's lock)."""
    batch = _prepare_all(
        request.events, request.pointer, request.context, request.now, request.strict_hash
    )
    pendings = batch.pendings
    for pending in pendings:
        pending.parcel_refs = parcel_refs(pending.event, pending.pointer, base_url=request.base_url)
    loaded = snapshot.load(
        session=session,
        actor=request.actor,
        prepared=batch.refs,
        pendings=pendings,
        lock_lots=locked,
    )
    work = CaptureState(
        snapshot=loaded,
        actor=request.actor,
        base_url=request.base_url,
        seen_ids=batch.seen_ids,
        max_quantity=request.max_quantity,
    )
    lot_totals: list[dict[str, dict[str, Any]]] = []
    for pending, (_, refs) in zip(pendings, batch.refs, strict=True):
        if pending.event.error_declaration is None and pending.event_id in loaded.stored:
            stored = loaded.stored[pending.event_id]
            fail(
                Conflict,
                pending.pointer,
                f"event {pending.event_id} was already captured (ledger entry {stored.ledger_seq})",
            )
        try:
            work.apply(pending, refs)
        except UsedUpBefore as used:
            _refuse_used_up(session, used)
        work.declared_on_arrival(pending)
        lot_totals.append(writing.lot_totals(work.stock, pending))
    work.stock.check_declared_lots(pendings)
    effects = writing.effects(session, pendings, lot_totals)
    return _Checked(batch=batch, work=work, effects=effects)


def _captured(pending: Pending, seq: int, base_url: str, ours: str | None) -> CapturedEvent:
    return CapturedEvent(
        event_id=pending.event_id,
        event_type=pending.event.type,
        biz_step=pending.biz_step,
        ledger_seq=seq,
        lots=tuple(lot_uri(base_url, key[0], key[1]) for key in pending.produced),
        computed_event_id=ours,
    )


@dataclass
class _Batch:
    """A document's events made ready for the rules, in order."""

    pendings: list[Pending] = field(default_factory=list)
    refs: list[tuple[str, list[Ref]]] = field(default_factory=list)  # eventID, what it names
    seen_ids: dict[str, int] = field(default_factory=dict)  # eventID → index (not declarations)
    computed: dict[int, str] = field(default_factory=dict)  # index → our hash, where it differs


def _prepare_all(
    events: Sequence[EventModel],
    pointer: str | None,
    context: object,
    now: dt.datetime,
    strict_hash: bool,
) -> _Batch:
    """Hash, dump and read every event; the same event twice in one capture is refused."""
    record_time = rfc3339(now)
    batch = _Batch()
    for index, event in enumerate(events):
        where = "" if pointer is None else f"{pointer}/{index}"
        pending = _prepare(
            event, where, index, context, now, record_time, strict_hash, batch.computed
        )
        if event.error_declaration is None:
            if pending.event_id in batch.seen_ids:
                fail(
                    Invalid,
                    where,
                    f"the same event appears twice in this capture (first at index "
                    f"{batch.seen_ids[pending.event_id]})",
                )
            batch.seen_ids[pending.event_id] = index
        batch.refs.append((pending.event_id, collect_refs(event, where)))
        batch.pendings.append(pending)
    return batch


def _refuse_used_up(session: Session, used: UsedUpBefore) -> NoReturn:
    """Name the stored event that took the last of a lot, and refuse the document."""
    pk = lineage.last_consumer(session=session, lot_id=used.lot_id)
    by = store.events_by_pk(session=session, pks=[pk])[pk].event_id if pk is not None else None
    used_up(used.label, used.pointer, by)


def _prepare(
    event: EventModel,
    where: str,
    index: int,
    context: object,
    now: dt.datetime,
    record_time: str,
    strict_hash: bool,
    computed_ids: dict[int, str],
) -> Pending:
    if event.event_time > now + FUTURE_TOLERANCE:
        fail(Invalid, f"{where}/eventTime", f"{rfc3339(event.event_time)} is in the future")
    if event.event_time < EARLIEST_EVENT_TIME:
        fail(
            Invalid,
            f"{where}/eventTime",
            f"{rfc3339(event.event_time)} is before {EARLIEST_EVENT_TIME.date().isoformat()}",
        )
    declaration = event.error_declaration
    if declaration is not None and declaration.declaration_time > now + FUTURE_TOLERANCE:
        fail(
            Invalid,
            f"{where}/errorDeclaration/declarationTime",
            f"{rfc3339(declaration.declaration_time)} is in the future",
        )
    biz_step = event.biz_step
    if biz_step is not None and biz_step.startswith(f"{DV_PREFIX}:"):
        fail(
            Invalid,
            f"{where}/bizStep",
            f"write project steps as full URIs ({PLANTING.uri[: -len(PLANTING.key)]}…), "
            f"not as {biz_step!r}",
        )
    own_context = event.context or context
    body = dump_epcis(event, standalone=False)
    # The hash leaves out eventID and @context, so the dump that is stored is the one hashed.
    computed = event_hash.event_hash_id(body, context=own_context)
    given = event.event_id
    if given is not None and given.startswith("ni:///") and given != computed:
        # Partners' tools compute the hash with other revisions of the algorithm (GS1's own
        # examples carry such IDs): the ID is theirs, kept as sent; the difference is shown.
        if strict_hash:
            fail(
                Invalid,
                f"{where}/eventID",
                f"does not match the event's CBV 2.0 hash; expected {computed} "
                "(this server refuses such events: DV_EPCIS_STRICT_HASH)",
            )
        computed_ids[index] = computed
    event_id = given or computed
    body["eventID"] = event_id
    body["recordTime"] = record_time
    if own_context != _DEFAULT_CONTEXT and "@context" not in body:
        body = {"@context": own_context, **body}
    return Pending(
        index=index,
        pointer=where,
        event=event,
        event_id=event_id,
        json=body,
        event_time=event.event_time,
        biz_step=biz_step,
    )
