"""Changing parcels: holders (流转), land use, season crops with valid_from/valid_to history.
Split and merge are in ``reshape``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.db import utcnow
from digital_village.errors import Conflict, Forbidden, Invalid
from digital_village.ledger.log import Ledger
from digital_village.parcels import codes, landuse
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelHolding,
)
from digital_village.parcels.registry import (
    cooperative_region,
)
from digital_village.parcels.store import (
    CHINA_TIME,
    Holding,
    get_active_parcel,
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


def require_own_parcel(*, session: Session, actor: Actor, dkbm: str) -> None:
    """Admin, or a manager of the cooperative that (or whose member) holds the active parcel
    now, or of its village when nobody holds it; Forbidden otherwise."""
    parcel = get_active_parcel(session=session, dkbm=dkbm)
    if actor.is_admin:
        return
    if actor.role is not Role.MANAGER:
        raise Forbidden(
            f"a {actor.role.value} token may not act for parcel {dkbm}", role=actor.role.value
        )
    _require_own_parcel(session, actor, parcel)


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
            f"parcel {parcel.dkbm} is held by a household or cooperative other than your "
            "cooperative and its members; only an admin may change it",
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
            "a manager may hand a parcel's operation to its own cooperative only, "
            "not to another one",
            role=actor.role.value,
        )
    new_contractor = change.holding.contractor_household_id
    kept_contractor = current.contractor_household_id if current else None
    if new_contractor not in (None, kept_contractor) and (
        _cooperative_of(session, new_contractor) != actor.cooperative_id
    ):
        raise Forbidden(
            "a manager may make only its cooperative's member households contractors, "
            "not a household outside it",
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
    edit = _Edit(parcel, change, start, data)
    for step in (_holding_change, _land_use_change, _crop_change, _bdcdyh_change):
        step(session, edit)
    closing, new_rows = edit.closing, edit.new_rows
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


@dataclass
class _Edit:
    """One change being assembled: what the ledger entry records, which periods close and
    which rows open once the entry has its seq."""

    parcel: Parcel
    change: ParcelChange
    start: dt.date
    data: dict[str, Any]
    closing: list[Any] = field(default_factory=list)
    new_rows: list[Any] = field(default_factory=list)


def _holding_change(session: Session, edit: _Edit) -> None:
    """New holders from ``start``: the open holding closes there."""
    parcel, change, start, data = edit.parcel, edit.change, edit.start, edit.data
    closing, new_rows = edit.closing, edit.new_rows
    if change.holding is None:
        return
    contractor = change.holding.contractor_household_id
    operator = change.holding.operator_cooperative_id
    data["contractor"] = data["operator"] = None
    if contractor is not None:
        household = session.get(Household, contractor)
        if household is None:
            raise Invalid(f"no household with id {contractor}")
        data["contractor"] = household.cbfbm
    if operator is not None:
        cooperative = session.get(Cooperative, operator)
        if cooperative is None:
            raise Invalid(f"no cooperative with id {operator}")
        data["operator"] = cooperative.uscc
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


def _land_use_change(session: Session, edit: _Edit) -> None:
    parcel, change, start, data = edit.parcel, edit.change, edit.start, edit.data
    closing, new_rows = edit.closing, edit.new_rows
    if change.land_use is None:
        return
    if change.land_use not in landuse.LAND_USE:
        raise Invalid(f"land use {change.land_use!r} is not a GB/T 21010 farm class")
    closing += _open_period(session, parcel, "land_use", start, what="land use")
    new_rows.append(
        ParcelAttribute(
            parcel_id=parcel.id, name="land_use", value=change.land_use, valid_from=start
        )
    )
    parcel.land_use = data["land_use"] = change.land_use


def _crop_change(session: Session, edit: _Edit) -> None:
    """A season's crop: an earlier record of the same season is kept, marked superseded."""
    parcel, change, data, new_rows = edit.parcel, edit.change, edit.data, edit.new_rows
    if change.crop is None:
        return
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


def _bdcdyh_change(session: Session, edit: _Edit) -> None:
    parcel, change, start, data = edit.parcel, edit.change, edit.start, edit.data
    closing, new_rows = edit.closing, edit.new_rows
    if change.bdcdyh is None:
        return
    try:
        bdcdyh = codes.parse_bdcdyh(change.bdcdyh, county=parcel.fbfbm[:6]).code
    except codes.CodeError as error:
        raise Invalid(f"不动产单元代码: {error}") from error
    closing += _open_period(session, parcel, "bdcdyh", start, what="不动产单元代码")
    new_rows.append(
        ParcelAttribute(parcel_id=parcel.id, name="bdcdyh", value=bdcdyh, valid_from=start)
    )
    parcel.bdcdyh = data["bdcdyh"] = bdcdyh
