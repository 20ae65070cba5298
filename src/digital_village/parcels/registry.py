"""Registering parcels: codes checked against the regions, geometry prepared in bulk,
duplicates and overlaps refused by name, DKBMs allocated, ledger entries and rows written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import shapely
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from digital_village.auth.actor import Actor
from digital_village.auth.models import Role
from digital_village.errors import Conflict, Forbidden, Invalid
from digital_village.ledger.log import EntryIn, Ledger
from digital_village.parcels import batch, codes, geometry, landuse
from digital_village.parcels.models import (
    Parcel,
    ParcelAttribute,
    ParcelHolding,
    ParcelSequence,
    ParcelStatus,
)
from digital_village.parcels.store import (
    SourceCrs,
    bbox_ids,
    chunked,
    cooperative_codes,
    get_parcel,
    household_codes,
    today,
)
from digital_village.regions.models import Cooperative, Region


@dataclass(frozen=True)
class Contractor:
    """An FBFBM checked against the administrative tree."""

    fbfbm: str
    township_code: str
    village_code: str
    group_code: str | None


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


@dataclass(frozen=True)
class ParcelIn:
    """One parcel to register: raw geometry and attributes, checked by ``register_many``."""

    geometry: Any
    land_use: str
    fbfbm: str | None = None  # None: the FBFBM given to register_many
    name: str | None = None
    bdcdyh: str | None = None
    contractor_household_id: int | None = None
    operator_cooperative_id: int | None = None
    crops: tuple[tuple[str, str], ...] = ()  # (season label, crop)


@dataclass(frozen=True)
class Created:
    feature: int
    dkbm: str
    area_m2: float
    area_mu: float
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rejected:
    feature: int
    reason: str


@dataclass
class RegisterReport:
    """What a registration did: parcels created and features rejected, each with its index."""

    created: list[Created] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    stored: bool = True
    already_imported: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "created": [
                {
                    "feature": c.feature,
                    "dkbm": c.dkbm,
                    "area_m2": round(c.area_m2, 2),
                    "area_mu": round(c.area_mu, 4),
                    **({"warnings": list(c.warnings)} if c.warnings else {}),
                }
                for c in self.created
            ],
            "rejected": [{"feature": r.feature, "reason": r.reason} for r in self.rejected],
            "stored": self.stored,
            **({"already_imported": self.already_imported} if self.already_imported else {}),
        }


@dataclass
class Candidate:
    feature: int
    item: ParcelIn
    contractor: Contractor
    shape: geometry.ParcelShape
    crops: list[tuple[str, str, dt.date, dt.date]]


OVERLAP_TOLERANCE_M2 = 1.0


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


def _active_near(
    session: Session, bbox: tuple[float, float, float, float]
) -> list[tuple[str, str, bytes]]:
    rows = session.execute(
        select(Parcel.dkbm, Parcel.fingerprint, Parcel.geometry_wkb).where(
            Parcel.id.in_(bbox_ids(session, bbox)), Parcel.status == ParcelStatus.ACTIVE
        )
    ).all()
    return [(r[0], r[1], r[2]) for r in rows]


def overlap_reasons(
    session: Session,
    candidates: list[Candidate],
    *,
    ignore: frozenset[str] = frozenset(),
    earlier: Mapping[str, int] | None = None,
) -> dict[int, str]:
    """Reasons to reject candidates that overlap an active parcel or an earlier candidate.

    ``earlier`` maps the DKBMs stored by earlier chunks of the same input to their feature
    numbers, so that a reason names "feature 12" rather than a code the clerk never saw (and
    that an all-or-nothing import rolls back).
    """
    if not candidates:
        return {}
    stored_as = earlier or {}
    shapes = np.asarray([c.shape.geometry for c in candidates], dtype=object)
    bounds = shapely.total_bounds(shapes)
    existing = [row for row in _active_near(session, tuple(bounds)) if row[0] not in ignore]
    by_fingerprint = {row[1]: row[0] for row in existing}
    reasons: dict[int, str] = {}
    seen: dict[str, int] = {}
    for position, candidate in enumerate(candidates):
        same = by_fingerprint.get(candidate.shape.fingerprint)
        if same is not None and same in stored_as:
            reasons[position] = f"same shape as feature {stored_as[same]} of this input"
        elif same is not None:
            reasons[position] = f"same shape as parcel {same}, already registered (re-import?)"
        elif candidate.shape.fingerprint in seen:
            first = candidates[seen[candidate.shape.fingerprint]].feature
            reasons[position] = f"same shape as feature {first} of this input"
        else:
            seen[candidate.shape.fingerprint] = position
    others = np.asarray([shapely.from_wkb(row[2]) for row in existing], dtype=object)
    tree_items = np.concatenate([others, shapes]) if len(others) else shapes
    pairs = shapely.STRtree(tree_items).query(shapes, predicate="intersects")
    mine, theirs = pairs[0], pairs[1]
    # An existing parcel (index < len(others)) or an earlier candidate.
    relevant = (theirs < len(others)) | (theirs - len(others) < mine)
    mine, theirs = mine[relevant], theirs[relevant]
    if len(mine) == 0:
        return reasons
    shared = shapely.intersection(shapes[mine], tree_items[theirs])
    areas = np.zeros(len(mine))
    epsgs = np.asarray([candidates[m].shape.epsg for m in mine])
    for epsg in np.unique(epsgs):
        chosen = np.flatnonzero(epsgs == epsg)
        areas[chosen] = shapely.area(geometry.to_gk(shared[chosen], int(epsg)))
    hits: dict[int, list[tuple[int, float]]] = {}
    for m, t, shared_m2 in zip(mine, theirs, areas, strict=True):
        if shared_m2 > OVERLAP_TOLERANCE_M2:
            hits.setdefault(int(m), []).append((int(t), float(shared_m2)))
    for position in sorted(hits):
        if position in reasons:
            continue
        named = []
        for t, area in sorted(hits[position], key=lambda hit: -hit[1]):
            if t < len(others) and existing[t][0] in stored_as:
                named.append(f"feature {stored_as[existing[t][0]]} ({area:.1f} m²)")
            elif t < len(others):
                named.append(f"parcel {existing[t][0]} ({area:.1f} m²)")
            elif (t - len(others)) not in reasons:  # a rejected feature is no obstacle
                named.append(f"feature {candidates[t - len(others)].feature} ({area:.1f} m²)")
        if named:
            reasons[position] = "overlaps " + ", ".join(named)
    return reasons


# A village is a few kilometres across: a field tens of kilometres from the others of its
# village (or township) was read in the wrong CRS, e.g. a .prj naming the neighbouring zone.
FAR_FROM_HOME_KM = 30.0


@dataclass(frozen=True)
class Home:
    """Where an FBFBM's land lies: the bounds of its village's (or township's) active parcels."""

    label: str  # "village 510603101201"
    bounds: tuple[float, float, float, float]


def home_of(session: Session, contractor: Contractor) -> Home | None:
    """The bounds of the active parcels of the FBFBM's village, else of its township."""
    bounds = (
        func.min(Parcel.min_lon),
        func.min(Parcel.min_lat),
        func.max(Parcel.max_lon),
        func.max(Parcel.max_lat),
    )
    for what, column, code in (
        ("village", Parcel.village_code, contractor.village_code),
        ("township", Parcel.township_code, contractor.township_code),
    ):
        row = session.execute(
            select(*bounds).where(column == code, Parcel.status == ParcelStatus.ACTIVE)
        ).one()
        if row[0] is not None:
            return Home(f"{what} {code}", (row[0], row[1], row[2], row[3]))
    return None


def far_reasons(home: Home | None, shapes: Sequence[batch.Prepared], crs: str) -> dict[int, str]:
    """Reasons for prepared shapes lying far from the other parcels of their village/township."""
    good = [
        (i, shape.geometry)
        for i, shape in enumerate(shapes)
        if isinstance(shape, geometry.ParcelShape)
    ]
    if home is None or not good:
        return {}
    distances = geometry.distances_to_bounds_m([geom for _, geom in good], home.bounds)
    return {
        index: f"lies {km:.0f} km from the other parcels of {home.label}: are the coordinates "
        f"really in {crs}? (check the file's CRS, or the one given)"
        for (index, _), metres in zip(good, distances, strict=True)
        if (km := metres / 1000) > FAR_FROM_HOME_KM
    }


def _allocate(session: Session, fbfbm: str, count: int) -> int:
    """Reserve ``count`` new sequences under an FBFBM; return the first. Never reused."""
    row = session.scalars(
        select(ParcelSequence).where(ParcelSequence.fbfbm == fbfbm).with_for_update()
    ).first()
    first = (row.last_sequence if row else 0) + 1
    last = first + count - 1
    if last > codes.MAX_SEQUENCE:
        raise Conflict(
            f"发包方 {fbfbm} would pass parcel sequence {codes.MAX_SEQUENCE} "
            f"({count} asked, {codes.MAX_SEQUENCE - first + 1} left)"
        )
    if row is None:
        session.add(ParcelSequence(fbfbm=fbfbm, last_sequence=last))
    else:
        row.last_sequence = last
    session.flush()
    return first


def _geometry_wkb(shape: geometry.Polygonal) -> bytes:
    wkb: bytes = shapely.to_wkb(shape, output_dimension=2, byte_order=1)
    return wkb


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
    """Check every parcel, store the good ones (or none, ``all_or_nothing``), report the rest.

    Each feature is checked for its FBFBM (known region, under ``fbfbm``), attributes
    (GB/T 21010 land use, 不动产单元代码, crop seasons, holders), geometry (prepare_parcel),
    a shape already registered, and overlaps over 1 m² with active parcels or earlier
    features. Stored parcels get the next DKBMs of their FBFBM and one ledger entry each.
    ``feature_numbers`` names the items in reports (default: their index in ``items``);
    ``earlier_features`` maps DKBMs stored from earlier chunks of the same input to theirs.
    A parcel over 30 km from the other parcels of its village (``home``, looked up unless
    given) is refused as read in the wrong CRS.
    """
    numbers = list(feature_numbers) if feature_numbers is not None else list(range(len(items)))
    source = source or SourceCrs()
    base = check_fbfbm(session=session, fbfbm=fbfbm)
    _require_region(session, actor, base.fbfbm)
    start = valid_from or today()
    report = RegisterReport()
    contractors: dict[str, Contractor | Invalid] = {base.fbfbm: base}
    households = household_codes(
        session, {i.contractor_household_id for i in items if i.contractor_household_id}
    )
    cooperatives = cooperative_codes(
        session, {i.operator_cooperative_id for i in items if i.operator_cooperative_id}
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
    candidates: list[Candidate] = []
    for index, (item, shape) in enumerate(zip(items, shapes, strict=True)):
        try:
            owner = _feature_contractor(session, base, item.fbfbm, contractors)
            crops = check_attributes(item, county=owner.fbfbm[:6])
            if item.contractor_household_id and item.contractor_household_id not in households:
                raise Invalid(f"no household with id {item.contractor_household_id}")
            if item.operator_cooperative_id and item.operator_cooperative_id not in cooperatives:
                raise Invalid(f"no cooperative with id {item.operator_cooperative_id}")
            if isinstance(shape, geometry.GeometryError):
                raise Invalid(str(shape))
            if index in far:
                raise Invalid(far[index])
        except Invalid as error:
            report.rejected.append(Rejected(numbers[index], error.detail))
            continue
        candidates.append(Candidate(numbers[index], item, owner, shape, crops))
    reasons = overlap_reasons(session, candidates, earlier=earlier_features)
    for position, reason in reasons.items():
        report.rejected.append(Rejected(candidates[position].feature, reason))
    report.rejected.sort(key=lambda r: r.feature)
    accepted = [c for position, c in enumerate(candidates) if position not in reasons]
    if not accepted or (all_or_nothing and report.rejected):
        report.stored = not report.rejected
        return report
    store_parcels(
        session,
        ledger,
        accepted,
        start=start,
        households=households,
        cooperatives=cooperatives,
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


def store_parcels(
    session: Session,
    ledger: Ledger,
    accepted: list[Candidate],
    *,
    start: dt.date,
    households: dict[int, str],
    cooperatives: dict[int, str],
    kind: str,
    extra: dict[str, Any],
    report: RegisterReport,
) -> list[int]:
    """Allocate codes, append the ledger entries, insert the rows. Returns the new parcel ids."""
    by_fbfbm: dict[str, list[Candidate]] = {}
    for candidate in accepted:
        by_fbfbm.setdefault(candidate.contractor.fbfbm, []).append(candidate)
    dkbms: dict[int, str] = {}
    for code, members in by_fbfbm.items():
        first = _allocate(session, code, len(members))
        for offset, candidate in enumerate(members):
            dkbms[candidate.feature] = codes.format_dkbm(code, first + offset)
    wkbs = [_geometry_wkb(c.shape.geometry) for c in accepted]
    hashes = [hashlib.sha256(wkb).hexdigest() for wkb in wkbs]
    entries = []
    for candidate, digest in zip(accepted, hashes, strict=True):
        item, shape = candidate.item, candidate.shape
        data: dict[str, Any] = {
            "dkbm": dkbms[candidate.feature],
            "fbfbm": candidate.contractor.fbfbm,
            "area_m2": round(shape.area_m2, 2),
            "area_mu": round(shape.area_mu, 4),
            "land_use": item.land_use,
            "geometry_sha256": digest,
            "fingerprint": shape.fingerprint,
            "valid_from": start.isoformat(),
            **extra,
        }
        if item.bdcdyh:
            data["bdcdyh"] = codes.parse_bdcdyh(item.bdcdyh).code
        if item.contractor_household_id:
            data["contractor"] = households[item.contractor_household_id]
        if item.operator_cooperative_id:
            data["operator"] = cooperatives[item.operator_cooperative_id]
        entries.append(EntryIn(kind, data, f"parcel:{dkbms[candidate.feature]}"))
    appended = ledger.append_many(session, entries)
    rows = []
    for candidate, wkb, digest, entry in zip(accepted, wkbs, hashes, appended, strict=True):
        shape, item = candidate.shape, candidate.item
        min_lon, min_lat, max_lon, max_lat = shape.geometry.bounds
        rows.append(
            {
                "dkbm": dkbms[candidate.feature],
                "fbfbm": candidate.contractor.fbfbm,
                "township_code": candidate.contractor.township_code,
                "village_code": candidate.contractor.village_code,
                "group_code": candidate.contractor.group_code,
                "name": item.name,
                "bdcdyh": codes.parse_bdcdyh(item.bdcdyh).code if item.bdcdyh else None,
                "land_use": item.land_use,
                "status": ParcelStatus.ACTIVE,
                "area_m2": shape.area_m2,
                "area_mu": shape.area_mu,
                "area_ha": shape.area_ha,
                "geodesic_m2": shape.geodesic_m2,
                "epsg": shape.epsg,
                "geometry_wkb": wkb,
                "geometry_sha256": digest,
                "fingerprint": shape.fingerprint,
                "min_lon": min_lon,
                "min_lat": min_lat,
                "max_lon": max_lon,
                "max_lat": max_lat,
                "sliver_reason": shape.sliver.reason,
                "last_seq": entry.seq,
            }
        )
    # Core inserts on the session's connection: the ORM's bulk path with RETURNING costs
    # several times more than the SQL; the ids are read back by DKBM.
    connection = session.connection()
    connection.execute(insert(Parcel), rows)
    id_of: dict[str, int] = {}
    for chunk in chunked([row["dkbm"] for row in rows]):
        id_of.update(
            (row[0], row[1])
            for row in connection.execute(
                select(Parcel.dkbm, Parcel.id).where(Parcel.dkbm.in_(chunk))
            )
        )
    ids = [id_of[row["dkbm"]] for row in rows]
    holdings, attributes = [], []
    for parcel_id, candidate, entry in zip(ids, accepted, appended, strict=True):
        item = candidate.item
        if item.contractor_household_id or item.operator_cooperative_id:
            holdings.append(
                {
                    "parcel_id": parcel_id,
                    "contractor_household_id": item.contractor_household_id,
                    "operator_cooperative_id": item.operator_cooperative_id,
                    "valid_from": start,
                    "ledger_seq": entry.seq,
                }
            )
        attributes.append(
            {
                "parcel_id": parcel_id,
                "name": "land_use",
                "value": item.land_use,
                "season": None,
                "valid_from": start,
                "ledger_seq": entry.seq,
            }
        )
        if item.bdcdyh:
            attributes.append(
                {
                    "parcel_id": parcel_id,
                    "name": "bdcdyh",
                    "value": codes.parse_bdcdyh(item.bdcdyh).code,
                    "season": None,
                    "valid_from": start,
                    "ledger_seq": entry.seq,
                }
            )
        for season, crop, crop_from, crop_to in candidate.crops:
            attributes.append(
                {
                    "parcel_id": parcel_id,
                    "name": "crop",
                    "value": crop,
                    "season": season,
                    "valid_from": crop_from,
                    "valid_to": crop_to,
                    "ledger_seq": entry.seq,
                }
            )
    if holdings:
        connection.execute(insert(ParcelHolding), holdings)
    # Rows of one executemany must have the same keys.
    for row in attributes:
        row.setdefault("valid_to", None)
    connection.execute(insert(ParcelAttribute), attributes)
    for candidate in accepted:
        shape = candidate.shape
        report.created.append(
            Created(
                candidate.feature,
                dkbms[candidate.feature],
                shape.area_m2,
                shape.area_mu,
                shape.warnings,
            )
        )
    report.created.sort(key=lambda c: c.feature)
    return ids


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
