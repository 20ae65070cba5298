"""Reshaping parcels: split and merge retire codes and register new ones, with lineage; the
parts inherit holders, land use and the crops still to come.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import shapely
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.db import utcnow
from digital_village.errors import Conflict, Invalid
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.parcels import batch, geometry, landuse
from digital_village.parcels.changes import (
    _open_holding,
    _require_correction_rights,
    _require_open_history,
    _require_own_parcel,
)
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelHolding,
    ParcelLineage,
    ParcelStatus,
)
from digital_village.parcels.registry import (
    OVERLAP_TOLERANCE_M2,
    Candidate,
    ParcelIn,
    RegisterReport,
    check_attributes,
    check_fbfbm,
    overlap_reasons,
    require_region_scope,
    store_parcels,
)
from digital_village.parcels.store import (
    SourceCrs,
    cooperative_codes,
    get_active_parcel,
    get_parcel,
    household_codes,
    parcel_geometry,
    today,
)


def retire_rows(
    session: Session, parcels_: Sequence[Parcel], on: dt.date, seqs: dict[int, int]
) -> None:
    """Retire parcels from ``on``: open holdings and land-use periods close, each parcel
    points at its retiring ledger entry (``seqs``: parcel id → entry)."""
    ids = [p.id for p in parcels_]
    for holding in session.scalars(
        select(ParcelHolding).where(
            ParcelHolding.parcel_id.in_(ids), ParcelHolding.valid_to.is_(None)
        )
    ):
        holding.valid_to = max(on, holding.valid_from)
    for attribute in session.scalars(
        select(ParcelAttribute).where(
            ParcelAttribute.parcel_id.in_(ids),
            ParcelAttribute.name.in_(("land_use", "bdcdyh")),
            ParcelAttribute.valid_to.is_(None),
        )
    ):
        attribute.valid_to = max(on, attribute.valid_from)
    now = utcnow()
    for parcel in parcels_:
        parcel.status = ParcelStatus.RETIRED
        parcel.retired_at = now
        parcel.last_seq = seqs[parcel.id]


def _future_crops(session: Session, parcel_id: int, on: dt.date) -> tuple[tuple[str, str], ...]:
    rows = session.scalars(
        select(ParcelAttribute)
        .where(
            ParcelAttribute.parcel_id == parcel_id,
            ParcelAttribute.name == "crop",
            ParcelAttribute.superseded_at.is_(None),
            or_(ParcelAttribute.valid_to.is_(None), ParcelAttribute.valid_to > on),
        )
        .order_by(ParcelAttribute.valid_from)
    ).all()
    return tuple((row.season or landuse.season_of(row.valid_from), row.value) for row in rows)


def _require_reshape_scope(
    session: Session, actor: Actor, parcels_: Sequence[Parcel], correction: str | None
) -> None:
    """Admin, or a manager of the parcels' village whose cooperative or members hold each
    one (or nobody does)."""
    _require_correction_rights(actor, correction)
    require_region_scope(session=session, actor=actor, fbfbm=parcels_[0].fbfbm)
    if not actor.is_admin:
        for parcel in parcels_:
            _require_own_parcel(session, actor, parcel)


def split(
    *,
    session: Session,
    ledger: Ledger,
    dkbm: str,
    parts: Sequence[Any],
    actor: Actor,
    last_event: dt.datetime | None,
    source: SourceCrs | None = None,
    valid_from: dt.date | None = None,
    correction: str | None = None,
) -> list[Parcel]:
    """Retire a parcel and register its parts under new DKBMs of the same FBFBM.

    The parts must not overlap each other and must together cover the parcel (within 1 m²
    or 0.1 % of its area). They inherit land use, holders and the crops still to come.
    ``last_event`` and ``correction`` work as in :func:`change`.
    """
    parent = get_active_parcel(session=session, dkbm=dkbm)
    _require_reshape_scope(session, actor, [parent], correction)
    if len(parts) < 2:
        raise Invalid("a split needs at least two parts")
    start = valid_from or today()
    _require_open_history([parent], start, last_event, correction)
    source = source or SourceCrs()
    shapes = batch.prepare_many(list(parts), source_crs=source.crs, datum=source.datum)
    for index, shape in enumerate(shapes):
        if isinstance(shape, geometry.GeometryError):
            raise Invalid(f"part {index}: {shape}")
    prepared = [s for s in shapes if isinstance(s, geometry.ParcelShape)]
    whole = parcel_geometry(parent)
    epsg = parent.epsg
    mismatch = shapely.area(
        geometry.to_gk(
            shapely.symmetric_difference(whole, shapely.union_all([p.geometry for p in prepared])),
            epsg,
        )
    )
    tolerance = max(OVERLAP_TOLERANCE_M2, 0.001 * parent.area_m2)
    if mismatch > tolerance:
        raise Invalid(
            f"the parts do not cover parcel {parent.dkbm}: they differ from it by "
            f"{mismatch:.1f} m² (allowed {tolerance:.1f} m²)"
        )
    for i, first in enumerate(prepared):
        for j in range(i + 1, len(prepared)):
            shared = geometry.find_overlaps(
                first.geometry, {str(j): prepared[j].geometry}, tolerance_m2=OVERLAP_TOLERANCE_M2
            )
            if shared:
                raise Invalid(f"parts {i} and {j} overlap by {shared[str(j)]:.1f} m²")
    holding = _open_holding(session, parent.id)
    items = [
        ParcelIn(
            geometry=shape.geometry,
            land_use=parent.land_use,
            fbfbm=parent.fbfbm,
            contractor_household_id=holding.contractor_household_id if holding else None,
            operator_cooperative_id=holding.operator_cooperative_id if holding else None,
            crops=_future_crops(session, parent.id, start),
        )
        for shape in prepared
    ]
    return _replace(
        session, ledger, [parent], items, start=start, kind="split", correction=correction
    )


def merge(
    *,
    session: Session,
    ledger: Ledger,
    dkbms: Sequence[str],
    actor: Actor,
    last_event: dt.datetime | None,
    valid_from: dt.date | None = None,
    correction: str | None = None,
) -> Parcel:
    """Retire adjacent active parcels of one FBFBM and register their union under a new DKBM.

    They must touch (their union is one polygon) and have the same holders and land use.
    ``last_event`` (over all of them) and ``correction`` work as in :func:`change`.
    """
    unique = list(dict.fromkeys(code.strip() for code in dkbms))
    if len(unique) < 2:
        raise Invalid("a merge needs at least two different parcels")
    members = [get_active_parcel(session=session, dkbm=code) for code in unique]
    fbfbms = {p.fbfbm for p in members}
    if len(fbfbms) > 1:
        raise Invalid(f"parcels of different 发包方 cannot merge: {', '.join(sorted(fbfbms))}")
    _require_reshape_scope(session, actor, members, correction)
    union = shapely.union_all([parcel_geometry(p) for p in members])
    if not isinstance(union, shapely.Polygon):
        raise Invalid(
            f"parcels {', '.join(unique)} do not all touch: their union is not one polygon"
        )
    holdings = {p.dkbm: _open_holding(session, p.id) for p in members}
    holders = {
        (h.contractor_household_id, h.operator_cooperative_id) if h else (None, None)
        for h in holdings.values()
    }
    if len(holders) > 1:
        raise Invalid("the parcels have different contractors or operators; change them first")
    uses = {p.land_use for p in members}
    if len(uses) > 1:
        raise Invalid(f"the parcels have different land uses ({', '.join(sorted(uses))})")
    start = valid_from or today()
    _require_open_history(members, start, last_event, correction)
    contractor, operator = next(iter(holders))
    item = ParcelIn(
        geometry=union,
        land_use=members[0].land_use,
        fbfbm=members[0].fbfbm,
        contractor_household_id=contractor,
        operator_cooperative_id=operator,
        crops=_future_crops(session, members[0].id, start),
    )
    return _replace(
        session, ledger, members, [item], start=start, kind="merge", correction=correction
    )[0]


def _replace(
    session: Session,
    ledger: Ledger,
    parents: Sequence[Parcel],
    items: list[ParcelIn],
    *,
    start: dt.date,
    kind: str,
    correction: str | None,
) -> list[Parcel]:
    parent_codes = [p.dkbm for p in parents]
    # Check against every active parcel but the ones being replaced.
    base = check_fbfbm(session=session, fbfbm=parents[0].fbfbm)
    shapes = batch.prepare_many([item.geometry for item in items])
    candidates = []
    for index, (item, shape) in enumerate(zip(items, shapes, strict=True)):
        if isinstance(shape, geometry.GeometryError):
            raise Invalid(f"part {index}: {shape}")
        candidates.append(Candidate(index, item, base, shape, check_attributes(item)))
    reasons = overlap_reasons(session, candidates, ignore=frozenset(parent_codes))
    if reasons:
        position, reason = next(iter(sorted(reasons.items())))
        raise Conflict(f"part {position}: {reason}")
    households = household_codes(
        session, {i.contractor_household_id for i in items if i.contractor_household_id}
    )
    cooperatives = cooperative_codes(
        session, {i.operator_cooperative_id for i in items if i.operator_cooperative_id}
    )
    report = RegisterReport()
    child_ids = store_parcels(
        session,
        ledger,
        candidates,
        start=start,
        households=households,
        cooperatives=cooperatives,
        kind="parcel.registered",
        extra={"from": parent_codes, "by": kind},
        report=report,
    )
    children = [c.dkbm for c in report.created]
    retired: dict[str, Any] = {"into": children, "valid_to": start.isoformat()}
    if correction is not None:
        retired["correction"] = correction
    entries = [
        EntryIn(
            f"parcel.{'split' if kind == 'split' else 'merged'}",
            {"dkbm": parent.dkbm, **retired},
            f"parcel:{parent.dkbm}",
        )
        for parent in parents
    ]
    appended = ledger.append_many(session, entries)
    seqs = {parent.id: entry.seq for parent, entry in zip(parents, appended, strict=True)}
    retire_rows(session, parents, start, seqs)
    for parent in parents:
        for child_id in child_ids:
            session.add(
                ParcelLineage(
                    parent_id=parent.id, child_id=child_id, kind=kind, ledger_seq=seqs[parent.id]
                )
            )
    session.flush()
    return [get_parcel(session=session, dkbm=code) for code in children]
