"""The parcel registry's public face: what routers, the CLI and other capabilities call.

Other capabilities use ``get_parcel``, ``get_active_parcel``, ``parcel_geometry``,
``parcel_containing_point`` and ``holder_at``:

    from digital_village.parcels import service as parcels
    parcel = parcels.get_active_parcel(session=session, dkbm=dkbm)

The work is done in ``store`` (reads and queries), ``periods`` (holders, crops and history
on a date), ``registry`` (registration), ``changes`` (holders, land use, crops) and
``reshape`` (split, merge). Every write appends its ledger entries in the caller's
transaction; nothing here commits or raises HTTP errors.
"""

from __future__ import annotations

from digital_village.errors import Conflict, Invalid, NotFound
from digital_village.parcels.changes import ParcelChange, change, require_own_parcel
from digital_village.parcels.periods import (
    HeldParcel,
    crop_on,
    crops_on,
    find_import,
    held_on,
    history,
    holder_at,
    holdings_on,
    record_import,
    verify_geometry,
)
from digital_village.parcels.registry import (
    OVERLAP_TOLERANCE_M2,
    Contractor,
    Created,
    ParcelIn,
    RegisterReport,
    Rejected,
    check_fbfbm,
    home_of,
    register,
    register_many,
    require_region_scope,
)
from digital_village.parcels.reshape import merge, split
from digital_village.parcels.store import (
    CHINA_TIME,
    Holding,
    Page,
    ParcelFacts,
    SourceCrs,
    get_active_parcel,
    get_parcel,
    lineage,
    list_all_active,
    list_parcels,
    locate_id,
    neighbours,
    parcel_containing_point,
    parcel_facts,
    parcel_geometry,
    parcels_of_region,
    parse_source_crs,
    region_filter,
    successors_of,
    to_lonlat_point,
    today,
)

__all__ = [
    "CHINA_TIME",
    "OVERLAP_TOLERANCE_M2",
    "Conflict",
    "Contractor",
    "Created",
    "HeldParcel",
    "Holding",
    "Invalid",
    "NotFound",
    "Page",
    "ParcelChange",
    "ParcelFacts",
    "ParcelIn",
    "RegisterReport",
    "Rejected",
    "SourceCrs",
    "change",
    "check_fbfbm",
    "crop_on",
    "crops_on",
    "find_import",
    "get_active_parcel",
    "get_parcel",
    "held_on",
    "history",
    "holder_at",
    "holdings_on",
    "home_of",
    "lineage",
    "list_all_active",
    "list_parcels",
    "locate_id",
    "merge",
    "neighbours",
    "parcel_containing_point",
    "parcel_facts",
    "parcel_geometry",
    "parcels_of_region",
    "parse_source_crs",
    "record_import",
    "region_filter",
    "register",
    "register_many",
    "require_own_parcel",
    "require_region_scope",
    "split",
    "successors_of",
    "to_lonlat_point",
    "today",
    "verify_geometry",
]
