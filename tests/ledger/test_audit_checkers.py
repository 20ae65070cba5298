"""Record checkers: the log audit hands each the entries of its kinds and reports its problems,
without learning what the entries mean."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session

from digital_village import audit
from digital_village.config import Settings
from digital_village.ledger import audit as ledger_audit
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.ledger.models import LedgerCheckpoint


@pytest.fixture
def ledger(settings: Settings) -> Ledger:
    return Ledger.from_key_file(settings.effective_ledger_key_path, settings.ledger_origin)


class Harvests(ledger_audit.RecordChecker):
    """A checker of a made-up tenant: harvests must not exceed 1000 kg."""

    kinds = ("test.harvest",)

    def __init__(self) -> None:
        self.seen: list[tuple[int, str, bytes]] = []

    def entry(self, seq: int, kind: str, body: bytes) -> None:
        self.seen.append((seq, kind, body))

    def finish(self, session: Session, found: ledger_audit.Found) -> Mapping[str, int]:
        for seq, _kind, body in self.seen:
            data = ledger_audit.entry_data(body)
            assert data is not None
            if data["kg"] > 1000:
                found(seq, f"harvest of {data['kg']} kg", f"harvest:{data['lot']}")
        return {"harvests": len(self.seen)}


def test_a_checker_gets_the_entries_of_its_kinds_in_order_with_their_bytes(
    session: Session, ledger: Ledger
) -> None:
    appended = ledger.append_many(
        session,
        [
            EntryIn("test.harvest", {"lot": "A", "kg": 10}),
            EntryIn("test.other", {"n": 1}),
            EntryIn("test.harvest", {"lot": "B", "kg": 5000}),
        ],
    )
    checker = Harvests()
    report = ledger_audit.audit(session, origin=ledger.origin, checkers=[checker])
    assert [(seq, kind) for seq, kind, _ in checker.seen] == [
        (0, "test.harvest"),
        (2, "test.harvest"),
    ]
    assert [body for _, _, body in checker.seen] == [appended[0].body, appended[2].body]
    assert report.records == {"harvests": 2}
    assert report.as_dict()["harvests"] == 2
    assert not report.ok
    assert [(p.index, p.subject) for p in report.problems] == [(2, "harvest:B")]
    assert report.as_dict()["first_bad_index"] == 2


def test_checker_problems_sort_with_the_logs_own(session: Session, ledger: Ledger) -> None:
    ledger.append_many(session, [EntryIn("test.harvest", {"lot": "A", "kg": 2000})])
    ledger.append_many(session, [EntryIn("test.other", {"n": 1})])
    # The newest checkpoint removed: the log's own problem, found at index 1.
    session.execute(delete(LedgerCheckpoint).where(LedgerCheckpoint.size == 2))
    report = ledger_audit.audit(session, origin=ledger.origin, checkers=[Harvests()])
    assert [(p.index, p.subject) for p in report.problems] == [(0, "harvest:A"), (1, None)]


def test_the_whole_audit_reports_each_packages_counts(session: Session, ledger: Ledger) -> None:
    ledger.append_many(session, [EntryIn("test.other", {"n": 1})])
    report = audit.audit(session, origin=ledger.origin)
    assert report.ok, report.problems
    assert list(report.records) == [
        "seals",
        "sealed_readings",
        "parcels",
        "parcel_holdings",
        "parcel_attributes",
        "parcel_shapes_kept",
        "crops_recorded_before",
        "products",
        "lots",
        "items",
        "certificates",
        "harvested_parcels",
        "trace_events",
        "recorded_before_effects",
    ]
    assert (report.seals, report.readings, report.parcels) == (0, 0, 0)
    assert not any(report.records.values())
    assert not audit.audit(session, origin=ledger.origin, records=False).records
