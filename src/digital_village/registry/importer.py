"""Importing a 确权 package: check everything first, then store in short transactions.

1. Read and check (``package``, ``validate``): no database.
2. Plan (one read transaction): compare with what the registry holds (``state``), prepare the
   shapes of new parcels (``parcels.batch``), refuse overlaps and codes registered otherwise.
3. Unless ``partial``, stop here when anything was rejected: nothing is stored.
4. Store in chunks, each its own write transaction sized to take well under 100 ms, so a
   county import never holds the writer long enough to keep a page or a sensor waiting:
   collectives, households, new parcels, contracts, then changes and retirements.

An interrupted store is completed by running the import again: every stored record carries
its source hash, so the second run finds it unchanged and stores only what is missing. An
unchanged package therefore changes nothing.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.bulk import write_in_chunks
from digital_village.db import Database
from digital_village.ledger.log import Ledger
from digital_village.parcels import batch
from digital_village.parcels.checks import Home, far_reasons, home_of, overlap_reasons
from digital_village.parcels.geometry import GeometryError, ParcelShape
from digital_village.parcels.models import Parcel
from digital_village.parcels.records import Candidate, ParcelIn
from digital_village.parcels.store import today
from digital_village.registry import store, updates
from digital_village.registry.models import RegistryImport
from digital_village.registry.package import Package
from digital_village.registry.state import State, county_of, read_state
from digital_village.registry.validate import (
    Checked,
    CollectiveIn,
    ContractIn,
    HouseholdIn,
    ParcelRecordIn,
    Rejection,
    check_package,
    seal,
)


@dataclass
class ImportReport:
    """What an import found and did; ``as_dict`` is the ``--json`` answer."""

    package: str
    crs: str
    crs_note: str | None = None
    counts: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            kind: {"created": 0, "changed": 0, "retired": 0, "unchanged": 0}
            for kind in ("parcels", "households", "contracts", "collectives")
        }
    )
    rejected: list[Rejection] = field(default_factory=list)
    stored: bool = False
    # Seconds per step, and how long each write transaction held the writer.
    timings: dict[str, float] = field(default_factory=dict)
    writes: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {kind: dict(values) for kind, values in self.counts.items()}
        out["parcels"]["rejected"] = [r.as_dict() for r in self.rejected]
        out["stored"] = self.stored
        out["package"] = self.package
        out["crs"] = self.crs
        if self.crs_note:
            out["crs_note"] = self.crs_note
        if self.writes:
            ordered = sorted(self.writes)
            self.timings["write_transactions"] = len(ordered)
            self.timings["longest_write_s"] = round(ordered[-1], 4)
            self.timings["p99_write_s"] = round(ordered[int(0.99 * (len(ordered) - 1))], 4)
        out["timings"] = {k: round(v, 4) for k, v in self.timings.items()}
        return out


@dataclass
class Plan:
    collectives: list[CollectiveIn] = field(default_factory=list)
    new_collectives: set[str] = field(default_factory=set)
    households: list[HouseholdIn] = field(default_factory=list)
    known_households: dict[str, int] = field(default_factory=dict)
    new_parcels: list[tuple[ParcelRecordIn, ParcelShape]] = field(default_factory=list)
    parcel_updates: dict[str, updates.ParcelUpdate] = field(default_factory=dict)
    retired_parcels: list[str] = field(default_factory=list)
    contracts: list[ContractIn] = field(default_factory=list)
    known_contracts: dict[str, int] = field(default_factory=dict)
    retired_contracts: dict[str, int] = field(default_factory=dict)


def _diff(report: ImportReport, kind: str, code: str, sha: str, known: dict[str, Any]) -> str:
    """'new', 'changed' or 'same', counted in the report."""
    found = known.get(code)
    if found is None:
        report.counts[kind]["created"] += 1
        return "new"
    if found.sha256 == sha and found.live:
        report.counts[kind]["unchanged"] += 1
        return "same"
    report.counts[kind]["changed"] += 1
    return "changed"


def _plan_parcels(
    session: Session, checked: Checked, state: State, package: Package, report: ImportReport
) -> tuple[
    list[tuple[ParcelRecordIn, ParcelShape]], list[tuple[ParcelRecordIn, ParcelShape | None]]
]:
    """New parcels with their prepared shapes, and stored ones whose DK record changed (with
    their new shape when the county resurveyed them under the same DKBM)."""
    fresh: list[ParcelRecordIn] = []
    changed: list[ParcelRecordIn] = []
    for code, record in list(checked.parcels.items()):
        earlier = state.registry_parcels.get(code)
        reason = None
        if earlier is None and code in state.parcels:
            reason = f"DKBM {code} is already registered, and not from a 确权 package"
        elif earlier is not None and not earlier.live:
            reason = f"DKBM {code} was retired by an earlier package; codes are never reused"
        elif earlier is None:
            fresh.append(record)
        elif earlier.sha256 != record.sha256:
            changed.append(record)
        if reason:
            report.rejected.append(Rejection("DK", record.row, code, "DKBM", reason))
            del checked.parcels[code]
    prepared = _prepared(fresh, package, checked, report)
    updated = _resurveyed(session, changed, package, checked, report)
    far = _far(session, prepared + [(r, s) for r, s in updated if s is not None], package.crs)
    for code, reason in far.items():
        report.rejected.append(Rejection("DK", checked.parcels[code].row, code, None, reason))
        del checked.parcels[code]
    prepared = [(r, s) for r, s in prepared if r.dkbm not in far]
    updated = [(r, s) for r, s in updated if r.dkbm not in far]
    reshaped = [(record, shape) for record, shape in updated if shape is not None]
    candidates = [
        Candidate(r.row, ParcelIn(s.geometry, r.land_use), store._contractor(r.fbfbm), s, [])
        for r, s in prepared + reshaped
    ]
    # A resurveyed parcel's old shape is no obstacle; its new one is checked like a new parcel.
    overlaps = overlap_reasons(
        session, candidates, ignore=frozenset(record.dkbm for record, _ in reshaped)
    )
    records = [record for record, _ in prepared + reshaped]
    for position in sorted(overlaps):
        record = records[position]
        reason = overlaps[position].replace("feature ", "row ")
        report.rejected.append(Rejection("DK", record.row, record.dkbm, None, reason))
        del checked.parcels[record.dkbm]
    rejected = {records[position].dkbm for position in overlaps}
    prepared = [(r, s) for r, s in prepared if r.dkbm not in rejected]
    updated = [(r, s) for r, s in updated if r.dkbm not in rejected]
    return prepared, updated


def _prepared(
    records: list[ParcelRecordIn], package: Package, checked: Checked, report: ImportReport
) -> list[tuple[ParcelRecordIn, ParcelShape]]:
    """The records' shapes prepared for storing; a shape that cannot be is rejected."""
    shapes = batch.prepare_many(
        list(shapely.from_wkb(np.asarray([r.wkb for r in records], dtype=object))),
        source_crs=package.crs,
    )
    prepared: list[tuple[ParcelRecordIn, ParcelShape]] = []
    for record, shape in zip(records, shapes, strict=True):
        if isinstance(shape, GeometryError):
            report.rejected.append(Rejection("DK", record.row, record.dkbm, None, str(shape)))
            del checked.parcels[record.dkbm]
        else:
            prepared.append((record, shape))
    return prepared


def _far(
    session: Session, shaped: list[tuple[ParcelRecordIn, ParcelShape]], crs: str
) -> dict[str, str]:
    """DKBMs of shapes over 30 km from the other parcels of their village (or township) in the
    registry, or, where it has none yet, from the middle of their village in the package: a
    typo in a coordinate, or a layer read in another zone than the one it was surveyed in."""
    by_village: dict[str, list[tuple[ParcelRecordIn, ParcelShape]]] = {}
    for record, shape in shaped:
        by_village.setdefault(record.fbfbm[:12], []).append((record, shape))
    found: dict[str, str] = {}
    for village, members in by_village.items():
        home = home_of(session, store._contractor(members[0][0].fbfbm))
        if home is None:
            centres = shapely.centroid(np.asarray([s.geometry for _, s in members], dtype=object))
            lon = float(np.median(shapely.get_x(centres)))
            lat = float(np.median(shapely.get_y(centres)))
            home = Home(f"village {village} in this package", (lon, lat, lon, lat))
        reasons = far_reasons(home, [shape for _, shape in members], crs)
        found.update({members[index][0].dkbm: reason for index, reason in reasons.items()})
    return found


def _resurveyed(
    session: Session,
    changed: list[ParcelRecordIn],
    package: Package,
    checked: Checked,
    report: ImportReport,
) -> list[tuple[ParcelRecordIn, ParcelShape | None]]:
    """Changed DK records, each with its new shape when it is not the stored one (a resurvey
    under the same DKBM, applied as a dated change) or None when the shape stayed."""
    if not changed:
        return []
    stored = dict(
        session.execute(
            select(Parcel.dkbm, Parcel.fingerprint).where(
                Parcel.dkbm.in_([r.dkbm for r in changed])
            )
        ).all()
    )
    return [
        (record, None if shape.fingerprint == stored.get(record.dkbm) else shape)
        for record, shape in _prepared(changed, package, checked, report)
    ]


def _drop_links_of_rejected(checked: Checked, report: ImportReport) -> None:
    """CBDKXX rows of parcels rejected against the registry go too, saying why."""
    for contract in checked.contracts.values():
        kept = []
        for link in contract.links:
            if link.dkbm in checked.parcels:
                kept.append(link)
            else:
                reason = f"parcel {link.dkbm} was rejected (see its DK row)"
                report.rejected.append(Rejection("CBDKXX", 0, link.dkbm, "DKBM", reason))
        contract.links = kept


def plan(
    session: Session, package: Package, checked: Checked, state: State, report: ImportReport
) -> Plan:
    """Decide what to store; rejections found against the registry go into the report."""
    result = Plan()
    for code, collective in checked.collectives.items():
        verdict = _diff(report, "collectives", code, collective.sha256, state.collectives)
        if verdict != "same":
            result.collectives.append(collective)
            if verdict == "new":
                result.new_collectives.add(code)
    for code, household in checked.households.items():
        if _diff(report, "households", code, household.sha256, state.households) != "same":
            result.households.append(household)
            if code in state.households:
                result.known_households[code] = state.households[code].id
    fresh, changed = _plan_parcels(session, checked, state, package, report)
    _drop_links_of_rejected(checked, report)
    result.new_parcels = fresh
    report.counts["parcels"]["created"] = len(fresh)
    for record, shape in changed:
        result.parcel_updates[record.dkbm] = updates.ParcelUpdate(record.dkbm, record, None, shape)
    for code, contract in checked.contracts.items():
        seal(contract)
        if _diff(report, "contracts", code, contract.sha256, state.contracts) != "same":
            result.contracts.append(contract)
            if code in state.contracts:
                result.known_contracts[code] = state.contracts[code].id
    fbfbms = set(checked.collectives)
    result.retired_contracts = {
        code: known.id
        for code, known in state.contracts.items()
        if known.live and code[:14] in fbfbms and code not in checked.contracts
    }
    report.counts["contracts"]["retired"] = len(result.retired_contracts)
    result.retired_parcels = sorted(
        code
        for code, known in state.registry_parcels.items()
        if known.live and code[:14] in fbfbms and code not in checked.parcels
    )
    report.counts["parcels"]["retired"] = len(result.retired_parcels)
    report.counts["parcels"]["unchanged"] = len(checked.parcels) - len(fresh) - len(changed)
    return result


def check_and_plan(
    database: Database, package: Package, report: ImportReport
) -> tuple[Checked, Plan, State]:
    """Steps 1 and 2: every record checked, and the plan, in one read transaction."""
    table = package.tables.get("FBF")
    fbfbms = [row.get("FBFBM", "") for row in table.rows] if table else []
    with database.transaction(write=False) as session:
        county = county_of(session, fbfbms)
        known = read_state(
            session, county=county or "", fbfbms=set(), cbfbms=set(), dkbms=set(), cbhtbms=set()
        )
        checked = check_package(package, county=county or "", townships=known.townships)
        report.rejected.extend(checked.rejected)
        state = read_state(
            session,
            county=county,
            fbfbms=set(checked.collectives),
            cbfbms=set(checked.households),
            dkbms=set(checked.parcels),
            cbhtbms=set(checked.contracts),
        )
        return checked, plan(session, package, checked, state, report), state


def _holder_updates(plan_: Plan, checked: Checked, state: State, ids: dict[str, int]) -> None:
    """Stored parcels under new, changed or retired contracts: their holder may have moved."""
    touched = {link.dkbm for c in plan_.contracts for link in c.links}
    for code in plan_.retired_contracts:
        touched.update(state.contract_parcels.get(code, ()))
    fresh = {record.dkbm for record, _ in plan_.new_parcels}
    for dkbm in sorted(touched - fresh):
        if dkbm not in checked.parcels:
            continue  # retired with its contract
        cbfbm = checked.parcels[dkbm].cbfbm
        household = ids.get(cbfbm) if cbfbm else None
        if household is None and cbfbm:
            household = state.households[cbfbm].id
        earlier = plan_.parcel_updates.get(dkbm)
        record = earlier.record if earlier else None
        shape = earlier.shape if earlier else None
        plan_.parcel_updates[dkbm] = updates.ParcelUpdate(dkbm, record, household, shape)


def _store(
    database: Database,
    ledger: Ledger,
    plan_: Plan,
    checked: Checked,
    state: State,
    start: dt.date,
    report: ImportReport,
) -> None:
    """Step 4: every chunk its own write transaction, in the order records depend on."""
    write_in_chunks(
        database,
        plan_.collectives,
        lambda session, chunk: store.store_collectives(
            session, ledger, chunk, plan_.new_collectives, start
        ),
        durations=report.writes,
    )
    ids: dict[str, int] = {code: known.id for code, known in state.households.items()}

    def households(session: Session, chunk: Sequence[HouseholdIn]) -> None:
        ids.update(store.store_households(session, ledger, chunk, plan_.known_households, start))

    write_in_chunks(database, plan_.households, households, durations=report.writes)
    write_in_chunks(
        database,
        plan_.new_parcels,
        lambda session, chunk: store.store_new_parcels(session, ledger, chunk, ids, start),
        durations=report.writes,
    )
    write_in_chunks(
        database,
        plan_.contracts,
        lambda session, chunk: store.store_contracts(
            session, ledger, chunk, plan_.known_contracts, ids, start
        ),
        durations=report.writes,
    )
    write_in_chunks(
        database,
        list(plan_.retired_contracts.items()),
        lambda session, chunk: store.retire_contracts(session, ledger, dict(chunk), start),
        durations=report.writes,
    )
    _holder_updates(plan_, checked, state, ids)
    cbfbm_of = {household_id: code for code, household_id in ids.items()}
    changed: list[int] = []

    def apply(session: Session, chunk: Sequence[updates.ParcelUpdate]) -> None:
        changed.append(updates.apply_updates(session, ledger, list(chunk), cbfbm_of, start))

    write_in_chunks(database, list(plan_.parcel_updates.values()), apply, durations=report.writes)
    counts = report.counts["parcels"]
    counts["unchanged"] -= sum(changed) - len(
        [u for u in plan_.parcel_updates.values() if u.record]
    )
    counts["changed"] = sum(changed)
    write_in_chunks(
        database,
        plan_.retired_parcels,
        lambda session, chunk: updates.retire(session, ledger, list(chunk), start),
        durations=report.writes,
    )


def import_package(
    *,
    database: Database,
    ledger: Ledger,
    package: Package,
    actor: Actor,
    partial: bool = False,
    valid_from: dt.date | None = None,
) -> ImportReport:
    """Import (or re-import) a package; see the module docstring for the steps.

    Without ``partial`` nothing is stored when any record was rejected; with it, the good
    records are stored and the report names the rest.
    """
    actor.require_admin()
    start = valid_from or today()
    report = ImportReport(package.name, package.crs, package.crs_note)
    began = time.perf_counter()
    checked, plan_, state = check_and_plan(database, package, report)
    report.timings["check_and_plan_s"] = time.perf_counter() - began
    report.rejected.sort(key=lambda r: (r.table, r.record, r.key))
    if report.rejected and not partial:
        return report
    began = time.perf_counter()
    _store(database, ledger, plan_, checked, state, start, report)
    report.timings["store_s"] = time.perf_counter() - began
    report.stored = True
    with database.transaction(write=True) as session:
        session.add(
            RegistryImport(
                package=package.name[:255],
                package_sha256=package.sha256,
                valid_from=start,
                summary={k: dict(v) for k, v in report.counts.items()},
            )
        )
    return report
