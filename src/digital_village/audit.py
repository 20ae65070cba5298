"""The whole audit behind ``dv ledger verify`` and ``dv restore``: the log, then every record
the log vouches for.

The log's own audit (``ledger.audit``) knows nothing of what its entries mean; each package
that keeps rows bound to entries brings a ``RecordChecker`` (``<package>/audit.py``), and this
module hands the log audit one of each. A new kind of record joins the audit by adding its
checker to ``record_checkers``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session

from digital_village.iot.audit import SealChecker
from digital_village.ledger import audit as ledger_audit
from digital_village.ledger.audit import Problem, RecordChecker
from digital_village.parcels.audit import ParcelChecker
from digital_village.trace.audit import TraceChecker

__all__ = ["AuditReport", "Problem", "audit", "record_checkers"]


class AuditReport(ledger_audit.AuditReport):
    """The log audit's report, with what each package's checker counted by name."""

    @property
    def seals(self) -> int:
        return self.records.get("seals", 0)

    @property
    def readings(self) -> int:
        return self.records.get("sealed_readings", 0)

    @property
    def parcels(self) -> int:
        return self.records.get("parcels", 0)


def record_checkers() -> list[RecordChecker]:
    """A fresh checker for each kind of record the ledger vouches for, in report order."""
    return [SealChecker(), ParcelChecker(), TraceChecker()]


def audit(
    session: Session,
    *,
    origin: str,
    extra_vkeys: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
    records: bool = True,
) -> AuditReport:
    """Check the whole log and (``records``) the rows it vouches for; first bad index first."""
    report = ledger_audit.audit(
        session,
        origin=origin,
        extra_vkeys=extra_vkeys,
        progress=progress,
        checkers=record_checkers() if records else (),
    )
    return AuditReport(**vars(report))
