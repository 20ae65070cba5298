"""Changing parcels: holders (流转), land use, season crops with valid_from/valid_to history,
and split and merge, which retire codes and register new ones with lineage.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import shapely
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import utcnow
from digital_village.errors import Conflict, Forbidden, Invalid
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.parcels import batch, codes, geometry, landuse
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
    cooperative_region,
    overlap_reasons,
    require_region_scope,
    store_parcels,
)
from digital_village.parcels.store import (
    CHINA_TIME,
    Holding,
    SourceCrs,
    cooperative_codes,
    get_active_parcel,
    get_parcel,
    household_codes,
    parcel_geometry,
    today,
)
from digital_village.regions.models import Cooperative, Household


@dataclass(frozen=True)
class ParcelChange:
    """Attributes to change from ``valid_from`` (default today); None leaves one alone.

    ``correction`` is an admin's reason for a change that starts on or before a day with
    events already recorded on the parcel: history rewritten on purpose, recorded as such.
    """

    valid_from: dt.date | None = None
    holding: Holding | None = None
    land_use: str | None = None
    crop: tuple[str, str] | None = None  # (season label, crop): replaces that season's crop
    bdcdyh: str | None = None
    correction: str | None = None


def _open_holding(session: Session, parcel_id: int) -> ParcelHolding | None:
    return session.scalars(
        select(ParcelHolding).where(
            ParcelHolding.parcel_id == parcel_id, ParcelHolding.valid_to.is_(None)
        )
    ).first()


def _cooperative_of(session: Session, household_id: int | None) -> int | None:
    household = session.get(Household, household_id) if household_id is not None else None
    return household.cooperative_id if household is not None else None


def _require_own_parcel(session: Session, actor: Actor, parcel: Parcel) -> ParcelHolding | None:
    """A manager may change a parcel its cooperative or one of its members holds now, or one
    of its village (or township) that nobody holds; a parcel another household or cooperative
    holds is theirs, and only an admin changes it. Returns the current holding."""
    current = _open_holding(session, parcel.id)
    contractor = current.contractor_household_id if current else None
    operator = current.operator_cooperative_id if current else None
    if actor.cooperative_id is not None and actor.cooperative_id in (
        operator,
        _cooperative_of(session, contractor),
    ):
        return current
    if contractor is not None or operator is not None:
        raise Forbidden(
            f"parcel {parcel.dkbm} is held by a household or cooperative other than cooperative "
            f"{actor.cooperative_id} and its members; only an admin may change it",
            role=actor.role.value,
        )
    region = cooperative_region(session, actor)
    if region is None or not parcel.fbfbm.startswith(region):
        raise Forbidden(
            f"a manager may change parcels its cooperative or its members hold, or unheld "
            f"parcels of its village; {parcel.dkbm} is neither",
            role=actor.role.value,
        )
    return current


def _require_correction_rights(actor: Actor, correction: str | None) -> None:
    if correction is not None and not actor.is_admin:
        raise Forbidden(
            f"only an admin may correct recorded history; a {actor.role.value} token may not",
            role=actor.role.value,
        )


def _require_change_scope(
    session: Session, actor: Actor, parcel: Parcel, change: ParcelChange
) -> None:
    _require_correction_rights(actor, change.correction)
    if actor.is_admin:
        return
    if actor.role is Role.FARMER:
        current = _open_holding(session, parcel.id)
        only_crop = change.crop is not None and change == ParcelChange(
            valid_from=change.valid_from, crop=change.crop
        )
        holds = current is not None and current.contractor_household_id == actor.household_id
        if only_crop and holds and actor.household_id is not None:
            return
        raise Forbidden(
            "a farmer token may only record the crop of parcels its household contracts",
            role=actor.role.value,
        )
    if actor.role is not Role.MANAGER:
        raise Forbidden(f"a {actor.role.value} token may not change parcels", role=actor.role.value)
    current = _require_own_parcel(session, actor, parcel)
    if change.holding is None:
        return
    # Handing the parcel on: to the cooperative itself or one of its members; a holder the
    # parcel already has may stay.
    new_operator = change.holding.operator_cooperative_id
    kept_operator = current.operator_cooperative_id if current else None
    if new_operator not in (None, actor.cooperative_id, kept_operator):
        raise Forbidden(
            f"a manager may hand a parcel's operation to its own cooperative only, "
            f"not to cooperative {new_operator}",
            role=actor.role.value,
        )
    new_contractor = change.holding.contractor_household_id
    kept_contractor = current.contractor_household_id if current else None
    if new_contractor not in (None, kept_contractor) and (
        _cooperative_of(session, new_contractor) != actor.cooperative_id
    ):
        raise Forbidden(
            f"a manager may make only its cooperative's member households contractors, "
            f"not household {new_contractor}",
            role=actor.role.value,
        )


def _require_open_history(
    parcels_: Sequence[Parcel],
    start: dt.date,
    last_event: dt.datetime | None,
    correction: str | None,
) -> None:
    """A change may not start on or before a day with events recorded on the parcel (they
    were checked against the holders of that day) unless an admin corrects history."""
    if last_event is None or correction is not None:
        return
    last_day = last_event.astimezone(CHINA_TIME).date()
    if start <= last_day:
        names = ", ".join(p.dkbm for p in parcels_)
        raise Conflict(
            f"events are already recorded on parcel {names} up to {last_day.isoformat()}; "
            f"a change must start after that day (an admin may correct history by giving "
            f"the reason as correction)"
        )


def _open_period(
    session: Session, parcel: Parcel, name: str, start: dt.date, *, what: str
) -> list[ParcelAttribute]:
    """The open period of an attribute, to be closed at ``start`` (which must come after it)."""
    current = session.scalars(
        select(ParcelAttribute).where(
            ParcelAttribute.parcel_id == parcel.id,
            ParcelAttribute.name == name,
            ParcelAttribute.valid_to.is_(None),
        )
    ).first()
    if current is None:
        return []
    if start <= current.valid_from:
        raise Invalid(
            f"the change must start after the current {what}, which began on "
            f"{current.valid_from.isoformat()}"
        )
    return [current]


def change(
    *,
    session: Session,
    ledger: Ledger,
    dkbm: str,
    change: ParcelChange,
    actor: Actor,
    last_event: dt.datetime | None,
) -> Parcel:
    """Record new holders, land use, a season's crop or the 不动产单元代码 of an active parcel.

    The current period of each changed attribute ends at ``valid_from``; a new one starts
    there. One ``parcel.changed`` ledger entry records everything changed together.
    ``last_event`` is when the latest event still standing was recorded on the parcel (None
    when there is none): holders, land use and 不动产单元代码 may change only after its day,
    unless an admin gives a ``correction``, which the entry records.
    """
    parcel = get_active_parcel(session=session, dkbm=dkbm)
    _require_change_scope(session, actor, parcel, change)
    start = change.valid_from or today()
    data: dict[str, Any] = {"dkbm": parcel.dkbm, "valid_from": start.isoformat()}
    if change == ParcelChange(valid_from=change.valid_from, correction=change.correction):
        raise Invalid("nothing to change: give holders, land_use, crop or bdcdyh")
    if (change.holding, change.land_use, change.bdcdyh) != (None, None, None):
        _require_open_history([parcel], start, last_event, change.correction)
    if change.correction is not None:
        data["correction"] = change.correction
    closing: list[Any] = []
    new_rows: list[Any] = []
    if change.holding is not None:
        contractor = change.holding.contractor_household_id
        operator = change.holding.operator_cooperative_id
        if contractor is not None:
            household = session.get(Household, contractor)
            if household is None:
                raise Invalid(f"no household with id {contractor}")
            data["contractor"] = household.cbfbm
        else:
            data["contractor"] = None
        if operator is not None:
            cooperative = session.get(Cooperative, operator)
            if cooperative is None:
                raise Invalid(f"no cooperative with id {operator}")
            data["operator"] = cooperative.uscc
        else:
            data["operator"] = None
        current = _open_holding(session, parcel.id)
        if current is not None:
            if start <= current.valid_from:
                raise Invalid(
                    f"the change must start after the current holding, which began on "
                    f"{current.valid_from.isoformat()}"
                )
            closing.append(current)
        new_rows.append(
            ParcelHolding(
                parcel_id=parcel.id,
                contractor_household_id=contractor,
                operator_cooperative_id=operator,
                valid_from=start,
            )
        )
    if change.land_use is not None:
        if change.land_use not in landuse.LAND_USE:
            raise Invalid(f"land use {change.land_use!r} is not a GB/T 21010 farm class")
        closing += _open_period(session, parcel, "land_use", start, what="land use")
        new_rows.append(
            ParcelAttribute(
                parcel_id=parcel.id, name="land_use", value=change.land_use, valid_from=start
            )
        )
        parcel.land_use = change.land_use
        data["land_use"] = change.land_use
    if change.crop is not None:
        season, crop = change.crop
        try:
            crop_from, crop_to = landuse.season_period(season)
        except ValueError as error:
            raise Invalid(str(error)) from error
        crop = crop.strip()
        if not crop or len(crop) > 40:
            raise Invalid("crop must be 1 to 40 characters")
        for row in session.scalars(
            select(ParcelAttribute).where(
                ParcelAttribute.parcel_id == parcel.id,
                ParcelAttribute.name == "crop",
                ParcelAttribute.season == season,
                ParcelAttribute.superseded_at.is_(None),
            )
        ):
            row.superseded_at = utcnow()
        new_rows.append(
            ParcelAttribute(
                parcel_id=parcel.id,
                name="crop",
                value=crop,
                season=season,
                valid_from=crop_from,
                valid_to=crop_to,
            )
        )
        data["crop"] = {"season": season, "crop": crop}
    if change.bdcdyh is not None:
        try:
            bdcdyh = codes.parse_bdcdyh(change.bdcdyh, county=parcel.fbfbm[:6]).code
        except codes.CodeError as error:
            raise Invalid(f"不动产单元代码: {error}") from error
        closing += _open_period(session, parcel, "bdcdyh", start, what="不动产单元代码")
        new_rows.append(
            ParcelAttribute(parcel_id=parcel.id, name="bdcdyh", value=bdcdyh, valid_from=start)
        )
        parcel.bdcdyh = bdcdyh
        data["bdcdyh"] = bdcdyh
    entry = ledger.append(
        session, kind="parcel.changed", data=data, chain_key=f"parcel:{parcel.dkbm}"
    )
    for row in closing:
        row.valid_to = start
    for row in new_rows:
        row.ledger_seq = entry.seq
        session.add(row)
    parcel.last_seq = entry.seq
    session.flush()
    return parcel


def _retire(
    session: Session, parcels_: Sequence[Parcel], on: dt.date, seqs: dict[int, int]
) -> None:
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
    _retire(session, parents, start, seqs)
    for parent in parents:
        for child_id in child_ids:
            session.add(
                ParcelLineage(
                    parent_id=parent.id, child_id=child_id, kind=kind, ledger_seq=seqs[parent.id]
                )
            )
    session.flush()
    return [get_parcel(session=session, dkbm=code) for code in children]
