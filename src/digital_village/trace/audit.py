"""The chain's records against the ledger: products, lots and their totals, harvested parcels,
certificates and events.

``TraceChecker`` is the log audit's ``RecordChecker`` for trace (``digital_village.audit``
composes it); ``check_lot`` and ``check_certificate`` run the same comparisons for one record,
for the per-record check routes. Each row is compared field by field with the entry that
records it (``trace/recorded.py`` says where) and the first difference is named: the row
(``product:<GTIN>``, ``lot:<GTIN>/<lot>``, ``certificate:<number>``,
``harvest:<GTIN>/<lot>/<DKBM>``, ``event:<ledger index>``), the field, both values and the
entry's index.

Rows whose entries were made before the ledger recorded what they hold (lots and harvests of
events captured before ``effects``) cannot be compared: they are counted, not passed.
Stored values are read raw (``ledger.stored``): a value of another type is a finding.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from digital_village.errors import NotFound
from digital_village.ledger import merkle
from digital_village.ledger.audit import Found, Problem, RecordChecker, entry_data, keyset
from digital_village.ledger.models import LedgerEntry
from digital_village.ledger.stored import UNREADABLE, as_date, as_number, as_time, raw
from digital_village.regions.models import Cooperative, Household
from digital_village.trace import lineage, products, recorded, store
from digital_village.trace.models import (
    Certificate,
    Event,
    EventLot,
    Lot,
    LotParcel,
    Product,
    Unit,
)

Issue = tuple[int, str]
"""(entry index, what differs)."""


def _differ(subject: str, seq: int, diffs: list[tuple[str, Any, Any]]) -> list[Issue]:
    if not diffs:
        return []
    path, shown, entry = diffs[0]
    more = f" (and {len(diffs) - 1} more fields)" if len(diffs) > 1 else ""
    # A field of an event's effects is named by its last token (the subject names the lot).
    field = path.rsplit("/", 1)[-1] if path.startswith("/data/effects/") else path[6:]
    return [
        (
            seq,
            f"{subject}: {field} is {shown!r} in its row but {entry!r} in ledger entry "
            f"{seq}{more}: row edited",
        )
    ]


def _envelope(data: Mapping[str, Any]) -> dict[str, Any]:
    return {"data": data}


# --- rows read raw ------------------------------------------------------------------------------


def _product_rows() -> Select[Any]:
    return select(
        raw(Product.id),
        raw(Product.gtin),
        raw(Product.name),
        raw(Product.category),
        raw(Product.unit),
        raw(Product.net_quantity),
        raw(Product.net_unit),
        raw(Product.ledger_seq),
        Cooperative.uscc.label("uscc"),
    ).outerjoin(Cooperative, Cooperative.id == Product.cooperative_id)


def _lot_rows() -> Select[Any]:
    return select(
        raw(Lot.id),
        raw(Lot.gtin),
        raw(Lot.lot),
        raw(Lot.origin),
        raw(Lot.produced),
        raw(Lot.consumed),
        raw(Lot.produced_at),
    )


def _lot(row: Any) -> SimpleNamespace:
    return SimpleNamespace(
        id=row.id,
        gtin=row.gtin,
        lot=row.lot,
        origin=row.origin,
        produced=as_number(row.produced),
        consumed=as_number(row.consumed),
        produced_at=as_time(row.produced_at),
    )


def _certificate_rows() -> Select[Any]:
    return select(
        raw(Certificate.id),
        raw(Certificate.number),
        raw(Certificate.product_name),
        raw(Certificate.quantity),
        raw(Certificate.unit),
        raw(Certificate.origin),
        raw(Certificate.issued_on),
        raw(Certificate.issuer),
        raw(Certificate.contact),
        raw(Certificate.basis),
        raw(Certificate.commitments),
        raw(Certificate.ledger_seq),
        Lot.gtin.label("gtin"),
        Lot.lot.label("lot"),
    ).outerjoin(Lot, Lot.id == Certificate.lot_id)


def _certificate(row: Any) -> SimpleNamespace:
    values = dict(row._mapping)
    values["quantity"] = as_number(row.quantity)
    values["issued_on"] = as_date(row.issued_on)
    return SimpleNamespace(**values)


def _harvest_rows() -> Select[Any]:
    return (
        select(
            raw(LotParcel.id),
            raw(LotParcel.dkbm),
            raw(LotParcel.area_mu),
            Event.ledger_seq.label("seq"),
            Lot.gtin.label("gtin"),
            Lot.lot.label("lot"),
            Household.cbfbm.label("contractor"),
            Cooperative.uscc.label("operator"),
        )
        .outerjoin(Event, Event.id == LotParcel.event_pk)
        .outerjoin(Lot, Lot.id == LotParcel.lot_id)
        .outerjoin(Household, Household.id == LotParcel.household_id)
        .outerjoin(Cooperative, Cooperative.id == LotParcel.operator_cooperative_id)
        .where(LotParcel.voided.is_(False))
    )


def _unit_rows() -> Select[Any]:
    return (
        select(
            raw(Unit.id),
            raw(Unit.gtin),
            raw(Unit.serial),
            Lot.gtin.label("lot_gtin"),
            Lot.lot.label("lot"),
            Event.ledger_seq.label("seq"),
        )
        .outerjoin(Lot, Lot.id == Unit.lot_id)
        .outerjoin(Event, Event.id == Unit.event_pk)
    )


def _event_rows() -> Select[Any]:
    return select(
        raw(Event.id),
        raw(Event.event_id),
        raw(Event.event_type),
        raw(Event.action),
        raw(Event.biz_step),
        raw(Event.read_point),
        raw(Event.biz_location),
        raw(Event.event_time),
        raw(Event.ledger_seq),
        raw(Event.declaration),
        LedgerEntry.kind.label("entry_kind"),
        LedgerEntry.body.label("entry_body"),
    ).outerjoin(LedgerEntry, LedgerEntry.seq == Event.ledger_seq)


# --- comparisons, one row each ------------------------------------------------------------------


def product_issues(row: Any, data: Mapping[str, Any] | None) -> list[Issue]:
    subject = f"product {row.gtin}"
    seq = row.ledger_seq if isinstance(row.ledger_seq, int) else -1
    if data is None:
        return [(seq, f"{subject}: ledger entry {row.ledger_seq!r} is not its registration")]
    return _differ(subject, seq, recorded.differences(recorded.PRODUCT, row, _envelope(data)))


def certificate_issues(row: Any, data: Mapping[str, Any] | None) -> list[Issue]:
    subject = f"certificate {row.number}"
    seq = row.ledger_seq if isinstance(row.ledger_seq, int) else -1
    if data is None:
        return [(seq, f"{subject}: ledger entry {row.ledger_seq!r} is not its issue")]
    return _differ(subject, seq, recorded.differences(recorded.CERTIFICATE, row, _envelope(data)))


def lot_issues(
    row: Any, latest: tuple[int, dict[str, Any]] | None, made: tuple[int, dict[str, Any]] | None
) -> list[Issue]:
    """A lot row against the totals of the last event that changed it and the record of the
    event that made it (each (entry index, the lot's record in its effects))."""
    subject = f"lot {row.gtin}/{row.lot}"
    if latest is None:
        return [(-1, f"{subject}: no ledger entry records this lot (row added behind the log)")]
    key = recorded.lot_key(row.gtin, row.lot)
    found: list[Issue] = []
    for (seq, record), made_here in ((latest, False), *([(made, True)] if made else [])):
        wrapped = _envelope({"effects": {"lots": {key: record}}})
        bindings = recorded.lot_bindings(row.gtin, row.lot, made_here=made_here)
        if made_here:
            bindings = bindings[2:]  # the totals are the latest entry's
        found += _differ(subject, seq, recorded.differences(bindings, row, wrapped))
    return found[:1]


def harvest_issues(row: Any, parcels: Mapping[str, Any] | None) -> list[Issue]:
    subject = f"harvest of lot {row.gtin}/{row.lot} on parcel {row.dkbm}"
    seq = row.seq if isinstance(row.seq, int) else -1
    if parcels is None:
        return [(seq, f"{subject}: ledger entry {row.seq!r} records no harvest effects")]
    shown = SimpleNamespace(
        lot_key=recorded.lot_key(row.gtin, row.lot),
        contractor=row.contractor,
        operator=row.operator,
        area_mu=as_number(row.area_mu) if row.area_mu is not None else None,
    )
    wrapped = _envelope({"effects": {"parcels": parcels}})
    diffs = recorded.differences(recorded.harvest_bindings(str(row.dkbm)), shown, wrapped)
    return _differ(subject, seq, diffs)


def unit_issues(row: Any, units: Mapping[str, Any] | None) -> list[Issue]:
    """A serialised item's lot against the entry of the event that commissioned it."""
    seq = row.seq if isinstance(row.seq, int) else -1
    key = recorded.unit_key(str(row.gtin), str(row.serial))
    subject = f"item {key}"
    if units is None:
        return [(seq, f"{subject}: ledger entry {row.seq!r} records no commissioned items")]
    shown = None if row.lot_gtin is None else recorded.lot_key(row.lot_gtin, row.lot)
    entered = units.get(key)
    if shown != entered:
        return [
            (
                seq,
                f"{subject}: its lot is {shown!r} in its row but {entered!r} in ledger entry "
                f"{seq}: row edited",
            )
        ]
    return []


def _units_of(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The items an event entry records as commissioned; None when it records no effects."""
    if data is None or not recorded.records_effects(data):
        return None
    units = (data.get("effects") or {}).get("units")
    return units if isinstance(units, dict) else {}


def event_issues(row: Any) -> list[Issue]:
    """An event row against the EPCIS event its entry records."""
    seq = row.ledger_seq if isinstance(row.ledger_seq, int) else -1
    subject = f"event {row.event_id}"
    data = entry_data(row.entry_body) if row.entry_kind == recorded.EVENT_KIND else None
    event = data.get("event") if data else None
    if not isinstance(event, dict):
        return [(seq, f"{subject}: ledger entry {row.ledger_seq!r} records no EPCIS event")]
    when = as_time(row.event_time)
    try:
        recorded_time = dt.datetime.fromisoformat(
            str(event.get("eventTime")).replace("Z", "+00:00")
        )
    except ValueError:
        recorded_time = None
    step = event.get("bizStep")
    expected = {
        "eventID": (row.event_id, event.get("eventID")),
        "type": (row.event_type, event.get("type")),
        "action": (row.action, event.get("action")),
        "bizStep": (
            row.biz_step,
            store.normalise_biz_step(step) if isinstance(step, str) else None,
        ),
        "readPoint": (row.read_point, (event.get("readPoint") or {}).get("id")),
        "bizLocation": (row.biz_location, (event.get("bizLocation") or {}).get("id")),
        "eventTime": (
            when,
            recorded_time if recorded_time is None else recorded_time.astimezone(dt.UTC),
        ),
        # A declaration may wait for its event (declares_pk still None): the row says which.
        "errorDeclaration": (bool(row.declaration), "errorDeclaration" in event),
    }
    for name, (shown, entry) in expected.items():
        if shown is UNREADABLE or shown != entry:
            return [
                (
                    seq,
                    f"{subject}: {name} is {shown!r} in its row but {entry!r} in ledger entry "
                    f"{seq}: row edited",
                )
            ]
    return []


# --- the audit ------------------------------------------------------------------------------------


@dataclass
class _Lots:
    """Each lot's record in the last event entry that changed it, and in the one that made it."""

    latest: dict[str, tuple[int, dict[str, Any]]]
    made: dict[str, tuple[int, dict[str, Any]]]

    def add(self, seq: int, lots: Mapping[str, Any]) -> None:
        for key, record in lots.items():
            if not isinstance(record, dict):
                continue
            self.latest[key] = (seq, record)
            if "producedAt" in record:
                self.made[key] = (seq, record)


class TraceChecker(RecordChecker):
    """Products, lots, harvests, certificates and events against their entries."""

    kinds = frozenset({recorded.PRODUCT_KIND, recorded.CERTIFICATE_KIND, recorded.EVENT_KIND})

    def __init__(self) -> None:
        self.products: dict[int, dict[str, Any]] = {}
        self.certificates: dict[int, dict[str, Any]] = {}
        self.lots = _Lots({}, {})
        self.harvests: dict[int, dict[str, Any]] = {}
        # Events before the first that records its effects were captured by an older version.
        self.first_with_effects: int | None = None

    def entry(self, seq: int, kind: str, body: bytes) -> None:
        data = entry_data(body)
        if data is None:
            return  # the log audit names an entry that is no JSON object
        if kind == recorded.PRODUCT_KIND:
            self.products[seq] = data
        elif kind == recorded.CERTIFICATE_KIND:
            self.certificates[seq] = data
        elif recorded.records_effects(data):
            if self.first_with_effects is None:
                self.first_with_effects = seq
            effects = data["effects"]
            if isinstance(effects, dict):
                if isinstance(effects.get("lots"), dict):
                    self.lots.add(seq, effects["lots"])
                if isinstance(effects.get("parcels"), dict):
                    self.harvests[seq] = effects["parcels"]

    def _before_effects(self, seq: Any) -> bool:
        return isinstance(seq, int) and (
            self.first_with_effects is None or seq < self.first_with_effects
        )

    def finish(self, session: Session, found: Found) -> Mapping[str, int]:
        counts = dict.fromkeys(
            ("products", "lots", "items", "certificates", "harvested_parcels", "trace_events"), 0
        )
        unrecorded = 0

        def report(subject: str, issues: Iterable[Issue]) -> None:
            for index, what in issues:
                found(index, what, subject)

        seen: set[int] = set()
        for row in keyset(session, _product_rows(), Product.id):
            counts["products"] += 1
            seen.add(row.ledger_seq)
            report(f"product:{row.gtin}", product_issues(row, self.products.get(row.ledger_seq)))
        for seq, data in self.products.items():
            if seq not in seen:
                found(
                    seq,
                    f"product {data.get('gtin')} registered in entry {seq} has no row "
                    "(row removed)",
                    f"product:{data.get('gtin')}",
                )
        seen = set()
        for row in keyset(session, _certificate_rows(), Certificate.id):
            counts["certificates"] += 1
            seen.add(row.ledger_seq)
            report(
                f"certificate:{row.number}",
                certificate_issues(_certificate(row), self.certificates.get(row.ledger_seq)),
            )
        for seq, data in self.certificates.items():
            if seq not in seen:
                found(
                    seq,
                    f"certificate {data.get('number')} issued in entry {seq} has no row "
                    "(row removed)",
                    f"certificate:{data.get('number')}",
                )
        keys: set[str] = set()
        for row in keyset(session, _lot_rows(), Lot.id):
            counts["lots"] += 1
            lot = _lot(row)
            key = recorded.lot_key(str(lot.gtin), str(lot.lot))
            keys.add(key)
            latest = self.lots.latest.get(key)
            if latest is None and self._recorded_before(session, lot.id):
                unrecorded += 1
                continue
            report(f"lot:{key}", lot_issues(lot, latest, self.lots.made.get(key)))
        for key, (seq, _record) in self.lots.latest.items():
            if key not in keys:
                found(
                    seq, f"lot {key} recorded in entry {seq} has no row (row removed)", f"lot:{key}"
                )
        # Items are many and were commissioned in few events: each event's entry is read once.
        commissioned: dict[Any, dict[str, Any] | None] = {}
        for row in keyset(session, _unit_rows(), Unit.id):
            counts["items"] += 1
            if row.seq not in commissioned:
                if len(commissioned) > 16:
                    commissioned.clear()
                bodies = _entries(session, [row.seq])
                commissioned[row.seq] = _units_of(
                    entry_data(bodies[row.seq][1]) if row.seq in bodies else None
                )
            units = commissioned[row.seq]
            if units is None and self._before_effects(row.seq):
                unrecorded += 1
                continue
            report(f"item:{row.gtin}/{row.serial}", unit_issues(row, units))
        for row in keyset(session, _harvest_rows(), LotParcel.id):
            counts["harvested_parcels"] += 1
            if row.seq not in self.harvests and self._before_effects(row.seq):
                unrecorded += 1
                continue
            report(
                f"harvest:{row.gtin}/{row.lot}/{row.dkbm}",
                harvest_issues(row, self.harvests.get(row.seq)),
            )
        for row in keyset(session, _event_rows(), Event.id):
            counts["trace_events"] += 1
            report(f"event:{row.ledger_seq}", event_issues(row))
        return {**counts, "recorded_before_effects": unrecorded}

    def _recorded_before(self, session: Session, lot_id: Any) -> bool:
        """Whether a lot without totals on the ledger was changed only by older events."""
        if not isinstance(lot_id, int):
            return False
        entries = lineage.lot_entries(session=session, lot_ids=[lot_id]).get(lot_id)
        return entries is not None and self._before_effects(entries[0])


# --- one record at a time -------------------------------------------------------------------------


def _entries(session: Session, seqs: Iterable[Any]) -> dict[int, tuple[str, Any, Any]]:
    """(kind, bytes, leaf hash) of the stored entries among ``seqs``, read raw."""
    wanted = sorted({seq for seq in seqs if isinstance(seq, int)})
    found: dict[int, tuple[str, Any, Any]] = {}
    for start in range(0, len(wanted), 900):
        query = select(
            LedgerEntry.seq, LedgerEntry.kind, raw(LedgerEntry.body), raw(LedgerEntry.leaf_hash)
        ).where(LedgerEntry.seq.in_(wanted[start : start + 900]))
        for seq, kind, body, leaf in session.execute(query):
            found[int(seq)] = (kind, body, leaf)
    return found


def _checked(
    entries: Mapping[int, Any], seq: Any, kind: str, problems: list[Problem], subject: str
) -> dict[str, Any] | None:
    """The data of entry ``seq`` if it is of ``kind`` and its bytes are those the log hashed."""
    if not isinstance(seq, int) or seq not in entries:
        problems.append(Problem(-1, f"{subject}: its ledger entry {seq!r} is not stored", subject))
        return None
    entry_kind, body, leaf = entries[seq]
    if not isinstance(body, bytes) or not isinstance(leaf, bytes) or merkle.hash_leaf(body) != leaf:
        problems.append(Problem(seq, f"{subject}: ledger entry {seq} was edited", subject))
        return None
    return entry_data(body) if entry_kind == kind else None


def _lot_record(data: Mapping[str, Any], key: str, seq: int) -> tuple[int, dict[str, Any]] | None:
    lots = (data.get("effects") or {}).get("lots")
    record = lots.get(key) if isinstance(lots, dict) else None
    return (seq, record) if isinstance(record, dict) else None


def check_lot(*, session: Session, gtin: str, lot: str) -> list[Problem]:
    """Every row of a lot the pages show — its product, its totals, the events that name it,
    its harvests and certificates — against the entries that record them; first first."""
    gtin14 = products.normalise_gtin(gtin)
    # Read raw: a row whose values were given another type is a finding, not an error.
    row = session.execute(
        select(raw(Lot.id), raw(Lot.product_id), raw(Lot.gtin), raw(Lot.lot)).where(
            Lot.gtin == gtin14, Lot.lot == lot
        )
    ).first()
    if row is None:
        raise NotFound(f"no lot {lot!r} of GTIN {gtin14}")
    problems: list[Problem] = []
    key = recorded.lot_key(row.gtin, row.lot)

    def add(subject: str, issues: Iterable[Issue]) -> None:
        problems.extend(Problem(index, what, subject) for index, what in issues)

    product = session.execute(_product_rows().where(Product.id == row.product_id)).one()
    lot_row = _lot(session.execute(_lot_rows().where(Lot.id == row.id)).one())
    certificates = session.execute(_certificate_rows().where(Certificate.lot_id == row.id)).all()
    harvests = session.execute(_harvest_rows().where(LotParcel.lot_id == row.id)).all()
    event_pks = select(EventLot.event_pk).where(EventLot.lot_id == row.id)
    events = session.execute(_event_rows().where(Event.id.in_(event_pks))).all()
    changes = lineage.lot_entries(session=session, lot_ids=[row.id]).get(row.id)
    seqs = [product.ledger_seq, *(c.ledger_seq for c in certificates), *(h.seq for h in harvests)]
    seqs += [e.ledger_seq for e in events] + list(changes or ())
    entries = _entries(session, seqs)

    subject = f"product:{product.gtin}"
    data = _checked(entries, product.ledger_seq, recorded.PRODUCT_KIND, problems, subject)
    if data is not None:
        add(subject, product_issues(product, data))
    subject = f"lot:{key}"
    if changes is None:
        add(subject, lot_issues(lot_row, None, None))
    else:
        last, made_seq = changes
        data = _checked(entries, last, recorded.EVENT_KIND, problems, subject)
        if data is not None and recorded.records_effects(data):
            latest = _lot_record(data, key, last)
            made = None
            if made_seq is not None:
                made_data = (
                    data
                    if made_seq == last
                    else _checked(entries, made_seq, recorded.EVENT_KIND, problems, subject)
                )
                made = _lot_record(made_data or {}, key, made_seq)
            if latest is None:
                problems.append(
                    Problem(
                        last,
                        f"lot {key}: ledger entry {last}, the last event that changed it, "
                        "records no totals for it",
                        subject,
                    )
                )
            else:
                add(subject, lot_issues(lot_row, latest, made))
    for event in events:
        add(f"event:{event.ledger_seq}", event_issues(event))
    for harvest in harvests:
        subject = f"harvest:{key}/{harvest.dkbm}"
        data = _checked(entries, harvest.seq, recorded.EVENT_KIND, problems, subject)
        if data is not None and recorded.records_effects(data):
            parcels = (data.get("effects") or {}).get("parcels")
            add(subject, harvest_issues(harvest, parcels if isinstance(parcels, dict) else None))
    units = session.execute(_unit_rows().where(Unit.lot_id == row.id)).all()
    unit_entries = _entries(session, {unit.seq for unit in units})
    for unit in units:
        subject = f"item:{unit.gtin}/{unit.serial}"
        data = _checked(unit_entries, unit.seq, recorded.EVENT_KIND, problems, subject)
        if data is not None and recorded.records_effects(data):
            add(subject, unit_issues(unit, _units_of(data)))
    for certificate in certificates:
        subject = f"certificate:{certificate.number}"
        data = _checked(
            entries, certificate.ledger_seq, recorded.CERTIFICATE_KIND, problems, subject
        )
        add(subject, certificate_issues(_certificate(certificate), data) if data else [])
    return sorted(problems, key=lambda problem: problem.index)


def check_certificate(*, session: Session, number: str) -> list[Problem]:
    """A certificate's row against its issue entry."""
    rows = session.execute(_certificate_rows().where(Certificate.number == number)).all()
    if not rows:
        raise NotFound(f"no 承诺达标合格证 numbered {number}")
    row = rows[0]
    problems: list[Problem] = []
    subject = f"certificate:{number}"
    entries = _entries(session, [row.ledger_seq])
    data = _checked(entries, row.ledger_seq, recorded.CERTIFICATE_KIND, problems, subject)
    if data is not None:
        problems += [
            Problem(index, what, subject)
            for index, what in certificate_issues(_certificate(row), data)
        ]
    return problems


def problems_json(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    return [{"index": p.index, "what": p.what, "subject": p.subject} for p in problems]
