"""Registering parcels: codes checked against the regions, geometry prepared in bulk,
duplicates and overlaps refused by name, DKBMs kept or allocated, ledger entries and rows.

The records live in ``records``, the checks against the registry in ``checks`` and the
writing in ``storing``; this module composes them (and re-exports what others import).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.errors import Conflict, Forbidden, Invalid
from digital_village.ledger.log import Ledger
from digital_village.parcels import batch, codes, geometry, landuse
from digital_village.parcels.checks import (
    FAR_FROM_HOME_KM,
    OVERLAP_TOLERANCE_M2,
    Home,
    far_reasons,
    home_of,
    overlap_reasons,
)
from digital_village.parcels.models import Parcel
from digital_village.parcels.records import (
    Candidate,
    Contractor,
    Created,
    ParcelIn,
    RegisterReport,
    Rejected,
)
from digital_village.parcels.store import (
    SourceCrs,
    chunked,
    cooperative_codes,
    get_parcel,
    household_codes,
    household_cooperatives,
    today,
)
from digital_village.parcels.storing import store_parcels
from digital_village.regions.models import Cooperative, Household, Region

__all__ = [
    "FAR_FROM_HOME_KM",
    "OVERLAP_TOLERANCE_M2",
    "Candidate",
    "Checked",
    "Contractor",
    "Created",
    "Home",
    "ParcelIn",
    "RegisterReport",
    "Rejected",
    "check_attributes",
    "check_fbfbm",
    "check_many",
    "cooperative_region",
    "home_of",
    "overlap_reasons",
    "register",
    "register_many",
    "require_region_scope",
    "store_checked",
    "store_parcels",
]


def check_fbfbm(*, session: Session, fbfbm: str) -> Contractor:
    """Parse an FBFBM and check that its township, village and group are registered regions."""
    try:
        parsed = codes.parse_fbfbm(fbfbm)
    except codes.CodeError as error:
        raise Invalid(f"FBFBM {fbfbm.strip()!r}: {error}") from error
    if parsed.level == "township":
        raise Invalid(f"FBFBM {parsed.code} names village 000: land is contracted by a village")
    known = set(
        session.scalars(
            select(Region.code).where(
                Region.code.in_([parsed.township_code, parsed.village_code, parsed.code])
            )
        )
    )
    if parsed.township_code not in known:
        raise Invalid(f"unknown township code {parsed.township_code} in FBFBM {parsed.code}")
    if parsed.village_code not in known:
        raise Invalid(
            f"unknown village code {parsed.village_code} in FBFBM {parsed.code}; "
            "add it with `dv regions add`"
        )
    group = parsed.code if parsed.group != "00" else None
    if group is not None and group not in known:
        raise Invalid(
            f"unknown group code {parsed.group} of village {parsed.village_code} "
            f"(FBFBM {parsed.code}); add it with `dv regions add {parsed.code} NAME`"
        )
    return Contractor(parsed.code, parsed.township_code, parsed.village_code, group)


def cooperative_region(session: Session, actor: Actor) -> str | None:
    if actor.role is not Role.MANAGER or actor.cooperative_id is None:
        return None
    cooperative = session.get(Cooperative, actor.cooperative_id)
    return cooperative.region_code if cooperative else None


def require_region_scope(*, session: Session, actor: Actor, fbfbm: str) -> None:
    """Admin, or a manager whose cooperative is registered in the FBFBM's village or township."""
    _require_region(session, actor, fbfbm)


def _require_region(session: Session, actor: Actor, fbfbm: str) -> None:
    """Admin, or a manager whose cooperative is registered in the parcel's village or township."""
    if actor.is_admin:
        return
    region = cooperative_region(session, actor)
    if region is not None and fbfbm.startswith(region):
        return
    raise Forbidden(
        f"a {actor.role.value} token may not register or reshape parcels of {fbfbm}; "
        "it needs an admin token or a manager of a cooperative in that village or township",
        role=actor.role.value,
    )


def _require_own_holders(session: Session, actor: Actor, items: Sequence[ParcelIn]) -> None:
    """A manager registers parcels only for its own cooperative and its member households
    (or for nobody); another cooperative's land is registered by an admin."""
    if actor.is_admin:
        return
    wanted = {i.contractor_household_id for i in items if i.contractor_household_id}
    members = household_cooperatives(session, wanted)
    foreign = sorted(h for h in wanted if h in members and members[h] != actor.cooperative_id)
    operators = sorted(
        {i.operator_cooperative_id for i in items if i.operator_cooperative_id}
        - {actor.cooperative_id}
    )
    if foreign:
        # Named as people name them: households by 承包方编码, never by row id.
        codes_of = session.execute(
            select(Household.id, Household.cbfbm).where(Household.id.in_(foreign))
        ).all()
        named = ", ".join(sorted(cbfbm for _, cbfbm in codes_of))
        raise Forbidden(
            f"a manager registers parcels only for its own cooperative's member households; "
            f"household {named} is not one of its members",
            role=actor.role.value,
        )
    if operators:
        others = session.scalars(select(Cooperative).where(Cooperative.id.in_(operators))).all()
        named = ", ".join(f"{c.name} ({c.uscc})" for c in others)
        raise Forbidden(
            f"a manager registers parcels operated by its own cooperative only, not by "
            f"{named or 'another cooperative'}",
            role=actor.role.value,
        )


def check_attributes(
    item: ParcelIn, *, county: str | None = None
) -> list[tuple[str, str, dt.date, dt.date]]:
    """Check land use, 不动产单元代码 (of ``county`` when given) and crops; the crop periods."""
    if item.land_use not in landuse.LAND_USE:
        raise Invalid(
            f"land use {item.land_use!r} is not a GB/T 21010 farm class "
            f"(e.g. 0101 水田, 0103 旱地, 0201 果园)"
        )
    if item.bdcdyh is not None:
        try:
            codes.parse_bdcdyh(item.bdcdyh, county=county)
        except codes.CodeError as error:
            raise Invalid(f"不动产单元代码: {error}") from error
    crops = []
    for season, crop in item.crops:
        try:
            start, end = landuse.season_period(season)
        except ValueError as error:
            raise Invalid(str(error)) from error
        if not crop.strip() or len(crop.strip()) > 40:
            raise Invalid(f"crop of {season} must be 1 to 40 characters")
        crops.append((season, crop.strip(), start, end))
    return crops


def dkbm_reasons(
    session: Session, items: Sequence[ParcelIn], owners: Mapping[int, Contractor]
) -> dict[int, str]:
    """Reasons to refuse the DKBMs items carry: malformed, not under the item's FBFBM,
    repeated in the input, or already registered (active or retired: codes are never reused).
    ``owners`` maps item positions to their checked FBFBMs."""
    reasons: dict[int, str] = {}
    first_at: dict[str, int] = {}
    for index, owner in owners.items():
        text = items[index].dkbm
        if not text:
            continue
        try:
            code = codes.parse_dkbm(text).code
        except codes.CodeError as error:
            reasons[index] = f"DKBM: {error}"
            continue
        if code[:14] != owner.fbfbm:
            reasons[index] = f"DKBM {code} does not start with its FBFBM {owner.fbfbm}"
        elif code in first_at:
            reasons[index] = f"DKBM {code} is also the code of feature {first_at[code]}"
        else:
            first_at[code] = index
    known: set[str] = set()
    for chunk in chunked(sorted(first_at)):
        known.update(session.scalars(select(Parcel.dkbm).where(Parcel.dkbm.in_(chunk))))
    for code in known:
        reasons[first_at[code]] = f"DKBM {code} is already registered"
    return reasons


@dataclass
class _Lookups:
    """What checking a batch of items needs from the database, fetched once."""

    base: Contractor
    households: dict[int, str]
    cooperatives: dict[int, str]
    contractors: dict[str, Contractor | Invalid]


def _check_item(
    session: Session, item: ParcelIn, shape: batch.Prepared, lookups: _Lookups
) -> tuple[Contractor, list[tuple[str, str, dt.date, dt.date]]]:
    """The item's FBFBM and crop periods, or Invalid naming what is wrong with it."""
    owner = _feature_contractor(session, lookups.base, item.fbfbm, lookups.contractors)
    crops = check_attributes(item, county=owner.fbfbm[:6])
    if item.contractor_household_id and item.contractor_household_id not in lookups.households:
        raise Invalid(f"no household with id {item.contractor_household_id}")
    if item.operator_cooperative_id and item.operator_cooperative_id not in lookups.cooperatives:
        raise Invalid(f"no cooperative with id {item.operator_cooperative_id}")
    if isinstance(shape, geometry.GeometryError):
        raise Invalid(str(shape))
    return owner, crops


def _candidates(
    session: Session,
    items: Sequence[ParcelIn],
    shapes: list[batch.Prepared],
    numbers: list[int],
    lookups: _Lookups,
    far: dict[int, str],
    report: RegisterReport,
) -> list[Candidate]:
    """Items that pass their own checks (rejections go into the report)."""
    checked: dict[int, tuple[Contractor, list[tuple[str, str, dt.date, dt.date]]]] = {}
    for index, (item, shape) in enumerate(zip(items, shapes, strict=True)):
        try:
            checked[index] = _check_item(session, item, shape, lookups)
            if index in far:
                raise Invalid(far[index])
        except Invalid as error:
            checked.pop(index, None)
            report.rejected.append(Rejected(numbers[index], error.detail))
    bad_codes = dkbm_reasons(session, items, {i: owner for i, (owner, _) in checked.items()})
    candidates = []
    for index, (owner, crops) in checked.items():
        if index in bad_codes:
            report.rejected.append(Rejected(numbers[index], bad_codes[index]))
            continue
        shape = shapes[index]
        assert isinstance(shape, geometry.ParcelShape)
        candidates.append(Candidate(numbers[index], items[index], owner, shape, crops))
    return candidates


@dataclass
class Checked:
    """Items checked against the registry as it stood: the candidates to store, and the report
    with every rejection so far (and, once stored, every parcel created)."""

    candidates: list[Candidate]
    report: RegisterReport
    households: dict[int, str]
    cooperatives: dict[int, str]


def check_many(
    *,
    session: Session,
    fbfbm: str,
    items: Sequence[ParcelIn],
    actor: Actor,
    source: SourceCrs | None = None,
    allow_repair: bool = False,
    feature_numbers: Sequence[int] | None = None,
    earlier_features: Mapping[str, int] | None = None,
    home: Home | Literal["look up"] | None = "look up",
) -> Checked:
    """Check every parcel (reads only): the candidates that passed, the rest in the report.

    Each feature is checked for its FBFBM (known region, under ``fbfbm``), attributes
    (GB/T 21010 land use, 不动产单元代码, crop seasons, holders), the DKBM it carries (see
    ``dkbm_reasons``), geometry (prepare_parcel), a shape already registered, and overlaps
    over 1 m² with active parcels or earlier features. ``feature_numbers`` names the items in
    reports (default: their index in ``items``); ``earlier_features`` maps DKBMs stored from
    earlier chunks of the same input to theirs. A parcel over 30 km from the other parcels of
    its village (``home``, looked up unless given) is refused as read in the wrong CRS.
    """
    numbers = list(feature_numbers) if feature_numbers is not None else list(range(len(items)))
    source = source or SourceCrs()
    base = check_fbfbm(session=session, fbfbm=fbfbm)
    _require_region(session, actor, base.fbfbm)
    _require_own_holders(session, actor, items)
    report = RegisterReport()
    lookups = _Lookups(
        base,
        household_codes(
            session, {i.contractor_household_id for i in items if i.contractor_household_id}
        ),
        cooperative_codes(
            session, {i.operator_cooperative_id for i in items if i.operator_cooperative_id}
        ),
        {base.fbfbm: base},
    )
    shapes = batch.prepare_many(
        [item.geometry for item in items],
        source_crs=source.crs,
        datum=source.datum,
        allow_repair=allow_repair,
    )
    if home == "look up":
        home = home_of(session, base)
    far = far_reasons(home, shapes, source.label)
    candidates = _candidates(session, items, shapes, numbers, lookups, far, report)
    reasons = overlap_reasons(session, candidates, earlier=earlier_features)
    for position, reason in reasons.items():
        report.rejected.append(Rejected(candidates[position].feature, reason))
    report.rejected.sort(key=lambda r: r.feature)
    accepted = [c for position, c in enumerate(candidates) if position not in reasons]
    return Checked(accepted, report, lookups.households, lookups.cooperatives)


def store_checked(
    session: Session,
    ledger: Ledger,
    checked: Checked,
    candidates: Sequence[Candidate],
    *,
    start: dt.date,
) -> None:
    """Store candidates that were checked in an earlier transaction: those that now overlap
    a parcel registered since are refused (into the report), the others stored."""
    candidates = list(candidates)
    report = checked.report
    late = overlap_reasons(session, candidates)
    for position, reason in late.items():
        report.rejected.append(Rejected(candidates[position].feature, reason))
    if late:
        report.rejected.sort(key=lambda r: r.feature)
    stored = [c for position, c in enumerate(candidates) if position not in late]
    if stored:
        store_parcels(
            session,
            ledger,
            stored,
            start=start,
            households=checked.households,
            cooperatives=checked.cooperatives,
            kind="parcel.registered",
            extra={},
            report=report,
        )


def register_many(
    *,
    session: Session,
    ledger: Ledger,
    fbfbm: str,
    items: Sequence[ParcelIn],
    actor: Actor,
    source: SourceCrs | None = None,
    allow_repair: bool = False,
    all_or_nothing: bool = False,
    valid_from: dt.date | None = None,
    kind: str = "parcel.registered",
    extra: dict[str, Any] | None = None,
    feature_numbers: Sequence[int] | None = None,
    earlier_features: Mapping[str, int] | None = None,
    home: Home | Literal["look up"] | None = "look up",
) -> RegisterReport:
    """Check every parcel (``check_many``), store the good ones in the session's transaction
    (or none, ``all_or_nothing``), report the rest. Stored parcels keep their own DKBM or get
    the next of their FBFBM, and one ledger entry each."""
    checked = check_many(
        session=session,
        fbfbm=fbfbm,
        items=items,
        actor=actor,
        source=source,
        allow_repair=allow_repair,
        feature_numbers=feature_numbers,
        earlier_features=earlier_features,
        home=home,
    )
    report = checked.report
    if not checked.candidates or (all_or_nothing and report.rejected):
        report.stored = not report.rejected
        return report
    store_parcels(
        session,
        ledger,
        checked.candidates,
        start=valid_from or today(),
        households=checked.households,
        cooperatives=checked.cooperatives,
        kind=kind,
        extra=extra or {},
        report=report,
    )
    return report


def _feature_contractor(
    session: Session,
    base: Contractor,
    text_code: str | None,
    cache: dict[str, Contractor | Invalid],
) -> Contractor:
    code = (text_code or base.fbfbm).strip()
    if code not in cache:
        try:
            cache[code] = check_fbfbm(session=session, fbfbm=code)
        except Invalid as error:
            cache[code] = error
    found = cache[code]
    if isinstance(found, Invalid):
        raise found
    same_scope = found.fbfbm == base.fbfbm or (
        base.group_code is None and found.village_code == base.village_code
    )
    if not same_scope:
        raise Invalid(f"feature's FBFBM {found.fbfbm} is not under the import's FBFBM {base.fbfbm}")
    return found


def register(
    *,
    session: Session,
    ledger: Ledger,
    fbfbm: str,
    parcel_in: ParcelIn,
    actor: Actor,
    source: SourceCrs | None = None,
    allow_repair: bool = False,
    valid_from: dt.date | None = None,
) -> tuple[Parcel, tuple[str, ...]]:
    """Register one parcel; Invalid (or Conflict for an overlap) naming what is wrong."""
    report = register_many(
        session=session,
        ledger=ledger,
        fbfbm=fbfbm,
        items=[parcel_in],
        actor=actor,
        source=source,
        allow_repair=allow_repair,
        valid_from=valid_from,
    )
    if report.rejected:
        reason = report.rejected[0].reason
        if reason.startswith(("overlaps", "same shape")):
            raise Conflict(reason)
        raise Invalid(reason)
    created = report.created[0]
    return get_parcel(session=session, dkbm=created.dkbm), created.warnings
