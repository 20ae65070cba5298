"""Checks of candidate parcels against the registry: same shapes, overlaps, and fields read
in the wrong CRS (far from the other parcels of their village)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digital_village.parcels import batch, geometry
from digital_village.parcels.models import Parcel, ParcelStatus
from digital_village.parcels.records import Candidate, Contractor
from digital_village.parcels.store import bbox_ids

OVERLAP_TOLERANCE_M2 = 1.0


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
