"""The chain's records against the ledger: products, lots and their totals, harvested parcels,
certificates and events.

``TraceChecker`` is the log audit's ``RecordChecker`` for trace (``digital_village.audit``
composes it); ``check_lot`` and ``check_certificate`` run the same comparisons for one record,
for the per-record check routes. Each row is compared field by field with the entry that
records it (``trace/recorded.py`` says where) and the first difference is named: the row
(``product:<GTIN>``, ``lot:<GTIN>/<lot>``, ``item:<GTIN>/<serial>``, ``certificate:<number>``,
``harvest:<GTIN>/<lot>/<DKBM>``, ``event:<ledger index>``), the field, both values and the
entry's index.

Rows whose entries were made before the ledger recorded what they hold (lots, items and
harvests of events captured before ``effects``) cannot be compared: they are counted, not
passed. The rows are read raw and compared one at a time by ``trace/audit_rows.py``: a value
of another type is a finding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_village.errors import NotFound
from digital_village.ledger import merkle, reads
from digital_village.ledger.audit import Found, Problem, RecordChecker, entry_data, keyset
from digital_village.ledger.models import LedgerEntry
from digital_village.ledger.stored import raw
from digital_village.trace import audit_rows as checks
from digital_village.trace import lineage, products, recorded
from digital_village.trace.models import (
    Certificate,
    Event,
    EventLot,
    Lot,
    LotParcel,
    Product,
    Unit,
)

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

    kinds = frozenset({*recorded.PRODUCT_KINDS, recorded.CERTIFICATE_KIND, recorded.EVENT_KIND})

    def __init__(self) -> None:
        # The newest entry of each product's chain: chain key → (index, data).
        self.products: dict[str, tuple[int, dict[str, Any]]] = {}
        self.certificates: dict[int, dict[str, Any]] = {}
        self.lots = _Lots({}, {})
        self.harvests: dict[int, dict[str, Any]] = {}
        # Events before the first that records its effects were captured by an older version.
        self.first_with_effects: int | None = None

    def entry(self, seq: int, kind: str, body: bytes) -> None:
        # orjson: this runs for every event of the log, several times faster than json.
        data = reads.data_of(reads.as_bytes(body))
        if not data:
            return  # the log audit names an entry that is no JSON object
        if kind in recorded.PRODUCT_KINDS:
            self._product(seq, body, data)
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

    def _product(self, seq: int, body: bytes, data: dict[str, Any]) -> None:
        """Keep the newest entry of the product's chain (the key its envelope names)."""
        try:
            chain = orjson.loads(reads.as_bytes(body)).get("chain") or {}
        except (orjson.JSONDecodeError, AttributeError):
            return
        key = chain.get("key") if isinstance(chain, dict) else None
        key = key if isinstance(key, str) else recorded.product_chain(str(data.get("gtin")))
        self.products[key] = (seq, data)

    def _before_effects(self, seq: Any) -> bool:
        return isinstance(seq, int) and (
            self.first_with_effects is None or seq < self.first_with_effects
        )

    def finish(self, session: Session, found: Found) -> Mapping[str, int]:
        counts = dict.fromkeys(
            ("products", "lots", "items", "certificates", "harvested_parcels", "trace_events"), 0
        )

        def report(subject: str, issues: Iterable[checks.Issue]) -> None:
            for index, what in issues:
                found(index, what, subject)

        self._finish_registered(session, found, counts, report)
        unrecorded = self._finish_lots(session, found, counts, report)
        for row in keyset(session, checks.event_rows(), Event.id):
            counts["trace_events"] += 1
            report(f"event:{row.ledger_seq}", checks.event_issues(row))
        return {**counts, "recorded_before_effects": unrecorded}

    def _finish_registered(
        self,
        session: Session,
        found: Found,
        counts: dict[str, int],
        report: Callable[[str, Iterable[checks.Issue]], None],
    ) -> None:
        """Product and certificate rows against their entries, and entries without a row: a
        product's row against the newest entry of its chain (its registration or last change)."""
        chains: set[str] = set()
        for row in keyset(session, checks.product_rows(), Product.id):
            counts["products"] += 1
            key = recorded.product_chain(str(row.gtin))
            chains.add(key)
            report(f"product:{row.gtin}", checks.product_issues(row, self.products.get(key)))
        for key, (seq, _data) in self.products.items():
            if key not in chains:
                gtin = key.removeprefix("product:")
                found(
                    seq,
                    f"product {gtin} recorded in entry {seq} has no row (row removed)",
                    f"product:{gtin}",
                )
        seen: set[int] = set()
        for row in keyset(session, checks.certificate_rows(), Certificate.id):
            counts["certificates"] += 1
            seen.add(row.ledger_seq)
            report(
                f"certificate:{row.number}",
                checks.certificate_issues(
                    checks.certificate(row), self.certificates.get(row.ledger_seq)
                ),
            )
        for seq, data in self.certificates.items():
            if seq not in seen:
                found(
                    seq,
                    f"certificate {data.get('number')} issued in entry {seq} has no row "
                    "(row removed)",
                    f"certificate:{data.get('number')}",
                )

    def _finish_lots(
        self,
        session: Session,
        found: Found,
        counts: dict[str, int],
        report: Callable[[str, Iterable[checks.Issue]], None],
    ) -> int:
        """Lot, item and harvest rows against the entries of the events that last changed
        them; the rows recorded before entries carried effects are counted, not checked."""
        unrecorded = 0
        keys: set[str] = set()
        for row in keyset(session, checks.lot_rows(), Lot.id):
            counts["lots"] += 1
            lot = checks.lot(row)
            key = recorded.lot_key(str(lot.gtin), str(lot.lot))
            keys.add(key)
            latest = self.lots.latest.get(key)
            if latest is None and self._recorded_before(session, lot.id):
                unrecorded += 1
                continue
            report(f"lot:{key}", checks.lot_issues(lot, latest, self.lots.made.get(key)))
        for key, (seq, _record) in self.lots.latest.items():
            if key not in keys:
                found(
                    seq, f"lot {key} recorded in entry {seq} has no row (row removed)", f"lot:{key}"
                )
        # Items are many and were commissioned in few events: each event's entry is read once.
        commissioned: dict[Any, dict[str, Any] | None] = {}
        for row in keyset(session, checks.unit_rows(), Unit.id):
            counts["items"] += 1
            if row.seq not in commissioned:
                if len(commissioned) > 16:
                    commissioned.clear()
                bodies = _entries(session, [row.seq])
                commissioned[row.seq] = checks.units_of(
                    entry_data(bodies[row.seq][1]) if row.seq in bodies else None
                )
            units = commissioned[row.seq]
            if units is None and self._before_effects(row.seq):
                unrecorded += 1
                continue
            report(f"item:{row.gtin}/{row.serial}", checks.unit_issues(row, units))
        for row in keyset(session, checks.harvest_rows(), LotParcel.id):
            counts["harvested_parcels"] += 1
            if row.seq not in self.harvests and self._before_effects(row.seq):
                unrecorded += 1
                continue
            report(
                f"harvest:{row.gtin}/{row.lot}/{row.dkbm}",
                checks.harvest_issues(row, self.harvests.get(row.seq)),
            )
        return unrecorded

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
    entries: Mapping[int, Any],
    seq: Any,
    kind: str | frozenset[str],
    problems: list[Problem],
    subject: str,
) -> dict[str, Any] | None:
    """The data of entry ``seq`` if it is of ``kind`` (or one of them) and its bytes are those
    the log hashed."""
    if not isinstance(seq, int) or seq not in entries:
        problems.append(Problem(-1, f"{subject}: its ledger entry {seq!r} is not stored", subject))
        return None
    entry_kind, body, leaf = entries[seq]
    if not isinstance(body, bytes) or not isinstance(leaf, bytes) or merkle.hash_leaf(body) != leaf:
        problems.append(Problem(seq, f"{subject}: ledger entry {seq} was edited", subject))
        return None
    kinds = frozenset({kind}) if isinstance(kind, str) else kind
    return entry_data(body) if entry_kind in kinds else None


def _chain_head(session: Session, key: str) -> int | None:
    """The index of the newest entry of a chain (one seek of the chain's index)."""
    head = session.scalar(select(func.max(LedgerEntry.seq)).where(LedgerEntry.chain_key == key))
    return None if head is None else int(head)


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

    def add(subject: str, issues: Iterable[checks.Issue]) -> None:
        problems.extend(Problem(index, what, subject) for index, what in issues)

    product = session.execute(checks.product_rows().where(Product.id == row.product_id)).one()
    lot_row = checks.lot(session.execute(checks.lot_rows().where(Lot.id == row.id)).one())
    certificates = session.execute(
        checks.certificate_rows().where(Certificate.lot_id == row.id)
    ).all()
    harvests = session.execute(checks.harvest_rows().where(LotParcel.lot_id == row.id)).all()
    event_pks = select(EventLot.event_pk).where(EventLot.lot_id == row.id)
    events = session.execute(checks.event_rows().where(Event.id.in_(event_pks))).all()
    changes = lineage.lot_entries(session=session, lot_ids=[row.id]).get(row.id)
    head = _chain_head(session, recorded.product_chain(str(product.gtin)))
    seqs = [head, *(c.ledger_seq for c in certificates), *(h.seq for h in harvests)]
    seqs += [e.ledger_seq for e in events] + list(changes or ())
    entries = _entries(session, seqs)

    _check_product(entries, head, product, problems)
    _check_lot_totals(entries, changes, key, lot_row, problems)
    for event in events:
        add(f"event:{event.ledger_seq}", checks.event_issues(event))
    for harvest in harvests:
        subject = f"harvest:{key}/{harvest.dkbm}"
        data = _checked(entries, harvest.seq, recorded.EVENT_KIND, problems, subject)
        if data is not None and recorded.records_effects(data):
            parcels = (data.get("effects") or {}).get("parcels")
            add(
                subject,
                checks.harvest_issues(harvest, parcels if isinstance(parcels, dict) else None),
            )
    units = session.execute(checks.unit_rows().where(Unit.lot_id == row.id)).all()
    unit_entries = _entries(session, {unit.seq for unit in units})
    for unit in units:
        subject = f"item:{unit.gtin}/{unit.serial}"
        data = _checked(unit_entries, unit.seq, recorded.EVENT_KIND, problems, subject)
        if data is not None and recorded.records_effects(data):
            add(subject, checks.unit_issues(unit, checks.units_of(data)))
    for certificate in certificates:
        subject = f"certificate:{certificate.number}"
        data = _checked(
            entries, certificate.ledger_seq, recorded.CERTIFICATE_KIND, problems, subject
        )
        add(
            subject,
            checks.certificate_issues(checks.certificate(certificate), data) if data else [],
        )
    return sorted(problems, key=lambda problem: problem.index)


def _check_product(
    entries: Mapping[int, Any], head: int | None, product: Any, problems: list[Problem]
) -> None:
    """A product's row against the newest entry of its chain (``head``)."""
    subject = f"product:{product.gtin}"
    newest: tuple[int, Mapping[str, Any] | None] | None = None
    if head is not None:
        before = len(problems)
        data = _checked(entries, head, recorded.PRODUCT_KINDS, problems, subject)
        if len(problems) > before:
            return  # the entry itself is missing or edited: named already
        newest = (head, data)
    issues = checks.product_issues(product, newest)
    problems.extend(Problem(index, what, subject) for index, what in issues)


def _check_lot_totals(
    entries: Mapping[int, Any],
    changes: tuple[int, int | None] | None,
    key: str,
    lot_row: Any,
    problems: list[Problem],
) -> None:
    """A lot's row against the entries of the last event that changed it and the one that
    made it (``changes``, from the lineage)."""
    subject = f"lot:{key}"

    def add(issues: Iterable[checks.Issue]) -> None:
        problems.extend(Problem(index, what, subject) for index, what in issues)

    if changes is None:
        add(checks.lot_issues(lot_row, None, None))
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
                add(checks.lot_issues(lot_row, latest, made))


def check_certificate(*, session: Session, number: str) -> list[Problem]:
    """A certificate's row against its issue entry."""
    stored = session.execute(checks.certificate_rows().where(Certificate.number == number)).all()
    if not stored:
        raise NotFound(f"no 承诺达标合格证 numbered {number}")
    row = stored[0]
    problems: list[Problem] = []
    subject = f"certificate:{number}"
    entries = _entries(session, [row.ledger_seq])
    data = _checked(entries, row.ledger_seq, recorded.CERTIFICATE_KIND, problems, subject)
    if data is not None:
        problems += [
            Problem(index, what, subject)
            for index, what in checks.certificate_issues(checks.certificate(row), data)
        ]
    return problems


def problems_json(problems: Iterable[Problem]) -> list[dict[str, Any]]:
    return [{"index": p.index, "what": p.what, "subject": p.subject} for p in problems]
